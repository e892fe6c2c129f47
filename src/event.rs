//! The normalized event: one shape for every webhook dialect
//! (docs/mqtt-topics.md#normalized-event).
//!
//! Nothing here knows a vendor format; `ingest` builds an [`Event`] and every
//! later stage (state, topics, discovery) reads only this.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use ulid::Ulid;

/// What happened, by its published name (the `event` field of the JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Complete,
    Failed,
    Cancelled,
    Paused,
    Resumed,
    Progress,
    FailureWarning,
    FailurePaused,
    Error,
    FirstLayerComplete,
    FilamentChange,
    UserInteraction,
    NotificationLimit,
    ThirdLayerComplete,
    BedCooldownComplete,
    Custom,
    Test,
    Unknown,
}

/// The printer state a `state` topic can carry (docs/mqtt-topics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Idle,
    Printing,
    Paused,
    NeedsAttention,
    Complete,
    Failed,
    Cancelled,
    Error,
}

/// One row of the event table: name, state effect, `problem` effect, and
/// whether the event's values (progress, file, ...) are trusted as state.
struct KindRow {
    kind: EventKind,
    name: &'static str,
    status: Option<Status>,
    problem: Option<bool>,
    carries_values: bool,
}

const fn row(
    kind: EventKind,
    name: &'static str,
    status: Option<Status>,
    problem: Option<bool>,
    carries_values: bool,
) -> KindRow {
    KindRow {
        kind,
        name,
        status,
        problem,
        carries_values,
    }
}

use EventKind as K;
use Status as S;

/// The state mapping of docs/mqtt-topics.md as data. `test` and `unknown` change
/// nothing; the values of every other event are published.
const KINDS: [KindRow; 19] = [
    row(K::Started, "started", Some(S::Printing), Some(false), true),
    row(K::Complete, "complete", Some(S::Complete), None, true),
    row(K::Failed, "failed", Some(S::Failed), Some(true), true),
    row(K::Cancelled, "cancelled", Some(S::Cancelled), None, true),
    row(K::Paused, "paused", Some(S::Paused), None, true),
    row(K::Resumed, "resumed", Some(S::Printing), Some(false), true),
    row(K::Progress, "progress", Some(S::Printing), None, true),
    row(K::FailureWarning, "failure_warning", None, Some(true), true),
    row(
        K::FailurePaused,
        "failure_paused",
        Some(S::Paused),
        Some(true),
        true,
    ),
    row(K::Error, "error", Some(S::Error), Some(true), true),
    row(
        K::FirstLayerComplete,
        "first_layer_complete",
        Some(S::Printing),
        None,
        true,
    ),
    row(
        K::FilamentChange,
        "filament_change",
        Some(S::NeedsAttention),
        None,
        true,
    ),
    row(
        K::UserInteraction,
        "user_interaction",
        Some(S::NeedsAttention),
        None,
        true,
    ),
    row(K::NotificationLimit, "notification_limit", None, None, true),
    row(
        K::ThirdLayerComplete,
        "third_layer_complete",
        Some(S::Printing),
        None,
        true,
    ),
    row(
        K::BedCooldownComplete,
        "bed_cooldown_complete",
        Some(S::Idle),
        None,
        true,
    ),
    row(K::Custom, "custom", None, None, true),
    row(K::Test, "test", None, None, false),
    row(K::Unknown, "unknown", None, None, false),
];

impl EventKind {
    /// Every kind, in the order of docs/mqtt-topics.md#event-names.
    pub const ALL: [EventKind; 19] = {
        let mut all = [EventKind::Unknown; 19];
        let mut i = 0;
        while i < KINDS.len() {
            all[i] = KINDS[i].kind;
            i += 1;
        }
        all
    };

    fn row(self) -> &'static KindRow {
        // KINDS lists every variant exactly once, in declaration order.
        &KINDS[self as usize]
    }

    /// The published name, e.g. `first_layer_complete`.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// Looks a kind up by its published name.
    pub fn from_name(name: &str) -> Option<EventKind> {
        KINDS.iter().find(|r| r.name == name).map(|r| r.kind)
    }

    /// The state this event puts the printer in, `None` for "unchanged".
    pub fn status(self) -> Option<Status> {
        self.row().status
    }

    /// `Some(true)` raises `problem`, `Some(false)` clears it.
    pub fn problem(self) -> Option<bool> {
        self.row().problem
    }

    /// Whether progress, file, times etc. of this event are published.
    pub fn carries_values(self) -> bool {
        self.row().carries_values
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for EventKind {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<EventKind, D::Error> {
        let name = String::deserialize(d)?;
        EventKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event {name:?}")))
    }
}

impl Status {
    /// Every state, the `options` of Home Assistant's enum sensor.
    pub const ALL: [Status; 8] = [
        S::Idle,
        S::Printing,
        S::Paused,
        S::NeedsAttention,
        S::Complete,
        S::Failed,
        S::Cancelled,
        S::Error,
    ];

    /// The published text, e.g. `needs_attention`.
    pub fn name(self) -> &'static str {
        match self {
            S::Idle => "idle",
            S::Printing => "printing",
            S::Paused => "paused",
            S::NeedsAttention => "needs_attention",
            S::Complete => "complete",
            S::Failed => "failed",
            S::Cancelled => "cancelled",
            S::Error => "error",
        }
    }

    /// Parses a published state text (used when restoring retained state).
    pub fn from_name(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// True while a print is under way: a time remaining means something.
    pub fn is_active(self) -> bool {
        matches!(self, S::Printing | S::Paused | S::NeedsAttention)
    }
}

/// Who sent the webhook, i.e. which dialect it came in: an opaque name
/// here. What differs per sender lives in `ingest::dialects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    OctoEverywhere,
    OctoPrint,
}

impl Source {
    /// Every source, in declaration order.
    pub const ALL: [Source; 2] = [Source::OctoEverywhere, Source::OctoPrint];

    /// The published name, as in the event's `source` field.
    pub fn name(self) -> &'static str {
        match self {
            Source::OctoEverywhere => "octoeverywhere",
            Source::OctoPrint => "octoprint",
        }
    }

    /// Looks a source up by its published name.
    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// One accepted webhook, normalized. Serializes to the `last_event` JSON
/// (and back, for the clustered mode's stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event: EventKind,
    /// The sender's own numeric code for the event, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// The sender's own name for the event when it is `custom` or `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    pub source: Source,
    pub printer_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub printer_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print_duration: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_remaining: Option<u64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "opt_rfc3339",
        default,
        deserialize_with = "time::serde::rfc3339::option::deserialize"
    )]
    pub eta: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_layers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The sender's machine-readable code for `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_url: Option<String>,
    /// A web page that shows the printer (the device link in Home Assistant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quickview_url: Option<String>,
    #[serde(
        serialize_with = "rfc3339",
        deserialize_with = "time::serde::rfc3339::deserialize"
    )]
    pub received_at: OffsetDateTime,
    #[serde(serialize_with = "ulid_text", deserialize_with = "ulid_parse")]
    pub id: Ulid,
    /// JPEG bytes from a multipart webhook; published on its own topic.
    #[serde(skip)]
    pub snapshot: Option<Bytes>,
    /// The sender reports progress as milestones that can repeat or arrive
    /// late: within one print, progress never moves backwards. When false,
    /// progress is measured and published as sent.
    #[serde(skip)]
    pub progress_monotonic: bool,
}

/// When and as what a webhook was received: the inputs a parser needs that
/// do not come from the body, passed in so parsing stays a pure function.
#[derive(Debug, Clone, Copy)]
pub struct Reception {
    pub at: OffsetDateTime,
    pub id: Ulid,
}

impl Reception {
    /// Now, to whole seconds (the published timestamps carry no fraction).
    pub fn now() -> Reception {
        let now = OffsetDateTime::now_utc();
        Reception {
            at: now.replace_nanosecond(0).unwrap_or(now),
            id: Ulid::generate(),
        }
    }
}

impl Event {
    /// An event of `kind` with every optional field empty.
    pub fn new(kind: EventKind, source: Source, printer_id: String, rx: Reception) -> Event {
        Event {
            event: kind,
            code: None,
            topic: None,
            source,
            printer_id,
            printer_name: None,
            print_id: None,
            file: None,
            progress: None,
            print_duration: None,
            time_remaining: None,
            eta: None,
            z: None,
            layer: None,
            total_layers: None,
            error: None,
            platform_error_code: None,
            snapshot_url: None,
            quickview_url: None,
            received_at: rx.at,
            id: rx.id,
            snapshot: None,
            progress_monotonic: false,
        }
    }

    /// Sets `time_remaining` and the `eta` derived from it.
    pub fn set_time_remaining(&mut self, seconds: Option<u64>) {
        self.time_remaining = seconds;
        self.eta = seconds.and_then(|s| {
            let s = i64::try_from(s).ok()?;
            self.received_at.checked_add(time::Duration::seconds(s))
        });
    }

    /// The `last_event` / `event` payload.
    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and timestamps cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Milliseconds since the Unix epoch, now (0 if the clock is before it):
/// the one clock reading outbox records, latencies and ages use.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Formats a timestamp as RFC 3339 UTC, e.g. `2026-11-23T10:15:00Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn rfc3339<Z: Serializer>(t: &OffsetDateTime, s: Z) -> Result<Z::Ok, Z::Error> {
    s.serialize_str(&format_time(*t))
}

fn opt_rfc3339<Z: Serializer>(t: &Option<OffsetDateTime>, s: Z) -> Result<Z::Ok, Z::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

fn ulid_parse<'de, D: Deserializer<'de>>(d: D) -> Result<Ulid, D::Error> {
    let text = String::deserialize(d)?;
    Ulid::from_string(&text).map_err(serde::de::Error::custom)
}

fn ulid_text<Z: Serializer>(id: &Ulid, s: Z) -> Result<Z::Ok, Z::Error> {
    s.serialize_str(&id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind} out of place");
            assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_name(s.name()), Some(s));
        }
    }

    #[test]
    fn eta_is_received_at_plus_remaining() {
        let rx = Reception {
            at: datetime!(2026-11-23 10:04:55 UTC),
            id: Ulid::nil(),
        };
        let mut e = Event::new(EventKind::Progress, Source::OctoEverywhere, "p".into(), rx);
        e.set_time_remaining(Some(605));
        assert_eq!(format_time(e.eta.unwrap()), "2026-11-23T10:15:00Z");
        let json: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(json["eta"], "2026-11-23T10:15:00Z");
        assert_eq!(json["received_at"], "2026-11-23T10:04:55Z");
        assert_eq!(json["event"], "progress");
        assert!(json.get("file").is_none(), "absent fields are omitted");
    }
}
