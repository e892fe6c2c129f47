//! `print2mqtt oe-register`, `oe-test` and `oe-unregister`: one call per
//! printer with an `app_token` (or the one named), printing what
//! OctoEverywhere answered in plain words.

use std::fmt::Write as _;

use super::api::{Call, Connection, Outcome};
use super::client::Client;
use crate::config::Config;

/// Why a command did not run any call.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// No printer has an `app_token`.
    #[error("no printer has an app_token: set printers.\"<id>\".app_token first")]
    NoPrinters,
    /// `--printer` names no printer with an `app_token`.
    #[error("no printer `{0}` with an app_token (give its printer id or alias)")]
    UnknownPrinter(String),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] super::client::ClientError),
}

/// One printer's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The printer id.
    pub printer_id: String,
    /// True when OctoEverywhere answered with success.
    pub ok: bool,
    /// What happened, in plain words.
    pub text: String,
}

/// Runs `call` for the printer named by `printer` (id or alias, any case),
/// or for every printer with an `app_token`.
pub async fn run(
    config: &Config,
    call: Call,
    printer: Option<&str>,
) -> Result<Vec<Report>, CommandError> {
    let mut connections = Connection::all(config);
    if connections.is_empty() {
        return Err(CommandError::NoPrinters);
    }
    if let Some(wanted) = printer {
        connections.retain(|c| {
            crate::slug::same_printer(&c.printer_id, wanted)
                || config.printers[&c.printer_id].alias == wanted
        });
        if connections.is_empty() {
            return Err(CommandError::UnknownPrinter(wanted.to_owned()));
        }
    }
    let client = Client::new(&config.octoeverywhere.api_url)?;
    let mut reports = Vec::new();
    for c in &connections {
        let outcome = client.call(call, c).await;
        reports.push(Report {
            printer_id: c.printer_id.clone(),
            ok: outcome.is_success(),
            text: words(call, c, &outcome, config.octoeverywhere.renew_days),
        });
    }
    Ok(reports)
}

/// A result in plain words.
fn words(call: Call, c: &Connection, outcome: &Outcome, renew_days: u32) -> String {
    let id = &c.printer_id;
    if !outcome.is_success() {
        let what = match call {
            Call::Register => "registration failed",
            Call::Test => "test webhook failed",
            Call::Unregister => "unregistering failed",
        };
        let mut text = format!("{id}: {what}: {}", outcome.describe(id));
        if !outcome.is_permanent() {
            text.push_str(" (temporary; try again later)");
        }
        return text;
    }
    match call {
        Call::Register => {
            let mut text = format!(
                "{id}: registered: OctoEverywhere will call {} for ",
                c.callback_redacted().unwrap_or_default()
            );
            if c.event_types.is_empty() {
                text.push_str("every event");
            } else {
                let _ = write!(text, "event types {:?}", c.event_types);
            }
            let _ = write!(
                text,
                "; a running bridge renews this every {renew_days} days"
            );
            text
        }
        Call::Test => format!(
            "{id}: OctoEverywhere accepted the test: it sends a test notification to the \
             registered callback now"
        ),
        Call::Unregister => format!(
            "{id}: unregistered: OctoEverywhere no longer calls this bridge for this printer; \
             a running bridge registers again at its next start or renewal unless \
             printers.\"{id}\".app_token is removed"
        ),
    }
}
