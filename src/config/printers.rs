//! `[auth]`, `[printers."<id>"]` and `[octoeverywhere]`: who may send
//! webhooks, per-printer settings and App Connection registration.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Secret, text};
use crate::event::EventKind;

/// `[auth]`: the shared webhook secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub secret: Secret,
}

/// `[printers."<id>"]`: settings for one printer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Printer {
    /// Topic slug; empty: derived from the printer id.
    #[serde(deserialize_with = "text")]
    pub alias: String,
    /// Display name; empty: the webhook's printer name.
    #[serde(deserialize_with = "text")]
    pub name: String,
    /// Overrides `auth.secret` for this printer.
    pub secret: Secret,
    /// Publish only these events (empty: all).
    pub events: EventFilter,
    /// OctoEverywhere App Connection token.
    pub app_token: Secret,
}

/// `[octoeverywhere]`: App Connection registration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OctoEverywhere {
    #[serde(deserialize_with = "text")]
    pub public_url: String,
    #[serde(deserialize_with = "text")]
    pub api_url: String,
    pub renew_days: u32,
}

impl Default for OctoEverywhere {
    fn default() -> Self {
        OctoEverywhere {
            public_url: String::new(),
            api_url: "https://octoeverywhere.com".into(),
            renew_days: 30,
        }
    }
}

/// `printers.<id>.events`, parsed once into event kinds, in the order
/// given. Names that are no event are kept for `validate()`, which reports
/// them together with every other problem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    kinds: Vec<EventKind>,
    unknown: Vec<String>,
}

impl EventFilter {
    /// The filter of these event names.
    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> EventFilter {
        let mut filter = EventFilter::default();
        for name in names {
            let name = name.as_ref();
            match EventKind::from_name(name) {
                Some(kind) => filter.kinds.push(kind),
                None => filter.unknown.push(name.to_owned()),
            }
        }
        filter
    }

    /// True when no event is named: every event is published.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty() && self.unknown.is_empty()
    }

    /// Whether an event of `kind` is published.
    pub fn allows(&self, kind: EventKind) -> bool {
        self.is_empty() || self.kinds.contains(&kind)
    }

    /// The events named, in the order given.
    pub fn kinds(&self) -> &[EventKind] {
        &self.kinds
    }

    /// Names that are no event (a configuration error).
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// Publishes every event again.
    pub fn clear(&mut self) {
        *self = EventFilter::default();
    }
}

impl<'de> Deserialize<'de> for EventFilter {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(d).map(EventFilter::from_names)
    }
}

impl Serialize for EventFilter {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        let names = self.kinds.iter().map(|k| k.name());
        s.collect_seq(names.chain(self.unknown.iter().map(String::as_str)))
    }
}
