//! The allocator's settings and giving freed memory back to the system:
//! a farm's backlog or a start-up check can briefly hold tens of MB that
//! glibc would otherwise keep for the life of the process.

/// Freed memory the allocator may keep while busy: there it is reused at
/// once, and giving it back would only cost page faults when it is.
const KEEP_FREE_BUSY: usize = 4 << 20;
/// ... and otherwise (a farm whose printers send a webhook every few
/// minutes is not busy).
const KEEP_FREE_QUIET: usize = 256 << 10;
/// Busy: more commits than this between two upkeeps (a second apart).
pub const BUSY_COMMITS_PER_UPKEEP: u64 = 100;

/// Sets the allocator up; call first in `main`, before any other thread.
///
/// - Large buffers (snapshots of several MB) go back to the system when
///   freed. glibc raises its mmap threshold after the first large free, up
///   to 32 MiB, after which every multi-MB snapshot lands on the heap and
///   its memory is kept: 20 snapshot webhooks held about 190 MB instead of 45.
/// - Two arenas at most: one per thread (glibc's default, up to eight per
///   core) keeps each worker's freed memory apart, and 10,000 printers'
///   state spread over them held 58 MB instead of 47.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns freed memory to the system when the allocator holds more than
/// it may keep ([`KEEP_FREE_BUSY`] or [`KEEP_FREE_QUIET`]). Cheap enough
/// for a once-a-second upkeep task (it reads
/// the allocator's counters; the trim itself walks the heap only when there
/// is something to give back).
pub fn give_back(busy: bool) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // What a trim could not give back (pieces smaller than a page):
        // not worth walking the heap for again.
        static LEFT: AtomicUsize = AtomicUsize::new(0);
        let keep = if busy {
            KEEP_FREE_BUSY
        } else {
            KEEP_FREE_QUIET
        };
        // SAFETY: both only read or adjust the allocator's own bookkeeping.
        let free = unsafe { libc::mallinfo2() }.fordblks;
        // Memory used again since that trim is resident again: only what
        // is still free counts as left over.
        let left = LEFT.fetch_min(free, Ordering::Relaxed).min(free);
        if free > keep.max(left + KEEP_FREE_QUIET) {
            // SAFETY: as above.
            unsafe { libc::malloc_trim(0) };
            // SAFETY: as above.
            LEFT.store(unsafe { libc::mallinfo2() }.fordblks, Ordering::Relaxed);
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = busy;
}
