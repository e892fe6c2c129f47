//! The latest value of every retained per-printer topic, kept beside the
//! state so the status page and the API can show a printer without asking
//! the broker: filled from published changes and from retained values at
//! start.

use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Change, Field};
use crate::event::Event;

/// The last event a printer sent: its name and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEvent {
    /// The event's published name, e.g. `progress`.
    pub event: String,
    /// When the bridge received it.
    pub received_at: OffsetDateTime,
}

/// Each field's last published payload (an empty payload clears a value,
/// as it does on the broker), and the last event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latest {
    values: [Option<Bytes>; Field::ALL.len()],
    /// The printer's last event.
    pub last_event: Option<LastEvent>,
    /// Counts snapshot changes, so a page can tell a new image from the old.
    pub snapshot_rev: u64,
    /// True while a snapshot is kept; the JPEG itself is on disk
    /// (`snapshots.rs`), never held here.
    pub snapshot: bool,
}

impl Latest {
    /// Records what one accepted event published.
    pub fn record(&mut self, changes: &[Change], event: &Event) {
        for c in changes {
            self.set(c.field, c.payload.clone());
        }
        self.last_event = Some(LastEvent {
            event: event.event.name().to_owned(),
            received_at: event.received_at,
        });
    }

    /// True when `change` is the value last published (or restored) for
    /// its field; never for a snapshot, which is not held.
    pub fn holds(&self, change: &Change) -> bool {
        change.field != Field::Snapshot
            && self.values[change.field as usize].as_ref() == Some(&change.payload)
    }

    /// Takes back one retained value read from the broker at start.
    pub fn restore(&mut self, leaf: &str, payload: &[u8]) {
        if let Some(field) = Field::ALL.into_iter().find(|f| f.leaf() == leaf) {
            self.set(field, Bytes::copy_from_slice(payload));
        } else if leaf == "last_event" {
            self.last_event = last_event(payload).or(self.last_event.take());
        }
    }

    /// A field's value as text; `None` when unknown, empty or not UTF-8.
    pub fn text(&self, field: Field) -> Option<&str> {
        self.get(field)
            .and_then(|b| std::str::from_utf8(b).ok())
            .filter(|s| !s.is_empty())
    }

    /// A field's raw payload; `None` when unknown or empty, and always for
    /// the snapshot (see [`Latest::snapshot`]).
    pub fn get(&self, field: Field) -> Option<&Bytes> {
        self.values[field as usize]
            .as_ref()
            .filter(|b| !b.is_empty())
    }

    fn set(&mut self, field: Field, payload: Bytes) {
        if field == Field::Snapshot {
            self.snapshot_rev += 1;
            self.snapshot = !payload.is_empty();
            return;
        }
        self.values[field as usize] = Some(payload);
    }
}

fn last_event(json: &[u8]) -> Option<LastEvent> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let event = v.get("event")?.as_str()?.to_owned();
    let at = v.get("received_at")?.as_str()?;
    let received_at = OffsetDateTime::parse(at, &Rfc3339).ok()?;
    Some(LastEvent { event, received_at })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventKind, Reception, Source};
    use crate::state::PrinterState;

    #[test]
    fn keeps_what_was_published_and_restores_it() {
        let mut s = PrinterState::default();
        let mut e = Event::new(
            EventKind::Progress,
            Source::OctoEverywhere,
            "p".into(),
            Reception::now(),
        );
        e.file = Some("benchy.gcode".into());
        e.set_time_remaining(Some(600));
        s.apply(&e);
        assert_eq!(s.latest.text(Field::File), Some("benchy.gcode"));
        assert_eq!(s.latest.text(Field::TimeRemaining), Some("600"));
        assert_eq!(s.latest.last_event.as_ref().unwrap().event, "progress");

        let mut r = PrinterState::default();
        r.restore("file", b"cube.gcode");
        r.restore("eta", b"");
        r.restore("snapshot", b"\xff\xd8\xff\xe0");
        r.restore(
            "last_event",
            br#"{"event":"paused","printer_id":"P","received_at":"2026-11-23T10:04:55Z"}"#,
        );
        assert_eq!(r.latest.text(Field::File), Some("cube.gcode"));
        assert_eq!(
            r.latest.text(Field::Eta),
            None,
            "an empty value is no value"
        );
        assert!(r.latest.snapshot, "known to exist");
        assert_eq!(r.latest.get(Field::Snapshot), None, "never held in memory");
        let last = r.latest.last_event.unwrap();
        assert_eq!(last.event, "paused");
        assert_eq!(last.received_at.unix_timestamp(), 1_795_428_295);
    }
}
