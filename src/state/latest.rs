//! The latest value of every retained per-printer topic, kept beside the
//! state so the status page and the API can show a printer without asking
//! the broker: filled from published changes and from retained values at
//! start.

use std::borrow::Cow;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::packed::Packed;
use super::{Change, Field};
use crate::event::{Event, EventKind};

// `Latest::known` has a bit per field.
const _: () = assert!(Field::ALL.len() <= 16);

/// The last event a printer sent: its name and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastEvent {
    /// The event's published name, e.g. `progress` (borrowed for every
    /// name this version knows: no allocation per printer).
    pub event: Cow<'static, str>,
    /// When the bridge received it.
    pub received_at: OffsetDateTime,
}

/// Each field's last published payload (an empty payload clears a value,
/// as it does on the broker), and the last event.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latest {
    /// Every field's payload, in [`Field::ALL`] order (in one allocation);
    /// a field without a value is empty.
    values: Packed<{ Field::ALL.len() }>,
    /// Bit `i` set: field `i` was published or restored (perhaps empty).
    known: u16,
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
            self.set(c.field, &c.payload);
        }
        self.last_event = Some(LastEvent {
            event: Cow::Borrowed(event.event.name()),
            received_at: event.received_at,
        });
    }

    /// True when `change` is the value last published (or restored) for
    /// its field; never for a snapshot, which is not held.
    pub fn holds(&self, change: &Change) -> bool {
        let i = change.field as usize;
        change.field != Field::Snapshot
            && self.known & (1 << i) != 0
            && self.values.get(i) == &change.payload[..]
    }

    /// Forgets which values the broker holds (they stay readable): the
    /// next change of each field is published even when it is equal.
    pub fn forget_held(&mut self) {
        self.known = 0;
    }

    /// Takes back one retained value read from the broker at start.
    pub fn restore(&mut self, leaf: &str, payload: &[u8]) {
        if let Some(field) = Field::ALL.into_iter().find(|f| f.leaf() == leaf) {
            self.set(field, payload);
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
    pub fn get(&self, field: Field) -> Option<&[u8]> {
        Some(self.values.get(field as usize)).filter(|b| !b.is_empty())
    }

    fn set(&mut self, field: Field, payload: &[u8]) {
        if field == Field::Snapshot {
            self.snapshot_rev += 1;
            self.snapshot = !payload.is_empty();
            return;
        }
        let i = field as usize;
        self.known |= 1 << i;
        self.values.set(i, payload);
    }
}

fn last_event(json: &[u8]) -> Option<LastEvent> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let name = v.get("event")?.as_str()?;
    let event = match EventKind::from_name(name) {
        Some(kind) => Cow::Borrowed(kind.name()),
        None => Cow::Owned(name.to_owned()),
    };
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

    #[test]
    fn forgotten_values_are_published_again_but_still_shown() {
        let mut latest = Latest::default();
        let change = Change {
            field: Field::File,
            payload: bytes::Bytes::from_static(b"cube.gcode"),
        };
        assert!(!latest.holds(&change), "never published");
        latest.set(Field::File, b"cube.gcode");
        assert!(latest.holds(&change));
        latest.forget_held();
        assert!(!latest.holds(&change), "the broker may have lost it");
        assert_eq!(latest.text(Field::File), Some("cube.gcode"));
        latest.set(Field::File, b"cube.gcode");
        assert!(latest.holds(&change), "held again once published");
    }

    proptest::proptest! {
        /// The packed values read back as thirteen separate ones would.
        #[test]
        fn packed_values_match_separate_ones(
            ops in proptest::collection::vec((0..Field::ALL.len(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)), 0..60)
        ) {
            let mut latest = Latest::default();
            let mut model: Vec<Vec<u8>> = vec![Vec::new(); Field::ALL.len()];
            for (i, payload) in ops {
                let field = Field::ALL[i];
                latest.set(field, &payload);
                if field != Field::Snapshot {
                    model[i] = payload;
                }
                for (j, f) in Field::ALL.into_iter().enumerate() {
                    let want = (!model[j].is_empty()).then_some(model[j].as_slice());
                    proptest::prop_assert_eq!(latest.get(f), want);
                }
            }
        }
    }
}
