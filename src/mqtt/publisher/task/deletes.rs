//! Completed records: latency, the delivered mark, messages set aside, and
//! deletes from the outbox in batches.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::error;

use super::{DELETE_BATCH, DELETE_DELAY, Task};
use crate::mqtt::delivery::Done;
use crate::outbox::{Parked, Record};

impl Task {
    /// Records the broker now holds: latency, the delivered mark, the
    /// messages set aside, and the delete to come.
    pub(super) fn completed(&mut self, done: Vec<Done>) {
        if done.is_empty() {
            return;
        }
        let now_ms = crate::event::now_ms();
        for d in &done {
            let r = &d.record;
            if r.webhook {
                let ms = now_ms.saturating_sub(r.accepted_at_ms);
                self.stats
                    .publish_latency
                    .observe(Duration::from_millis(ms));
            }
            for (idx, why) in &d.parked {
                let m = &r.messages[*idx];
                error!(
                    topic = %m.topic,
                    bytes = crate::mqtt::delivery::packet_size(m),
                    reason = why.name(),
                    "The broker does not take this message: set aside in the outbox (see /api/bridge; retry with POST /api/bridge/parked/retry)"
                );
                self.to_park.push(Parked {
                    seq: r.seq,
                    accepted_at_ms: r.accepted_at_ms,
                    parked_at_ms: now_ms,
                    reason: why.name().to_owned(),
                    message: m.clone(),
                });
            }
        }
        self.rotation.progressed();
        let records: Vec<&Record> = done.iter().map(|d| &d.record).collect();
        self.outbox.delivered(records.iter().copied());
        if let Some(last) = records.last() {
            self.delivered.send_replace(last.seq + 1);
        }
        self.to_delete.extend(records.iter().map(|r| r.seq));
        self.delete_since
            .get_or_insert_with(tokio::time::Instant::now);
    }

    pub(super) fn update_oldest(&self) {
        let oldest = self.delivery.oldest_accepted_ms().unwrap_or(0);
        self.stats
            .oldest_accepted_ms
            .store(oldest, Ordering::Relaxed);
    }

    /// When the next batch of deletes is due, if any is waiting.
    pub(super) fn delete_at(&self) -> Option<tokio::time::Instant> {
        self.delete_since.map(|since| {
            if self.deleting.as_ref().is_some_and(|d| !d.is_finished()) {
                // Looked at again shortly, once the running delete is done.
                tokio::time::Instant::now() + DELETE_DELAY / 10
            } else {
                since + DELETE_DELAY
            }
        })
    }

    /// Deletes delivered records in the background, one batch at a time,
    /// each batch durably and together with the messages it set aside: a
    /// crash then delivers again at most the last [`DELETE_DELAY`] of
    /// records. `last` (at shutdown, with no delete running) takes the rest.
    pub(super) fn flush_deletes(&mut self, last: bool) {
        let busy = self.deleting.as_ref().is_some_and(|d| !d.is_finished());
        let due = self.to_delete.len() >= DELETE_BATCH
            || self
                .delete_since
                .is_some_and(|since| since.elapsed() >= DELETE_DELAY);
        if !last && (busy || !due) {
            return;
        }
        let take = if last {
            self.to_delete.len()
        } else {
            self.to_delete.len().min(DELETE_BATCH)
        };
        let seqs: Vec<u64> = self.to_delete.drain(..take).collect();
        self.delete_since = (!self.to_delete.is_empty()).then(tokio::time::Instant::now);
        if seqs.is_empty() {
            return;
        }
        // Parked messages go with the delete of their own record.
        let upto = seqs.last().copied().unwrap_or(0);
        let split = self.to_park.partition_point(|p| p.seq <= upto);
        let parked: Vec<Parked> = self.to_park.drain(..split).collect();
        let outbox = self.outbox.clone();
        self.deleting = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = outbox.remove(&seqs, &parked) {
                error!(error = %e, "Could not delete delivered records; they will be delivered again after a restart");
            }
        }));
    }
}
