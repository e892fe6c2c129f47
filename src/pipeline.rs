//! The single writer between HTTP and MQTT: gives each accepted event its
//! printer slug, applies it to that printer's state in arrival order, renders
//! the messages — discovery configs first when they changed — commits them
//! to the outbox (many webhooks per commit) and only then answers; the
//! publisher delivers from there. Owns the printer table; also republishes
//! every config on Home Assistant's birth message, removes printers and
//! publishes App Connection registration states.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::event::Event;
use crate::mqtt::messages::Message;
use crate::mqtt::publisher::{Publisher, Republish};
use crate::mqtt::topics::Topics;
use crate::octoeverywhere::app_state::AppState;
use crate::outbox::Outbox;
use crate::snapshots::Snapshots;

mod counters;
mod republish;
mod startup;
mod table;
mod writer;
pub use startup::{ConfigCheck, version};
pub use table::{Printers, Removal, retained_of};
use writer::Writer;

/// Jobs waiting for the writer; HTTP handlers wait when it is full.
const QUEUE: usize = 4096;
/// Jobs committed together at most (group commit).
const BATCH: usize = 512;
/// While busy, the first job of a batch waits up to this long for more to
/// share its commit (and fsync): at 1,000 webhooks/s a commit takes less
/// than the gap between two webhooks, so without it each would have its own.
const LINGER: Duration = Duration::from_millis(4);
/// ... but no longer than this after the last job that came.
const LINGER_QUIET: Duration = Duration::from_millis(1);
/// Busy: the previous commit ended less than this long before the next
/// job came. An idle bridge commits at once.
const BUSY: Duration = Duration::from_millis(5);
/// The bridge's counters (`bridge/webhooks`, `bridge/last_webhook`) go out
/// at most this often, with a batch when one is due, else on their own.
const COUNTERS_EVERY: Duration = Duration::from_secs(1);
/// Table changes a slow status-page reader may fall behind by (it then
/// reloads the whole table).
const CHANGES: usize = 1024;
/// Time Home Assistant gets to drop a removed printer's entities before the
/// printer's values are cleared: an entity still subscribed would log the
/// empty payloads (an image URL of "" is an error there).
pub const REMOVAL_GRACE: Duration = Duration::from_secs(1);
/// Home Assistant asks integrations to answer its birth message after a
/// random delay, so not every one publishes at once: up to this long.
const BIRTH_DELAY_MAX: Duration = Duration::from_secs(5);
/// Devices republished per commit after a birth, and the pause between
/// commits: 10,000 printers take 2 s rather than one burst.
const BIRTH_SLICE: usize = 500;
const BIRTH_PACE: Duration = Duration::from_millis(100);
/// A republish slice the store refused is tried again after this long
/// (the store reopens every second).
const BIRTH_RETRY: Duration = Duration::from_secs(1);
/// OctoEverywhere's snapshot URLs stop working after about 7 days; a URL
/// this old is cleared (with its image entity) before Home Assistant keeps
/// fetching a dead link.
pub const SNAPSHOT_URL_LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);
/// How often the writer looks for such URLs.
const SNAPSHOT_URL_SWEEP: Duration = Duration::from_secs(3600);

/// Why a job was not done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the outbox is full (storage.max_events or storage.max_bytes); try again later")]
    Full,
    #[error("the outbox could not store the webhook: {0}")]
    Storage(String),
    #[error(
        "the message for {topic} would be {bytes} bytes, more than the broker takes (mqtt.max_packet_bytes = {max})"
    )]
    TooLarge {
        topic: String,
        bytes: usize,
        max: usize,
    },
    #[error("the bridge is shutting down")]
    Closed,
    #[error("the NATS cluster did not store the webhook: {0}")]
    Cluster(String),
    #[error(
        "printer limit reached: the bridge knows {0} printers (storage.max_printers); \
         remove one (DELETE /api/printers/<p>) or raise the limit"
    )]
    TooManyPrinters(u64),
}

impl Rejected {
    /// The HTTP status a sender gets for it.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Rejected::TooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
            Rejected::TooManyPrinters(_) => http::StatusCode::FORBIDDEN,
            _ => http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

type Answer<T> = oneshot::Sender<Result<T, Rejected>>;

/// An accepted event: its printer's slug and its outbox record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The printer's slug.
    pub slug: String,
    /// The sequence number of the event's outbox record.
    pub seq: u64,
}

/// A committed change to the printer table, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    /// The printer with this slug was added or changed.
    Updated(String),
    /// The printer with this slug was removed.
    Removed(String),
}

enum Job {
    Accept {
        event: Box<Event>,
        done: Answer<Receipt>,
    },
    Remove {
        printer: String,
        done: Answer<Option<String>>,
    },
    /// The second half of a removal, after the grace: dropped if the printer
    /// came back in the meantime.
    ClearValues { slug: String, values: Vec<Message> },
    /// The second half of clearing an expired snapshot URL: dropped if a
    /// new URL came meanwhile.
    ClearUrl { slug: String, value: Message },
    /// A printer's App Connection registration state.
    AppConnection { printer_id: String, state: AppState },
    /// The start-up comparison with the broker's retained configs, done.
    Configs(Box<ConfigCheck>),
    /// Every parked message back into the outbox.
    RetryParked { done: Answer<usize> },
}

/// Hands accepted events to the writer task.
#[derive(Debug, Clone)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    printers: Arc<RwLock<Printers>>,
    changes: broadcast::Sender<TableChange>,
    snapshots_dropped: Arc<AtomicU64>,
    republishing: Arc<std::sync::atomic::AtomicBool>,
}

/// Everything the writer starts with.
pub struct Start {
    pub printers: Printers,
    pub topics: Topics,
    pub outbox: Outbox,
    /// The sequence number of the first new record.
    pub next_seq: u64,
    pub publisher: Publisher,
    /// Each time Home Assistant comes online (every config again) or the
    /// broker lost its retained messages (every config and value again).
    pub births: mpsc::UnboundedReceiver<Republish>,
    /// The largest packet the broker takes (`mqtt.max_packet_bytes`).
    pub max_packet: usize,
    /// Where each printer's last snapshot is kept.
    pub snapshots: Snapshots,
    /// Committed and published before any webhook (version, changed configs).
    pub startup: Vec<Message>,
}

impl Pipeline {
    /// Starts the writer task. It ends when every `Pipeline` clone is
    /// dropped, dropping its publisher so the publisher can finish.
    pub fn start(start: Start) -> Pipeline {
        let (tx, rx) = mpsc::channel(QUEUE);
        let counters = counters::Counters::new(start.printers.webhooks());
        let printers = Arc::new(RwLock::new(start.printers));
        let (changes, _) = broadcast::channel(CHANGES);
        let snapshots_dropped = Arc::new(AtomicU64::new(0));
        let republishing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = Writer {
            republishing: republishing.clone(),
            counters,
            committed: None,
            max_packet: start.max_packet,
            snapshots: start.snapshots,
            snapshots_dropped: snapshots_dropped.clone(),
            changes: changes.clone(),
            printers: printers.clone(),
            topics: start.topics,
            outbox: start.outbox,
            next_seq: start.next_seq,
            publisher: start.publisher,
            jobs: tx.downgrade(),
        };
        tokio::spawn(writer.run(rx, start.births, start.startup));
        Pipeline {
            tx,
            printers,
            changes,
            snapshots_dropped,
            republishing,
        }
    }

    /// True while configs (and values) are being published again after a
    /// Home Assistant birth or for a broker that lost them: not all of
    /// them are in the outbox yet.
    pub fn republishing(&self) -> bool {
        self.republishing.load(Ordering::Relaxed)
    }

    /// Accepts one event; returns the printer's slug once the event is
    /// durably in the outbox (never waits on the broker).
    pub async fn submit(&self, event: Event) -> Result<String, Rejected> {
        self.submit_tracked(event).await.map(|r| r.slug)
    }

    /// Like [`Pipeline::submit`], also returning the record's sequence
    /// number, to wait for its delivery.
    pub async fn submit_tracked(&self, event: Event) -> Result<Receipt, Rejected> {
        let (done, wait) = oneshot::channel();
        let event = Box::new(event);
        self.send(Job::Accept { event, done }).await?;
        wait.await.unwrap_or(Err(Rejected::Closed))
    }

    /// Removes the printer with this slug or printer id: its discovery
    /// configs are cleared now, its retained values after
    /// [`REMOVAL_GRACE`]. Returns its slug, or `None` if it is unknown.
    pub async fn remove(&self, printer: &str) -> Result<Option<String>, Rejected> {
        let (done, wait) = oneshot::channel();
        let printer = printer.to_owned();
        self.send(Job::Remove { printer, done }).await?;
        wait.await.unwrap_or(Err(Rejected::Closed))
    }

    /// Queues a printer's App Connection state for publishing (and its
    /// device, if it has none yet).
    pub async fn app_connection(&self, printer_id: &str, state: AppState) -> Result<(), Rejected> {
        let printer_id = printer_id.to_owned();
        self.send(Job::AppConnection { printer_id, state }).await
    }

    /// Publishes what the start-up comparison with the broker's retained
    /// configs found missing or stale.
    pub async fn configs_checked(&self, check: ConfigCheck) -> Result<(), Rejected> {
        self.send(Job::Configs(Box::new(check))).await
    }

    /// Moves every message set aside back into the outbox, to be published
    /// again; returns how many.
    pub async fn retry_parked(&self) -> Result<usize, Rejected> {
        let (done, wait) = oneshot::channel();
        self.send(Job::RetryParked { done }).await?;
        wait.await.unwrap_or(Err(Rejected::Closed))
    }

    /// Snapshots left out of accepted webhooks because they were larger
    /// than the broker takes.
    pub fn snapshots_dropped(&self) -> u64 {
        self.snapshots_dropped.load(Ordering::Relaxed)
    }

    /// Read access to the printer table (status page, API).
    pub fn printers(&self) -> &Arc<RwLock<Printers>> {
        &self.printers
    }

    /// Every committed change to the printer table from now on.
    pub fn watch(&self) -> broadcast::Receiver<TableChange> {
        self.changes.subscribe()
    }

    async fn send(&self, job: Job) -> Result<(), Rejected> {
        self.tx.send(job).await.map_err(|_| Rejected::Closed)
    }
}

/// A random delay of up to [`BIRTH_DELAY_MAX`], as Home Assistant advises
/// for answering its birth message.
fn birth_delay() -> Duration {
    let max = BIRTH_DELAY_MAX.as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=max))
}

#[cfg(test)]
mod tests;
