//! `[auth]`, `[printers."<id>"]` and `[octoeverywhere]`: who may send
//! webhooks, per-printer settings and App Connection registration.

use serde::{Deserialize, Serialize};

use super::{Secret, text};

/// `[auth]`: the shared webhook secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub secret: Secret,
}

/// `[printers."<id>"]`: settings for one printer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Printer {
    /// Topic slug; empty: derived from the printer id.
    #[serde(deserialize_with = "text")]
    pub alias: String,
    /// Display name; empty: the webhook's printer name.
    #[serde(deserialize_with = "text")]
    pub name: String,
    /// Overrides `auth.secret` for this printer.
    pub secret: Secret,
    /// Publish only these events (empty: all).
    pub events: Vec<String>,
    /// OctoEverywhere App Connection token.
    pub app_token: Secret,
}

/// `[octoeverywhere]`: App Connection registration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OctoEverywhere {
    #[serde(deserialize_with = "text")]
    pub public_url: String,
    #[serde(deserialize_with = "text")]
    pub api_url: String,
    pub renew_days: u32,
}

impl Default for OctoEverywhere {
    fn default() -> Self {
        OctoEverywhere {
            public_url: String::new(),
            api_url: "https://octoeverywhere.com".into(),
            renew_days: 30,
        }
    }
}
