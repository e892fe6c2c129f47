//! The durable outbox: the messages of every accepted webhook, in order, in
//! an embedded ACID store (redb) until the broker has acknowledged them all,
//! and the messages the broker would not take, set aside until a retry.
//! A webhook is answered 200 only once its record is committed here.
//!
//! Storage faults do not latch: after an I/O error (a full disk) the store
//! is closed and reopened on the next use, so the bridge recovers by itself
//! once space is back. A damaged file found at start is moved aside and a
//! fresh store started.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tracing::{error, info, warn};

use crate::event::now_ms;
use crate::mqtt::messages::Message;

pub use self::error::OutboxError;
use self::file::{create, probe, quarantine, scan};

mod codec;
mod error;
mod file;
#[cfg(test)]
mod tests;

/// Record sequence number → encoded record.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// Parked message id → encoded [`Parked`].
const PARKED: TableDefinition<u64, &[u8]> = TableDefinition::new("parked");
/// Written and removed again when reopening after a fault: proof that the
/// disk takes writes again (opening alone may succeed on a full disk), as
/// large as the append that failed (a small write can fit in the file's
/// free pages while a large one cannot grow it).
const PROBE: TableDefinition<u64, &[u8]> = TableDefinition::new("probe");
const PROBE_BYTES: usize = 64 << 10;
/// The store's file name inside `storage.data_dir`.
pub const FILE: &str = "outbox.redb";
/// The store's page cache. The outbox is a queue (append, deliver, delete):
/// its working set is the few pages at its ends, and redb's 1 GiB default
/// would grow the process by the size of every backlog it ever held.
const CACHE_BYTES: usize = 1 << 20;
/// An empty outbox whose file is larger than this is compacted.
const COMPACT_ABOVE: u64 = 4 << 20;

/// One accepted webhook's messages (or the bridge's own: discovery,
/// removals), published in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// True for a webhook's record; only those count against the bounds.
    pub webhook: bool,
    /// Milliseconds since the Unix epoch when the webhook was accepted.
    pub accepted_at_ms: u64,
    pub messages: Vec<Message>,
}

impl Record {
    /// Topic and payload bytes of its messages (what the bounds count).
    pub fn bytes(&self) -> usize {
        message_bytes(&self.messages)
    }
}

/// Topic and payload bytes of `messages`: what `storage.max_bytes` counts.
pub fn message_bytes(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| m.topic.len() + m.payload.len())
        .sum()
}

/// A message the broker would not take, kept for a retry on request.
#[derive(Debug, Clone, PartialEq)]
pub struct Parked {
    /// The record it came from.
    pub seq: u64,
    pub accepted_at_ms: u64,
    pub parked_at_ms: u64,
    /// Why (`too_large`, `refused_by_broker`).
    pub reason: String,
    pub message: Message,
}

/// The bounds of `[storage]`, counted over undelivered webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `storage.max_events`.
    pub max_events: u64,
    /// `storage.max_bytes`: topic and payload bytes.
    pub max_bytes: u64,
}

/// What an opened outbox still holds from the last run (the records stay on
/// disk: see [`Outbox::for_each_pending`] and [`Outbox::read_from`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pending {
    /// Records waiting for the broker.
    pub records: u64,
    /// The oldest and newest sequence numbers among them.
    pub first: Option<u64>,
    pub last: Option<u64>,
}

/// The store. Cheap to clone; blocking calls belong on a blocking thread.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// `None` while closed after a fault, until reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// Why the store is failing, while it is.
    fault: Mutex<Option<String>>,
    /// Undelivered webhooks, their bytes, and parked messages.
    depth: AtomicU64,
    bytes: AtomicU64,
    parked: AtomicU64,
    /// Appends committed since the start.
    commits: AtomicU64,
    /// Bytes of the last append that failed, for the probe.
    needed: AtomicU64,
    limits: Limits,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("depth", &self.depth())
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir` and tells what it still holds
    /// for the broker. Records are read one at a time, never all at once.
    /// A store that cannot be read is moved aside and a fresh one created.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Outbox, Pending), OutboxError> {
        std::fs::create_dir_all(dir).map_err(|e| OutboxError::Dir(dir.to_owned(), e))?;
        let path = dir.join(FILE);
        let opened = create(&path).and_then(|db| scan(&db).map(|s| (db, s)));
        let (db, scan) = match opened {
            Ok(found) => found,
            Err(e) if !e.is_damage() => return Err(e),
            Err(e) => {
                quarantine(&path, &e)?;
                let db = create(&path)?;
                let scan = scan(&db)?;
                (db, scan)
            }
        };
        let outbox = Outbox {
            inner: Arc::new(Inner {
                path,
                db: RwLock::new(Some(Arc::new(db))),
                fault: Mutex::new(None),
                depth: AtomicU64::new(scan.depth),
                commits: AtomicU64::new(0),
                bytes: AtomicU64::new(scan.bytes),
                parked: AtomicU64::new(scan.parked),
                needed: AtomicU64::new(0),
                limits,
            }),
        };
        if !scan.corrupt.is_empty() {
            error!(
                records = scan.corrupt.len(),
                "Unreadable outbox records dropped"
            );
            outbox.remove(&scan.corrupt, &[])?;
        }
        Ok((outbox, scan.pending))
    }

    /// Runs `op` on the store, reopening it first if an earlier fault
    /// closed it; a fault in `op` closes it for the next call to reopen.
    fn with_db<T>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, OutboxError>,
    ) -> Result<T, OutboxError> {
        let db = self.db()?;
        let result = op(&db);
        drop(db);
        if let Err(e) = &result
            && e.is_fault()
        {
            self.close(e);
        }
        result
    }

    fn db(&self) -> Result<Arc<Database>, OutboxError> {
        let current = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match current {
            Some(db) => Ok(db),
            None => self.reopen(),
        }
    }

    fn close(&self, why: &OutboxError) {
        let mut fault = self.inner.fault.lock().unwrap_or_else(|e| e.into_inner());
        if fault.is_none() {
            error!(error = %why, "Outbox storage failed: webhooks are refused with 503 until it recovers");
        }
        *fault = Some(why.to_string());
        *self.inner.db.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Opens the store again after a fault. Fails while a call that still
    /// holds the old one runs, or while the disk still fails.
    fn reopen(&self) -> Result<Arc<Database>, OutboxError> {
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(db.clone());
        }
        let db = Arc::new(create(&self.inner.path)?);
        let needed = self.inner.needed.load(Ordering::Relaxed) as usize;
        probe(&db, needed.max(PROBE_BYTES))?;
        // The counts stay as they are: nothing was committed while closed,
        // and a recount would take delivered records still waiting for
        // their batched delete for undelivered ones.
        *slot = Some(db.clone());
        *self.inner.fault.lock().unwrap_or_else(|e| e.into_inner()) = None;
        info!("Outbox storage recovered");
        Ok(db)
    }

    /// Why the store is failing, if it is.
    pub fn fault(&self) -> Option<String> {
        self.inner
            .fault
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Background upkeep, on a blocking thread every second or so: reopens
    /// the store after a fault (so `/readyz` recovers without a webhook)
    /// and compacts it once a backlog is delivered.
    pub fn maintain(&self) {
        if self.fault().is_some() {
            if let Err(e) = self.reopen() {
                tracing::debug!(error = %e, "Outbox still failing");
            }
            return;
        }
        if let Err(e) = self.compact_if_empty() {
            warn!(error = %e, "Outbox compaction failed; retried later");
        }
    }

    /// Hands every record waiting for the broker to `each`, oldest first,
    /// one at a time.
    pub fn for_each_pending(&self, mut each: impl FnMut(&Record)) -> Result<(), OutboxError> {
        self.with_db(|db| {
            let read = db.begin_read()?;
            let table = read.open_table(RECORDS)?;
            for entry in table.iter()? {
                let (key, value) = entry?;
                if let Some(record) = codec::decode(key.value(), value.value()) {
                    each(&record);
                }
            }
            Ok(())
        })
    }

    /// Commits `records` durably (one fsync for all of them).
    pub fn append(&self, records: &[Record]) -> Result<(), OutboxError> {
        let mut bytes = 0;
        let appended = self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(RECORDS)?;
                for r in records {
                    let encoded = codec::encode(r);
                    bytes += encoded.len();
                    table.insert(r.seq, encoded.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        });
        if let Err(e) = appended {
            self.inner.needed.store(bytes as u64, Ordering::Relaxed);
            return Err(e);
        }
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
        let webhooks = records.iter().filter(|r| r.webhook);
        self.inner
            .depth
            .fetch_add(webhooks.clone().count() as u64, Ordering::Relaxed);
        let bytes: usize = webhooks.map(Record::bytes).sum();
        self.inner.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes delivered records and keeps the messages they set aside, in
    /// one durable transaction (the publisher batches them).
    pub fn remove(&self, seqs: &[u64], parked: &[Parked]) -> Result<(), OutboxError> {
        self.with_db(|db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(RECORDS)?;
                for seq in seqs {
                    table.remove(*seq)?;
                }
                let mut aside = txn.open_table(PARKED)?;
                let next = aside.last()?.map_or(0, |(k, _)| k.value() + 1);
                for (id, p) in (next..).zip(parked) {
                    aside.insert(id, codec::encode_parked(p).as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        })?;
        self.inner
            .parked
            .fetch_add(parked.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records from sequence number `from` on, oldest first, until they
    /// hold `messages` messages or `bytes` bytes or more (the publisher
    /// reads a backlog in slices instead of holding it).
    pub fn read_from(
        &self,
        from: u64,
        messages: usize,
        bytes: usize,
    ) -> Result<Vec<Record>, OutboxError> {
        self.with_db(|db| {
            let read = db.begin_read()?;
            let table = read.open_table(RECORDS)?;
            let mut records = Vec::new();
            let (mut held, mut held_bytes) = (0, 0);
            for entry in table.range(from..)? {
                if held >= messages || held_bytes >= bytes {
                    break;
                }
                let (key, value) = entry?;
                match codec::decode(key.value(), value.value()) {
                    Some(record) => {
                        held += record.messages.len();
                        held_bytes += record.bytes();
                        records.push(record);
                    }
                    None => error!(seq = key.value(), "Unreadable outbox record skipped"),
                }
            }
            Ok(records)
        })
    }

    /// Up to `limit` parked messages, oldest first.
    pub fn parked(&self, limit: usize) -> Result<Vec<Parked>, OutboxError> {
        self.with_db(|db| {
            let read = db.begin_read()?;
            let table = read.open_table(PARKED)?;
            let mut out = Vec::new();
            for entry in table.iter()?.take(limit) {
                let (_, value) = entry?;
                out.extend(codec::decode_parked(value.value()));
            }
            Ok(out)
        })
    }

    /// Moves every parked message back into the outbox as one record with
    /// sequence number `seq`, in one transaction; `None` if none was parked.
    pub fn retry_parked(&self, seq: u64) -> Result<Option<Record>, OutboxError> {
        let record = self.with_db(|db| {
            let txn = db.begin_write()?;
            let record = {
                let mut aside = txn.open_table(PARKED)?;
                let mut messages = Vec::new();
                for entry in aside.iter()? {
                    let (_, value) = entry?;
                    messages.extend(codec::decode_parked(value.value()).map(|p| p.message));
                }
                aside.retain(|_, _| false)?;
                if messages.is_empty() {
                    return Ok(None);
                }
                let record = Record {
                    seq,
                    webhook: false,
                    accepted_at_ms: now_ms(),
                    messages,
                };
                txn.open_table(RECORDS)?
                    .insert(seq, codec::encode(&record).as_slice())?;
                record
            };
            txn.commit()?;
            Ok(Some(record))
        })?;
        if record.is_some() {
            self.inner.parked.store(0, Ordering::Relaxed);
        }
        Ok(record)
    }

    /// Gives the space of a delivered backlog back to the file system:
    /// compacts the store when it holds no record and its file has grown
    /// past [`COMPACT_ABOVE`]. Skipped while any other call uses it.
    pub fn compact_if_empty(&self) -> Result<bool, OutboxError> {
        let size = std::fs::metadata(&self.inner.path).map_or(0, |m| m.len());
        if size <= COMPACT_ABOVE || self.depth() > 0 {
            return Ok(false);
        }
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        let Some(db) = slot.as_mut().and_then(Arc::get_mut) else {
            return Ok(false);
        };
        if !db.begin_read()?.open_table(RECORDS)?.is_empty()? {
            return Ok(false);
        }
        let compacted = db.compact()?;
        let after = std::fs::metadata(&self.inner.path).map_or(0, |m| m.len());
        info!(before = size, after, "Outbox compacted");
        Ok(compacted)
    }

    /// Appends committed since the start (a measure of how busy it is).
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Webhooks accepted and not yet delivered.
    pub fn depth(&self) -> u64 {
        self.inner.depth.load(Ordering::Relaxed)
    }

    /// Topic and payload bytes of the webhooks not yet delivered.
    pub fn depth_bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Messages set aside.
    pub fn parked_count(&self) -> u64 {
        self.inner.parked.load(Ordering::Relaxed)
    }

    /// Marks records delivered: their webhooks leave the depth count at
    /// once; the delete follows in the background.
    pub fn delivered<'a>(&self, records: impl IntoIterator<Item = &'a Record>) {
        let (mut n, mut bytes) = (0u64, 0u64);
        for r in records.into_iter().filter(|r| r.webhook) {
            n += 1;
            bytes += r.bytes() as u64;
        }
        self.inner.depth.fetch_sub(n, Ordering::Relaxed);
        self.inner.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The configured bounds.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// True if `events` more webhooks of `bytes` bytes in all fit the bounds.
    pub fn room_for(&self, events: u64, bytes: u64) -> bool {
        let l = self.inner.limits;
        self.depth().saturating_add(events) <= l.max_events
            && self.depth_bytes().saturating_add(bytes) <= l.max_bytes
    }

    /// The configured bound on undelivered webhooks, `storage.max_events`.
    pub fn max_events(&self) -> u64 {
        self.inner.limits.max_events
    }
}
