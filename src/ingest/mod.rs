//! Webhook bodies in, [`Event`]s out: media-type handling, dialect detection
//! and the parse errors that become 4xx answers. One file per dialect; vendor
//! field names never leave this module.

mod fields;
pub mod octoeverywhere;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::event::{Event, Reception};

/// The webhook formats print2mqtt understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OctoEverywhere,
    OctoPrint,
}

impl Dialect {
    /// The name used in logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::OctoEverywhere => "octoeverywhere",
            Dialect::OctoPrint => "octoprint",
        }
    }
}

/// One received webhook, as far as parsing needs it.
#[derive(Debug, Clone, Copy)]
pub struct Webhook<'a> {
    pub body: &'a [u8],
    /// The `Content-Type` header, if any.
    pub content_type: Option<&'a str>,
    /// Decoded query parameters, in order.
    pub query: &'a [(String, String)],
    /// Set when the path names the dialect (`/webhook/octoeverywhere`).
    pub dialect: Option<Dialect>,
}

/// A parsed webhook: the event, and the secret the body carried (kept apart
/// so that it can never end up in a payload).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub event: Event,
    pub secret: Option<String>,
}

/// Why a webhook could not be parsed; each maps to one HTTP answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("body is empty")]
    Empty,
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("body must be a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    Missing(String),
    #[error("field `{field}`: {problem}")]
    Field {
        field: String,
        problem: &'static str,
    },
    #[error(
        "body is neither an OctoEverywhere webhook (EventType, PrinterId) \
         nor an OctoPrint-Webhooks one (topic, deviceIdentifier)"
    )]
    Unrecognised,
    #[error("unsupported media type `{0}`: send application/json")]
    MediaType(String),
    #[error("{0} bodies are not accepted by the {1} dialect")]
    WrongEncoding(&'static str, &'static str),
}

impl IngestError {
    pub(crate) fn missing(field: &str) -> IngestError {
        IngestError::Missing(field.to_owned())
    }

    pub(crate) fn field(field: &str, problem: &'static str) -> IngestError {
        IngestError::Field {
            field: field.to_owned(),
            problem,
        }
    }

    /// The HTTP status this error is answered with (DESIGN.md §6).
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::MediaType(_) | IngestError::WrongEncoding(..) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// How a body is encoded, from its `Content-Type` (or its first bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
    Multipart,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::Form => "form-encoded",
            Encoding::Multipart => "multipart",
        }
    }
}

/// Parses a webhook into an event, picking the dialect from the path or the
/// body, and applies the `?printer=` override.
pub fn parse(hook: &Webhook, rx: Reception) -> Result<Parsed, IngestError> {
    let mut parsed = match encoding(hook)? {
        Encoding::Json => parse_json(hook, rx)?,
        other => {
            return Err(IngestError::WrongEncoding(
                other.name(),
                hook.dialect.unwrap_or(Dialect::OctoPrint).name(),
            ));
        }
    };
    if let Some((_, printer)) = hook
        .query
        .iter()
        .find(|(k, v)| k == "printer" && !v.is_empty())
    {
        parsed.event.printer_id = printer.clone();
    }
    Ok(parsed)
}

/// The dialect a parsed webhook came in, for logs.
pub fn dialect_of(parsed: &Parsed) -> Dialect {
    match parsed.event.source {
        crate::event::Source::OctoEverywhere => Dialect::OctoEverywhere,
        crate::event::Source::OctoPrint => Dialect::OctoPrint,
    }
}

fn encoding(hook: &Webhook) -> Result<Encoding, IngestError> {
    let essence = hook
        .content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    match essence.as_str() {
        "application/json" | "text/json" => Ok(Encoding::Json),
        t if t.starts_with("application/") && t.ends_with("+json") => Ok(Encoding::Json),
        "application/x-www-form-urlencoded" => Ok(Encoding::Form),
        "multipart/form-data" => Ok(Encoding::Multipart),
        // No type, or a generic one: recognise the body by its content.
        "" | "text/plain" | "application/octet-stream" => sniff(hook.body),
        _ => Err(IngestError::MediaType(essence)),
    }
}

fn sniff(body: &[u8]) -> Result<Encoding, IngestError> {
    match strip_bom(body).trim_ascii_start().first() {
        None => Err(IngestError::Empty),
        Some(b'{') | Some(b'[') => Ok(Encoding::Json),
        Some(_) => Ok(Encoding::Form),
    }
}

fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

fn parse_json(hook: &Webhook, rx: Reception) -> Result<Parsed, IngestError> {
    let body = strip_bom(hook.body);
    if body.trim_ascii().is_empty() {
        return Err(IngestError::Empty);
    }
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(IngestError::NotObject),
        Err(e) => return Err(IngestError::Json(e.to_string())),
    };
    match hook.dialect.or_else(|| detect(&map)) {
        Some(Dialect::OctoEverywhere) => octoeverywhere::parse(&map, rx),
        Some(Dialect::OctoPrint) => Err(IngestError::WrongEncoding("JSON", "octoprint")),
        None => Err(IngestError::Unrecognised),
    }
}

fn detect(map: &Map<String, Value>) -> Option<Dialect> {
    if octoeverywhere::recognises(map) {
        Some(Dialect::OctoEverywhere)
    } else if map.contains_key("topic") || map.contains_key("deviceIdentifier") {
        Some(Dialect::OctoPrint)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    fn hook<'a>(body: &'a [u8], ct: Option<&'a str>, query: &'a [(String, String)]) -> Webhook<'a> {
        Webhook {
            body,
            content_type: ct,
            query,
            dialect: None,
        }
    }

    #[test]
    fn json_is_recognised_without_content_type() {
        let body = br#"{"PrinterId":"p","EventType":2}"#;
        for ct in [
            None,
            Some("text/plain"),
            Some("application/json; charset=utf-8"),
        ] {
            let p = parse(&hook(body, ct, &[]), Reception::now()).unwrap();
            assert_eq!(p.event.event, EventKind::Complete);
        }
        let with_bom = b"\xEF\xBB\xBF{\"PrinterId\":\"p\",\"EventType\":2}";
        assert!(parse(&hook(with_bom, None, &[]), Reception::now()).is_ok());
    }

    #[test]
    fn query_printer_overrides_the_body() {
        let q = vec![("printer".to_owned(), "p42".to_owned())];
        let body = br#"{"PrinterId":"p","EventType":2}"#;
        let p = parse(&hook(body, None, &q), Reception::now()).unwrap();
        assert_eq!(p.event.printer_id, "p42");
    }

    #[test]
    fn bad_bodies_get_clear_errors() {
        let err = |b: &[u8], ct| parse(&hook(b, ct, &[]), Reception::now()).unwrap_err();
        assert_eq!(err(b"", None), IngestError::Empty);
        assert_eq!(err(b"  ", Some("application/json")), IngestError::Empty);
        assert_eq!(err(b"[1]", None), IngestError::NotObject);
        assert!(matches!(
            err(b"{\"PrinterId\":", None),
            IngestError::Json(_)
        ));
        assert_eq!(err(b"{\"a\":1}", None), IngestError::Unrecognised);
        assert_eq!(
            err(b"<xml/>", Some("application/xml")).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            err(b"\xff\xfe{", Some("application/json")).status(),
            StatusCode::BAD_REQUEST
        );
        let deep = "[".repeat(10_000);
        assert!(matches!(err(deep.as_bytes(), None), IngestError::Json(_)));
    }
}
