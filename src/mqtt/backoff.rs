//! Reconnect backoff for the broker connection: doubles after every failed
//! or short-lived connection, and starts over only after a connection has
//! stayed up for [`STABLE`] or delivered a record. A broker that accepts the connection and then
//! drops it at once (a refused packet, a wrong ACL) gets one attempt per
//! step, never a reconnect storm.

use std::time::Duration;

use tokio::time::Instant;

/// The first delay, and the delay after a connection that held.
pub const MIN: Duration = Duration::from_millis(250);
/// The longest delay between attempts.
pub const MAX: Duration = Duration::from_secs(30);
/// How long a connection must stay up before the backoff starts over.
pub const STABLE: Duration = Duration::from_secs(10);

/// The delay before the next connection attempt.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
    up_since: Option<Instant>,
    /// The current connection delivered a record.
    progressed: bool,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            next: MIN,
            up_since: None,
            progressed: false,
        }
    }
}

impl Backoff {
    /// A connection came up now.
    pub fn connected(&mut self) {
        self.up_since = Some(Instant::now());
        self.progressed = false;
    }

    /// The connection delivered a record: it works, whatever ends it.
    pub fn progressed(&mut self) {
        self.progressed = true;
    }

    /// The connection (or the attempt) failed now: how long to wait before
    /// the next attempt.
    pub fn failed(&mut self) -> Duration {
        let held = self
            .up_since
            .take()
            .is_some_and(|since| since.elapsed() >= STABLE);
        if held || std::mem::take(&mut self.progressed) {
            self.next = MIN;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failed_attempts_double_up_to_the_cap() {
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..9).map(|_| b.failed().as_millis() as u64).collect();
        assert_eq!(
            delays,
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connections_that_die_at_once_keep_the_backoff_growing() {
        let mut b = Backoff::default();
        let mut delays = Vec::new();
        for _ in 0..6 {
            b.connected();
            tokio::time::advance(Duration::from_millis(300)).await;
            delays.push(b.failed().as_millis() as u64);
        }
        assert_eq!(delays, vec![250, 500, 1000, 2000, 4000, 8000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_held_starts_the_backoff_over() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.failed();
        }
        b.connected();
        tokio::time::advance(STABLE - Duration::from_millis(1)).await;
        assert_eq!(b.failed(), Duration::from_secs(4), "not stable yet");
        b.connected();
        tokio::time::advance(STABLE).await;
        assert_eq!(b.failed(), MIN);
        assert_eq!(b.failed(), MIN * 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_delivered_starts_the_backoff_over() {
        let mut b = Backoff::default();
        for _ in 0..4 {
            b.failed();
        }
        b.connected();
        b.progressed();
        assert_eq!(b.failed(), MIN, "it worked, however short");
        b.connected();
        assert_eq!(b.failed(), MIN * 2, "the next one did not");
    }
}
