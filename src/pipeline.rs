//! The single writer between HTTP and MQTT: gives each accepted event its
//! printer slug, applies it to that printer's state in arrival order, renders
//! the messages, commits them to the outbox — many webhooks per commit — and
//! only then answers; the publisher delivers from there. Owns the printer
//! table.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use crate::event::Event;
use crate::mqtt::messages::{Message, render};
use crate::mqtt::publisher::Publisher;
use crate::mqtt::topics::Topics;
use crate::outbox::{Outbox, Record};
use crate::slug::Slugs;
use crate::state::PrinterState;

/// Webhooks waiting for the writer; HTTP handlers wait when it is full.
const QUEUE: usize = 4096;
/// Webhooks committed together at most (group commit).
const BATCH: usize = 512;

/// Every known printer: the slug table and each printer's state by slug.
#[derive(Debug, Default)]
pub struct Printers {
    pub slugs: Slugs,
    pub states: BTreeMap<String, PrinterState>,
}

impl Printers {
    /// A table that knows the configured aliases.
    pub fn new(slugs: Slugs) -> Printers {
        Printers {
            slugs,
            states: BTreeMap::new(),
        }
    }

    /// Restores state from retained `(topic, payload)` pairs under `topics`,
    /// in order (later pairs win).
    pub fn restore<'a>(
        &mut self,
        topics: &Topics,
        retained: impl IntoIterator<Item = (&'a str, &'a Bytes)>,
    ) {
        for (topic, payload) in retained {
            if let Some((slug, leaf)) = topics.parse_printer(topic) {
                self.states
                    .entry(slug.to_owned())
                    .or_default()
                    .restore(leaf, payload);
            }
        }
        self.states.retain(|_, s| !s.printer_id.is_empty());
        for (slug, state) in &self.states {
            self.slugs.restore(slug, &state.printer_id);
        }
        // A printer now published under another slug (an alias was added)
        // is not restored under its old one.
        let slugs = &self.slugs;
        self.states
            .retain(|slug, s| slugs.get(&s.printer_id) == Some(slug.as_str()));
    }

    /// Applies one event and returns its messages.
    pub fn accept(&mut self, topics: &Topics, event: &Event) -> (String, Vec<Message>) {
        let slug = self.slugs.resolve(&event.printer_id);
        let state = self.states.entry(slug.clone()).or_default();
        let changes = state.apply(event);
        let messages = render(topics, &slug, &changes, event);
        (slug, messages)
    }
}

/// The retained messages of outbox records, as restore input: what the
/// broker will hold once they are delivered.
pub fn retained_of(records: &[Record]) -> impl Iterator<Item = (&str, &Bytes)> {
    records
        .iter()
        .flat_map(|r| r.messages.iter())
        .filter(|m| m.retain)
        .map(|m| (m.topic.as_str(), &m.payload))
}

/// Why an event was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the outbox is full (storage.max_events); try again later")]
    Full,
    #[error("the outbox could not store the webhook")]
    Storage,
    #[error("the bridge is shutting down")]
    Closed,
}

struct Submission {
    event: Event,
    done: oneshot::Sender<Result<String, Rejected>>,
}

/// Hands accepted events to the writer task.
#[derive(Debug, Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Submission>,
    printers: Arc<RwLock<Printers>>,
}

impl Pipeline {
    /// Starts the writer task. It ends when every `Pipeline` clone is dropped,
    /// dropping its publisher so the publisher can finish.
    pub fn start(
        printers: Printers,
        topics: Topics,
        outbox: Outbox,
        next_seq: u64,
        publisher: Publisher,
    ) -> Pipeline {
        let (tx, rx) = mpsc::channel(QUEUE);
        let printers = Arc::new(RwLock::new(printers));
        let writer = Writer {
            printers: printers.clone(),
            topics,
            outbox,
            next_seq,
            publisher,
        };
        tokio::spawn(writer.run(rx));
        Pipeline { tx, printers }
    }

    /// Accepts one event; returns the printer's slug once the event is
    /// durably in the outbox (never waits on the broker).
    pub async fn submit(&self, event: Event) -> Result<String, Rejected> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Submission { event, done })
            .await
            .map_err(|_| Rejected::Closed)?;
        wait.await.unwrap_or(Err(Rejected::Closed))
    }

    /// Read access to the printer table (status page, API).
    pub fn printers(&self) -> &Arc<RwLock<Printers>> {
        &self.printers
    }
}

struct Writer {
    printers: Arc<RwLock<Printers>>,
    topics: Topics,
    outbox: Outbox,
    next_seq: u64,
    publisher: Publisher,
}

type Reply = (
    oneshot::Sender<Result<String, Rejected>>,
    Result<String, Rejected>,
);

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let (records, mut replies, saved) = self.apply(batch.drain(..));
            if !records.is_empty() {
                let outbox = self.outbox.clone();
                let stored =
                    tokio::task::spawn_blocking(move || outbox.append(&records).map(|()| records))
                        .await;
                match stored {
                    Ok(Ok(records)) => self.publisher.send(records),
                    Ok(Err(e)) => self.undo(e.to_string(), saved, &mut replies),
                    Err(e) => self.undo(e.to_string(), saved, &mut replies),
                }
            }
            for (done, answer) in replies {
                let _ = done.send(answer);
            }
        }
    }

    /// Applies a batch to the printer table; returns the records to commit,
    /// the answers, and each touched printer's state from before the batch.
    fn apply(
        &mut self,
        batch: impl Iterator<Item = Submission>,
    ) -> (Vec<Record>, Vec<Reply>, Saved) {
        let room = self.outbox.max_events().saturating_sub(self.outbox.depth());
        let accepted_at_ms = now_ms();
        let mut records = Vec::new();
        let mut replies = Vec::new();
        let mut saved = Saved::default();
        // Poisoning needs a panic while holding the lock; nothing under it
        // panics, and the table stays consistent data either way.
        let mut table = self.printers.write().unwrap_or_else(|e| e.into_inner());
        for sub in batch {
            if records.len() as u64 >= room {
                error!(
                    max_events = self.outbox.max_events(),
                    "Outbox full: webhook refused with 503"
                );
                replies.push((sub.done, Err(Rejected::Full)));
                continue;
            }
            let slug = table.slugs.resolve(&sub.event.printer_id);
            let before = table.states.get(&slug).cloned();
            saved.states.entry(slug).or_insert(before);
            let (slug, messages) = table.accept(&self.topics, &sub.event);
            records.push(Record {
                seq: self.next_seq,
                accepted_at_ms,
                messages,
            });
            self.next_seq += 1;
            replies.push((sub.done, Ok(slug)));
        }
        saved.first_seq = records.first().map(|r| r.seq);
        (records, replies, saved)
    }

    /// A commit failed: the batch was not accepted, so its state changes
    /// are rolled back and every webhook in it gets a 503.
    fn undo(&mut self, why: String, saved: Saved, replies: &mut [Reply]) {
        error!(error = %why, "Could not write to the outbox: webhooks refused with 503");
        let mut table = self.printers.write().unwrap_or_else(|e| e.into_inner());
        for (slug, before) in saved.states {
            match before {
                Some(state) => table.states.insert(slug, state),
                None => table.states.remove(&slug),
            };
        }
        if let Some(first) = saved.first_seq {
            self.next_seq = first;
        }
        for (_, answer) in replies.iter_mut() {
            if answer.is_ok() {
                *answer = Err(Rejected::Storage);
            }
        }
    }
}

/// Printer states from before a batch, to undo it.
#[derive(Default)]
struct Saved {
    states: HashMap<String, Option<PrinterState>>,
    first_seq: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
