//! The writer task: the only mutator of the printer table. Applies a batch
//! of jobs in arrival order, refuses what cannot be stored or delivered,
//! commits the batch to the outbox (group commit), answers, then hands the
//! records to the publisher. Also publishes every config on Home
//! Assistant's birth message and clears removed printers' values after
//! [`REMOVAL_GRACE`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;
use tracing::{error, warn};

use super::counters::Counters;
use super::table::{Printers, Removal, Undo};
use super::{
    Answer, BATCH, BIRTH_PACE, BIRTH_RETRY, BIRTH_SLICE, BUSY, Job, LINGER, LINGER_QUIET,
    REMOVAL_GRACE, Receipt, Rejected, SNAPSHOT_URL_SWEEP, TableChange, birth_delay,
};
use crate::event::Event;
use crate::event::now_ms;
use crate::mqtt::delivery::packet_size;
use crate::mqtt::messages::Message;
use crate::mqtt::publisher::{Publisher, Republish};
use crate::mqtt::topics::Topics;
use crate::outbox::{Outbox, Record, message_bytes};
use crate::snapshots::Snapshots;
use crate::state::Field;

pub(super) struct Writer {
    pub(super) printers: Arc<RwLock<Printers>>,
    /// The largest packet the broker takes.
    pub(super) max_packet: usize,
    pub(super) snapshots: Snapshots,
    pub(super) snapshots_dropped: Arc<AtomicU64>,
    /// Set while a republish has slices left ([`super::Pipeline::republishing`]).
    pub(super) republishing: Arc<std::sync::atomic::AtomicBool>,
    pub(super) changes: broadcast::Sender<TableChange>,
    pub(super) topics: Topics,
    pub(super) outbox: Outbox,
    pub(super) next_seq: u64,
    pub(super) publisher: Publisher,
    /// For the delayed second half of a removal; weak, so it does not keep
    /// the writer alive.
    pub(super) jobs: mpsc::WeakSender<Job>,
    pub(super) counters: Counters,
    /// When the last commit ended (for the linger while busy).
    pub(super) committed: Option<Instant>,
}

/// An answer to send once the batch's commit is known.
enum Reply {
    /// The slug and the index of the event's record in the batch.
    Accepted(Answer<Receipt>, Result<(String, u64), Rejected>),
    Removed(Answer<Option<String>>, Option<String>),
}

/// One batch, applied to the table and waiting for its commit.
#[derive(Default)]
struct Batch {
    /// Each record's messages, and whether it is a webhook's.
    messages: Vec<(Vec<Message>, bool)>,
    replies: Vec<Reply>,
    clear_later: Vec<(String, Vec<Message>)>,
    undo: Undo,
    retry: Vec<Answer<usize>>,
    /// Snapshots to keep once the batch is stored, in order.
    snapshots: Vec<(String, Bytes)>,
    /// The webhook count the batch's counters carry, if it has them.
    counters: Option<u64>,
}

impl Writer {
    pub(super) async fn run(
        mut self,
        mut rx: mpsc::Receiver<Job>,
        mut births: mpsc::UnboundedReceiver<Republish>,
        startup: Vec<Message>,
    ) {
        if !startup.is_empty() {
            let _ = self.commit(vec![(startup, false)]).await;
        }
        let mut jobs = Vec::with_capacity(BATCH);
        let mut births_open = true;
        // The next slice of a republish: when, from which printer (`None`:
        // from the start), and whether values go too (the broker lost them).
        let mut birth: Option<(Instant, Option<String>, bool)> = None;
        let mut sweep = tokio::time::interval(SNAPSHOT_URL_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.republishing.store(birth.is_some(), Ordering::Relaxed);
            let due = birth.as_ref().map_or_else(Instant::now, |(at, _, _)| *at);
            let counters = self.counters.due(self.webhooks());
            tokio::select! {
                n = rx.recv_many(&mut jobs, BATCH) => {
                    if n == 0 {
                        // The last webhooks' counters, so a restart
                        // counts on from them.
                        if self.counters.due(self.webhooks()).is_some() {
                            self.publish_counters().await;
                        }
                        return;
                    }
                    self.linger(&mut rx, &mut jobs).await;
                    let batch = self.apply(jobs.drain(..));
                    self.finish(batch).await;
                }
                () = tokio::time::sleep_until(counters.unwrap_or(due)), if counters.is_some() => {
                    self.publish_counters().await;
                }
                born = births.recv(), if births_open => match born {
                    // A birth during a republish starts it over: Home
                    // Assistant has restarted again (values still go if
                    // they were going).
                    Some(Republish::Birth) => {
                        let values = birth.as_ref().is_some_and(|b| b.2);
                        birth = Some((Instant::now() + birth_delay(), None, values));
                    }
                    Some(Republish::Lost) => birth = Some((Instant::now(), None, true)),
                    Some(Republish::Reconnected) => self.table().forget_held(),
                    None => births_open = false,
                },
                _ = sweep.tick() => self.expire_snapshot_urls().await,
                () = tokio::time::sleep_until(due), if birth.is_some() => {
                    let (from, values) = birth.take().map(|(_, f, v)| (f, v)).unwrap_or_default();
                    let (messages, next) = if values {
                        self.table().republish_slice(from.as_deref(), BIRTH_SLICE)
                    } else {
                        self.table().birth_slice(from.as_deref(), BIRTH_SLICE)
                    };
                    let stored =
                        messages.is_empty() || self.commit(vec![(messages, false)]).await.is_ok();
                    birth = if stored {
                        next.map(|n| (Instant::now() + BIRTH_PACE, Some(n), values))
                    } else {
                        // The store failed (a full disk): this slice again
                        // once it may have recovered.
                        Some((Instant::now() + BIRTH_RETRY, from, values))
                    };
                }
            }
        }
    }

    /// While busy, gives the batch up to [`LINGER`] to fill, so webhooks
    /// arriving close together share one commit; it stops early once none
    /// came for [`LINGER_QUIET`] (senders all waiting on this commit, as at
    /// saturation, would only make it wait the whole time).
    async fn linger(&self, rx: &mut mpsc::Receiver<Job>, jobs: &mut Vec<Job>) {
        if self.committed.is_none_or(|at| at.elapsed() >= BUSY) {
            return;
        }
        let until = Instant::now() + LINGER;
        while jobs.len() < BATCH {
            let quiet = until.min(Instant::now() + LINGER_QUIET);
            tokio::select! {
                n = rx.recv_many(jobs, BATCH - jobs.len()) => if n == 0 { return },
                () = tokio::time::sleep_until(quiet) => return,
            }
        }
    }

    fn webhooks(&self) -> u64 {
        let table = self.printers.read().unwrap_or_else(|e| e.into_inner());
        table.webhooks()
    }

    /// The bridge's counters on their own, once no batch took them along.
    async fn publish_counters(&mut self) {
        let (webhooks, messages) = {
            let table = self.table();
            (table.webhooks(), table.counters(&self.topics))
        };
        let stored = self.commit(vec![(messages, false)]).await.is_ok();
        self.counters.tried(stored.then_some(webhooks));
    }

    fn table(&self) -> std::sync::RwLockWriteGuard<'_, Printers> {
        // Poisoning needs a panic while holding the lock; none of the code
        // under it panics, and a poisoned table is still consistent data.
        self.printers.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies jobs to the table; webhooks beyond the outbox bounds, or
    /// with a message the broker would never take, are refused without
    /// touching anything.
    fn apply(&self, jobs: impl Iterator<Item = Job>) -> Batch {
        let mut table = self.table();
        let mut b = Batch::default();
        let mut pending = (0u64, 0u64);
        for job in jobs {
            match job {
                Job::Accept { mut event, done } => {
                    let answer = self.accept(&mut table, &mut b, &mut event, &mut pending);
                    b.replies.push(Reply::Accepted(done, answer));
                }
                Job::Remove { printer, done } => {
                    if let Some(slug) = table.find(&printer) {
                        table.remember(&mut b.undo, &slug);
                    }
                    let removal = table.remove(&printer);
                    b.replies.push(Reply::Removed(
                        done,
                        removal.as_ref().map(|r| r.slug.clone()),
                    ));
                    if let Some(Removal {
                        slug,
                        configs,
                        values,
                    }) = removal
                    {
                        b.messages.push((configs, false));
                        b.clear_later.push((slug, values));
                    }
                }
                Job::ClearValues { slug, values } => {
                    if !table.contains(&slug) {
                        b.messages.push((values, false));
                    }
                }
                Job::ClearUrl { slug, value } => {
                    if table.url_cleared(&slug) {
                        b.messages.push((vec![value], false));
                    }
                }
                Job::Configs(check) => {
                    let messages = check.finish(&mut table);
                    tracing::info!(
                        publishing = messages.len(),
                        "Discovery configs compared with the broker's"
                    );
                    if !messages.is_empty() {
                        b.messages.push((messages, false));
                    }
                }
                Job::AppConnection { printer_id, state } => {
                    let slug = table.slugs.resolve(&printer_id);
                    table.remember(&mut b.undo, &slug);
                    let messages = table.app_connection(&self.topics, &printer_id, state);
                    b.messages.push((messages, false));
                }
                Job::RetryParked { done } => b.retry.push(done),
            }
        }
        if self
            .counters
            .due(table.webhooks())
            .is_some_and(|at| at <= Instant::now())
        {
            b.counters = Some(table.webhooks());
            b.messages.push((table.counters(&self.topics), false));
        }
        b
    }

    /// One webhook into the batch: its snapshot left out when the broker
    /// would not take it, refused when anything else would not fit.
    fn accept(
        &self,
        table: &mut Printers,
        b: &mut Batch,
        event: &mut Event,
        pending: &mut (u64, u64),
    ) -> Result<(String, u64), Rejected> {
        if let Err(e) = table.admit(&event.printer_id) {
            warn!(printer_id = %crate::ingest::shorten(&event.printer_id, 64), "{e}");
            return Err(e);
        }
        let slug = table.slugs.resolve(&event.printer_id);
        if let Some(jpeg) = &event.snapshot {
            let probe = Message::retained(self.topics.field(&slug, Field::Snapshot), jpeg.clone());
            let bytes = packet_size(&probe);
            if bytes > self.max_packet {
                warn!(
                    printer = %slug,
                    snapshot_bytes = jpeg.len(),
                    packet_bytes = bytes,
                    max_packet_bytes = self.max_packet,
                    "Snapshot larger than the broker takes (mqtt.max_packet_bytes): webhook accepted without it"
                );
                self.snapshots_dropped.fetch_add(1, Ordering::Relaxed);
                event.snapshot = None;
            }
        }
        let mut undo = Undo::default();
        table.remember(&mut undo, &slug);
        let (slug, messages) = table.accept(&self.topics, event);
        let too_large = messages.iter().find(|m| packet_size(m) > self.max_packet);
        let bytes = message_bytes(&messages) as u64;
        let full = !self.outbox.room_for(pending.0 + 1, pending.1 + bytes);
        let refusal = match too_large {
            Some(m) => Some(Rejected::TooLarge {
                topic: m.topic.clone(),
                bytes: packet_size(m),
                max: self.max_packet,
            }),
            None if full => Some(Rejected::Full),
            None => None,
        };
        if let Some(refusal) = refusal {
            table.undo(undo);
            if refusal == Rejected::Full {
                error!(
                    max_events = self.outbox.limits().max_events,
                    max_bytes = self.outbox.limits().max_bytes,
                    "Outbox full: webhook refused with 503"
                );
            }
            return Err(refusal);
        }
        b.undo.merge(undo);
        if let Some(jpeg) = &event.snapshot {
            b.snapshots.push((slug.clone(), jpeg.clone()));
        }
        *pending = (pending.0 + 1, pending.1 + bytes);
        let index = b.messages.len() as u64;
        b.messages.push((messages, true));
        Ok((slug, index))
    }

    /// Commits the batch, then answers; a failed commit undoes the batch
    /// and answers 503.
    async fn finish(&mut self, batch: Batch) {
        let Batch {
            messages,
            replies,
            clear_later,
            undo,
            retry,
            snapshots,
            counters,
        } = batch;
        let first = if messages.is_empty() {
            Ok(self.next_seq)
        } else {
            self.commit(messages).await
        };
        let stored = first.is_ok();
        if let Some(webhooks) = counters {
            self.counters.tried(stored.then_some(webhooks));
        }
        let removed = replies.iter().filter_map(|r| match r {
            Reply::Removed(_, Some(slug)) => Some(slug.clone()),
            _ => None,
        });
        if stored {
            self.keep_snapshots(snapshots, removed.collect()).await;
        }
        if !retry.is_empty() {
            let answer = self.retry_parked().await;
            for done in retry {
                let _ = done.send(answer.clone());
            }
        }
        if stored {
            for (slug, values) in clear_later {
                self.clear_later(slug, values);
            }
        } else {
            self.table().undo(undo);
        }
        for reply in replies {
            match reply {
                Reply::Accepted(done, answer) => {
                    let answer = answer.and_then(|(slug, index)| match &first {
                        Ok(first) => Ok(Receipt {
                            slug,
                            seq: first + index,
                        }),
                        Err(why) => Err(Rejected::Storage(why.clone())),
                    });
                    if let Ok(r) = &answer {
                        self.announce(TableChange::Updated(r.slug.clone()));
                    }
                    let _ = done.send(answer);
                }
                Reply::Removed(done, slug) => {
                    if let (true, Some(slug)) = (stored, &slug) {
                        self.announce(TableChange::Removed(slug.clone()));
                    }
                    let _ = done.send(match &first {
                        Ok(_) => Ok(slug),
                        Err(why) => Err(Rejected::Storage(why.clone())),
                    });
                }
            }
        }
    }

    /// Tells status-page readers; nobody listening is fine.
    fn announce(&self, change: TableChange) {
        let _ = self.changes.send(change);
    }

    /// Writes the batch's snapshots and forgets removed printers' (for the
    /// status page; the broker has its own copy, so a failure only logs).
    async fn keep_snapshots(&self, snapshots: Vec<(String, Bytes)>, removed: Vec<String>) {
        if snapshots.is_empty() && removed.is_empty() {
            return;
        }
        let store = self.snapshots.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (slug, jpeg) in snapshots {
                if let Err(e) = store.write(&slug, &jpeg) {
                    warn!(printer = %slug, error = %e, "Could not keep the snapshot for the status page");
                }
            }
            for slug in removed {
                store.remove(&slug);
            }
        })
        .await;
    }

    /// Moves the parked messages back into the outbox as one record and
    /// hands it to the publisher; returns how many messages.
    async fn retry_parked(&mut self) -> Result<usize, Rejected> {
        let outbox = self.outbox.clone();
        let seq = self.next_seq;
        let moved = tokio::task::spawn_blocking(move || outbox.retry_parked(seq)).await;
        match moved {
            Ok(Ok(Some(record))) => {
                self.next_seq += 1;
                let n = record.messages.len();
                tracing::info!(messages = n, "Parked messages queued for the broker again");
                self.publisher.send(vec![record]);
                Ok(n)
            }
            Ok(Ok(None)) => Ok(0),
            Ok(Err(e)) => Err(Rejected::Storage(e.to_string())),
            Err(e) => Err(Rejected::Storage(e.to_string())),
        }
    }

    /// Writes one record per message list durably, then hands the records
    /// to the publisher. Returns the first record's sequence number, or why
    /// the store refused them.
    async fn commit(&mut self, messages: Vec<(Vec<Message>, bool)>) -> Result<u64, String> {
        let accepted_at_ms = now_ms();
        let first = self.next_seq;
        let records: Vec<Record> = messages
            .into_iter()
            .zip(first..)
            .map(|((messages, webhook), seq)| Record {
                seq,
                webhook,
                accepted_at_ms,
                messages,
            })
            .collect();
        self.next_seq += records.len() as u64;
        let outbox = self.outbox.clone();
        let stored =
            tokio::task::spawn_blocking(move || outbox.append(&records).map(|()| records)).await;
        self.committed = Some(Instant::now());
        let why = match stored {
            Ok(Ok(records)) => {
                self.publisher.send(records);
                return Ok(first);
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        error!(error = %why, "Could not write to the outbox: webhooks refused with 503");
        self.next_seq = first;
        Err(why)
    }

    /// Clears the snapshot URLs that are about to expire: configs now, the
    /// values after [`REMOVAL_GRACE`].
    async fn expire_snapshot_urls(&mut self) {
        let expired = self
            .table()
            .expire_snapshot_urls(time::OffsetDateTime::now_utc());
        let mut configs = Vec::new();
        for (slug, c, value) in expired {
            tracing::info!(printer = %slug, "Snapshot URL about to expire: cleared");
            configs.extend(c);
            let Some(jobs) = self.jobs.upgrade() else {
                continue;
            };
            tokio::spawn(async move {
                tokio::time::sleep(REMOVAL_GRACE).await;
                let _ = jobs.send(Job::ClearUrl { slug, value }).await;
            });
        }
        if !configs.is_empty() {
            let _ = self.commit(vec![(configs, false)]).await;
        }
    }

    fn clear_later(&self, slug: String, values: Vec<Message>) {
        // Upgraded now, so the writer outlives the grace and clears them.
        let Some(jobs) = self.jobs.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            tokio::time::sleep(REMOVAL_GRACE).await;
            let _ = jobs.send(Job::ClearValues { slug, values }).await;
        });
    }
}
