//! JSON as print2mqtt reads it, in bodies and in form fields: nesting depth
//! checked before parsing (`http.max_json_depth`), and a key that appears
//! twice in one object refused — senders never repeat one, and "the last one
//! wins" would let two readers of one body see different values.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{IngestError, depth};

/// Parses `text` as JSON of at most `max_depth` levels without repeated
/// keys; the error text says what is wrong (serde_json's, with position).
pub fn parse(text: &[u8], max_depth: usize) -> Result<Value, IngestError> {
    if depth::exceeds(text, max_depth) {
        return Err(IngestError::TooDeep(max_depth));
    }
    if depth::values(text, depth::MAX_VALUES) > depth::MAX_VALUES {
        return Err(IngestError::TooManyValues(depth::MAX_VALUES));
    }
    serde_json::from_slice::<Unique>(text)
        .map(|u| u.0)
        .map_err(|e| IngestError::Json(e.to_string()))
}

/// A JSON body that must be one object.
pub fn object(body: &[u8], max_depth: usize) -> Result<Map<String, Value>, IngestError> {
    match parse(body, max_depth)? {
        Value::Object(map) => Ok(map),
        _ => Err(IngestError::NotObject),
    }
}

/// A `Value` whose objects had no repeated key.
struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueVisitor).map(Unique)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell a non-finite number; null if it ever did.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Unique(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                let shown: String = key.chars().take(64).collect();
                return Err(de::Error::custom(format!("duplicate key `{shown}`")));
            }
            let Unique(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_parse_as_serde_json_does() {
        let text = br#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e4"}"#;
        let expected: Value = serde_json::from_slice(text).unwrap();
        assert_eq!(parse(text, 64).unwrap(), expected);
        assert_eq!(parse(b"[1]", 64).unwrap(), json!([1]));
    }

    #[test]
    fn repeated_keys_are_refused_at_any_level() {
        let err = object(br#"{"EventType":1,"EventType":2}"#, 64).unwrap_err();
        assert!(
            err.to_string().contains("duplicate key `EventType`"),
            "{err}"
        );
        let err = object(br#"{"job":{"file":{"name":"a","name":"b"}}}"#, 64).unwrap_err();
        assert!(err.to_string().contains("duplicate key `name`"), "{err}");
        assert!(object(br#"{"a":{"k":1},"b":{"k":1}}"#, 64).is_ok());
    }

    #[test]
    fn values_are_counted_before_parsing() {
        let many = format!("[{}1]", "1,".repeat(depth::MAX_VALUES));
        assert_eq!(
            parse(many.as_bytes(), 64),
            Err(IngestError::TooManyValues(depth::MAX_VALUES))
        );
        let fits = format!("[{}1]", "1,".repeat(depth::MAX_VALUES - 3));
        assert!(parse(fits.as_bytes(), 64).is_ok());
    }

    #[test]
    fn depth_is_checked_first() {
        let deep = "[".repeat(200);
        assert_eq!(parse(deep.as_bytes(), 64), Err(IngestError::TooDeep(64)));
        assert!(matches!(object(b"[1]", 64), Err(IngestError::NotObject)));
    }
}
