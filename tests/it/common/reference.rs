//! The fault suite's bridge probes and its fault-free reference run:
//! `/readyz` until drained, one `/metrics` counter, whether the binary knows
//! `mqtt.max_packet_bytes`, and the retained state a clean bridge and broker
//! end with after the same webhooks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::task::spawn_blocking;

use super::checker::{BASE, Sent};
use super::webhooks::{self, Answer};
use super::{Mosquitto, Msg, Process, bin, data_dir, free_port, request, retained};

/// The packet limit of every broker in the suite, as issue #14 found it.
pub const BROKER_LIMIT: &str = "max_packet_size 1048576";
/// The bridge's setting for it (issue #14, item 2).
pub const MAX_PACKET_ENV: &str = "PRINT2MQTT_MQTT__MAX_PACKET_BYTES";
/// How long a bridge may take to deliver its backlog.
pub const DELIVERY: Duration = Duration::from_secs(20);

/// Whether this bridge binary knows `mqtt.max_packet_bytes` (issue #14,
/// item 2): `check-config` refuses unknown keys.
pub fn max_packet_key_supported() -> bool {
    bin()
        .arg("check-config")
        .env(MAX_PACKET_ENV, webhooks::MAX_PACKET.to_string())
        .output()
        .expect("run print2mqtt check-config")
        .status
        .success()
}

/// Waits until `/readyz` says ready with an empty outbox, or says why not.
pub async fn drained(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + DELIVERY;
    loop {
        let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
        let json = ready.json();
        if ready.status == 200 && json["outbox_depth"] == 0 && json["republishing"] == false {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "outbox not drained {DELIVERY:?} after the last fault: /readyz {} {}",
                ready.status, ready.body
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One counter from `/metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    let page = request(addr, "GET", "/metrics", &[], Vec::new()).await;
    page.body.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The retained state a fault-free bridge and broker end with after the
/// same webhooks, sent one by one.
pub async fn reference(
    replay: &[Sent],
    env: &[(String, String)],
) -> Result<BTreeMap<String, Msg>, String> {
    let broker = Mosquitto::start_with(BROKER_LIMIT);
    let (url, env) = (broker.url(), env.to_vec());
    let bridge = spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (&**k, &**v)).collect();
        Process::start_with(&url, &data_dir(), free_port(), &env)
    })
    .await
    .expect("the fault-free bridge starts");
    for s in replay {
        let answer = webhooks::post(bridge.addr(), &s.hook).await;
        if answer != Answer::Accepted {
            return Err(format!(
                "the fault-free run did not accept webhook {}: {answer:?}",
                s.hook.marker
            ));
        }
    }
    drained(bridge.addr())
        .await
        .map_err(|e| format!("fault-free run: {e}"))?;
    Ok(retained(broker.port, &format!("{BASE}/#")).await)
}
