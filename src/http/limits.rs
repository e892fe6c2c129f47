//! The listener's limits, read from `[http]`, and the table of open
//! connections that enforces `http.max_connections` and
//! `http.max_connections_per_peer`: each connection's activity (busy, idle
//! since, reading headers since, reading a body) decides its deadline, and
//! when the table (or a peer's share) is full the connection that has
//! waited on its client the longest — idle, sending headers, or stalling
//! in a body — is closed to make room, so held-open connections never
//! starve a real sender.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    pub max_connections_per_peer: usize,
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
            max_connections_per_peer: size(http.max_connections_per_peer),
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
    /// When the client last sent anything.
    last_byte: AtomicU64,
    /// A handler is waiting for the request's body: the server waits on
    /// the client, as between requests.
    body: AtomicBool,
}

impl Activity {
    fn new(epoch: Instant) -> Activity {
        let now = ms(epoch);
        Activity {
            epoch,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            reading_since: AtomicU64::new(now),
            last_byte: AtomicU64::new(now),
            body: AtomicBool::new(false),
        }
    }

    /// Marks the connection as waiting for a request body until the guard
    /// is dropped.
    pub fn reading_body(self: &Arc<Activity>) -> ReadingBody {
        self.body.store(true, Ordering::Release);
        ReadingBody(self.clone())
    }

    /// Bytes arrived: while idle, the next request's headers are coming.
    pub fn on_read(&self) {
        self.last_byte.store(ms(self.epoch), Ordering::Release);
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

    /// Since when the connection has waited on its client — idle, sending
    /// headers, or sending a body — counted from the last sign of life
    /// (the eviction order when the table is full); `None` while the
    /// server is working on a request.
    fn waiting_since(&self) -> Option<u64> {
        let body = self.body.load(Ordering::Acquire);
        if self.busy.load(Ordering::Acquire) > 0 && !body {
            return None;
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        let last = self.last_byte.load(Ordering::Acquire);
        Some(if body { last } else { idle.max(last) })
    }
}

/// Marks a body as being read while it lives.
#[derive(Debug)]
pub struct ReadingBody(Arc<Activity>);

impl Drop for ReadingBody {
    fn drop(&mut self) {
        self.0.body.store(false, Ordering::Release);
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
    peer: IpAddr,
}

/// The address a connection counts against: IPv6 clients by their /64,
/// which one machine usually has whole.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut s = v6.segments();
                s[4..].fill(0);
                IpAddr::from(s)
            }
        },
        v4 => v4,
    }
}

/// Every open connection, bounded by `http.max_connections` in all and
/// `http.max_connections_per_peer` per client address.
#[derive(Debug)]
pub struct Table {
    epoch: Instant,
    max: usize,
    per_peer: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Entry>>,
    /// When the last "table full" warning was logged (ms since epoch).
    warned: AtomicU64,
}

impl Table {
    /// An empty table for at most `max` connections, `per_peer` of them
    /// from one client address.
    pub fn new(max: usize, per_peer: usize) -> Table {
        Table {
            epoch: Instant::now(),
            max: max.max(1),
            per_peer: per_peer.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            warned: AtomicU64::new(NONE),
        }
    }

    /// Admits a new connection from `peer`. When the peer has its share
    /// of the table, its own connection that has waited on it the longest
    /// is closed to make room; when the table is full, the one of any peer.
    /// `None` when every candidate is handling a request.
    pub fn admit(&self, peer: IpAddr) -> Option<Admitted> {
        let peer = peer_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = open.values().filter(|e| e.peer == peer).count();
        if mine >= self.per_peer {
            if !Self::evict(&mut open, Some(peer)) {
                debug!(%peer, "Connection refused: the peer's connections are all busy");
                return None;
            }
        } else if open.len() >= self.max {
            self.warn_full();
            if !Self::evict(&mut open, None) {
                return None;
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        let evicted = CancellationToken::new();
        open.insert(
            id,
            Entry {
                activity: activity.clone(),
                evicted: evicted.clone(),
                peer,
            },
        );
        Some(Admitted {
            id,
            activity,
            evicted,
        })
    }

    /// Closes the connection (of `peer`, if given) that has waited on its
    /// client the longest; false if none is waiting.
    fn evict(open: &mut HashMap<u64, Entry>, peer: Option<IpAddr>) -> bool {
        let oldest = open
            .iter()
            .filter(|(_, e)| peer.is_none_or(|p| e.peer == p))
            .filter_map(|(id, e)| e.activity.waiting_since().map(|t| (t, *id)))
            .min();
        let Some((_, victim)) = oldest else {
            return false;
        };
        if let Some(e) = open.remove(&victim) {
            e.evicted.cancel();
        }
        true
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
                "Connection limit reached (http.max_connections): closing the connections that wait longest on their clients"
            );
        } else {
            debug!(max = self.max, "Connection limit reached");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

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
        let table = Table::new(4, 4);
        let a = table.admit(LOCAL).unwrap().activity;
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
        let table = Table::new(2, 2);
        let first = table.admit(LOCAL).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = table.admit(LOCAL).unwrap();
        let third = table.admit(OTHER).unwrap();
        assert!(first.evicted.is_cancelled());
        assert!(!second.evicted.is_cancelled());
        assert_eq!(table.len(), 2);
        // Both remaining connections busy: nothing can be closed.
        let _b1 = second.activity.start_request();
        let _b2 = third.activity.start_request();
        assert!(table.admit(OTHER).is_none());
        table.remove(second.id);
        assert!(table.admit(OTHER).is_some());
    }

    #[test]
    fn a_stalled_body_can_be_closed_but_a_handled_request_cannot() {
        let table = Table::new(2, 2);
        let slow = table.admit(LOCAL).unwrap();
        let handled = table.admit(OTHER).unwrap();
        let _b1 = slow.activity.start_request();
        let _reading = slow.activity.reading_body();
        let _b2 = handled.activity.start_request();
        assert!(table.admit(OTHER).is_some());
        assert!(slow.evicted.is_cancelled(), "the stalled body made room");
        assert!(!handled.evicted.is_cancelled());
    }

    #[test]
    fn one_peer_never_holds_more_than_its_share() {
        let table = Table::new(100, 3);
        let mine: Vec<_> = (0..3).map(|_| table.admit(LOCAL).unwrap()).collect();
        let other = table.admit(OTHER).unwrap();
        let fourth = table.admit(LOCAL).unwrap();
        assert_eq!(mine.iter().filter(|a| a.evicted.is_cancelled()).count(), 1);
        assert!(!other.evicted.is_cancelled() && !fourth.evicted.is_cancelled());
        assert_eq!(table.len(), 4);
        // IPv6 clients count by their /64.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(peer_key(a), peer_key(b));
    }
}
