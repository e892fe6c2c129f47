//! The backlog beyond the memory bounds: records taken in order, and the
//! ones that do not fit read back from the outbox in slices.

use super::{Loading, MEMORY_BYTES, MEMORY_MESSAGES, RETRY_READ, Spill, Task};
use crate::outbox::{OutboxError, Record};
use tracing::error;

impl Task {
    /// Takes committed records in order; past the memory bounds they stay
    /// in the outbox until [`Task::load_slice`] reads them back.
    pub(super) fn take(&mut self, records: Vec<Record>) {
        for record in records {
            if record.seq < self.next_seq {
                continue; // already read back from the outbox
            }
            if let Some(spill) = &mut self.spill {
                spill.newest = spill.newest.max(record.seq);
            } else if self.memory_full() {
                self.spill = Some(Spill {
                    from: record.seq,
                    newest: record.seq,
                });
            } else {
                self.next_seq = record.seq + 1;
                self.delivery.push(record);
            }
        }
    }

    pub(super) fn memory_full(&self) -> bool {
        self.delivery.held() >= MEMORY_MESSAGES || self.delivery.held_bytes() >= MEMORY_BYTES
    }

    /// Starts reading the next slice of a spilled backlog once memory has
    /// room for it.
    pub(super) fn load_slice(&self) -> Option<Loading> {
        let spill = self.spill?;
        if self.delivery.held() > MEMORY_MESSAGES / 2
            || self.delivery.held_bytes() > MEMORY_BYTES / 2
        {
            return None;
        }
        let outbox = self.outbox.clone();
        Some(tokio::task::spawn_blocking(move || {
            let slice = outbox.read_from(spill.from, MEMORY_MESSAGES / 2, MEMORY_BYTES / 2);
            if slice.is_err() {
                // Not a hot retry loop while the store misbehaves.
                std::thread::sleep(RETRY_READ);
            }
            slice
        }))
    }

    /// A slice read back: taken in order; a short slice ends the spill
    /// unless newer records were passed over meanwhile.
    pub(super) fn loaded(
        &mut self,
        loaded: Result<Result<Vec<Record>, OutboxError>, tokio::task::JoinError>,
    ) {
        let slice = match loaded {
            Ok(Ok(slice)) => slice,
            Ok(Err(e)) => {
                error!(error = %e, "Could not read the backlog from the outbox; retrying");
                return;
            }
            Err(e) => {
                error!(error = %e, "Outbox read task failed; retrying");
                return;
            }
        };
        let Some(spill) = self.spill else { return };
        let messages: usize = slice.iter().map(|r| r.messages.len()).sum();
        let bytes: usize = slice.iter().map(Record::bytes).sum();
        let short = messages < MEMORY_MESSAGES / 2 && bytes < MEMORY_BYTES / 2;
        for record in slice {
            if record.seq >= self.next_seq {
                self.next_seq = record.seq + 1;
                self.delivery.push(record);
            }
        }
        self.spill = if short && spill.newest < self.next_seq {
            None
        } else {
            Some(Spill {
                from: self.next_seq.max(spill.from),
                newest: spill.newest,
            })
        };
    }
}
