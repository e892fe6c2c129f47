//! When the bridge's own counters (`bridge/webhooks`, `bridge/last_webhook`)
//! are due: at most once per [`COUNTERS_EVERY`], and only when a webhook
//! was accepted since they last went out.

use tokio::time::Instant;

use super::COUNTERS_EVERY;

/// The webhook count last committed, and when the last try was.
pub(super) struct Counters {
    sent: u64,
    at: Option<Instant>,
}

impl Counters {
    /// Counters the broker already holds for `webhooks` (restored at start).
    pub(super) fn new(webhooks: u64) -> Counters {
        Counters {
            sent: webhooks,
            at: None,
        }
    }

    /// When the counters are due, if `webhooks` has moved on since.
    pub(super) fn due(&self, webhooks: u64) -> Option<Instant> {
        (webhooks != self.sent).then(|| self.at.map_or_else(Instant::now, |at| at + COUNTERS_EVERY))
    }

    /// A commit carrying the counters ended: with the count it stored, or
    /// `None` when it failed (the next try still waits, so a failing store
    /// is not retried in a hot loop).
    pub(super) fn tried(&mut self, stored: Option<u64>) {
        if let Some(webhooks) = stored {
            self.sent = webhooks;
        }
        self.at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn at_most_once_per_interval_and_only_after_a_webhook() {
        let mut c = Counters::new(5);
        assert_eq!(c.due(5), None, "nothing new");
        let now = Instant::now();
        assert_eq!(c.due(6), Some(now), "the first goes at once");
        c.tried(Some(6));
        assert_eq!(c.due(6), None);
        assert_eq!(c.due(9), Some(now + COUNTERS_EVERY));
        c.tried(None);
        assert_eq!(c.due(9), Some(now + COUNTERS_EVERY), "a failure waits too");
    }
}
