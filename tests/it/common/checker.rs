//! The fault suite's checker: what the sender was told against what a
//! durable QoS 1 subscriber saw. Every webhook answered 200 is delivered,
//! each printer's events arrive in acceptance order (duplicates allowed:
//! QoS 1), nothing refused is published, and the retained state equals a
//! fault-free run's. Findings are collected, not panicked on, so one run
//! reports everything it saw.

use std::collections::{BTreeMap, BTreeSet};

use super::Msg;
use super::webhooks::{Answer, Hook, MAX_PACKET};

/// The bridge's base topic in every suite run.
pub const BASE: &str = "print2mqtt";

/// A webhook as sent, and what came of it.
#[derive(Debug, Clone)]
pub struct Sent {
    pub hook: Hook,
    pub answer: Answer,
    /// The bridge was SIGKILLed while this webhook was on its way, so no
    /// answer is no fault.
    pub during_kill: bool,
    /// Sent while the bridge's disk was full (or just freed): 503 is right.
    pub disk_full: bool,
}

impl Sent {
    pub fn accepted(&self) -> bool {
        self.answer == Answer::Accepted
    }
}

/// What the event stream showed.
#[derive(Debug, Default)]
pub struct Seen {
    /// Markers in arrival order per printer, duplicates included.
    pub events: BTreeMap<String, Vec<u64>>,
    /// Event messages that were not what the suite sends.
    pub strange: Vec<String>,
}

impl Seen {
    /// Reads the event-stream messages among `msgs`.
    pub fn from(msgs: &[Msg]) -> Seen {
        let mut seen = Seen::default();
        for m in msgs {
            seen.add(m);
        }
        seen
    }

    pub fn add(&mut self, m: &Msg) {
        let mut levels = m.topic.split('/');
        let (Some(BASE), Some(printer), Some("event"), None) =
            (levels.next(), levels.next(), levels.next(), levels.next())
        else {
            return;
        };
        let marker = serde_json::from_slice::<serde_json::Value>(&m.payload)
            .ok()
            .and_then(|v| v["print_duration"].as_u64());
        match marker {
            Some(marker) => self
                .events
                .entry(printer.to_owned())
                .or_default()
                .push(marker),
            None => self
                .strange
                .push(format!("{}: {}", m.topic, shorten(&m.text()))),
        }
    }

    /// Every marker seen.
    pub fn markers(&self) -> BTreeSet<u64> {
        self.events.values().flatten().copied().collect()
    }

    /// Messages beyond the first per marker (QoS 1 resends).
    pub fn duplicates(&self) -> usize {
        let all: usize = self.events.values().map(Vec::len).sum();
        all - self.markers().len()
    }
}

/// Every answer the bridge should not have given.
pub fn check_answers(sent: &[Sent]) -> Vec<String> {
    let mut out: Vec<String> = sent
        .iter()
        .filter_map(|s| match &s.answer {
            Answer::Accepted => None,
            Answer::Status(503, _) if s.disk_full => None,
            Answer::None(_) if s.during_kill => None,
            Answer::Status(status, body) => Some(format!(
                "{} answered {status}: {}",
                describe(&s.hook),
                shorten(body)
            )),
            Answer::None(why) => Some(format!(
                "{} got no answer from a live bridge: {why}",
                describe(&s.hook)
            )),
        })
        .collect();
    if out.len() > 12 {
        let n = out.len();
        out.truncate(12);
        out.push(format!("and {} more wrong answers", n - 12));
    }
    out
}

/// True once every accepted webhook's event arrived.
pub fn all_delivered(sent: &[Sent], seen: &Seen) -> bool {
    let markers = seen.markers();
    sent.iter()
        .filter(|s| s.accepted())
        .all(|s| markers.contains(&s.hook.marker))
}

/// The delivery and order checks; returns the violations.
pub fn check_stream(sent: &[Sent], seen: &Seen) -> Vec<String> {
    let mut out = Vec::new();
    let markers = seen.markers();
    let missing: Vec<String> = sent
        .iter()
        .filter(|s| s.accepted() && !markers.contains(&s.hook.marker))
        .map(|s| describe(&s.hook))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "{} of {} accepted webhooks never delivered: {}",
            missing.len(),
            sent.iter().filter(|s| s.accepted()).count(),
            list(&missing)
        ));
    }
    let by_marker: BTreeMap<u64, &Sent> = sent.iter().map(|s| (s.hook.marker, s)).collect();
    for (printer, events) in &seen.events {
        let mut first = BTreeSet::new();
        let mut last_new = 0;
        let mut disorder = Vec::new();
        for &m in events {
            if first.insert(m) {
                if m < last_new {
                    disorder.push(format!("{m} after {last_new}"));
                }
                last_new = last_new.max(m);
            }
            match by_marker.get(&m) {
                Some(s) if s.hook.printer != *printer => {
                    out.push(format!(
                        "{printer}: event {m} belongs to {}",
                        s.hook.printer
                    ));
                }
                Some(_) => {}
                None => out.push(format!("{printer}: event {m} was never sent")),
            }
        }
        if !disorder.is_empty() {
            out.push(format!(
                "{printer}: events out of acceptance order: {}",
                list(&disorder)
            ));
        }
    }
    for m in &markers {
        if let Some(Sent {
            answer: Answer::Status(status, body),
            hook,
            ..
        }) = by_marker.get(m)
        {
            out.push(format!(
                "{} published though answered {status} ({})",
                describe(hook),
                shorten(body)
            ));
        }
    }
    for s in &seen.strange {
        out.push(format!("unexpected event message {s}"));
    }
    out
}

/// Checks the retained values the suite can predict without a reference
/// run: each printer's `print_duration` is its last delivered marker, and
/// an OctoPrint printer's `snapshot` is the last deliverable one it sent.
pub fn check_retained(
    sent: &[Sent],
    seen: &Seen,
    retained: &BTreeMap<String, Msg>,
    printers: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    let markers = seen.markers();
    for printer in printers {
        let applied: Vec<&Hook> = sent
            .iter()
            .filter(|s| s.hook.printer == *printer && markers.contains(&s.hook.marker))
            .map(|s| &s.hook)
            .collect();
        let topic = |leaf: &str| format!("{BASE}/{printer}/{leaf}");
        let duration = retained.get(&topic("print_duration")).map(Msg::text);
        let want = applied.last().map(|h| h.marker.to_string());
        if duration != want {
            out.push(format!(
                "{printer}: retained print_duration {duration:?}, expected the last delivered webhook's {want:?}"
            ));
        }
        let snapshot = retained.get(&topic("snapshot")).map(|m| m.payload.clone());
        let want = applied
            .iter()
            .rev()
            .find_map(|h| h.snapshot.clone().filter(|s| s.len() < MAX_PACKET));
        if snapshot != want {
            let size = |s: &Option<bytes::Bytes>| s.as_ref().map(|s| s.len());
            out.push(format!(
                "{printer}: retained snapshot of {:?} bytes, expected the last deliverable one ({:?} bytes)",
                size(&snapshot),
                size(&want)
            ));
        }
    }
    out
}

/// Retained printer topics with what legitimately differs between two runs
/// taken out: the reception time and id in `last_event`, and `eta` (reception
/// time plus time remaining).
pub fn normalized(retained: &BTreeMap<String, Msg>) -> BTreeMap<String, String> {
    retained
        .iter()
        .filter(|(t, _)| !t.starts_with(&format!("{BASE}/bridge/")))
        .map(|(t, m)| {
            let value = if t.ends_with("/last_event") {
                match serde_json::from_slice::<serde_json::Value>(&m.payload) {
                    Ok(serde_json::Value::Object(mut o)) => {
                        for k in ["received_at", "id", "eta"] {
                            o.remove(k);
                        }
                        serde_json::Value::Object(o).to_string()
                    }
                    _ => m.text(),
                }
            } else if t.ends_with("/eta") && !m.payload.is_empty() {
                "<a time>".to_owned()
            } else if t.ends_with("/snapshot") {
                format!("<{} bytes, {}>", m.payload.len(), digest(&m.payload))
            } else {
                m.text()
            };
            (t.clone(), value)
        })
        .collect()
}

/// The differences between the retained state after faults and after a
/// fault-free run of the same webhooks.
pub fn compare(faulty: &BTreeMap<String, Msg>, reference: &BTreeMap<String, Msg>) -> Vec<String> {
    let (a, b) = (normalized(faulty), normalized(reference));
    let mut diffs = Vec::new();
    for topic in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(topic), b.get(topic)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => diffs.push(format!(
                "{topic}: {} after faults, {} fault-free",
                x.map_or("absent".into(), |v| shorten(v)),
                y.map_or("absent".into(), |v| shorten(v))
            )),
        }
    }
    if diffs.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "retained state differs from the fault-free run in {} topics: {}",
            diffs.len(),
            list(&diffs)
        )]
    }
}

fn describe(h: &Hook) -> String {
    match &h.snapshot {
        Some(s) => format!(
            "webhook {} ({}, {} B snapshot)",
            h.marker,
            h.printer,
            s.len()
        ),
        None => format!("webhook {} ({})", h.marker, h.printer),
    }
}

/// A short stable fingerprint (FNV-1a) for comparing payloads in messages.
fn digest(b: &[u8]) -> String {
    let h = b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

fn shorten(s: &str) -> String {
    if s.len() <= 200 {
        s.to_owned()
    } else {
        let cut = (0..=200)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &s[..cut])
    }
}

/// The first items of a list, and how many more there are.
fn list(items: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if items.len() > SHOWN {
        s.push_str(&format!("; and {} more", items.len() - SHOWN));
    }
    s
}
