//! The listener's limits, read from `[http]`, and the table of open
//! connections that enforces `http.max_connections`: each connection's
//! activity (busy, idle since, reading headers since) decides its deadline,
//! and when the table is full the connection idle the longest is closed to
//! make room, so held-open connections never starve a real sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config;
use crate::ingest;

/// The limits of `[http]` in the types the listener uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body: usize,
    pub max_multipart: usize,
    pub max_header: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_json_depth: usize,
}

impl Limits {
    /// The limits configured in `[http]` (validated ranges, so the
    /// conversions cannot truncate on 64-bit targets).
    pub fn new(http: &config::Http) -> Limits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        Limits {
            max_body: size(http.max_body_bytes),
            max_multipart: size(http.max_multipart_bytes),
            max_header: size(http.max_header_bytes),
            header_timeout: Duration::from_secs(http.header_timeout_secs),
            body_timeout: Duration::from_secs(http.body_timeout_secs),
            idle_timeout: Duration::from_secs(http.idle_timeout_secs),
            max_connections: size(http.max_connections),
            max_json_depth: size(http.max_json_depth),
        }
    }

    /// What parsing a body needs to know.
    pub fn ingest(&self) -> ingest::Limits {
        ingest::Limits {
            max_json_depth: self.max_json_depth,
            max_text_bytes: self.max_body,
        }
    }
}

/// "Not set" for the millisecond timestamps below.
const NONE: u64 = u64::MAX;

/// What one connection is doing, updated by its reads and its requests.
/// Times are milliseconds since the table's epoch.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    /// Requests being handled right now.
    busy: AtomicUsize,
    /// When the last response was produced (or the connection opened).
    idle_since: AtomicU64,
    /// When the first byte of the next request arrived while idle; a new
    /// connection counts as reading from the start.
    reading_since: AtomicU64,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let now = ms(epoch);
        Activity {
            epoch,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            reading_since: AtomicU64::new(now),
        }
    }

    /// Bytes arrived: while idle, the next request's headers are coming.
    pub fn on_read(&self) {
        if self.busy.load(Ordering::Acquire) == 0 {
            let _ = self.reading_since.compare_exchange(
                NONE,
                ms(self.epoch),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// A request's headers are in; the guard marks it done when dropped.
    pub fn start_request(self: &Arc<Activity>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        self.reading_since.store(NONE, Ordering::Release);
        Busy(self.clone())
    }

    /// When the connection is to be closed unless something happens: the
    /// header deadline while a request is coming in, the idle deadline
    /// between requests, none while a request is handled.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let (since, allowed) = match self.reading_since.load(Ordering::Acquire) {
            NONE => (self.idle_since.load(Ordering::Acquire), limits.idle_timeout),
            reading => (reading, limits.header_timeout),
        };
        Some(self.epoch + Duration::from_millis(since) + allowed)
    }

    /// Since when the connection has waited on its client, if it is not
    /// handling a request (the eviction order when the table is full).
    fn waiting_since(&self) -> Option<u64> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        Some(idle.min(self.reading_since.load(Ordering::Acquire)))
    }
}

/// Marks a request as handled when dropped (also when its connection dies).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle_since.store(ms(self.0.epoch), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

fn ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
}

/// A connection admitted to the table.
#[derive(Debug)]
pub struct Admitted {
    pub id: u64,
    pub activity: Arc<Activity>,
    /// Cancelled when the table closes this connection to make room.
    pub evicted: CancellationToken,
}

#[derive(Debug)]
struct Entry {
    activity: Arc<Activity>,
    evicted: CancellationToken,
}

/// Every open connection, bounded by `http.max_connections`.
#[derive(Debug)]
pub struct Table {
    epoch: Instant,
    max: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
    /// When the last "table full" warning was logged (ms since epoch).
    warned: AtomicU64,
}

impl Table {
    /// An empty table for at most `max` connections.
    pub fn new(max: usize) -> Table {
        Table {
            epoch: Instant::now(),
            max: max.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            warned: AtomicU64::new(NONE),
        }
    }

    /// Admits a new connection. When the table is full, the connection
    /// that has waited on its client the longest is closed to make room;
    /// `None` when every connection is handling a request.
    pub fn admit(&self) -> Option<Admitted> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            let oldest = open
                .iter()
                .filter_map(|(id, e)| e.activity.waiting_since().map(|t| (t, *id)))
                .min();
            let Some((_, victim)) = oldest else {
                self.warn_full();
                return None;
            };
            if let Some(e) = open.remove(&victim) {
                e.evicted.cancel();
            }
            self.warn_full();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        let evicted = CancellationToken::new();
        open.insert(
            id,
            Entry {
                activity: activity.clone(),
                evicted: evicted.clone(),
            },
        );
        Some(Admitted {
            id,
            activity,
            evicted,
        })
    }

    /// Forgets a closed connection.
    pub fn remove(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&id);
    }

    /// Open connections.
    pub fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// At most one warning a minute while the table overflows.
    fn warn_full(&self) {
        let now = ms(self.epoch);
        let last = self.warned.load(Ordering::Relaxed);
        if last == NONE || now.saturating_sub(last) >= 60_000 {
            self.warned.store(now, Ordering::Relaxed);
            warn!(
                max = self.max,
                "Connection limit reached (http.max_connections): closing the longest-idle connections"
            );
        } else {
            debug!(max = self.max, "Connection limit reached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(&config::Http::default())
    }

    #[test]
    fn defaults_match_the_config() {
        let l = limits();
        assert_eq!(
            (l.max_body, l.max_multipart, l.max_header),
            (1 << 20, 16 << 20, 64 << 10)
        );
        assert_eq!(
            (l.max_connections, l.max_json_depth, l.idle_timeout),
            (1024, 64, Duration::from_secs(75))
        );
    }

    #[test]
    fn deadlines_follow_the_connection_phase() {
        let table = Table::new(4);
        let a = table.admit().unwrap().activity;
        let l = limits();
        let opened = a.deadline(&l).unwrap();
        assert!(opened <= Instant::now() + l.header_timeout, "headers due");
        let busy = a.start_request();
        assert_eq!(a.deadline(&l), None, "no deadline while handling");
        drop(busy);
        let idle = a.deadline(&l).unwrap();
        assert!(idle > Instant::now() + l.header_timeout, "idle keep-alive");
        a.on_read();
        assert!(a.deadline(&l).unwrap() <= Instant::now() + l.header_timeout);
    }

    #[test]
    fn a_full_table_closes_the_longest_idle_connection() {
        let table = Table::new(2);
        let first = table.admit().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit().unwrap();
        let third = table.admit().unwrap();
        assert!(first.evicted.is_cancelled());
        assert!(!second.evicted.is_cancelled());
        assert_eq!(table.len(), 2);
        // Both remaining connections busy: nothing can be closed.
        let _b1 = second.activity.start_request();
        let _b2 = third.activity.start_request();
        assert!(table.admit().is_none());
        table.remove(second.id);
        assert!(table.admit().is_some());
    }
}
