//! When a registrar calls OctoEverywhere again: a pure function of the last
//! outcome and the number of failures in a row, so the schedule is
//! unit-tested without clocks.

use std::time::Duration;

use super::api::Outcome;

/// The wait after the first failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// The longest wait between retries, before jitter.
pub const MAX_RETRY: Duration = Duration::from_secs(60 * 60);
/// Retry waits vary by up to this fraction either way, so that many
/// printers (or bridges) do not call in lockstep.
pub const JITTER: f64 = 0.2;

/// The wait after `failures` failures in a row (at least 1): doubling from
/// [`FIRST_RETRY`] up to [`MAX_RETRY`], then scaled by `1 + JITTER * jitter`
/// with `jitter` in `[-1, 1]`.
pub fn retry_delay(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let base = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    base.mul_f64(1.0 + JITTER * jitter.clamp(-1.0, 1.0))
}

/// How long to wait before the next registration, or `None` to stop: a
/// success renews after `renew`, a permanent failure stops, anything else
/// retries with [`retry_delay`].
pub fn next_delay(
    outcome: &Outcome,
    failures: u32,
    renew: Duration,
    jitter: f64,
) -> Option<Duration> {
    if outcome.is_success() {
        Some(renew)
    } else if outcome.is_permanent() {
        None
    } else {
        Some(retry_delay(failures.max(1), jitter))
    }
}
