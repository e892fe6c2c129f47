//! The OctoEverywhere dialect: cloud service, LAN plugin and App Connection
//! callbacks all send the same JSON object (docs/senders.md).

use serde_json::{Map, Value};

use super::fields::Fields;
use super::{IngestError, Parsed};
use crate::event::{Event, EventKind, Reception, Source};

/// OctoEverywhere's `EventType` numbers, as its documentation lists them.
const EVENT_TYPES: [(i64, EventKind); 16] = [
    (1, EventKind::Started),
    (2, EventKind::Complete),
    (3, EventKind::Failed),
    (4, EventKind::Paused),
    (5, EventKind::Resumed),
    (6, EventKind::Progress),
    (7, EventKind::FailureWarning),
    (8, EventKind::FailurePaused),
    (9, EventKind::Error),
    (10, EventKind::FirstLayerComplete),
    (11, EventKind::FilamentChange),
    (12, EventKind::UserInteraction),
    (13, EventKind::NotificationLimit),
    (14, EventKind::ThirdLayerComplete),
    (15, EventKind::BedCooldownComplete),
    (16, EventKind::Test),
];

/// True when the object looks like an OctoEverywhere webhook.
pub fn recognises(map: &Map<String, Value>) -> bool {
    map.contains_key("EventType") && map.contains_key("PrinterId")
}

/// Maps one OctoEverywhere body to an event. Strict about types (a wrong
/// type is a 400 naming the field), lenient about what is missing.
pub fn parse(map: &Map<String, Value>, rx: Reception) -> Result<Parsed, IngestError> {
    let f = Fields::new(map);
    let code = event_type(&f)?;
    let printer_id = match f.get("PrinterId") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None => return Err(IngestError::missing("PrinterId")),
        Some(_) => return Err(IngestError::field("PrinterId", "expected text")),
    };
    let error = f.text("Error")?;
    let kind = kind_for(code, error.as_deref());

    let mut event = Event::new(kind, Source::OctoEverywhere, printer_id, rx);
    event.code = Some(code);
    event.printer_name = f.text("PrinterName")?;
    event.print_id = f.text("PrintId")?;
    event.file = f.text("FileName")?;
    event.progress = f.percent("Progress")?;
    event.print_duration = f.count("DurationSec")?;
    // -1 (no estimate yet) and every other negative value mean unknown.
    event.set_time_remaining(f.count("TimeRemainingSec")?);
    event.z = f.number("ZOffsetMM")?;
    event.layer = f.count("CurrentLayer")?;
    event.total_layers = f.count("TotalLayers")?;
    event.error = error;
    event.platform_error_code = f.text("PlatformErrorCode")?;
    event.snapshot_url = f.text("SnapshotUrl")?;
    event.quickview_url = f.text("QuickViewUrl")?;
    Ok(Parsed {
        event,
        secret: f.text("SecretKey")?,
    })
}

fn event_type(f: &Fields) -> Result<i64, IngestError> {
    let n = f
        .number("EventType")?
        .ok_or_else(|| IngestError::missing("EventType"))?;
    if n.fract() != 0.0 || n.abs() > 1e15 {
        return Err(IngestError::field("EventType", "expected a whole number"));
    }
    // Whole and within ±1e15, so the cast is exact.
    Ok(n as i64)
}

/// The `EventType` number OctoEverywhere sends `kind` as, if it has one: a
/// cancel is a failure (3) to it; `custom` and `unknown` have none. Used for
/// the App Connection event filter.
pub fn code_for(kind: EventKind) -> Option<i64> {
    let kind = if kind == EventKind::Cancelled {
        EventKind::Failed
    } else {
        kind
    };
    EVENT_TYPES
        .iter()
        .find(|(_, k)| *k == kind)
        .map(|(c, _)| *c)
}

/// The event kind for a code; a failure the sender calls cancelled is a cancel.
fn kind_for(code: i64, error: Option<&str>) -> EventKind {
    let kind = EVENT_TYPES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(EventKind::Unknown, |(_, k)| *k);
    let cancelled = error.is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e.contains("cancel")
    });
    if kind == EventKind::Failed && cancelled {
        EventKind::Cancelled
    } else {
        kind
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;
    use ulid::Ulid;

    fn rx() -> Reception {
        Reception {
            at: datetime!(2026-11-23 10:04:55 UTC),
            id: Ulid::nil(),
        }
    }

    fn parse_json(v: Value) -> Result<Parsed, IngestError> {
        parse(v.as_object().unwrap(), rx())
    }

    #[test]
    fn every_documented_code_has_its_kind() {
        for (code, kind) in EVENT_TYPES {
            assert_eq!(kind_for(code, None), kind);
        }
        assert_eq!(kind_for(99, None), EventKind::Unknown);
        assert_eq!(kind_for(3, Some("cancelled")), EventKind::Cancelled);
        assert_eq!(
            kind_for(3, Some("Print Canceled by user")),
            EventKind::Cancelled
        );
        assert_eq!(kind_for(3, Some("Thermal runaway")), EventKind::Failed);
        assert_eq!(kind_for(9, Some("cancelled")), EventKind::Error);
    }

    #[test]
    fn kinds_map_back_to_codes() {
        for (code, kind) in EVENT_TYPES {
            assert_eq!(code_for(kind), Some(code));
        }
        assert_eq!(code_for(EventKind::Cancelled), Some(3));
        assert_eq!(code_for(EventKind::Custom), None);
        assert_eq!(code_for(EventKind::Unknown), None);
    }

    #[test]
    fn numbers_arrive_in_any_shape() {
        let p = parse_json(json!({
            "PrinterId": "p", "EventType": "6", "Progress": 21.7,
            "DurationSec": "50", "TimeRemainingSec": 605.9, "ZOffsetMM": "0.3",
            "CurrentLayer": 12.0, "TotalLayers": "180"
        }))
        .unwrap();
        let e = p.event;
        assert_eq!(e.event, EventKind::Progress);
        assert_eq!(e.code, Some(6));
        assert_eq!(e.progress, Some(21));
        assert_eq!(e.print_duration, Some(50));
        assert_eq!(e.time_remaining, Some(605));
        assert_eq!(e.z, Some(0.3));
        assert_eq!((e.layer, e.total_layers), (Some(12), Some(180)));
        assert_eq!(
            crate::event::format_time(e.eta.unwrap()),
            "2026-11-23T10:15:00Z"
        );
    }

    #[test]
    fn minus_one_and_null_mean_unknown() {
        let e = parse_json(json!({
            "PrinterId": "p", "EventType": 1, "TimeRemainingSec": -1,
            "Progress": null, "FileName": null, "PrintId": ""
        }))
        .unwrap()
        .event;
        assert_eq!(e.time_remaining, None);
        assert_eq!(e.eta, None);
        assert_eq!(e.progress, None);
        assert_eq!(e.file, None);
        assert_eq!(e.print_id, None);
    }

    #[test]
    fn unknown_types_and_properties_are_accepted() {
        let p = parse_json(json!({
            "PrinterId": "p", "EventType": 99, "SomethingNew": {"a": [1, 2]}, "SecretKey": "s"
        }))
        .unwrap();
        assert_eq!(p.event.event, EventKind::Unknown);
        assert_eq!(p.event.code, Some(99));
        assert_eq!(p.secret.as_deref(), Some("s"));
        assert!(
            !p.event.to_json().contains("\"s\""),
            "the secret is never in the event"
        );
    }

    #[test]
    fn broken_required_fields_are_named() {
        let err = |v: Value| parse_json(v).unwrap_err().to_string();
        assert_eq!(err(json!({"PrinterId": "p"})), "missing field `EventType`");
        assert_eq!(
            err(json!({"EventType": 1, "PrinterId": ""})),
            "missing field `PrinterId`"
        );
        assert_eq!(
            err(json!({"EventType": 1, "PrinterId": 5})),
            "field `PrinterId`: expected text"
        );
        assert_eq!(
            err(json!({"EventType": 1.5, "PrinterId": "p"})),
            "field `EventType`: expected a whole number"
        );
        assert_eq!(
            err(json!({"EventType": "six", "PrinterId": "p"})),
            "field `EventType`: expected a number"
        );
        assert_eq!(
            err(json!({"EventType": 6, "PrinterId": "p", "Progress": [50]})),
            "field `Progress`: expected a number"
        );
    }
}
