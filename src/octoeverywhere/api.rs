//! OctoEverywhere's App Connection API (docs/senders.md): what the bridge sends
//! for one printer (its callback URL carrying the secret, its event filter)
//! and [`classify`], the pure rule that turns an answer into an [`Outcome`].
//! The HTTP side is in [`super::client`].

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Value, json};
use url::form_urlencoded;

use super::AppState;
use crate::config::{Config, Secret};
use crate::event::EventKind;
use crate::ingest::octoeverywhere::code_for;

/// Path of the Set Notification Webhook call (POST).
pub const SET_PATH: &str = "/api/appconnection/SetNotificationWebhook";
/// Path of the Test Webhook call (GET).
pub const TEST_PATH: &str = "/api/appconnection/TestWebhook";
/// Path of the Delete Notification Webhook call (POST).
pub const DELETE_PATH: &str = "/api/appconnection/DeleteNotificationWebhook";
/// The header that carries the App Connection token.
pub const TOKEN_HEADER: &str = "AppToken";

/// Longest message of OctoEverywhere's shown to the user.
const MAX_MESSAGE_CHARS: usize = 300;

/// One of the App Connection calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// Set Notification Webhook: register (or replace) the callback.
    Register,
    /// Test Webhook: ask OctoEverywhere to send a test notification.
    Test,
    /// Delete Notification Webhook.
    Unregister,
}

impl Call {
    /// The call's path under `octoeverywhere.api_url`.
    pub fn path(self) -> &'static str {
        match self {
            Call::Register => SET_PATH,
            Call::Test => TEST_PATH,
            Call::Unregister => DELETE_PATH,
        }
    }
}

/// The callback URL OctoEverywhere is asked to call. It holds the secret:
/// only [`Callback::redacted`] may be logged or shown.
#[derive(Clone, PartialEq, Eq)]
struct Callback {
    url: String,
    redacted: String,
    secret: String,
}

impl Callback {
    /// `{public_url}/webhook/octoeverywhere?printer=<id>&token=<secret>`,
    /// id and secret percent-encoded.
    fn new(public_url: &str, printer_id: &str, secret: &str) -> Callback {
        let base = format!(
            "{}/webhook/octoeverywhere?{}",
            public_url.trim_end_matches('/'),
            form_urlencoded::Serializer::new(String::new())
                .append_pair("printer", printer_id)
                .finish()
        );
        let token: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        Callback {
            url: format!("{base}&token={token}"),
            redacted: format!("{base}&token=<redacted>"),
            secret: secret.to_owned(),
        }
    }
}

/// What the bridge tells OctoEverywhere about one printer with an
/// `app_token`.
#[derive(Clone)]
pub struct Connection {
    /// The printer id as configured (`printers."<id>"`).
    pub printer_id: String,
    app_token: Secret,
    /// `None` when no secret is configured: registration is refused.
    callback: Option<Callback>,
    /// OctoEverywhere `EventType` numbers from `printers.<id>.events`;
    /// empty: every event.
    pub event_types: Vec<i64>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("printer_id", &self.printer_id)
            .field("app_token", &self.app_token)
            .field("callback", &self.callback_redacted())
            .field("event_types", &self.event_types)
            .finish()
    }
}

impl Connection {
    /// The connection of the printer configured under exactly `printer_id`,
    /// if it has an `app_token`.
    pub fn new(config: &Config, printer_id: &str) -> Option<Connection> {
        let printer = config.printers.get(printer_id)?;
        if printer.app_token.is_empty() {
            return None;
        }
        let secret = config.secret_for(printer_id);
        Some(Connection {
            printer_id: printer_id.to_owned(),
            app_token: printer.app_token.clone(),
            callback: (!secret.is_empty()).then(|| {
                Callback::new(
                    &config.octoeverywhere.public_url,
                    printer_id,
                    secret.expose(),
                )
            }),
            event_types: event_types(printer.events.kinds()),
        })
    }

    /// Every configured printer with an `app_token`, in id order.
    pub fn all(config: &Config) -> Vec<Connection> {
        config
            .printers
            .keys()
            .filter_map(|id| Connection::new(config, id))
            .collect()
    }

    /// The callback URL with its token shown as `<redacted>`; `None` when
    /// no secret is configured.
    pub fn callback_redacted(&self) -> Option<&str> {
        self.callback.as_ref().map(|c| c.redacted.as_str())
    }

    /// The Set Notification Webhook body, with both field-name pairs;
    /// `None` without a secret (no callback to register).
    pub(super) fn register_body(&self) -> Option<Value> {
        let url = &self.callback.as_ref()?.url;
        Some(json!({
            "CallbackUrl": url,
            "EventTypes": self.event_types,
            "WebhookUrl": url,
            "InclusiveEventTypesFilter": self.event_types,
        }))
    }

    /// The App Connection token, for the [`TOKEN_HEADER`] only.
    pub(super) fn app_token(&self) -> &str {
        self.app_token.expose()
    }

    /// `text` with the callback URL, the secret and the token replaced by
    /// `<redacted>` (an answer may quote what was sent). Secrets shorter
    /// than six characters are only removed as part of the URL or the
    /// `token=` parameter, so that a message stays readable.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        let mut hide = |s: &str, min: usize| {
            if s.len() >= min {
                out = out.replace(s, "<redacted>");
            }
        };
        if let Some(c) = &self.callback {
            hide(&c.url, 1);
            let token: String = form_urlencoded::byte_serialize(c.secret.as_bytes()).collect();
            hide(&format!("token={token}"), 1);
            hide(&c.secret, 6);
        }
        hide(self.app_token.expose(), 6);
        out
    }
}

/// The OctoEverywhere `EventType` numbers of configured event names, sorted,
/// without duplicates; names without a number (custom, unknown) are left out.
pub fn event_types(kinds: &[EventKind]) -> Vec<i64> {
    let codes: BTreeSet<i64> = kinds.iter().copied().filter_map(code_for).collect();
    codes.into_iter().collect()
}

/// What came of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx; for a registration, the echoed URL and filter match (or were
    /// not echoed).
    Success,
    /// 2xx, but the saved URL or filter is not what was sent. Temporary.
    Mismatch(String),
    /// Refused (400, 606, or a request that cannot be built): permanent
    /// until the configuration changes.
    Rejected {
        status: Option<u16>,
        message: String,
    },
    /// No secret configured: not sent at all. Permanent.
    NoSecret,
    /// 603: the App Connection does not exist. Permanent.
    NotFound,
    /// 604: the App Connection was revoked or has expired. Permanent.
    Revoked,
    /// 600-602, 605, 5xx, other answers and network failures: retried.
    Temporary { status: Option<u16>, detail: String },
}

impl Outcome {
    /// True for a success.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success)
    }

    /// True when calling again cannot help until the configuration changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Outcome::Rejected { .. } | Outcome::NoSecret | Outcome::NotFound | Outcome::Revoked
        )
    }

    /// The registration state this outcome leaves a printer in.
    pub fn state(&self) -> AppState {
        match self {
            Outcome::Success => AppState::Registered,
            Outcome::Mismatch(_) => AppState::Mismatch,
            Outcome::Rejected { .. } | Outcome::NoSecret => AppState::Rejected,
            Outcome::NotFound => AppState::NotFound,
            Outcome::Revoked => AppState::Revoked,
            Outcome::Temporary { .. } => AppState::Retrying,
        }
    }

    /// The HTTP status OctoEverywhere answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Outcome::Rejected { status, .. } | Outcome::Temporary { status, .. } => *status,
            Outcome::NotFound => Some(603),
            Outcome::Revoked => Some(604),
            Outcome::Success | Outcome::Mismatch(_) | Outcome::NoSecret => None,
        }
    }

    /// A failure in plain words, naming what to do; for a success, "OK".
    pub fn describe(&self, printer_id: &str) -> String {
        let token_key = format!("printers.\"{printer_id}\".app_token");
        match self {
            Outcome::Success => "OK".into(),
            Outcome::Mismatch(what) => format!("OctoEverywhere answered 200, but {what}"),
            Outcome::Rejected {
                status: Some(606),
                message,
            } => format!(
                "OctoEverywhere refused the App Connection credentials (606){}; check {token_key}",
                suffix(message)
            ),
            Outcome::Rejected {
                status: Some(status),
                message,
            } => format!(
                "OctoEverywhere refused the request ({status}){}",
                suffix(message)
            ),
            Outcome::Rejected {
                status: None,
                message,
            } => format!("the request could not be sent: {message}"),
            Outcome::NoSecret => format!(
                "no secret is configured for this printer, and OctoEverywhere's callbacks come \
                 from the internet, where the bridge refuses webhooks without one; set \
                 auth.secret (or printers.\"{printer_id}\".secret)"
            ),
            Outcome::NotFound => {
                format!("OctoEverywhere does not know this App Connection (603); check {token_key}")
            }
            Outcome::Revoked => format!(
                "the App Connection was revoked or has expired (604); create a new one in \
                 OctoEverywhere and put its token in {token_key}"
            ),
            Outcome::Temporary { detail, .. } => detail.clone(),
        }
    }
}

fn suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Classifies OctoEverywhere's answer to `call` (docs/senders.md and
/// OctoEverywhere's error codes). A registration's 2xx body echoes the
/// saved URL and filter; they must be what `connection` sent.
pub fn classify(call: Call, status: u16, body: &[u8], connection: &Connection) -> Outcome {
    let message = || connection.scrub(&message(body));
    let temporary = |what: &str| Outcome::Temporary {
        status: Some(status),
        detail: format!("{what}{}", suffix(&message())),
    };
    match status {
        200..=299 => match (call, &connection.callback) {
            (Call::Register, Some(callback)) => check_echo(body, callback, &connection.event_types),
            _ => Outcome::Success,
        },
        400 | 606 => Outcome::Rejected {
            status: Some(status),
            message: message(),
        },
        603 => Outcome::NotFound,
        604 => Outcome::Revoked,
        600 => temporary("OctoEverywhere had an unknown or server error (600)"),
        601 => temporary("the printer is not connected to OctoEverywhere (601)"),
        602 => temporary("OctoEverywhere's connection to the printer timed out (602)"),
        605 => {
            temporary("the printer owner's account is no longer an OctoEverywhere supporter (605)")
        }
        300..=399 => temporary(&format!(
            "OctoEverywhere answered with a redirect ({status}); check octoeverywhere.api_url"
        )),
        _ => temporary(&format!("OctoEverywhere answered {status}")),
    }
}

/// Compares the URL and filter a registration's answer echoes with what was
/// sent. Field names and nesting vary between API versions, so both name
/// pairs are looked for, at the top and inside a `Result` object; an answer
/// that echoes nothing is taken as success.
fn check_echo(body: &[u8], sent: &Callback, types: &[i64]) -> Outcome {
    let Ok(Value::Object(top)) = serde_json::from_slice::<Value>(body) else {
        return Outcome::Success;
    };
    let mut objects = vec![&top];
    objects.extend(
        top.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("result") || k.eq_ignore_ascii_case("data"))
            .filter_map(|(_, v)| v.as_object()),
    );
    let fields = |names: &[&str]| -> Vec<&Value> {
        objects
            .iter()
            .flat_map(|o| o.iter())
            .filter(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
            .map(|(_, v)| v)
            .collect()
    };
    for url in fields(&["CallbackUrl", "WebhookUrl"]) {
        if !url.as_str().is_some_and(|saved| same_url(saved, &sent.url)) {
            return Outcome::Mismatch(
                "the callback URL it saved differs from the one sent (is a proxy rewriting it?)"
                    .into(),
            );
        }
    }
    let wanted: BTreeSet<i64> = types.iter().copied().collect();
    for filter in fields(&["EventTypes", "InclusiveEventTypesFilter"]) {
        let saved: Option<BTreeSet<i64>> = match filter {
            Value::Null => Some(BTreeSet::new()),
            Value::Array(items) => items.iter().map(Value::as_i64).collect(),
            _ => None,
        };
        if saved.as_ref() != Some(&wanted) {
            return Outcome::Mismatch(format!(
                "the event filter it saved ({filter}) differs from the one sent ({types:?})"
            ));
        }
    }
    Outcome::Success
}

/// True when two URLs are the same, also when one spells the other's
/// query with different (but equivalent) percent-encoding.
fn same_url(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => {
            let pairs = |u: &url::Url| u.query_pairs().into_owned().collect::<Vec<_>>();
            a[..url::Position::AfterPath] == b[..url::Position::AfterPath]
                && pairs(&a) == pairs(&b)
                && a.fragment() == b.fragment()
        }
        _ => false,
    }
}

/// OctoEverywhere's message in an answer body: a JSON `Error`/`Message`
/// string (also inside `Result`), a JSON string, else the text; one line,
/// at most [`MAX_MESSAGE_CHARS`].
fn message(body: &[u8]) -> String {
    const KEYS: [&str; 6] = [
        "Error",
        "Message",
        "ErrorMessage",
        "Detail",
        "Title",
        "Status",
    ];
    let pick = |v: &Value| -> Option<String> {
        let o = v.as_object()?;
        KEYS.iter().find_map(|k| {
            o.iter()
                .find(|(name, v)| name.eq_ignore_ascii_case(k) && v.is_string())
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        })
    };
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(Value::String(s)) => s,
        Ok(v) => pick(&v)
            .or_else(|| v.get("Result").and_then(pick))
            .unwrap_or_else(|| v.to_string()),
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    };
    let line: String = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if line.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        line
    }
}
