//! The dialect table: everything the rest of the bridge knows about a
//! sender, one row per webhook dialect. Adding a dialect is one parser file
//! plus one row here (and its [`Source`] name).

use serde_json::{Map, Value, json};

use super::{IngestError, Parsed, octoeverywhere, octoprint};
use crate::event::{Reception, Source};

/// The webhook formats print2mqtt understands: one per sender.
pub type Dialect = Source;

/// A dialect's parser: a decoded body and the URL's metadata to an event.
pub type Parser = fn(&Map<String, Value>, Query, Reception) -> Result<Parsed, IngestError>;

/// One dialect: how it is routed, recognised and parsed, and how it shows
/// up in Home Assistant.
pub struct DialectRow {
    pub dialect: Dialect,
    /// The path that forces this dialect (`/webhook` auto-detects).
    pub route: &'static str,
    /// Whether only JSON bodies are accepted.
    pub json_only: bool,
    /// The Home Assistant device's `manufacturer` and `model`.
    pub manufacturer: &'static str,
    pub model: &'static str,
    /// True when a decoded body looks like this dialect.
    pub recognises: fn(&Map<String, Value>) -> bool,
    /// Parses a decoded body.
    pub parse: Parser,
    /// The body of a test webhook for `printer_id`, as this sender sends it.
    pub test_webhook: fn(&str) -> String,
}

/// The routing metadata a parser may read from the URL.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// The `?printer=` override.
    pub printer: Option<&'a str>,
    /// Every decoded query parameter, in order.
    pub params: &'a [(String, String)],
}

/// Every dialect, in detection order; the first is the default for test
/// events.
pub const DIALECTS: [DialectRow; 2] = [
    DialectRow {
        dialect: Source::OctoEverywhere,
        route: "/webhook/octoeverywhere",
        json_only: true,
        manufacturer: "OctoEverywhere",
        model: "OctoEverywhere notifications",
        recognises: octoeverywhere::recognises,
        parse: |map, _, rx| octoeverywhere::parse(map, rx),
        test_webhook: |printer_id| json!({ "EventType": 16, "PrinterId": printer_id }).to_string(),
    },
    DialectRow {
        dialect: Source::OctoPrint,
        route: "/webhook/octoprint",
        json_only: false,
        manufacturer: "OctoPrint",
        model: "OctoPrint-Webhooks",
        recognises: octoprint::recognises,
        parse: octoprint_parse,
        test_webhook: |printer_id| {
            json!({
                "deviceIdentifier": printer_id,
                "topic": "Print Done",
                "message": "Test event from the print2mqtt status page",
                "extra": { "popup": true, "hook_index": 0 },
            })
            .to_string()
        },
    },
];

/// The row of `dialect`.
pub fn row(dialect: Dialect) -> &'static DialectRow {
    // DIALECTS lists every Source variant exactly once, in declaration order.
    &DIALECTS[dialect as usize]
}

/// The dialect a webhook path forces, if the path is one of the routes.
pub fn for_route(path: &str) -> Option<Dialect> {
    DIALECTS.iter().find(|r| r.route == path).map(|r| r.dialect)
}

/// The dialect a decoded body looks like.
pub fn detect(map: &Map<String, Value>) -> Option<Dialect> {
    DIALECTS
        .iter()
        .find(|r| (r.recognises)(map))
        .map(|r| r.dialect)
}

/// The plugin's GET carries its secret as `apiSecret=` in the query.
fn octoprint_parse(
    map: &Map<String, Value>,
    query: Query,
    rx: Reception,
) -> Result<Parsed, IngestError> {
    let mut parsed = octoprint::parse(map, query.printer, rx)?;
    if parsed.secret.is_none() {
        parsed.secret = super::query_value(query.params, "apiSecret").map(str::to_owned);
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, r) in DIALECTS.iter().enumerate() {
            assert_eq!(r.dialect as usize, i, "{} out of place", r.dialect.name());
            assert_eq!(r.route, format!("/webhook/{}", r.dialect.name()));
            assert_eq!(for_route(r.route), Some(r.dialect));
        }
        assert_eq!(Source::ALL.len(), DIALECTS.len());
    }

    #[test]
    fn test_webhooks_parse_as_their_dialect() {
        for r in &DIALECTS {
            let body = (r.test_webhook)("p1");
            let map: Map<String, Value> = serde_json::from_str(&body).unwrap();
            assert_eq!(detect(&map), Some(r.dialect));
            let q = Query {
                printer: None,
                params: &[],
            };
            let parsed = (r.parse)(&map, q, Reception::now()).unwrap();
            assert_eq!(parsed.event.printer_id, "p1");
            assert_eq!(parsed.event.source, r.dialect);
        }
    }
}
