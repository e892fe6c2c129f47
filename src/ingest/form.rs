//! Form-encoded bodies and query strings read as one JSON object, the way the
//! OctoPrint-Webhooks plugin writes them: nested objects arrive JSON-encoded
//! in a single field, numbers as their text, `None` values left out, and (in
//! a GET query) a nested object flattened to its keys, one repeated parameter
//! per key.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::{IngestError, depth, json};

/// Fields that are free text typed by the user, never decoded as JSON.
const TEXT_FIELDS: [&str; 4] = ["deviceIdentifier", "apiSecret", "topic", "message"];

/// Query parameters the bridge reads for itself; never data fields.
pub const ROUTING_KEYS: [&str; 2] = ["token", "printer"];

/// Decodes an `application/x-www-form-urlencoded` body; JSON in a field may
/// nest at most `max_depth` levels.
pub fn parse_body(body: &[u8], max_depth: usize) -> Result<Map<String, Value>, IngestError> {
    // Counted before decoding: each pair becomes two strings.
    let pairs = body.iter().filter(|b| **b == b'&').count() + 1;
    if pairs > depth::MAX_VALUES {
        return Err(IngestError::TooManyValues(depth::MAX_VALUES));
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| IngestError::Form(super::shorten(&e.to_string(), 200)))?;
    to_object(pairs, max_depth)
}

/// The data fields of a query string (everything but the routing keys).
pub fn from_query(
    query: &[(String, String)],
    max_depth: usize,
) -> Result<Map<String, Value>, IngestError> {
    to_object(
        query
            .iter()
            .filter(|(k, _)| !ROUTING_KEYS.contains(&k.as_str()))
            .cloned(),
        max_depth,
    )
}

/// True when a query string carries data fields besides the routing keys.
pub fn has_data(query: &[(String, String)]) -> bool {
    query
        .iter()
        .any(|(k, _)| !ROUTING_KEYS.contains(&k.as_str()))
}

/// Builds one object from name/value pairs: each value decoded by
/// [`field_value`], a repeated name collected into an array in order.
pub fn to_object(
    pairs: impl IntoIterator<Item = (String, String)>,
    max_depth: usize,
) -> Result<Map<String, Value>, IngestError> {
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    // Every field and every value of its JSON count against one bound, so
    // many small JSON fields cannot add up to more than one JSON body may.
    let mut values = pairs.len();
    for (_, raw) in &pairs {
        if matches!(raw.trim_start().as_bytes().first(), Some(b'{' | b'[')) {
            values += depth::values(raw.as_bytes(), depth::MAX_VALUES);
        }
        if values > depth::MAX_VALUES {
            return Err(IngestError::TooManyValues(depth::MAX_VALUES));
        }
    }
    let mut map = Map::new();
    let mut repeated = HashSet::new();
    for (key, raw) in pairs {
        let value = field_value(&key, raw, max_depth)?;
        match map.get_mut(&key) {
            None => {
                map.insert(key, value);
            }
            Some(Value::Array(items)) if repeated.contains(&key) => items.push(value),
            Some(first) => {
                let first_value = first.take();
                *first = Value::Array(vec![first_value, value]);
                repeated.insert(key);
            }
        }
    }
    Ok(map)
}

/// One field's value. Text that starts like a JSON object is a nested object
/// and must be valid JSON (a broken one is a 400 naming the field); text that
/// starts like an array is decoded when it is valid JSON and kept as text
/// otherwise (`[Printer 1] done` is a plausible message); the rest is text.
/// Numbers stay text here: the dialect reads them leniently. JSON nested
/// deeper than `max_depth` is refused either way.
pub fn field_value(key: &str, raw: String, max_depth: usize) -> Result<Value, IngestError> {
    if TEXT_FIELDS.contains(&key) {
        return Ok(Value::String(raw));
    }
    let first = raw.trim_start().as_bytes().first();
    if matches!(first, Some(b'{' | b'[')) && depth::exceeds(raw.as_bytes(), max_depth) {
        return Err(IngestError::TooDeep(max_depth));
    }
    match first {
        Some(b'{') => json::parse(raw.as_bytes(), max_depth).map_err(|e| match e {
            IngestError::Json(detail) => IngestError::FieldJson {
                field: super::shorten(key, 64),
                detail,
            },
            other => other,
        }),
        Some(b'[') => Ok(json::parse(raw.as_bytes(), max_depth).unwrap_or(Value::String(raw))),
        _ => Ok(Value::String(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_bounded_across_fields() {
        let field = format!("[{}1]", "1,".repeat(999));
        let pairs = (0..30).map(|i| (format!("f{i}"), field.clone()));
        assert_eq!(
            to_object(pairs, 64),
            Err(IngestError::TooManyValues(depth::MAX_VALUES))
        );
        let few = (0..10).map(|i| (format!("f{i}"), field.clone()));
        assert_eq!(to_object(few, 64).unwrap().len(), 10);
    }

    #[test]
    fn nested_objects_are_decoded_and_numbers_stay_text() {
        let body = b"deviceIdentifier=Drucker+%C3%84&topic=Print+Progress&currentZ=0.2\
            &progress=%7B%22completion%22%3A+10.1%2C+%22printTimeLeft%22%3A+null%7D&meta=";
        let map = parse_body(body, 64).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({
                "deviceIdentifier": "Drucker Ä",
                "topic": "Print Progress",
                "currentZ": "0.2",
                "progress": {"completion": 10.1, "printTimeLeft": null},
                "meta": ""
            })
        );
    }

    #[test]
    fn broken_json_in_an_object_field_names_the_field() {
        let err = parse_body(b"topic=Print+Done&job=%7B%22file%22%3A", 64).unwrap_err();
        assert!(matches!(&err, IngestError::FieldJson { field, .. } if field == "job"));
        assert!(
            err.to_string()
                .starts_with("field `job` is not valid JSON: ")
        );
    }

    #[test]
    fn array_like_text_and_user_text_stay_text() {
        let map = parse_body(
            b"message=%7Bnot+json&extra=%5BPrinter+1%5D&note=%5B1%2C2%5D",
            64,
        )
        .unwrap();
        assert_eq!(map["message"], "{not json", "free text is never decoded");
        assert_eq!(map["extra"], "[Printer 1]");
        assert_eq!(map["note"], json!([1, 2]));
    }

    #[test]
    fn repeated_keys_become_an_array_and_routing_keys_are_not_data() {
        let q: Vec<(String, String)> = [
            ("token", "t"),
            ("topic", "Print Done"),
            ("extra", "name"),
            ("extra", "popup"),
            ("extra", "hook_index"),
            ("printer", "p"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(has_data(&q));
        let map = from_query(&q, 64).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"topic": "Print Done", "extra": ["name", "popup", "hook_index"]})
        );
        let routing_only = vec![("token".to_owned(), "t".to_owned())];
        assert!(!has_data(&routing_only));
    }
}
