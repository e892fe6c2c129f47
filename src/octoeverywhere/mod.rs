//! OctoEverywhere App Connection registration (docs/senders.md): for every
//! printer with an `app_token`, the bridge registers its own callback URL
//! with OctoEverywhere at start, every `renew_days` and on demand, and keeps
//! the outcome in a shared [`Registrations`] table (status API, Home
//! Assistant's "App Connection" entity).
//!
//! - [`api`]: the request and the answer classification (pure).
//! - [`client`]: the HTTP client.
//! - [`schedule`]: when to call again, a pure function of the outcome.
//! - [`registrar`]: the per-printer task.
//! - [`cli`]: `oe-register`, `oe-test`, `oe-unregister`.

pub mod api;
pub mod app_state;
pub mod cli;
pub mod client;
pub mod registrar;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::config::Config;
use crate::pipeline::Pipeline;
use api::Connection;
use client::Client;
use registrar::Registrar;

pub use app_state::AppState;

/// One printer's registration as the status page and `/api/appconnection`
/// show it. Never holds a secret: the callback URL is redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistrationStatus {
    pub printer_id: String,
    pub state: AppState,
    /// What happened, in plain words ("OK" once registered).
    pub detail: String,
    /// The status OctoEverywhere answered last, when it was not a success.
    pub status: Option<u16>,
    /// The callback URL with its token redacted.
    pub callback_url: Option<String>,
    /// The event filter sent (empty: every event).
    pub event_types: Vec<i64>,
    /// Calls made since start.
    pub attempts: u64,
    /// Failed calls since the last success.
    pub failures: u32,
    /// RFC 3339 times of the last call, the last success, the next call.
    pub last_attempt: Option<String>,
    pub registered_at: Option<String>,
    pub next_attempt: Option<String>,
}

impl RegistrationStatus {
    /// The state of a printer before its first call.
    pub fn pending(connection: &Connection) -> RegistrationStatus {
        RegistrationStatus {
            printer_id: connection.printer_id.clone(),
            state: AppState::Pending,
            detail: "registration not attempted yet".into(),
            status: None,
            callback_url: connection.callback_redacted().map(str::to_owned),
            event_types: connection.event_types.clone(),
            attempts: 0,
            failures: 0,
            last_attempt: None,
            registered_at: None,
            next_attempt: None,
        }
    }
}

/// The registration state of every printer with an `app_token`, shared
/// between the registrars (writers) and the HTTP API (readers).
#[derive(Debug, Clone)]
pub struct Registrations {
    table: Arc<RwLock<BTreeMap<String, RegistrationStatus>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Default for Registrations {
    fn default() -> Self {
        Registrations {
            table: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Registrations {
    /// An empty table.
    pub fn new() -> Registrations {
        Registrations::default()
    }

    /// Every printer's status, by printer id.
    pub fn list(&self) -> Vec<RegistrationStatus> {
        self.read().values().cloned().collect()
    }

    /// One printer's status.
    pub fn get(&self, printer_id: &str) -> Option<RegistrationStatus> {
        self.read().get(printer_id).cloned()
    }

    /// Waits until `printer_id`'s status satisfies `done`, and returns it.
    pub async fn wait(
        &self,
        printer_id: &str,
        done: impl Fn(&RegistrationStatus) -> bool,
    ) -> RegistrationStatus {
        let mut changes = self.changed.subscribe();
        loop {
            if let Some(s) = self.get(printer_id).filter(|s| done(s)) {
                return s;
            }
            // The sender lives in `self`, so this cannot end.
            let _ = changes.changed().await;
        }
    }

    /// Stores a printer's status.
    pub fn set(&self, status: RegistrationStatus) {
        self.table
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(status.printer_id.clone(), status);
        self.changed.send_modify(|n| *n += 1);
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, RegistrationStatus>> {
        // Poisoning needs a panic under the lock; the map stays consistent.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts one registrar per printer with an `app_token`. Each publishes its
/// state through `pipeline` (when given) and ends on `shutdown`, or after a
/// permanent failure.
pub fn start(
    config: &Config,
    table: &Registrations,
    pipeline: Option<Pipeline>,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    let connections = Connection::all(config);
    if connections.is_empty() {
        return Vec::new();
    }
    let client = match Client::new(&config.octoeverywhere.api_url) {
        Ok(client) => client,
        Err(e) => {
            error!(error = %e, "App Connection registration is off");
            for c in &connections {
                table.set(RegistrationStatus {
                    state: AppState::Rejected,
                    detail: e.to_string(),
                    ..RegistrationStatus::pending(c)
                });
            }
            return Vec::new();
        }
    };
    let renew = renew_interval(config.octoeverywhere.renew_days);
    connections
        .into_iter()
        .map(|connection| {
            table.set(RegistrationStatus::pending(&connection));
            Registrar {
                client: client.clone(),
                connection,
                table: table.clone(),
                pipeline: pipeline.clone(),
                renew,
                shutdown: shutdown.clone(),
            }
            .spawn()
        })
        .collect()
}

/// `renew_days` as a duration.
pub fn renew_interval(renew_days: u32) -> Duration {
    Duration::from_secs(u64::from(renew_days) * 24 * 60 * 60)
}

#[cfg(test)]
mod tests;
