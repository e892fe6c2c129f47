//! Per-printer state and the pure rule that turns an event into the retained
//! values it changes (docs/mqtt-topics.md#rules): `apply(state, event) -> changes`.

mod latest;
mod packed;

use bytes::Bytes;

pub use self::latest::{LastEvent, Latest};
use self::packed::Packed;
use crate::event::{Event, EventKind, Source, Status, format_time};

/// A retained per-printer value; its topic is `<base>/<slug>/<leaf>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    State,
    Problem,
    Progress,
    TimeRemaining,
    Eta,
    PrintDuration,
    File,
    Z,
    Layer,
    TotalLayers,
    Error,
    SnapshotUrl,
    Snapshot,
}

impl Field {
    /// Every field, in publishing order.
    pub const ALL: [Field; 13] = [
        Field::State,
        Field::Problem,
        Field::Progress,
        Field::TimeRemaining,
        Field::Eta,
        Field::PrintDuration,
        Field::File,
        Field::Z,
        Field::Layer,
        Field::TotalLayers,
        Field::Error,
        Field::SnapshotUrl,
        Field::Snapshot,
    ];

    /// The last topic level.
    pub fn leaf(self) -> &'static str {
        match self {
            Field::State => "state",
            Field::Problem => "problem",
            Field::Progress => "progress",
            Field::TimeRemaining => "time_remaining",
            Field::Eta => "eta",
            Field::PrintDuration => "print_duration",
            Field::File => "file",
            Field::Z => "z",
            Field::Layer => "layer",
            Field::TotalLayers => "total_layers",
            Field::Error => "error",
            Field::SnapshotUrl => "snapshot_url",
            Field::Snapshot => "snapshot",
        }
    }
}

/// One retained value to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub field: Field,
    pub payload: Bytes,
}

impl Change {
    fn text(field: Field, text: impl Into<String>) -> Change {
        Change {
            field,
            payload: Bytes::from(text.into()),
        }
    }
}

/// What the bridge remembers about a printer between webhooks.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PrinterState {
    /// The printer id, name, print id and Quick View URL, in one
    /// allocation (see [`Identity`]).
    identity: Packed<{ Identity::COUNT }>,
    pub source: Option<Source>,
    pub status: Option<Status>,
    pub problem: Option<bool>,
    pub progress: Option<u8>,
    /// Every value last published, for the status page and the API.
    pub latest: Latest,
}

/// The texts that say which printer and print a state is of; an empty
/// one is unknown (a webhook never carries a blank text).
#[derive(Debug, Clone, Copy)]
enum Identity {
    PrinterId,
    Name,
    PrintId,
    QuickviewUrl,
}

impl Identity {
    const COUNT: usize = 4;
}

impl PrinterState {
    /// The state of a printer known by its id only.
    pub fn with_id(printer_id: &str) -> PrinterState {
        let mut state = PrinterState::default();
        state.set_printer_id(printer_id);
        state
    }

    /// The printer id as the printer sent it (empty: not a printer yet).
    pub fn printer_id(&self) -> &str {
        self.text(Identity::PrinterId).unwrap_or_default()
    }

    /// The name the printer sent, if any.
    pub fn name(&self) -> Option<&str> {
        self.text(Identity::Name)
    }

    /// The id of the current (or last) print, if the printer sends one.
    pub fn print_id(&self) -> Option<&str> {
        self.text(Identity::PrintId)
    }

    /// The printer's OctoEverywhere Quick View URL, if it sent one.
    pub fn quickview_url(&self) -> Option<&str> {
        self.text(Identity::QuickviewUrl)
    }

    pub fn set_printer_id(&mut self, id: &str) {
        self.identity
            .set_text(Identity::PrinterId as usize, Some(id));
    }

    pub fn set_name(&mut self, name: Option<&str>) {
        self.identity.set_text(Identity::Name as usize, name);
    }

    pub fn set_quickview_url(&mut self, url: Option<&str>) {
        self.identity.set_text(Identity::QuickviewUrl as usize, url);
    }

    fn set_print_id(&mut self, id: Option<&str>) {
        self.identity.set_text(Identity::PrintId as usize, id);
    }

    fn text(&self, field: Identity) -> Option<&str> {
        self.identity.text(field as usize)
    }

    /// Applies `event` and returns the retained values it changes, in
    /// publishing order: a value the broker already holds (the last one
    /// published or restored) is left out; a snapshot always goes. Events
    /// that do not carry values (test, unknown) change nothing but the
    /// printer's identity.
    pub fn apply(&mut self, event: &Event) -> Vec<Change> {
        let mut changes = self.changes(event);
        changes.retain(|c| !self.latest.holds(c));
        self.latest.record(&changes, event);
        changes
    }

    fn changes(&mut self, event: &Event) -> Vec<Change> {
        self.set_printer_id(&event.printer_id);
        self.source = Some(event.source);
        if event.printer_name.is_some() {
            self.set_name(event.printer_name.as_deref());
        }
        if event.quickview_url.is_some() {
            self.set_quickview_url(event.quickview_url.as_deref());
        }
        let kind = event.event;
        if !kind.carries_values() {
            return Vec::new();
        }
        let mut changes = Vec::new();
        let was_active = self.status.is_some_and(Status::is_active);
        let new_print = kind == EventKind::Started
            || (event.print_id.is_some() && event.print_id.as_deref() != self.print_id());
        if event.print_id.is_some() || kind == EventKind::Started {
            self.set_print_id(event.print_id.as_deref());
        }

        let status = kind.status();
        if let Some(status) = status {
            self.status = Some(status);
            changes.push(Change::text(Field::State, status.name()));
        }
        if let Some(problem) = kind.problem() {
            self.problem = Some(problem);
            changes.push(Change::text(
                Field::Problem,
                if problem { "ON" } else { "OFF" },
            ));
        }
        let progress = if kind == EventKind::Complete {
            Some(100)
        } else {
            event.progress
        };
        if let Some(p) = progress {
            // Milestone progress never moves backwards within a print;
            // measured progress is published as sent.
            let backwards = event.progress_monotonic
                && was_active
                && !new_print
                && self.progress.is_some_and(|old| p < old);
            if !backwards {
                self.progress = Some(p);
                changes.push(Change::text(Field::Progress, p.to_string()));
            }
        }
        if status.is_some_and(|s| !s.is_active()) {
            changes.push(Change::text(Field::TimeRemaining, "0"));
            changes.push(Change::text(Field::Eta, ""));
        } else if let Some(t) = event.time_remaining {
            changes.push(Change::text(Field::TimeRemaining, t.to_string()));
            if let Some(eta) = event.eta {
                changes.push(Change::text(Field::Eta, format_time(eta)));
            }
        }
        let values = [
            (
                Field::PrintDuration,
                event.print_duration.map(|v| v.to_string()),
            ),
            (Field::File, event.file.clone()),
            (Field::Z, event.z.map(format_mm)),
            (Field::Layer, event.layer.map(|v| v.to_string())),
            (
                Field::TotalLayers,
                event.total_layers.map(|v| v.to_string()),
            ),
            (Field::Error, event.error.clone()),
            (Field::SnapshotUrl, event.snapshot_url.clone()),
        ];
        changes.extend(
            values
                .into_iter()
                .filter_map(|(field, v)| v.map(|v| Change::text(field, v))),
        );
        if let Some(jpeg) = &event.snapshot {
            changes.push(Change {
                field: Field::Snapshot,
                payload: jpeg.clone(),
            });
        }
        changes
    }

    /// Takes back one retained value read from the broker at start.
    pub fn restore(&mut self, leaf: &str, payload: &[u8]) {
        self.latest.restore(leaf, payload);
        let Ok(text) = std::str::from_utf8(payload) else {
            return;
        };
        match leaf {
            "state" => self.status = Status::from_name(text),
            "problem" => self.problem = matches!(text, "ON" | "OFF").then_some(text == "ON"),
            "progress" => self.progress = text.parse().ok().filter(|p| *p <= 100),
            "last_event" => self.restore_identity(text),
            _ => {}
        }
    }

    fn restore_identity(&mut self, json: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
            return;
        };
        let text = |k: &str| v.get(k).and_then(|s| s.as_str());
        if let Some(id) = text("printer_id") {
            self.set_printer_id(id);
        }
        if let Some(name) = text("printer_name") {
            self.set_name(Some(name));
        }
        self.set_print_id(text("print_id"));
        if let Some(url) = text("quickview_url") {
            self.set_quickview_url(Some(url));
        }
        self.source = text("source").and_then(Source::from_name).or(self.source);
    }
}

/// Millimetres as plain text, without float noise: `0.3`, `12`, `-0.05`.
pub fn format_mm(z: f64) -> String {
    let rounded = (z * 10_000.0).round() / 10_000.0;
    if rounded == 0.0 {
        "0".to_owned()
    } else {
        rounded.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Reception;
    use time::macros::datetime;
    use ulid::Ulid;

    fn event(kind: EventKind) -> Event {
        let rx = Reception {
            at: datetime!(2026-11-23 10:00:00 UTC),
            id: Ulid::nil(),
        };
        Event::new(kind, Source::OctoEverywhere, "p".into(), rx)
    }

    fn text(changes: &[Change]) -> Vec<(&'static str, String)> {
        changes
            .iter()
            .map(|c| {
                (
                    c.field.leaf(),
                    String::from_utf8_lossy(&c.payload).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn progress_event_publishes_what_it_carries() {
        let mut s = PrinterState::default();
        let mut e = event(EventKind::Progress);
        e.progress = Some(50);
        e.set_time_remaining(Some(600));
        e.file = Some("benchy.gcode".into());
        e.z = Some(0.30000000000000004);
        assert_eq!(
            text(&s.apply(&e)),
            vec![
                ("state", "printing".into()),
                ("progress", "50".into()),
                ("time_remaining", "600".into()),
                ("eta", "2026-11-23T10:10:00Z".into()),
                ("file", "benchy.gcode".into()),
                ("z", "0.3".into()),
            ]
        );
    }

    #[test]
    fn only_changed_values_are_published() {
        let mut s = PrinterState::default();
        let mut e = event(EventKind::Progress);
        e.progress = Some(50);
        e.set_time_remaining(Some(600));
        e.file = Some("benchy.gcode".into());
        e.z = Some(0.3);
        s.apply(&e);
        e.progress = Some(51);
        e.set_time_remaining(Some(540));
        e.eta = None;
        assert_eq!(
            text(&s.apply(&e)),
            vec![("progress", "51".into()), ("time_remaining", "540".into())]
        );
        assert!(s.apply(&e).is_empty(), "nothing changed");
        let mut r = PrinterState::default();
        r.restore("file", b"benchy.gcode");
        r.restore("z", b"");
        let mut e = event(EventKind::Progress);
        e.file = Some("benchy.gcode".into());
        e.z = Some(0.0);
        e.snapshot = Some(Bytes::from_static(b"\xff\xd8"));
        assert_eq!(
            text(&r.apply(&e)),
            vec![
                ("state", "printing".into()),
                ("z", "0".into()),
                ("snapshot", "\u{fffd}\u{fffd}".into()),
            ],
            "restored values count as published; a snapshot always goes"
        );
    }

    #[test]
    fn leaving_an_active_state_clears_time_and_eta() {
        let mut s = PrinterState::default();
        let mut e = event(EventKind::Error);
        e.set_time_remaining(Some(3101));
        e.error = Some("Thermal Runaway".into());
        assert_eq!(
            text(&s.apply(&e)),
            vec![
                ("state", "error".into()),
                ("problem", "ON".into()),
                ("time_remaining", "0".into()),
                ("eta", "".into()),
                ("error", "Thermal Runaway".into()),
            ]
        );
    }

    #[test]
    fn complete_means_one_hundred_percent() {
        let mut s = PrinterState::default();
        let mut e = event(EventKind::Complete);
        e.progress = Some(99);
        let c = text(&s.apply(&e));
        assert!(c.contains(&("progress", "100".into())));
        assert_eq!(s.status, Some(Status::Complete));
    }

    #[test]
    fn cancel_does_not_raise_problem_and_resume_clears_it() {
        let mut s = PrinterState::default();
        s.apply(&event(EventKind::FailureWarning));
        assert_eq!(s.problem, Some(true));
        assert_eq!(s.status, None, "a warning leaves the state alone");
        let c = s.apply(&event(EventKind::Cancelled));
        assert_eq!(s.status, Some(Status::Cancelled));
        assert!(!c.iter().any(|c| c.field == Field::Problem));
        s.apply(&event(EventKind::Resumed));
        assert_eq!(s.problem, Some(false));
    }

    #[test]
    fn tests_and_unknown_events_change_nothing() {
        let mut s = PrinterState::default();
        s.apply(&event(EventKind::Paused));
        for kind in [EventKind::Test, EventKind::Unknown] {
            let mut e = event(kind);
            e.progress = Some(5);
            e.printer_name = Some("Renamed".into());
            assert!(s.apply(&e).is_empty());
        }
        assert_eq!(s.status, Some(Status::Paused));
        assert_eq!(s.name(), Some("Renamed"));
    }

    #[test]
    fn repeated_milestones_never_go_backwards() {
        let mut s = PrinterState::default();
        let at = |p: u8, kind| {
            let mut e = event(kind);
            e.progress_monotonic = true;
            e.progress = Some(p);
            e
        };
        s.apply(&at(0, EventKind::Started));
        s.apply(&at(50, EventKind::Progress));
        assert!(
            text(&s.apply(&at(40, EventKind::Progress)))
                .iter()
                .all(|(l, _)| *l != "progress")
        );
        assert_eq!(s.progress, Some(50));
        s.apply(&at(0, EventKind::Started));
        assert_eq!(s.progress, Some(0), "a new print starts over");
    }

    #[test]
    fn octoeverywhere_progress_is_published_as_sent() {
        let mut s = PrinterState::default();
        let mut e = event(EventKind::Progress);
        e.progress = Some(63);
        s.apply(&e);
        e.progress = Some(50);
        assert!(text(&s.apply(&e)).contains(&("progress", "50".into())));
    }

    #[test]
    fn restore_reads_back_published_values() {
        let mut s = PrinterState::default();
        s.restore("state", b"paused");
        s.restore("problem", b"ON");
        s.restore("progress", b"38");
        s.restore(
            "last_event",
            br#"{"event":"paused","source":"octoeverywhere","printer_id":"ID","printer_name":"Ender","print_id":"x"}"#,
        );
        assert_eq!(s.status, Some(Status::Paused));
        assert_eq!(s.problem, Some(true));
        assert_eq!(s.progress, Some(38));
        assert_eq!(s.printer_id(), "ID");
        assert_eq!(s.print_id(), Some("x"));
        s.restore("state", b"bogus");
        assert_eq!(s.status, None);
    }

    #[test]
    fn millimetres_without_float_noise() {
        assert_eq!(format_mm(0.2), "0.2");
        assert_eq!(format_mm(12.0), "12");
        assert_eq!(format_mm(-0.0), "0");
        assert_eq!(format_mm(0.1 + 0.2), "0.3");
    }
}
