//! The per-printer registration task: registers at once, then renews every
//! `renew_days`, retries temporary failures with backoff, stops for good on
//! a permanent one; records each outcome in the [`Registrations`] table and
//! publishes it through the pipeline. Runs on tokio time, so tests drive it
//! with `tokio::time::pause()`.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::api::{Call, Connection, Outcome};
use super::client::Client;
use super::schedule::next_delay;
use super::{AppState, RegistrationStatus, Registrations};
use crate::event::format_time;
use crate::pipeline::Pipeline;

/// One printer's registrar.
#[derive(Debug)]
pub struct Registrar {
    /// The OctoEverywhere API client.
    pub client: Client,
    /// What to register.
    pub connection: Connection,
    /// Where the outcome is recorded.
    pub table: Registrations,
    /// Publishes `<base>/<slug>/app_connection`; `None` in tests.
    pub pipeline: Option<Pipeline>,
    /// `renew_days` as a duration.
    pub renew: Duration,
    /// Ends the task.
    pub shutdown: CancellationToken,
}

impl Registrar {
    /// Runs the task until shutdown or a permanent failure.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut failures = 0u32;
        let mut status = self
            .table
            .get(&self.connection.printer_id)
            .unwrap_or_else(|| RegistrationStatus::pending(&self.connection));
        loop {
            let call = self.client.call(Call::Register, &self.connection);
            let outcome = tokio::select! {
                outcome = call => outcome,
                () = self.shutdown.cancelled() => return,
            };
            failures = if outcome.is_success() {
                0
            } else {
                failures.saturating_add(1)
            };
            let delay = next_delay(
                &outcome,
                failures,
                self.renew,
                rand::random_range(-1.0..=1.0),
            );
            self.log(&outcome, delay);
            status = record(status, &outcome, failures, delay);
            self.table.set(status.clone());
            if let Some(pipeline) = &self.pipeline {
                let publish = pipeline.app_connection(&self.connection.printer_id, status.state);
                tokio::select! {
                    _ = publish => {}
                    () = self.shutdown.cancelled() => return,
                }
            }
            let Some(delay) = delay else {
                return;
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => return,
            }
        }
    }

    fn log(&self, outcome: &Outcome, next: Option<Duration>) {
        let printer_id = self.connection.printer_id.as_str();
        let callback = self.connection.callback_redacted().unwrap_or_default();
        let detail = outcome.describe(printer_id);
        let status = outcome.status();
        match (outcome, next) {
            (Outcome::Success, _) => info!(
                printer_id,
                callback,
                events = ?self.connection.event_types,
                renew_in_days = next.map_or(0, |d| d.as_secs() / 86_400),
                "App Connection webhook registered with OctoEverywhere"
            ),
            (Outcome::Mismatch(_), Some(retry)) => error!(
                printer_id,
                callback,
                retry_in_secs = retry.as_secs(),
                "App Connection webhook not saved as sent: {detail}"
            ),
            (_, Some(retry)) => warn!(
                printer_id,
                status,
                retry_in_secs = retry.as_secs(),
                "App Connection registration failed, will retry: {detail}"
            ),
            (_, None) => error!(
                printer_id,
                status, "App Connection registration stopped: {detail}"
            ),
        }
    }
}

/// The status after one call.
fn record(
    mut status: RegistrationStatus,
    outcome: &Outcome,
    failures: u32,
    next: Option<Duration>,
) -> RegistrationStatus {
    let now = OffsetDateTime::now_utc();
    status.state = outcome.state();
    status.detail = outcome.describe(&status.printer_id);
    status.status = outcome.status();
    status.attempts += u64::from(outcome != &Outcome::NoSecret);
    status.failures = failures;
    status.last_attempt = Some(format_time(now));
    if status.state == AppState::Registered {
        status.registered_at = Some(format_time(now));
    }
    status.next_attempt = next.map(|d| format_time(now + d));
    status
}
