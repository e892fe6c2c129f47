//! The durable outbox: the messages of every accepted webhook, in order, in
//! an embedded ACID store (redb) until the broker has acknowledged them all.
//! A webhook is answered 200 only once its record is committed here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tracing::error;

use crate::mqtt::messages::Message;

/// Record sequence number → encoded record.
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
/// The store's file name inside `storage.data_dir`.
pub const FILE: &str = "outbox.redb";
/// The store's page cache. The outbox is a queue (append, deliver, delete):
/// its working set is the few pages at its ends, and redb's 1 GiB default
/// would grow the process by the size of every backlog it ever held.
const CACHE_BYTES: usize = 4 << 20;

/// One accepted webhook's messages (or the bridge's own: discovery,
/// removals), published in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    /// True for a webhook's record; only those count against `max_events`.
    pub webhook: bool,
    /// Milliseconds since the Unix epoch when the webhook was accepted.
    pub accepted_at_ms: u64,
    pub messages: Vec<Message>,
}

/// Storage failures; each is answered 503 and logged at ERROR.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot create the data directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("cannot open the outbox {0}: {1} (is another print2mqtt using this storage.data_dir?)")]
    Open(PathBuf, redb::DatabaseError),
    #[error("outbox storage error: {0}")]
    Store(String),
}

fn store_err(e: impl std::fmt::Display) -> OutboxError {
    OutboxError::Store(e.to_string())
}

/// The store. Cheap to clone; blocking calls belong on a blocking thread.
#[derive(Clone)]
pub struct Outbox {
    db: Arc<Database>,
    depth: Arc<AtomicU64>,
    max_events: u64,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("depth", &self.depth())
            .field("max_events", &self.max_events)
            .finish()
    }
}

/// A record as stored (postcard); read back owned.
#[derive(Deserialize)]
struct StoredRecord {
    webhook: bool,
    accepted_at_ms: u64,
    messages: Vec<StoredMessage>,
}

#[derive(Deserialize)]
struct StoredMessage {
    topic: String,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
    retain: bool,
}

/// The same layout, written from borrowed parts: no copy of any topic or
/// payload on the way to disk.
#[derive(Serialize)]
struct StoredRecordRef<'a> {
    webhook: bool,
    accepted_at_ms: u64,
    messages: Vec<StoredMessageRef<'a>>,
}

#[derive(Serialize)]
struct StoredMessageRef<'a> {
    topic: &'a str,
    #[serde(with = "serde_bytes")]
    payload: &'a [u8],
    retain: bool,
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

impl Outbox {
    /// Opens (or creates) the outbox in `dir` and tells what it still holds
    /// for the broker. Records are read one at a time, never all at once:
    /// a backlog can be `storage.max_events` webhooks.
    pub fn open(dir: &Path, max_events: u64) -> Result<(Outbox, Pending), OutboxError> {
        std::fs::create_dir_all(dir).map_err(|e| OutboxError::Dir(dir.to_owned(), e))?;
        let path = dir.join(FILE);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| OutboxError::Open(path.clone(), e))?;
        let txn = db.begin_write().map_err(store_err)?;
        txn.open_table(RECORDS).map_err(store_err)?;
        txn.commit().map_err(store_err)?;

        let mut pending = Pending::default();
        let mut depth = 0;
        let mut corrupt = Vec::new();
        let read = db.begin_read().map_err(store_err)?;
        let table = read.open_table(RECORDS).map_err(store_err)?;
        for entry in table.iter().map_err(store_err)? {
            let (key, value) = entry.map_err(store_err)?;
            match decode(key.value(), value.value()) {
                Some(record) => {
                    pending.records += 1;
                    pending.first.get_or_insert(record.seq);
                    pending.last = Some(record.seq);
                    depth += u64::from(record.webhook);
                }
                None => corrupt.push(key.value()),
            }
        }
        drop(table);
        drop(read);
        let outbox = Outbox {
            db: Arc::new(db),
            depth: Arc::new(AtomicU64::new(depth)),
            max_events,
        };
        if !corrupt.is_empty() {
            error!(records = corrupt.len(), "Unreadable outbox records dropped");
            outbox.remove(&corrupt)?;
        }
        Ok((outbox, pending))
    }

    /// Hands every record waiting for the broker to `each`, oldest first,
    /// one at a time.
    pub fn for_each_pending(&self, mut each: impl FnMut(&Record)) -> Result<(), OutboxError> {
        let read = self.db.begin_read().map_err(store_err)?;
        let table = read.open_table(RECORDS).map_err(store_err)?;
        for entry in table.iter().map_err(store_err)? {
            let (key, value) = entry.map_err(store_err)?;
            if let Some(record) = decode(key.value(), value.value()) {
                each(&record);
            }
        }
        Ok(())
    }

    /// Commits `records` durably (one fsync for all of them).
    pub fn append(&self, records: &[Record]) -> Result<(), OutboxError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(store_err)?;
            for r in records {
                table
                    .insert(r.seq, encode(r).as_slice())
                    .map_err(store_err)?;
            }
        }
        txn.commit().map_err(store_err)?;
        self.depth.fetch_add(webhooks(records), Ordering::Relaxed);
        Ok(())
    }

    /// Deletes delivered records, durably (the publisher batches them).
    pub fn remove(&self, seqs: &[u64]) -> Result<(), OutboxError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut table = txn.open_table(RECORDS).map_err(store_err)?;
            for seq in seqs {
                table.remove(*seq).map_err(store_err)?;
            }
        }
        txn.commit().map_err(store_err)
    }

    /// Records from sequence number `from` on, oldest first, until they
    /// hold `messages` messages or more (the publisher reads a backlog in
    /// slices instead of holding it).
    pub fn read_from(&self, from: u64, messages: usize) -> Result<Vec<Record>, OutboxError> {
        let read = self.db.begin_read().map_err(store_err)?;
        let table = read.open_table(RECORDS).map_err(store_err)?;
        let mut records = Vec::new();
        let mut held = 0;
        for entry in table.range(from..).map_err(store_err)? {
            if held >= messages {
                break;
            }
            let (key, value) = entry.map_err(store_err)?;
            match decode(key.value(), value.value()) {
                Some(record) => {
                    held += record.messages.len();
                    records.push(record);
                }
                None => error!(seq = key.value(), "Unreadable outbox record skipped"),
            }
        }
        Ok(records)
    }

    /// Webhooks accepted and not yet delivered.
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// Marks records delivered: their webhooks leave the depth count at
    /// once; the delete follows in the background.
    pub fn delivered(&self, records: &[Record]) {
        self.depth.fetch_sub(webhooks(records), Ordering::Relaxed);
    }

    /// The configured bound, `storage.max_events`.
    pub fn max_events(&self) -> u64 {
        self.max_events
    }
}

fn webhooks(records: &[Record]) -> u64 {
    records.iter().filter(|r| r.webhook).count() as u64
}

fn encode(r: &Record) -> Vec<u8> {
    let stored = StoredRecordRef {
        webhook: r.webhook,
        accepted_at_ms: r.accepted_at_ms,
        messages: r
            .messages
            .iter()
            .map(|m| StoredMessageRef {
                topic: &m.topic,
                payload: &m.payload,
                retain: m.retain,
            })
            .collect(),
    };
    // Serializing strings, byte vectors and integers into a Vec cannot fail.
    postcard::to_allocvec(&stored).unwrap_or_default()
}

fn decode(seq: u64, bytes: &[u8]) -> Option<Record> {
    let stored: StoredRecord = postcard::from_bytes(bytes).ok()?;
    Some(Record {
        seq,
        webhook: stored.webhook,
        accepted_at_ms: stored.accepted_at_ms,
        messages: stored
            .messages
            .into_iter()
            .map(|m| Message {
                topic: m.topic,
                payload: Bytes::from(m.payload),
                retain: m.retain,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, topic: &str) -> Record {
        Record {
            seq,
            webhook: true,
            accepted_at_ms: 1_700_000_000_000 + seq,
            messages: vec![
                Message::retained(format!("{topic}/state"), "printing"),
                Message {
                    topic: format!("{topic}/event"),
                    payload: Bytes::from_static(b"\x00\xff binary"),
                    retain: false,
                },
            ],
        }
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (outbox, pending) = Outbox::open(dir.path(), 10).unwrap();
            assert_eq!(pending, Pending::default());
            outbox.append(&[record(1, "a"), record(2, "b")]).unwrap();
            let mut bridge_own = record(9, "homeassistant");
            bridge_own.webhook = false;
            outbox.append(&[bridge_own]).unwrap();
            assert_eq!(outbox.depth(), 2, "only webhooks count against the bound");
            outbox.remove(&[9]).unwrap();
            outbox.append(&[record(3, "c")]).unwrap();
            assert_eq!(outbox.depth(), 3);
            outbox.remove(&[2]).unwrap();
        }
        let (outbox, pending) = Outbox::open(dir.path(), 10).unwrap();
        let want = Pending {
            records: 2,
            first: Some(1),
            last: Some(3),
        };
        assert_eq!(pending, want);
        let mut held = Vec::new();
        outbox.for_each_pending(|r| held.push(r.clone())).unwrap();
        assert_eq!(held, vec![record(1, "a"), record(3, "c")]);
        assert_eq!(outbox.read_from(2, 1).unwrap(), vec![record(3, "c")]);
        assert_eq!(outbox.depth(), 2);
    }

    #[test]
    fn a_second_instance_cannot_open_the_same_outbox() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Outbox::open(dir.path(), 10).unwrap();
        let err = Outbox::open(dir.path(), 10).unwrap_err().to_string();
        assert!(err.contains("another print2mqtt"), "{err}");
    }
}
