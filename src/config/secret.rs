//! [`Secret`] values and the lenient `text` reader of string keys.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A secret string: never shown by `Debug`, redacted by [`Config::redacted`].
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret text, for comparison and for the broker login only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn redacted(&self) -> Secret {
        if self.0.is_empty() {
            Secret::default()
        } else {
            Secret("<redacted>".into())
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Secret)
    }
}

/// Reads a string, also from a number or boolean (environment variables such
/// as `PRINT2MQTT_AUTH__SECRET=1234` arrive parsed as numbers).
pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(
        match Text::deserialize(d)
            .map_err(|_| serde::de::Error::custom("invalid type: expected a string"))?
        {
            Text::S(s) => s,
            Text::I(n) => n.to_string(),
            Text::U(n) => n.to_string(),
            Text::F(n) => n.to_string(),
            Text::B(b) => b.to_string(),
        },
    )
}
