//! The redb file under the outbox: creating it, the scan at start, the
//! probe that tells a full disk from a recovered one, and moving a damaged
//! file aside.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tracing::error;

use super::{CACHE_BYTES, OutboxError, PARKED, PROBE, Pending, RECORDS, codec};
use crate::event::now_ms;

/// What a scan of the store found.
#[derive(Default)]
pub(super) struct Scan {
    pub(super) pending: Pending,
    pub(super) depth: u64,
    pub(super) bytes: u64,
    pub(super) parked: u64,
    pub(super) corrupt: Vec<u64>,
}

pub(super) fn create(path: &Path) -> Result<Database, OutboxError> {
    Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OutboxError::InUse(path.to_owned()),
            e => OutboxError::Open(path.to_owned(), e.into()),
        })
}

pub(super) fn scan(db: &Database) -> Result<Scan, OutboxError> {
    let txn = db.begin_write()?;
    txn.open_table(RECORDS)?;
    txn.open_table(PARKED)?;
    txn.commit()?;
    let mut s = Scan::default();
    let read = db.begin_read()?;
    let table = read.open_table(RECORDS)?;
    for entry in table.iter()? {
        let (key, value) = entry?;
        match codec::decode(key.value(), value.value()) {
            Some(record) => {
                s.pending.records += 1;
                s.pending.first.get_or_insert(record.seq);
                s.pending.last = Some(record.seq);
                if record.webhook {
                    s.depth += 1;
                    s.bytes += record.bytes() as u64;
                }
            }
            None => s.corrupt.push(key.value()),
        }
    }
    s.parked = read.open_table(PARKED)?.len()?;
    Ok(s)
}

/// Writes and deletes a record of `bytes`, each durably.
pub(super) fn probe(db: &Database, bytes: usize) -> Result<(), OutboxError> {
    let txn = db.begin_write()?;
    txn.open_table(PROBE)?
        .insert(0, vec![0u8; bytes].as_slice())?;
    txn.commit()?;
    let txn = db.begin_write()?;
    txn.open_table(PROBE)?.remove(0)?;
    txn.commit()?;
    Ok(())
}

/// Moves a damaged store aside; returns where it went.
pub(super) fn quarantine(path: &Path, why: &OutboxError) -> Result<PathBuf, OutboxError> {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    let aside = path.with_extension(format!("redb.damaged-{}", now_ms() / 1000));
    std::fs::rename(path, &aside).map_err(|e| OutboxError::Dir(aside.clone(), e))?;
    error!(
        error = %why,
        damaged = %aside.display(),
        bytes = size,
        "The outbox was damaged: moved aside and started afresh. Webhooks accepted but not yet delivered before the damage are lost; the damaged file is kept for inspection"
    );
    Ok(aside)
}
