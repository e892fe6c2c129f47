//! Typed reads from a loosely typed JSON object: the number, text and count
//! rules every dialect shares (numbers as integers, floats or numeric strings;
//! `null` and empty strings mean absent; out-of-range and non-finite values
//! are dropped or clamped with a warning, never passed on raw).

use serde_json::{Map, Value};
use tracing::{debug, warn};

use super::IngestError;

/// The largest duration or count accepted (136 years in seconds).
const MAX_COUNT: f64 = u32::MAX as f64;

/// A JSON object read field by field; every error names the field.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>) -> Fields<'a> {
        Fields { map }
    }

    /// The raw value, with `null` meaning absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A number sent as an integer, a float or a numeric string.
    pub fn number(&self, key: &str) -> Result<Option<f64>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => number(v).map_err(|problem| IngestError::field(key, problem)),
        }
    }

    /// Text; numbers are taken as their decimal text, blank text is absent.
    pub fn text(&self, key: &str) -> Result<Option<String>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => text(v).map_err(|problem| IngestError::field(key, problem)),
        }
    }

    /// A whole non-negative count (seconds, layers); fractions are cut off,
    /// negative or absurd values dropped.
    pub fn count(&self, key: &str) -> Result<Option<u64>, IngestError> {
        Ok(self.number(key)?.and_then(|n| count(key, n)))
    }

    /// A percentage, cut to a whole number and clamped to 0..=100.
    pub fn percent(&self, key: &str) -> Result<Option<u8>, IngestError> {
        Ok(self.number(key)?.map(|n| percent(key, n)))
    }
}

/// Reads a JSON value as a finite number.
pub fn number(v: &Value) -> Result<Option<f64>, &'static str> {
    let n = match v {
        Value::Null => return Ok(None),
        Value::Number(n) => n.as_f64().ok_or("expected a number")?,
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| "expected a number")?,
        _ => return Err("expected a number"),
    };
    if n.is_finite() {
        Ok(Some(n))
    } else {
        // "NaN", "inf": a number, but no value to publish.
        warn!(value = %n, "Non-finite number dropped");
        Ok(None)
    }
}

/// Reads a JSON value as text.
pub fn text(v: &Value) -> Result<Option<String>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        _ => Err("expected text"),
    }
}

/// A number as a whole non-negative count; `None` when it is not one.
pub fn count(key: &str, n: f64) -> Option<u64> {
    if (0.0..=MAX_COUNT).contains(&n) {
        // In range and finite: the cast only drops the fraction.
        Some(n.trunc() as u64)
    } else if n == -1.0 {
        // OctoEverywhere's "no estimate yet": expected, not worth a warning.
        debug!(field = key, "No value (-1)");
        None
    } else {
        warn!(field = key, value = n, "Out-of-range value dropped");
        None
    }
}

/// A number as a percentage 0..=100.
pub fn percent(key: &str, n: f64) -> u8 {
    if !(0.0..=100.0).contains(&n) {
        warn!(field = key, value = n, "Out-of-range percentage clamped");
    }
    // Clamped to 0..=100 first, so the cast cannot overflow.
    n.clamp(0.0, 100.0).trunc() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn numbers_in_every_shape() {
        let m = obj(json!({"a": 21, "b": 21.7, "c": "21", "d": " 21.7 ", "e": null, "f": ""}));
        let f = Fields::new(&m);
        assert_eq!(f.percent("a").unwrap(), Some(21));
        assert_eq!(f.percent("b").unwrap(), Some(21));
        assert_eq!(f.percent("c").unwrap(), Some(21));
        assert_eq!(f.percent("d").unwrap(), Some(21));
        assert_eq!(f.percent("e").unwrap(), None);
        assert_eq!(f.percent("f").unwrap(), None);
        assert_eq!(f.percent("missing").unwrap(), None);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let m = obj(json!({"Progress": {"x": 1}, "Name": [1], "T": "soon", "B": true}));
        let f = Fields::new(&m);
        assert_eq!(
            f.percent("Progress").unwrap_err().to_string(),
            "field `Progress`: expected a number"
        );
        assert!(f.text("Name").is_err());
        assert!(f.count("T").is_err());
        assert!(f.number("B").is_err());
    }

    #[test]
    fn out_of_range_values_are_clamped_or_dropped() {
        let m = obj(json!({"p1": -5, "p2": 250, "t": -1, "big": 1e30, "x": "NaN", "inf": "inf"}));
        let f = Fields::new(&m);
        assert_eq!(f.percent("p1").unwrap(), Some(0));
        assert_eq!(f.percent("p2").unwrap(), Some(100));
        assert_eq!(f.count("t").unwrap(), None);
        assert_eq!(f.count("big").unwrap(), None);
        assert_eq!(f.number("x").unwrap(), None);
        assert_eq!(f.number("inf").unwrap(), None);
    }
}
