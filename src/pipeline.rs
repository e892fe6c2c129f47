//! The single writer between HTTP and MQTT: gives each accepted event its
//! printer slug, applies it to that printer's state in arrival order, renders
//! the messages — discovery configs first when they changed — commits them
//! to the outbox (many webhooks per commit) and only then answers; the
//! publisher delivers from there. Owns the printer table; also republishes
//! every config on Home Assistant's birth message, removes printers and
//! publishes App Connection registration states.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{error, warn};

use crate::config::Config;
use crate::event::{Event, format_time};
use crate::homeassistant::{self, PrinterView};
use crate::mqtt::delivery::packet_size;
use crate::mqtt::messages::{Message, render};
use crate::mqtt::publisher::Publisher;
use crate::mqtt::topics::{
    APP_CONNECTION, BRIDGE_LAST_WEBHOOK, BRIDGE_WEBHOOKS, LAST_EVENT, Topics,
};
use crate::octoeverywhere::AppState;
use crate::outbox::{Outbox, Record};
use crate::slug::Slugs;
use crate::snapshots::Snapshots;
use crate::state::{Field, PrinterState};

mod startup;
pub use startup::{ConfigCheck, version};

/// Jobs waiting for the writer; HTTP handlers wait when it is full.
const QUEUE: usize = 4096;
/// Jobs committed together at most (group commit).
const BATCH: usize = 512;
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
/// OctoEverywhere's snapshot URLs stop working after about 7 days; a URL
/// this old is cleared (with its image entity) before Home Assistant keeps
/// fetching a dead link.
pub const SNAPSHOT_URL_LIFETIME: Duration = Duration::from_secs(6 * 24 * 3600);
/// How often the writer looks for such URLs.
const SNAPSHOT_URL_SWEEP: Duration = Duration::from_secs(3600);

/// Every known printer: the slug table and each printer's state by slug,
/// plus what discovery has published for each.
#[derive(Debug)]
pub struct Printers {
    /// Printer id ↔ slug.
    pub slugs: Slugs,
    /// Each printer's state by slug.
    pub states: BTreeMap<String, PrinterState>,
    ha: homeassistant::Context,
    /// `printers.<id>.name`, keyed by lowercased printer id.
    names: HashMap<String, String>,
    /// Lowercased ids of the printers with an `app_token`.
    app_tokens: HashSet<String>,
    /// The view each printer's configs were last published with.
    published: HashMap<String, PrinterView>,
    /// Webhooks accepted (`<base>/bridge/webhooks`), restored at start.
    webhooks: u64,
    /// Restored printers whose configs the start-up check still compares
    /// with the broker's: their webhooks publish no configs until it is done.
    unchecked: HashSet<String>,
    /// When each printer's current snapshot URL arrived.
    url_at: HashMap<String, time::OffsetDateTime>,
}

/// A printer taken out of the table, and the empty retained messages that
/// clear it: its discovery configs first, its values after [`REMOVAL_GRACE`].
#[derive(Debug, Clone, PartialEq)]
pub struct Removal {
    /// The removed printer's slug.
    pub slug: String,
    /// Empty retained messages for every discovery config it can have.
    pub configs: Vec<Message>,
    /// Empty retained messages for every retained value it can have.
    pub values: Vec<Message>,
}

impl Printers {
    /// A table that knows the configured aliases; discovery disabled.
    pub fn new(slugs: Slugs) -> Printers {
        let mut ha = homeassistant::Context::from_config(&Config::default());
        ha.enabled = false;
        Printers {
            slugs,
            states: BTreeMap::new(),
            ha,
            names: HashMap::new(),
            app_tokens: HashSet::new(),
            published: HashMap::new(),
            webhooks: 0,
            unchecked: HashSet::new(),
            url_at: HashMap::new(),
        }
    }

    /// The table `config` describes: aliases, display names, discovery.
    pub fn from_config(config: &Config) -> Printers {
        let mut printers = Printers::new(Slugs::new(config.aliases()));
        printers.ha = homeassistant::Context::from_config(config);
        printers.names = config
            .printers
            .iter()
            .filter(|(_, p)| !p.name.trim().is_empty())
            .map(|(id, p)| (id.to_lowercase(), p.name.clone()))
            .collect();
        printers.app_tokens = config
            .printers
            .iter()
            .filter(|(_, p)| !p.app_token.is_empty())
            .map(|(id, _)| id.to_lowercase())
            .collect();
        printers
    }

    /// Restores state from retained `(topic, payload)` pairs under `topics`,
    /// in order (later pairs win).
    pub fn restore<'a>(
        &mut self,
        topics: &Topics,
        retained: impl IntoIterator<Item = (&'a str, &'a Bytes)>,
    ) {
        for (topic, payload) in retained {
            self.restore_one(topics, topic, payload);
        }
        self.restored();
    }

    /// Restores one retained value; [`Printers::restored`] follows the last.
    pub fn restore_one(&mut self, topics: &Topics, topic: &str, payload: &[u8]) {
        if let Some((slug, leaf)) = topics.parse_printer(topic) {
            self.states
                .entry(slug.to_owned())
                .or_default()
                .restore(leaf, payload);
        } else if topics.bridge_leaf(topic) == Some(BRIDGE_WEBHOOKS) {
            let count = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse().ok());
            self.webhooks = count.unwrap_or(0);
        }
    }

    /// After [`Printers::restore_one`]: drops what is not a printer and
    /// takes over the slugs.
    pub fn restored(&mut self) {
        self.states.retain(|_, s| !s.printer_id.is_empty());
        for (slug, state) in &self.states {
            self.slugs.restore(slug, &state.printer_id);
        }
        // A printer now published under another slug (an alias was added)
        // is not restored under its old one.
        let slugs = &self.slugs;
        self.states
            .retain(|slug, s| slugs.get(&s.printer_id) == Some(slug.as_str()));
        // A restored URL arrived with the last event at the latest.
        for (slug, state) in &self.states {
            if state.latest.text(Field::SnapshotUrl).is_some()
                && let Some(last) = &state.latest.last_event
            {
                self.url_at.insert(slug.clone(), last.received_at);
            }
        }
    }

    /// Remembers what a batch may change for `slug`, to undo it.
    fn remember(&self, undo: &mut Undo, slug: &str) {
        undo.states.entry(slug.to_owned()).or_insert_with(|| {
            (
                self.states.get(slug).cloned(),
                self.published.get(slug).cloned(),
            )
        });
        undo.webhooks.get_or_insert(self.webhooks);
    }

    /// Puts back what a failed batch changed.
    fn undo(&mut self, undo: Undo) {
        for (slug, (state, view)) in undo.states {
            match state {
                Some(s) => self.states.insert(slug.clone(), s),
                None => self.states.remove(&slug),
            };
            match view {
                Some(v) => self.published.insert(slug, v),
                None => self.published.remove(&slug),
            };
        }
        if let Some(w) = undo.webhooks {
            self.webhooks = w;
        }
    }

    /// Applies one event and returns its messages: the printer's discovery
    /// configs when new or changed, its values, its event, then the
    /// bridge's webhook counter.
    pub fn accept(&mut self, topics: &Topics, event: &Event) -> (String, Vec<Message>) {
        let slug = self.slugs.resolve(&event.printer_id);
        let changes = self.states.entry(slug.clone()).or_default().apply(event);
        if event.snapshot_url.is_some() {
            self.url_at.insert(slug.clone(), event.received_at);
        }
        let mut messages = self.discover(&slug, false);
        messages.extend(render(topics, &slug, &changes, event));
        self.webhooks += 1;
        messages.push(Message::retained(
            topics.bridge(BRIDGE_WEBHOOKS),
            self.webhooks.to_string(),
        ));
        messages.push(Message::retained(
            topics.bridge(BRIDGE_LAST_WEBHOOK),
            format_time(event.received_at),
        ));
        (slug, messages)
    }

    /// Adds the printer with this id if it is not in the table yet (a
    /// printer with an `app_token` gets its device before its first
    /// webhook); returns its slug.
    pub fn ensure(&mut self, printer_id: &str) -> String {
        let slug = self.slugs.resolve(printer_id);
        self.states
            .entry(slug.clone())
            .or_insert_with(|| PrinterState {
                printer_id: printer_id.to_owned(),
                ..PrinterState::default()
            });
        slug
    }

    /// The messages of a printer's App Connection state: its configs when
    /// new or changed, then `<base>/<slug>/app_connection`.
    pub fn app_connection(
        &mut self,
        topics: &Topics,
        printer_id: &str,
        state: AppState,
    ) -> Vec<Message> {
        let slug = self.ensure(printer_id);
        let mut messages = self.discover(&slug, false);
        messages.push(Message::retained(
            topics.printer(&slug, APP_CONNECTION),
            state.name(),
        ));
        messages
    }

    /// The filters under which the broker holds this table's configs: the
    /// bridge's and every known printer's (read back at start).
    pub fn discovery_filters(&self) -> Vec<String> {
        if !self.ha.enabled {
            return Vec::new();
        }
        let mut filters = homeassistant::node_filters(&self.ha, None).to_vec();
        filters.extend(
            self.states
                .keys()
                .flat_map(|slug| homeassistant::node_filters(&self.ha, Some(slug))),
        );
        filters
    }

    /// The messages to publish at start: the bridge's version, then every
    /// config that differs from the retained one the broker holds
    /// (`retained`, read back under [`Printers::discovery_filters`]), and an
    /// empty message for each retained config no longer published.
    pub fn startup(&mut self, retained: &[(String, Bytes)]) -> Vec<Message> {
        let mut check = ConfigCheck::new(self);
        for (topic, payload) in retained {
            check.offer(self, topic, payload);
        }
        let mut out = vec![startup::version(self)];
        out.extend(check.finish(self));
        out
    }

    /// Every config again, for Home Assistant's birth message.
    pub fn birth(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        let mut from = None;
        loop {
            let (slice, next) = self.birth_slice(from.as_deref(), usize::MAX);
            out.extend(slice);
            match next {
                Some(n) => from = Some(n),
                None => return out,
            }
        }
    }

    /// One slice of the configs for Home Assistant's birth message: from
    /// the start, the bridge's and the first `n` printers' (in slug order);
    /// else `n` printers from the slug `from` on. Also returns where the
    /// next slice starts, if any printers are left.
    pub fn birth_slice(&mut self, from: Option<&str>, n: usize) -> (Vec<Message>, Option<String>) {
        if !self.ha.enabled {
            return (Vec::new(), None);
        }
        let mut out = Vec::new();
        let range = match from {
            None => {
                out.extend(homeassistant::bridge_configs(&self.ha));
                self.states.range::<String, _>(..)
            }
            Some(from) => self
                .states
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded)),
        };
        let mut slugs = range.map(|(slug, _)| slug.clone());
        let this: Vec<String> = slugs.by_ref().take(n).collect();
        let next = slugs.next();
        for slug in this {
            out.extend(self.discover(&slug, true));
        }
        (out, next)
    }

    /// Printers whose snapshot URL is older than [`SNAPSHOT_URL_LIFETIME`]
    /// at `now`: the URL is forgotten, and for each the configs (without
    /// the URL image) now and the empty `snapshot_url` after
    /// [`REMOVAL_GRACE`], as in a removal.
    pub fn expire_snapshot_urls(
        &mut self,
        now: time::OffsetDateTime,
    ) -> Vec<(String, Vec<Message>, Message)> {
        let lifetime =
            time::Duration::try_from(SNAPSHOT_URL_LIFETIME).unwrap_or(time::Duration::MAX);
        let expired: Vec<String> = self
            .url_at
            .iter()
            .filter(|(_, at)| now - **at >= lifetime)
            .map(|(slug, _)| slug.clone())
            .collect();
        let mut out = Vec::new();
        for slug in expired {
            self.url_at.remove(&slug);
            let Some(state) = self.states.get_mut(&slug) else {
                continue;
            };
            if state.latest.text(Field::SnapshotUrl).is_none() {
                continue;
            }
            state.latest.restore(Field::SnapshotUrl.leaf(), b"");
            let configs = self.discover(&slug, false);
            let value = Message::retained(
                self.ha.topics.field(&slug, Field::SnapshotUrl),
                Bytes::new(),
            );
            out.push((slug, configs, value));
        }
        out
    }

    /// True while the printer has no snapshot URL (an expired one's empty
    /// value is published only then).
    fn url_cleared(&self, slug: &str) -> bool {
        self.states
            .get(slug)
            .is_some_and(|s| s.latest.text(Field::SnapshotUrl).is_none())
    }

    /// Takes the printer with this slug or printer id out of the table.
    pub fn remove(&mut self, printer: &str) -> Option<Removal> {
        let slug = self.find(printer)?;
        self.states.remove(&slug);
        self.published.remove(&slug);
        self.unchecked.remove(&slug);
        self.url_at.remove(&slug);
        let empty = |topic| Message::retained(topic, Bytes::new());
        let topics = &self.ha.topics;
        let values = Field::ALL
            .iter()
            .map(|f| topics.field(&slug, *f))
            .chain([
                topics.printer(&slug, LAST_EVENT),
                topics.printer(&slug, APP_CONNECTION),
            ])
            .map(empty)
            .collect();
        // Cleared even with discovery off: a device published before it
        // was turned off goes too.
        let configs = homeassistant::config_topics(&slug, &self.ha)
            .into_iter()
            .map(empty)
            .collect();
        Some(Removal {
            slug,
            configs,
            values,
        })
    }

    /// True while a printer with this slug is in the table.
    pub fn contains(&self, slug: &str) -> bool {
        self.states.contains_key(slug)
    }

    fn find(&self, printer: &str) -> Option<String> {
        if self.states.contains_key(printer) {
            return Some(printer.to_owned());
        }
        let by_id = |exact: bool| {
            self.states.iter().find(|(_, s)| {
                if exact {
                    s.printer_id == printer
                } else {
                    s.printer_id.eq_ignore_ascii_case(printer)
                }
            })
        };
        by_id(true)
            .or_else(|| by_id(false))
            .map(|(slug, _)| slug.clone())
    }

    fn view(&self, slug: &str) -> Option<PrinterView> {
        let state = self.states.get(slug)?;
        let id = state.printer_id.to_lowercase();
        let mut view = PrinterView::new(slug, state, self.names.get(&id).map(String::as_str));
        view.app_connection = self.app_tokens.contains(&id);
        Some(view)
    }

    /// The printer's configs if they are new or changed (or `always`).
    fn discover(&mut self, slug: &str, always: bool) -> Vec<Message> {
        if !self.ha.enabled {
            return Vec::new();
        }
        let Some(view) = self.view(slug) else {
            return Vec::new();
        };
        if !always && (self.published.get(slug) == Some(&view) || self.unchecked.contains(slug)) {
            return Vec::new();
        }
        let configs = homeassistant::configs(&view, &self.ha);
        self.published.insert(slug.to_owned(), view);
        configs
    }
}

/// The retained messages of an outbox record, as restore input: what the
/// broker will hold once it is delivered.
pub fn retained_of(record: &Record) -> impl Iterator<Item = (&str, &Bytes)> {
    record
        .messages
        .iter()
        .filter(|m| m.retain)
        .map(|m| (m.topic.as_str(), &m.payload))
}

/// What a batch changed in the table, to put back if its commit fails.
#[derive(Debug, Default)]
struct Undo {
    states: HashMap<String, (Option<PrinterState>, Option<PrinterView>)>,
    webhooks: Option<u64>,
}

impl Undo {
    /// Adds a later job's undo: the earliest saved state of each printer wins.
    fn merge(&mut self, later: Undo) {
        for (slug, saved) in later.states {
            self.states.entry(slug).or_insert(saved);
        }
        if let Some(w) = later.webhooks {
            self.webhooks.get_or_insert(w);
        }
    }
}

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
}

impl Rejected {
    /// The HTTP status a sender gets for it.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Rejected::TooLarge { .. } => http::StatusCode::PAYLOAD_TOO_LARGE,
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
}

/// Everything the writer starts with.
pub struct Start {
    pub printers: Printers,
    pub topics: Topics,
    pub outbox: Outbox,
    /// The sequence number of the first new record.
    pub next_seq: u64,
    pub publisher: Publisher,
    /// `()` each time Home Assistant comes online: every config again.
    pub births: mpsc::UnboundedReceiver<()>,
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
        let printers = Arc::new(RwLock::new(start.printers));
        let (changes, _) = broadcast::channel(CHANGES);
        let snapshots_dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer {
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
        }
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

struct Writer {
    printers: Arc<RwLock<Printers>>,
    /// The largest packet the broker takes.
    max_packet: usize,
    snapshots: Snapshots,
    snapshots_dropped: Arc<AtomicU64>,
    changes: broadcast::Sender<TableChange>,
    topics: Topics,
    outbox: Outbox,
    next_seq: u64,
    publisher: Publisher,
    /// For the delayed second half of a removal; weak, so it does not keep
    /// the writer alive.
    jobs: mpsc::WeakSender<Job>,
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
}

impl Writer {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Job>,
        mut births: mpsc::UnboundedReceiver<()>,
        startup: Vec<Message>,
    ) {
        if !startup.is_empty() {
            let _ = self.commit(vec![(startup, false)]).await;
        }
        let mut jobs = Vec::with_capacity(BATCH);
        let mut births_open = true;
        // The next slice of a republish after a birth: when, and from which
        // printer (`None`: from the start).
        let mut birth: Option<(Instant, Option<String>)> = None;
        let mut sweep = tokio::time::interval(SNAPSHOT_URL_SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = birth.as_ref().map_or_else(Instant::now, |(at, _)| *at);
            tokio::select! {
                n = rx.recv_many(&mut jobs, BATCH) => {
                    if n == 0 {
                        return;
                    }
                    let batch = self.apply(jobs.drain(..));
                    self.finish(batch).await;
                }
                born = births.recv(), if births_open => match born {
                    // A birth during a republish starts it over: Home
                    // Assistant has restarted again.
                    Some(()) => birth = Some((Instant::now() + birth_delay(), None)),
                    None => births_open = false,
                },
                _ = sweep.tick() => self.expire_snapshot_urls().await,
                () = tokio::time::sleep_until(due), if birth.is_some() => {
                    let from = birth.take().and_then(|(_, from)| from);
                    let (configs, next) = self.table().birth_slice(from.as_deref(), BIRTH_SLICE);
                    if !configs.is_empty() {
                        let _ = self.commit(vec![(configs, false)]).await;
                    }
                    birth = next.map(|n| (Instant::now() + BIRTH_PACE, Some(n)));
                }
            }
        }
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
        let bytes: u64 = messages
            .iter()
            .map(|m| (m.topic.len() + m.payload.len()) as u64)
            .sum();
        let full = !self.outbox.room_for(pending.1 + bytes)
            || self.outbox.depth() + pending.0 >= self.outbox.limits().max_events;
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
        } = batch;
        let first = if messages.is_empty() {
            Ok(self.next_seq)
        } else {
            self.commit(messages).await
        };
        let stored = first.is_ok();
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

/// A random delay of up to [`BIRTH_DELAY_MAX`], as Home Assistant advises
/// for answering its birth message.
fn birth_delay() -> Duration {
    let max = BIRTH_DELAY_MAX.as_millis() as u64;
    Duration::from_millis(rand::random_range(0..=max))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
