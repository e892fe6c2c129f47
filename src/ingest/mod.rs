//! Webhook bodies in, [`Event`]s out: media-type handling, dialect detection
//! and the parse errors that become 4xx answers. One file per dialect, one
//! per non-JSON encoding; vendor field names never leave this module.

mod depth;
pub mod dialects;
mod fields;
mod form;
mod json;
mod multipart;
pub mod octoeverywhere;
pub mod octoprint;
pub mod sanitize;

use http::StatusCode;
use serde_json::{Map, Value};

use crate::event::{Event, Reception};

pub use multipart::MAX_SNAPSHOT_BYTES;

pub use dialects::{DIALECTS, Dialect};

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
    /// Bounds on what a body may contain.
    pub limits: Limits,
}

/// Bounds on a body's content (from `[http]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of JSON objects and arrays (`http.max_json_depth`).
    pub max_json_depth: usize,
    /// Largest total of a multipart body's text parts (`http.max_body_bytes`).
    pub max_text_bytes: usize,
}

impl Default for Limits {
    /// The defaults of `[http]`.
    fn default() -> Limits {
        Limits {
            max_json_depth: 64,
            max_text_bytes: 1024 * 1024,
        }
    }
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
    #[error("JSON nested deeper than {0} levels (http.max_json_depth)")]
    TooDeep(usize),
    #[error("body holds more than {0} values")]
    TooManyValues(usize),
    #[error("the printer id has no printable characters")]
    BlankPrinter,
    #[error("body must be a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    Missing(String),
    #[error("field `{field}`: {problem}")]
    Field {
        field: String,
        problem: &'static str,
    },
    #[error("field `{field}` is not valid JSON: {detail}")]
    FieldJson { field: String, detail: String },
    #[error(
        "missing field `deviceIdentifier`: set the plugin's DEVICE IDENTIFIER \
         or add ?printer=<id> to the webhook URL"
    )]
    NoPrinter,
    #[error("form body is malformed: {0}")]
    Form(String),
    #[error("multipart body is malformed: {0}")]
    Multipart(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(
        "body is neither an OctoEverywhere webhook (EventType, PrinterId) \
         nor an OctoPrint-Webhooks one (topic, deviceIdentifier)"
    )]
    Unrecognised,
    #[error(
        "unsupported media type `{0}`: send application/json, \
         application/x-www-form-urlencoded or multipart/form-data"
    )]
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

    /// The HTTP status this error is answered with (docs/http-api.md#webhook-answers).
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::MediaType(_) | IngestError::WrongEncoding(..) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
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
    /// No body: the data is in the query string (the plugin's GET).
    Query,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::Form => "form-encoded",
            Encoding::Multipart => "multipart",
            Encoding::Query => "query-string",
        }
    }
}

/// A body decoded into one object, plus the file part of a multipart body.
struct Decoded {
    map: Map<String, Value>,
    file: Option<multipart::Upload>,
}

/// Parses a webhook into an event, picking the dialect from the path or the
/// body, and applies the `?printer=` override.
pub fn parse(hook: &Webhook, rx: Reception) -> Result<Parsed, IngestError> {
    let printer = query_value(hook.query, "printer");
    let encoding = encoding(hook)?;
    let forced = hook.dialect.map(dialects::row);
    if let Some(row) = forced.filter(|r| r.json_only && encoding != Encoding::Json) {
        return Err(wrong_encoding(encoding, row.dialect));
    }
    let Decoded { map, file } = decode(hook, encoding)?;
    let row = match forced.or_else(|| dialects::detect(&map).map(dialects::row)) {
        Some(r) => r,
        // An empty body whose query string is not a webhook either.
        None if encoding == Encoding::Query => return Err(IngestError::Empty),
        None => return Err(IngestError::Unrecognised),
    };
    if row.json_only && encoding != Encoding::Json {
        return Err(wrong_encoding(encoding, row.dialect));
    }
    let query = dialects::Query {
        printer,
        params: hook.query,
    };
    let mut parsed = (row.parse)(&map, query, rx)?;
    if let Some(printer) = printer {
        parsed.event.printer_id = printer.to_owned();
    }
    sanitize::event(&mut parsed.event)?;
    parsed.event.snapshot = file.and_then(|f| f.into_snapshot(&parsed.event.printer_id));
    Ok(parsed)
}

/// `text` cut to `max` characters (with `…`): what a sender controls goes
/// into an answer only this long.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

fn wrong_encoding(encoding: Encoding, dialect: Dialect) -> IngestError {
    IngestError::WrongEncoding(encoding.name(), dialect.name())
}

/// The first non-empty value of a query parameter.
pub(crate) fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

fn encoding(hook: &Webhook) -> Result<Encoding, IngestError> {
    let body = strip_bom(hook.body).trim_ascii();
    // The plugin's GET sends the data as a query string, with whatever
    // Content-Type header its settings name: look at the query first.
    if body.is_empty()
        && !hook.dialect.is_some_and(|d| dialects::row(d).json_only)
        && form::has_data(hook.query)
    {
        return Ok(Encoding::Query);
    }
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
    let labelled = match essence.as_str() {
        "application/json" | "text/json" => Encoding::Json,
        t if t.starts_with("application/") && t.ends_with("+json") => Encoding::Json,
        "application/x-www-form-urlencoded" => Encoding::Form,
        "multipart/form-data" => Encoding::Multipart,
        // No type, or a generic one: recognise the body by its content.
        "" | "text/plain" | "application/octet-stream" => return sniff(body),
        // Named in the answer, so cut to a readable length.
        _ => return Err(IngestError::MediaType(shorten(&essence, 100))),
    };
    // A body sent under the wrong label still gets through.
    Ok(match labelled {
        Encoding::Form | Encoding::Multipart if body.starts_with(b"{") => Encoding::Json,
        Encoding::Json if looks_like_form(body) => Encoding::Form,
        other => other,
    })
}

fn sniff(body: &[u8]) -> Result<Encoding, IngestError> {
    match body.first() {
        None => Err(IngestError::Empty),
        Some(b'{') | Some(b'[') => Ok(Encoding::Json),
        Some(_) => Ok(Encoding::Form),
    }
}

/// `name=value&...`: a first name of URL-safe characters, then `=`.
fn looks_like_form(body: &[u8]) -> bool {
    let name_end = body.iter().position(|b| *b == b'=' || *b == b'&');
    matches!(name_end, Some(n) if n > 0 && body[n] == b'=')
        && body[..name_end.unwrap_or(0)]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.%+*".contains(b))
}

fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

fn decode(hook: &Webhook, encoding: Encoding) -> Result<Decoded, IngestError> {
    let body = strip_bom(hook.body);
    let depth = hook.limits.max_json_depth;
    // The multipart limit is for multipart bodies only: a body labelled
    // multipart but read as JSON or a form gets the limit of what it is.
    if encoding != Encoding::Multipart && body.len() > hook.limits.max_text_bytes {
        return Err(IngestError::TooLarge(format!(
            "{} body larger than {} bytes (http.max_body_bytes)",
            encoding.name(),
            hook.limits.max_text_bytes
        )));
    }
    let (map, file) = match encoding {
        Encoding::Json if body.trim_ascii().is_empty() => return Err(IngestError::Empty),
        Encoding::Json => (json::object(body, depth)?, None),
        Encoding::Form if body.trim_ascii().is_empty() => return Err(IngestError::Empty),
        Encoding::Form => (form::parse_body(body.trim_ascii(), depth)?, None),
        Encoding::Query => (form::from_query(hook.query, depth)?, None),
        Encoding::Multipart => {
            let ct = hook.content_type.unwrap_or_default();
            let parts = multipart::parse(hook.body, ct, hook.limits)?;
            (parts.fields, parts.file)
        }
    };
    Ok(Decoded { map, file })
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
            limits: Limits::default(),
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
        let many = format!("{{\"a\":[{}1]}}", "1,".repeat(30_000));
        assert_eq!(
            err(many.as_bytes(), None),
            IngestError::TooManyValues(20_000)
        );
        let json_as_multipart = format!("{{\"a\":\"{}\"}}", "x".repeat(2 << 20));
        assert_eq!(
            err(
                json_as_multipart.as_bytes(),
                Some("multipart/form-data; boundary=x")
            )
            .status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let deep = "[".repeat(10_000);
        assert_eq!(err(deep.as_bytes(), None), IngestError::TooDeep(64));
        let nested = format!(
            "{{\"PrinterId\":\"p\",\"EventType\":2,\"x\":{}1{}}}",
            "[".repeat(64),
            "]".repeat(64)
        );
        assert_eq!(err(nested.as_bytes(), None), IngestError::TooDeep(64));
        let ok = nested
            .replace(&"[".repeat(64), &"[".repeat(63))
            .replacen(']', "", 1);
        assert!(parse(&hook(ok.as_bytes(), None, &[]), Reception::now()).is_ok());
    }
}
