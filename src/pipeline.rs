//! The single writer between HTTP and MQTT: gives each accepted event its
//! printer slug, applies it to that printer's state in arrival order, renders
//! the messages and hands them to the publisher. Owns the printer table.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::event::Event;
use crate::mqtt::messages::{Message, render};
use crate::mqtt::publisher::Publisher;
use crate::mqtt::topics::Topics;
use crate::slug::Slugs;
use crate::state::PrinterState;

/// Webhooks waiting for the writer; HTTP handlers wait when it is full.
const QUEUE: usize = 1024;
/// Events applied per turn of the writer.
const BATCH: usize = 256;

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

    /// Restores state from retained `(topic, payload)` pairs under `topics`.
    pub fn restore(&mut self, topics: &Topics, retained: &[(String, bytes::Bytes)]) {
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

struct Submission {
    event: Event,
    done: oneshot::Sender<String>,
}

/// Hands accepted events to the writer task.
#[derive(Debug, Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Submission>,
    printers: Arc<RwLock<Printers>>,
}

/// The writer stopped (only during shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the bridge is shutting down")]
pub struct Closed;

impl Pipeline {
    /// Starts the writer task. It ends when every `Pipeline` clone is dropped,
    /// dropping its publisher so the publisher can finish.
    pub fn start(printers: Printers, topics: Topics, publisher: Publisher) -> Pipeline {
        let (tx, rx) = mpsc::channel(QUEUE);
        let printers = Arc::new(RwLock::new(printers));
        tokio::spawn(write(rx, printers.clone(), topics, publisher));
        Pipeline { tx, printers }
    }

    /// Accepts one event; returns the printer's slug once it is queued for
    /// publishing (never waits on the broker).
    pub async fn submit(&self, event: Event) -> Result<String, Closed> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Submission { event, done })
            .await
            .map_err(|_| Closed)?;
        wait.await.map_err(|_| Closed)
    }

    /// Read access to the printer table (status page, API).
    pub fn printers(&self) -> &Arc<RwLock<Printers>> {
        &self.printers
    }
}

async fn write(
    mut rx: mpsc::Receiver<Submission>,
    printers: Arc<RwLock<Printers>>,
    topics: Topics,
    publisher: Publisher,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // Poisoning needs a panic while holding the lock; none of the code
        // under it panics, and a poisoned table is still consistent data.
        let mut table = printers.write().unwrap_or_else(|e| e.into_inner());
        for sub in batch.drain(..) {
            let (slug, messages) = table.accept(&topics, &sub.event);
            publisher.send(messages);
            let _ = sub.done.send(slug);
        }
    }
}
