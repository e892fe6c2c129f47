//! The disk-full fault: fill the bridge's tmpfs until a webhook is refused,
//! check `/readyz`, free the space, and expect the bridge to recover by
//! itself.

use std::time::{Duration, Instant};

use super::common::checker::Sent;
use super::common::webhooks::{self, Answer, Snap};
use super::common::{self, TIMEOUT, request};
use super::{DISK_TRIES, RECOVERY, Round};
use rand::RngExt;

impl Round {
    /// One webhook, alone, recorded with `disk_full` set.
    async fn one_on_full_disk(&mut self, snap: Snap) -> Answer {
        let ops = self.hooks.op_printers();
        let p = ops[self.rng.random_range(0..ops.len())].clone();
        let hook = self.hooks.next(&mut self.rng, &p, snap);
        let answer = webhooks::post(self.addr(), &hook).await;
        self.sent.push(Sent {
            hook,
            answer: answer.clone(),
            during_kill: false,
            disk_full: true,
        });
        answer
    }

    /// Fills the disk until a webhook is refused (503, and `/readyz` 503),
    /// frees it, and expects the bridge to take webhooks again by itself.
    pub(super) async fn disk_full(&mut self) {
        let fs = self.tmpfs.as_ref().expect("a tmpfs");
        let filled = fs.fill();
        self.done.disk_full += 1;
        let mut refused = None;
        for _ in 0..DISK_TRIES {
            match self.one_on_full_disk(Snap::Large).await {
                Answer::Status(503, body) => {
                    refused = Some(body);
                    break;
                }
                Answer::Accepted => {}
                other => {
                    refused = Some(format!("{other:?}"));
                    break;
                }
            }
        }
        match refused {
            None => self.violations.push(format!(
                "disk full ({filled} B filler): {DISK_TRIES} webhooks with 256 KiB snapshots all answered 200"
            )),
            Some(_) => {
                // /readyz is 503 without a broker anyway: ask it once the
                // bridge is connected.
                let ready = self.readyz_connected().await;
                if ready.status != 503 {
                    self.violations.push(format!(
                        "disk full: webhooks get 503 but /readyz answered {}: {}",
                        ready.status, ready.body
                    ));
                }
            }
        }
        self.tmpfs.as_ref().unwrap().free();
        let deadline = Instant::now() + RECOVERY;
        let last = loop {
            let ready = request(self.addr(), "GET", "/readyz", &[], Vec::new()).await;
            let why = if ready.status == 200 {
                match self.one_on_full_disk(Snap::Small).await {
                    Answer::Accepted => return,
                    a => format!("/readyz 200, webhook {a:?}"),
                }
            } else {
                format!("/readyz {}: {}", ready.status, ready.body)
            };
            if Instant::now() > deadline {
                break why;
            }
            // The deliberate pace of a sender retrying after a 503.
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        self.violations.push(format!(
            "disk space back, but the bridge still refuses webhooks after {RECOVERY:?} ({last}); restarted it to go on"
        ));
        self.restart_bridge(true).await;
    }

    /// `/readyz` once it says the broker is connected (or after
    /// [`TIMEOUT`], as it is then).
    async fn readyz_connected(&self) -> common::Answer {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let ready = request(self.addr(), "GET", "/readyz", &[], Vec::new()).await;
            if ready.json()["broker"] == "connected" || Instant::now() > deadline {
                return ready;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
