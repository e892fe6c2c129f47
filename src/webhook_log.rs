//! The recent-webhooks log the status page shows: the last
//! [`CAPACITY`] webhooks, accepted or not, with who sent them and what the
//! bridge answered — never a secret, never the URL (it can carry `?token=`).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::event::format_time;

/// Entries kept.
pub const CAPACITY: usize = 200;
/// Longest reason kept, in characters.
const MAX_REASON: usize = 300;

/// What the handler knows about one webhook when it answers.
#[derive(Debug, Clone, Default)]
pub struct Outcome<'a> {
    /// The connecting address.
    pub peer: Option<IpAddr>,
    /// The first address a proxy says it forwarded for, if any.
    pub forwarded_for: Option<IpAddr>,
    /// `octoeverywhere` / `octoprint`; `None` when not recognised.
    pub dialect: Option<&'static str>,
    /// The printer's slug, once the body named one.
    pub printer: Option<&'a str>,
    /// The event's name, once parsed.
    pub event: Option<&'static str>,
    /// The HTTP status answered.
    pub status: u16,
    /// `filtered` for a webhook outside the printer's `events` filter.
    pub filtered: bool,
    /// Why a webhook was rejected (the error message answered).
    pub reason: Option<&'a str>,
    /// The accepted event's id.
    pub id: Option<String>,
}

/// One log line, as the API and the page show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Increases by one per webhook since the start.
    pub seq: u64,
    /// When the bridge answered (RFC 3339 UTC).
    pub time: String,
    /// The sender: the forwarded-for address behind a proxy, else the peer.
    pub sender: Option<String>,
    /// The connecting address (a proxy's, when there is one).
    pub peer: Option<String>,
    pub dialect: Option<&'static str>,
    pub printer: Option<String>,
    pub event: Option<&'static str>,
    /// The HTTP status answered.
    pub status: u16,
    /// `accepted`, `filtered` or `rejected`.
    pub outcome: &'static str,
    pub reason: Option<String>,
    pub id: Option<String>,
}

/// The log: a bounded ring plus a stream of new entries.
#[derive(Debug, Clone)]
pub struct WebhookLog {
    inner: Arc<Mutex<Ring>>,
    tx: broadcast::Sender<Arc<Entry>>,
}

#[derive(Debug, Default)]
struct Ring {
    next_seq: u64,
    entries: VecDeque<Arc<Entry>>,
}

impl Default for WebhookLog {
    fn default() -> Self {
        WebhookLog {
            inner: Arc::default(),
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl WebhookLog {
    /// Adds one webhook's entry and tells the stream's readers.
    pub fn push(&self, o: &Outcome<'_>) -> Arc<Entry> {
        let now = OffsetDateTime::now_utc();
        let mut ring = self.ring();
        let entry = Arc::new(Entry {
            seq: ring.next_seq,
            time: format_time(now.replace_millisecond(now.millisecond()).unwrap_or(now)),
            sender: o.forwarded_for.or(o.peer).map(|ip| ip.to_string()),
            peer: o.peer.map(|ip| ip.to_string()),
            dialect: o.dialect,
            printer: o.printer.map(str::to_owned),
            event: o.event,
            status: o.status,
            outcome: match (o.status, o.filtered) {
                (200, true) => "filtered",
                (200, false) => "accepted",
                _ => "rejected",
            },
            reason: o.reason.map(|r| r.chars().take(MAX_REASON).collect()),
            id: o.id.clone(),
        });
        ring.next_seq += 1;
        if ring.entries.len() == CAPACITY {
            ring.entries.pop_front();
        }
        ring.entries.push_back(entry.clone());
        // Sent under the lock, so readers see entries in order.
        let _ = self.tx.send(entry.clone());
        entry
    }

    /// The kept entries, oldest first.
    pub fn recent(&self) -> Vec<Arc<Entry>> {
        self.ring().entries.iter().cloned().collect()
    }

    /// New entries from now on.
    pub fn watch(&self) -> broadcast::Receiver<Arc<Entry>> {
        self.tx.subscribe()
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        // Nothing under the lock panics; a poisoned ring is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_entries_in_order() {
        let log = WebhookLog::default();
        let mut rx = log.watch();
        for i in 0..CAPACITY + 5 {
            log.push(&Outcome {
                peer: Some(IpAddr::from([127, 0, 0, 1])),
                status: if i % 2 == 0 { 200 } else { 401 },
                reason: (i % 2 == 1).then_some("wrong secret"),
                ..Outcome::default()
            });
        }
        let recent = log.recent();
        assert_eq!(recent.len(), CAPACITY);
        assert_eq!(recent[0].seq, 5);
        assert_eq!(recent.last().unwrap().seq, CAPACITY as u64 + 4);
        assert_eq!(rx.try_recv().unwrap().seq, 0);
        assert_eq!(recent[0].outcome, "rejected");
        assert_eq!(recent[1].outcome, "accepted");
        assert_eq!(recent[0].sender.as_deref(), Some("127.0.0.1"));
    }
}
