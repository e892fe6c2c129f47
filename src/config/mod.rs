//! The typed configuration tree, its figment layering (defaults < TOML file <
//! add-on options < `PRINT2MQTT_*` environment) and validation that names the
//! key and the file or variable a bad value came from (docs/configuration.md).
//!
//! # Layout
//! One file per section (`http`, `mqtt`, `storage`, `homeassistant`,
//! `printers`, `bridge`, `cluster` for `[nats]`), `secret` for secret values, `load` for the figment layers,
//! `validate` for the checks, `checks` and `urls` for what they share.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::slug;

mod bridge;
mod checks;
pub mod cluster;
mod homeassistant;
mod http;
mod load;
mod mqtt;
mod printers;
mod secret;
mod storage;
pub mod urls;
mod validate;

pub use bridge::Bridge;
pub use homeassistant::{DiscoveryMode, HomeAssistant};
pub use http::Http;
use load::{figment, from_figment};
pub use mqtt::Mqtt;
pub use printers::{Auth, EventFilter, OctoEverywhere, Printer};
pub use secret::Secret;
use secret::text;
pub use storage::{Broker, Storage};

/// The file read when neither `--config` nor `PRINT2MQTT_CONFIG` names one.
pub const DEFAULT_FILE: &str = "config/print2mqtt.toml";
/// The Home Assistant add-on's options, read when present.
pub const ADDON_OPTIONS: &str = "/data/options.json";
/// Environment variable prefix; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "PRINT2MQTT_";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub mqtt: Mqtt,
    pub storage: Storage,
    pub broker: Broker,
    pub homeassistant: HomeAssistant,
    pub auth: Auth,
    /// Per-printer settings keyed by the sender's printer id (matched
    /// without regard to case).
    pub printers: BTreeMap<String, Printer>,
    pub octoeverywhere: OctoEverywhere,
    pub bridge: Bridge,
    /// The NATS JetStream cluster of `storage.backend = "jetstream"`.
    pub nats: cluster::Nats,
}

/// One configuration problem, naming the key and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub source: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        if !self.source.is_empty() {
            write!(f, " (from {})", self.source)?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {e}")?;
        }
        Ok(())
    }
}

/// Where to look for configuration, besides the environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config PATH`.
    pub file: Option<PathBuf>,
    /// Overrides [`ADDON_OPTIONS`] (tests).
    pub addon_options: Option<PathBuf>,
}

impl Config {
    /// Loads and validates the layered configuration.
    pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
        let figment = figment(sources)?;
        // Lossy: numbers and booleans may be given as text (environment
        // variables are text; see `load::Environment`).
        let config: Config = figment
            .extract_lossy()
            .map_err(|e| from_figment(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    /// A copy with every secret replaced by `<redacted>` (for `check-config`).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        c.http.admin_token = c.http.admin_token.redacted();
        c.mqtt.password = c.mqtt.password.redacted();
        c.auth.secret = c.auth.secret.redacted();
        for p in c.printers.values_mut() {
            p.secret = p.secret.redacted();
            p.app_token = p.app_token.redacted();
        }
        c.mqtt.url = c.mqtt.shown_urls();
        c
    }

    /// The redacted configuration as TOML.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).unwrap_or_default()
    }

    /// The settings of the printer with this id, if configured.
    pub fn printer(&self, id: &str) -> Option<&Printer> {
        self.printers.get(id).or_else(|| {
            let id = slug::fold(id);
            self.printers
                .iter()
                .find(|(k, _)| slug::fold(k) == id)
                .map(|(_, p)| p)
        })
    }

    /// The secret a webhook for this printer must carry (empty: none).
    pub fn secret_for(&self, id: &str) -> &Secret {
        match self.printer(id) {
            Some(p) if !p.secret.is_empty() => &p.secret,
            _ => &self.auth.secret,
        }
    }

    /// (printer id, alias) for every configured alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.printers
            .iter()
            .filter(|(_, p)| !p.alias.is_empty())
            .map(|(id, p)| (id.as_str(), p.alias.as_str()))
    }
}

#[cfg(test)]
mod tests;
