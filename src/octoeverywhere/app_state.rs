//! A printer's App Connection registration state: the model the pipeline
//! publishes and Home Assistant shows. A leaf: imports nothing of the bridge.

use serde::Serialize;

/// A printer's registration state, as published on
/// `<base>/<slug>/app_connection` and shown by Home Assistant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppState {
    /// Not answered yet.
    Pending,
    /// OctoEverywhere saved the callback.
    Registered,
    /// OctoEverywhere saved something else than was sent; retrying.
    Mismatch,
    /// A temporary failure (600-602, 605, 5xx, network); retrying.
    Retrying,
    /// Refused (400, 606, or no secret configured): fix the configuration.
    Rejected,
    /// 603: the App Connection does not exist.
    NotFound,
    /// 604: the App Connection was revoked or has expired.
    Revoked,
}

impl AppState {
    /// Every state, in the order Home Assistant lists them.
    pub const ALL: [AppState; 7] = [
        AppState::Pending,
        AppState::Registered,
        AppState::Mismatch,
        AppState::Retrying,
        AppState::Rejected,
        AppState::NotFound,
        AppState::Revoked,
    ];

    /// The published name.
    pub fn name(self) -> &'static str {
        match self {
            AppState::Pending => "pending",
            AppState::Registered => "registered",
            AppState::Mismatch => "mismatch",
            AppState::Retrying => "retrying",
            AppState::Rejected => "rejected",
            AppState::NotFound => "not_found",
            AppState::Revoked => "revoked",
        }
    }
}
