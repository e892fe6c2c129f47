//! The printer table: each printer's slug, state and published discovery
//! view, what an event or a removal changes in it, and how a failed batch
//! is undone. Pure data: the writer (`writer.rs`) is its only mutator.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;

use super::{ConfigCheck, Rejected, SNAPSHOT_URL_LIFETIME, startup};
use crate::config::{Config, Storage};
use crate::event::{Event, format_time};
use crate::homeassistant::{self, PrinterView};
use crate::mqtt::messages::{Message, render};
use crate::mqtt::topics::{
    APP_CONNECTION, BRIDGE_LAST_WEBHOOK, BRIDGE_WEBHOOKS, LAST_EVENT, Topics,
};
use crate::octoeverywhere::app_state::AppState;
use crate::outbox::Record;
use crate::slug::Slugs;
use crate::state::{Field, PrinterState};

/// Every known printer: the slug table and each printer's entry by slug.
#[derive(Debug)]
pub struct Printers {
    /// Printer id ↔ slug.
    pub slugs: Slugs,
    /// Each printer's entry by slug, boxed: a map node then holds eleven
    /// pointers, not eleven entries, and half-full nodes (printers added in
    /// id order) waste little.
    entries: BTreeMap<Box<str>, Box<Entry>>,
    pub(super) ha: homeassistant::Context,
    /// `printers.<id>.name`, keyed by folded printer id.
    pub(super) names: HashMap<String, String>,
    /// Folded ids of the printers with an `app_token`.
    pub(super) app_tokens: HashSet<String>,
    /// Webhooks accepted (`<base>/bridge/webhooks`), restored at start.
    pub(super) webhooks: u64,
    /// When the last webhook was accepted (`<base>/bridge/last_webhook`).
    pub(super) last_webhook: Option<time::OffsetDateTime>,
    /// `storage.max_printers`: webhooks for a new printer beyond it are refused.
    pub(super) max_printers: usize,
}

/// One printer in the table: its state, and what the table keeps beside it
/// (in one allocation: with 10,000 printers, maps keyed by slug for each of
/// these cost more than the values).
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Entry {
    pub(super) state: PrinterState,
    /// The digest of the view its configs were last published with
    /// ([`PrinterView::digest`]).
    pub(super) published: Option<std::num::NonZeroU64>,
    /// When its current snapshot URL arrived.
    url_at: Option<time::OffsetDateTime>,
    /// Restored, and the start-up check still compares its configs with
    /// the broker's: its webhooks publish no configs until that is done.
    pub(super) unchecked: bool,
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
            entries: BTreeMap::new(),
            ha,
            names: HashMap::new(),
            app_tokens: HashSet::new(),
            webhooks: 0,
            last_webhook: None,
            max_printers: Storage::default().max_printers as usize,
        }
    }

    /// `Err` when `printer_id` would be a new printer beyond
    /// `storage.max_printers` (checked before anything is assigned).
    pub fn admit(&self, printer_id: &str) -> Result<(), Rejected> {
        let known = self
            .slugs
            .get(printer_id)
            .is_some_and(|slug| self.entries.contains_key(slug));
        if known || self.entries.len() < self.max_printers {
            Ok(())
        } else {
            Err(Rejected::TooManyPrinters(self.max_printers as u64))
        }
    }

    /// The table `config` describes: aliases, display names, discovery.
    pub fn from_config(config: &Config) -> Printers {
        let mut printers = Printers::new(Slugs::new(config.aliases()));
        printers.ha = homeassistant::Context::from_config(config);
        printers.max_printers = usize::try_from(config.storage.max_printers).unwrap_or(usize::MAX);
        printers.names = config
            .printers
            .iter()
            .filter(|(_, p)| !p.name.trim().is_empty())
            .map(|(id, p)| (crate::slug::fold(id), p.name.clone()))
            .collect();
        printers.app_tokens = config
            .printers
            .iter()
            .filter(|(_, p)| !p.app_token.is_empty())
            .map(|(id, _)| crate::slug::fold(id))
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
            self.entries
                .entry(slug.into())
                .or_default()
                .state
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
        self.entries.retain(|_, e| !e.state.printer_id().is_empty());
        for (slug, e) in &self.entries {
            self.slugs.restore(slug, e.state.printer_id());
        }
        // A printer now published under another slug (an alias was added)
        // is not restored under its old one.
        let slugs = &self.slugs;
        self.entries
            .retain(|slug, e| slugs.get(e.state.printer_id()) == Some(&**slug));
        for e in self.entries.values_mut() {
            e.url_at = restored_url_at(&e.state);
        }
    }

    /// Remembers what a batch may change for `slug`, to undo it.
    pub(super) fn remember(&self, undo: &mut Undo, slug: &str) {
        undo.entries
            .entry(slug.to_owned())
            .or_insert_with(|| self.entries.get(slug).cloned());
        undo.webhooks
            .get_or_insert((self.webhooks, self.last_webhook));
    }

    /// Puts back what a failed batch changed.
    pub(super) fn undo(&mut self, undo: Undo) {
        for (slug, entry) in undo.entries {
            let now = self.entries.remove(slug.as_str());
            if let Some(mut e) = entry {
                // The start-up check's mark is not the batch's to undo: a
                // check finished in the failed batch stays finished.
                e.unchecked = now.is_some_and(|n| n.unchecked);
                self.entries.insert(slug.into(), e);
            }
        }
        if let Some((count, last)) = undo.webhooks {
            self.webhooks = count;
            self.last_webhook = last;
        }
    }

    /// Applies one event and returns its messages: the printer's discovery
    /// configs when new or changed, its changed values and its event. The
    /// bridge's counters it updates go out with [`Printers::counters`].
    pub fn accept(&mut self, topics: &Topics, event: &Event) -> (String, Vec<Message>) {
        let slug = self.slugs.resolve(&event.printer_id);
        let entry = self.entries.entry(slug.as_str().into()).or_default();
        let changes = entry.state.apply(event);
        if event.snapshot_url.is_some() {
            entry.url_at = Some(event.received_at);
        }
        let mut messages = self.discover(&slug, false);
        messages.extend(render(topics, &slug, &changes, event));
        self.webhooks += 1;
        self.last_webhook = Some(event.received_at);
        (slug, messages)
    }

    /// Webhooks accepted so far (`<base>/bridge/webhooks`).
    pub fn webhooks(&self) -> u64 {
        self.webhooks
    }

    /// The bridge's counters: `bridge/webhooks` and `bridge/last_webhook`
    /// (none before the first webhook since the start).
    pub fn counters(&self, topics: &Topics) -> Vec<Message> {
        let Some(last) = self.last_webhook else {
            return Vec::new();
        };
        vec![
            Message::retained(topics.bridge(BRIDGE_WEBHOOKS), self.webhooks.to_string()),
            Message::retained(topics.bridge(BRIDGE_LAST_WEBHOOK), format_time(last)),
        ]
    }

    /// Replaces one printer's state with the one its retained values
    /// describe (the clustered mode's shared state); no values: forgotten.
    pub fn replace<'a>(
        &mut self,
        topics: &Topics,
        slug: &str,
        retained: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) {
        let mut state = PrinterState::default();
        for (topic, payload) in retained {
            if let Some((s, leaf)) = topics.parse_printer(topic)
                && s == slug
            {
                state.restore(leaf, payload);
            }
        }
        if state.printer_id().is_empty() {
            self.entries.remove(slug);
            return;
        }
        self.slugs.restore(slug, state.printer_id());
        let url_at = restored_url_at(&state);
        let entry = self.entries.entry(slug.into()).or_default();
        entry.state = state;
        entry.url_at = url_at;
    }

    /// Sets the bridge's webhook counter (the clustered mode counts the
    /// stream's webhooks).
    pub fn set_webhooks(&mut self, count: u64) {
        self.webhooks = count;
    }

    /// Makes each printer's next webhook publish all of its values: the
    /// broker may have lost some it acknowledged (see
    /// [`crate::mqtt::publisher::Republish::Reconnected`]).
    pub fn forget_held(&mut self) {
        for e in self.entries.values_mut() {
            e.state.latest.forget_held();
        }
    }

    /// Adds the printer with this id if it is not in the table yet (a
    /// printer with an `app_token` gets its device before its first
    /// webhook); returns its slug.
    pub fn ensure(&mut self, printer_id: &str) -> String {
        let slug = self.slugs.resolve(printer_id);
        self.entries.entry(slug.as_str().into()).or_insert_with(|| {
            Box::new(Entry {
                state: PrinterState::with_id(printer_id),
                ..Entry::default()
            })
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
            self.entries
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
        if from.is_none() {
            out.extend(homeassistant::bridge_configs(&self.ha));
        }
        let (this, next) = self.slugs_from(from, n);
        for slug in this {
            out.extend(self.discover(&slug, true));
        }
        (out, next)
    }

    /// `n` slugs in order from `from` on (`None`: from the first), and the
    /// slug after them, if any.
    pub(super) fn slugs_from(&self, from: Option<&str>, n: usize) -> (Vec<String>, Option<String>) {
        let range = match from {
            None => self.entries.range::<str, _>(..),
            Some(from) => self
                .entries
                .range::<str, _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded)),
        };
        let mut slugs = range.map(|(slug, _)| slug.to_string());
        let this: Vec<String> = slugs.by_ref().take(n).collect();
        (this, slugs.next())
    }

    /// Printers whose snapshot URL is older than [`SNAPSHOT_URL_LIFETIME`]
    /// at `now`: the URL is forgotten, and for each the configs (without
    /// the URL image) now and the empty `snapshot_url` after
    /// [`super::REMOVAL_GRACE`], as in a removal.
    pub fn expire_snapshot_urls(
        &mut self,
        now: time::OffsetDateTime,
    ) -> Vec<(String, Vec<Message>, Message)> {
        let lifetime =
            time::Duration::try_from(SNAPSHOT_URL_LIFETIME).unwrap_or(time::Duration::MAX);
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.url_at.is_some_and(|at| now - at >= lifetime))
            .map(|(slug, _)| slug.to_string())
            .collect();
        let mut out = Vec::new();
        for slug in expired {
            let Some(entry) = self.entries.get_mut(slug.as_str()) else {
                continue;
            };
            entry.url_at = None;
            let latest = &mut entry.state.latest;
            if latest.text(Field::SnapshotUrl).is_none() {
                continue;
            }
            latest.restore(Field::SnapshotUrl.leaf(), b"");
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
    pub(super) fn url_cleared(&self, slug: &str) -> bool {
        self.state(slug)
            .is_some_and(|s| s.latest.text(Field::SnapshotUrl).is_none())
    }

    /// Takes the printer with this slug or printer id out of the table.
    pub fn remove(&mut self, printer: &str) -> Option<Removal> {
        let slug = self.find(printer)?;
        self.entries.remove(slug.as_str());
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
        self.entries.contains_key(slug)
    }

    /// How many printers the table knows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True while the table knows no printer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The state of the printer with this slug.
    pub fn state(&self, slug: &str) -> Option<&PrinterState> {
        self.entries.get(slug).map(|e| &e.state)
    }

    /// Every printer's slug and state, in slug order.
    pub fn states(&self) -> impl Iterator<Item = (&str, &PrinterState)> {
        self.entries.iter().map(|(slug, e)| (&**slug, &e.state))
    }

    /// The entry of the printer with this slug (the start-up check marks it).
    pub(super) fn entry_mut(&mut self, slug: &str) -> Option<&mut Entry> {
        self.entries.get_mut(slug).map(|e| &mut **e)
    }

    /// Every printer's entry.
    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.values_mut().map(|e| &mut **e)
    }

    /// The slug of the printer with this slug or printer id (exact id
    /// first, then by [`crate::slug::same_printer`]).
    pub fn find(&self, printer: &str) -> Option<String> {
        if self.entries.contains_key(printer) {
            return Some(printer.to_owned());
        }
        let by_id = |exact: bool| {
            self.states().find(|(_, s)| {
                if exact {
                    s.printer_id() == printer
                } else {
                    crate::slug::same_printer(s.printer_id(), printer)
                }
            })
        };
        by_id(true)
            .or_else(|| by_id(false))
            .map(|(slug, _)| slug.to_owned())
    }

    pub(super) fn view(&self, slug: &str) -> Option<PrinterView> {
        let state = self.state(slug)?;
        let id = crate::slug::fold(state.printer_id());
        let mut view = PrinterView::new(slug, state, self.names.get(&id).map(String::as_str));
        view.app_connection = self.app_tokens.contains(&id);
        Some(view)
    }

    /// The printer's configs if they are new or changed (or `always`).
    pub(super) fn discover(&mut self, slug: &str, always: bool) -> Vec<Message> {
        if !self.ha.enabled {
            return Vec::new();
        }
        let Some(view) = self.view(slug) else {
            return Vec::new();
        };
        let digest = view.digest();
        let Some(entry) = self.entries.get_mut(slug) else {
            return Vec::new();
        };
        if !always && (entry.published == Some(digest) || entry.unchecked) {
            return Vec::new();
        }
        entry.published = Some(digest);
        homeassistant::configs(&view, &self.ha)
    }
}

/// When a restored printer's snapshot URL arrived: with its last event at
/// the latest.
fn restored_url_at(state: &PrinterState) -> Option<time::OffsetDateTime> {
    let last = state.latest.last_event.as_ref()?;
    state
        .latest
        .text(Field::SnapshotUrl)
        .is_some()
        .then_some(last.received_at)
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
pub(super) struct Undo {
    entries: HashMap<String, Option<Box<Entry>>>,
    webhooks: Option<(u64, Option<time::OffsetDateTime>)>,
}

impl Undo {
    /// Adds a later job's undo: the earliest saved state of each printer wins.
    pub(super) fn merge(&mut self, later: Undo) {
        for (slug, saved) in later.entries {
            self.entries.entry(slug).or_insert(saved);
        }
        if let Some(w) = later.webhooks {
            self.webhooks.get_or_insert(w);
        }
    }
}
