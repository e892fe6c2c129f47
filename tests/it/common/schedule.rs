//! The fault suite's seeded schedule: which fault comes before which
//! webhook, and its details (kind, direction, byte count, delays).

use rand::RngExt;
use rand::rngs::StdRng;

use super::proxy::{Armed, Direction, Fault};

/// The kinds of fault a round mixes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    pub proxy: bool,
    pub restart: bool,
    pub kill: bool,
    pub disk: bool,
    pub oversize: bool,
}

impl Kinds {
    pub const ALL: Kinds = Kinds {
        proxy: true,
        restart: true,
        kill: true,
        disk: true,
        oversize: true,
    };

    /// A comma-separated list (`proxy,restart,kill,disk,oversize`), or all.
    pub fn parse(list: &str) -> Kinds {
        let has = |k: &str| list.split(',').any(|x| x.trim() == k);
        for k in list.split(',') {
            let k = k.trim();
            assert!(
                ["proxy", "restart", "kill", "disk", "oversize"].contains(&k),
                "FAULTS_KINDS: unknown fault kind {k:?}"
            );
        }
        Kinds {
            proxy: has("proxy"),
            restart: has("restart"),
            kill: has("kill"),
            disk: has("disk"),
            oversize: has("oversize"),
        }
    }

    /// True when some fault can break the bridge's broker connection.
    pub fn connection_faults(&self) -> bool {
        self.proxy || self.restart || self.kill || self.disk
    }
}

/// One fault, applied before the webhook at its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Arm the proxy.
    Proxy(Armed),
    /// Restart the broker (gracefully: it keeps sessions and retained
    /// messages), while webhooks go on.
    Restart,
    /// SIGKILL the bridge `delay_ms` into the next burst of webhooks, then
    /// start it again on the same data dir.
    Kill { delay_ms: u64 },
    /// Fill the bridge's disk until a webhook is refused, then free it.
    Disk,
    /// One webhook of the next burst carries a snapshot over the broker's
    /// packet limit.
    Oversize,
}

/// The schedule of a round of `n` webhooks: `(position, step)`, sorted.
pub fn schedule(rng: &mut StdRng, n: usize, kinds: Kinds) -> Vec<(usize, Step)> {
    let mut steps = Vec::new();
    let mut add = |rng: &mut StdRng, count: usize, make: &dyn Fn(&mut StdRng) -> Step| {
        for _ in 0..count {
            let at = rng.random_range(n / 10..n * 9 / 10);
            steps.push((at, make(rng)));
        }
    };
    if kinds.proxy {
        add(rng, (n / 40).max(3), &|r| Step::Proxy(proxy_fault(r)));
    }
    if kinds.restart {
        add(rng, (n / 200).max(1), &|_| Step::Restart);
    }
    if kinds.kill {
        add(rng, (n / 200).max(1), &|r| Step::Kill {
            delay_ms: r.random_range(0..40),
        });
    }
    if kinds.disk {
        add(rng, 1 + n / 1000, &|_| Step::Disk);
    }
    if kinds.oversize {
        add(rng, (n / 100).max(2), &|_| Step::Oversize);
    }
    steps.sort_by_key(|(at, _)| *at);
    steps
}

fn proxy_fault(rng: &mut StdRng) -> Armed {
    let fault = match rng.random_range(0..100) {
        0..30 => Fault::Cut,
        30..60 => Fault::Reset,
        60..85 => Fault::Stall {
            ms: rng.random_range(50..2000),
        },
        _ => Fault::StallThenReset {
            ms: rng.random_range(100..3000),
        },
    };
    // PUBLISHes go to the broker, 4-byte PUBACKs come back: byte counts
    // that land anywhere in either, header or payload.
    let (direction, after_bytes) = if rng.random_ratio(7, 10) {
        (Direction::ToBroker, rng.random_range(0..4096))
    } else {
        (Direction::ToClient, rng.random_range(0..256))
    };
    Armed {
        fault,
        direction,
        after_bytes,
    }
}
