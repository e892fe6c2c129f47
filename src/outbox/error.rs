//! The outbox's errors, and which of them mean the disk failed (close and
//! reopen) or the file itself is damaged (move it aside at start).

use std::path::PathBuf;

/// Storage failures; each is answered 503 and logged at ERROR.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("cannot create the data directory {0}: {1}")]
    Dir(PathBuf, std::io::Error),
    #[error("cannot open the outbox {0}: another print2mqtt is using this storage.data_dir")]
    InUse(PathBuf),
    #[error("cannot open the outbox {0}: {1}")]
    Open(PathBuf, redb::Error),
    #[error("outbox storage error: {0}")]
    Store(redb::Error),
}

macro_rules! store_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for OutboxError {
            fn from(e: $t) -> OutboxError {
                OutboxError::Store(e.into())
            }
        }
    )*};
}
store_errors!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::CompactionError
);

impl OutboxError {
    /// True for failures of the disk underneath (full, unwritable), after
    /// which redb must be closed and reopened.
    pub(super) fn is_fault(&self) -> bool {
        matches!(
            self,
            OutboxError::Store(
                redb::Error::Io(_) | redb::Error::PreviousIo | redb::Error::Backend(_)
            )
        )
    }

    /// True when the file itself is unreadable (not the disk under it
    /// full, read-only or forbidden): then it is moved aside at start.
    pub(super) fn is_damage(&self) -> bool {
        use std::io::ErrorKind::*;
        let e = match self {
            OutboxError::Open(_, e) | OutboxError::Store(e) => e,
            OutboxError::Dir(..) | OutboxError::InUse(_) => return false,
        };
        match e {
            redb::Error::Io(io) => !matches!(
                io.kind(),
                StorageFull | QuotaExceeded | PermissionDenied | ReadOnlyFilesystem | Interrupted
            ),
            redb::Error::PreviousIo | redb::Error::LockPoisoned(_) => false,
            _ => true,
        }
    }
}
