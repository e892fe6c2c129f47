//! Accepted means delivered, against a real Mosquitto that refuses packets
//! over 1 MiB and a data directory on a small tmpfs: oversize snapshots are
//! left out or set aside without blocking anything behind them, the bridge
//! does not storm the broker, and a full disk recovers without a restart.

#[path = "it/common/mod.rs"]
#[allow(dead_code)] // this crate uses part of the shared helpers
mod common;
#[path = "octoprint/expected.rs"]
#[allow(dead_code)]
mod expected;
#[path = "octoprint/recording.rs"]
mod recording;

use std::process::Command;

use common::*;
use expected::{API_SECRET, SLUG};
use print2mqtt::app;
use recording::recording;

/// Mosquitto's limit in these tests, as EMQX and many hosted brokers have.
const BROKER_MAX: u64 = 1 << 20;

fn small_broker() -> Mosquitto {
    Mosquitto::start_with(&format!("max_packet_size {BROKER_MAX}"))
}

/// An OctoPrint-Webhooks multipart body carrying a 2 MiB JPEG.
fn big_snapshot_webhook() -> (String, Vec<u8>) {
    let mp = recording("multipart-fulldata-snapshot.jsonl")
        .into_iter()
        .find(|r| r.seq == 8)
        .unwrap();
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(2 << 20, 7);
    (mp.content_type().to_owned(), mp.with_file(&jpeg))
}

fn progress(printer: &str, progress: u32) -> String {
    format!(
        r#"{{"PrinterId":"{printer}","SecretKey":"{API_SECRET}","EventType":6,"Progress":{progress}}}"#
    )
}

async fn bridge_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    request(addr, "GET", path, &[], Vec::new()).await.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_max_packet_bytes_is_left_out_and_the_rest_delivered() {
    let broker = small_broker();
    let mut cfg = config(&broker.url(), API_SECRET);
    cfg.mqtt.max_packet_bytes = BROKER_MAX;
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let mut events = Subscriber::new(broker.port, "print2mqtt/+/event").await;

    let (ct, body) = big_snapshot_webhook();
    let answer = request(addr, "POST", "/webhook", &[("content-type", &ct)], body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(events.next().await.json()["event"], "progress");
    let answer = post_json(addr, "/webhook", progress("other", 50)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(events.next().await.topic, "print2mqtt/other/event");

    let state = retained(broker.port, &format!("print2mqtt/{SLUG}/+")).await;
    assert_eq!(state[&format!("print2mqtt/{SLUG}/progress")].text(), "10");
    assert!(
        !state.contains_key(&format!("print2mqtt/{SLUG}/snapshot")),
        "the snapshot is left out"
    );
    let b = bridge_json(addr, "/api/bridge").await;
    assert_eq!(
        (&b["snapshots_dropped"], &b["parked"], &b["reconnects"]),
        (&1.into(), &0.into(), &0.into()),
        "{b}"
    );
    let metrics = request(addr, "GET", "/metrics", &[], Vec::new()).await.body;
    assert!(
        metrics.contains("print2mqtt_snapshots_dropped_total 1"),
        "{metrics}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_message_too_large_refuses_the_webhook_with_413() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), API_SECRET);
    cfg.mqtt.max_packet_bytes = 4096;
    // A device config (about 11 KB) would not fit either: per-entity
    // configs do.
    cfg.homeassistant.discovery_mode = print2mqtt::config::DiscoveryMode::Component;
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    // Text fields are capped at 1,024 characters; three bytes each, two
    // of them make a `last_event` over 4 KiB.
    let long = "€".repeat(1024);
    let body = format!(
        r#"{{"PrinterId":"big","SecretKey":"{API_SECRET}","EventType":3,"Error":"{long}","FileName":"{long}"}}"#
    );
    let answer = post_json(addr, "/webhook", body).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(
        answer.body.contains("mqtt.max_packet_bytes = 4096"),
        "{}",
        answer.body
    );
    // Nothing of it: the next webhook of another printer is the first.
    let answer = post_json(addr, "/webhook", progress("small", 1)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(broker.port, "print2mqtt/small/progress", "1").await;
    let all = retained(broker.port, "print2mqtt/#").await;
    assert!(
        all.keys().all(|t| !t.starts_with("print2mqtt/big/")),
        "{:?}",
        all.keys()
    );
    assert_eq!(all["print2mqtt/bridge/webhooks"].text(), "1");
    let printers = bridge_json(addr, "/api/printers").await;
    assert_eq!(printers.as_array().unwrap().len(), 1, "{printers}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_broker_refuses_is_set_aside_without_blocking_or_storming() {
    let broker = small_broker();
    // mqtt.max_packet_bytes left unset: the bridge learns it the hard way.
    let bridge = app::start(config(&broker.url(), API_SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();

    let (ct, body) = big_snapshot_webhook();
    let answer = request(addr, "POST", "/webhook", &[("content-type", &ct)], body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = post_json(addr, "/webhook", progress("behind", 42)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    // The webhook behind the refused snapshot is delivered.
    wait_retained(broker.port, "print2mqtt/behind/progress", "42").await;
    wait_retained(broker.port, &format!("print2mqtt/{SLUG}/progress"), "10").await;
    let mut parked = serde_json::Value::Null;
    for _ in 0..200 {
        parked = bridge_json(addr, "/api/bridge/parked").await;
        if parked["count"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(parked["count"], 1, "{parked}");
    let m = &parked["messages"][0];
    assert_eq!(m["topic"], format!("print2mqtt/{SLUG}/snapshot"));
    assert_eq!(m["reason"], "refused_by_broker");
    assert!(m["bytes"].as_u64().unwrap() > 2 << 20, "{m}");

    let b = bridge_json(addr, "/api/bridge").await;
    assert_eq!(b["outbox_depth"], 0, "{b}");
    let reconnects = b["reconnects"].as_u64().unwrap();
    assert!(
        (1..=4).contains(&reconnects),
        "one connection per strike, not a storm: {reconnects}"
    );

    // A retry puts it back; the broker refuses it again, so it is set
    // aside again: never lost, never silently deleted.
    let retry = request(
        addr,
        "POST",
        "/api/bridge/parked/retry",
        &[("content-type", "application/json")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.json()["requeued"], 1);
    let retry = request(addr, "POST", "/api/bridge/parked/retry", &[], Vec::new()).await;
    assert_eq!(
        retry.status, 415,
        "a form post cannot press it: {}",
        retry.body
    );
    bridge.shutdown().await;
}

/// A tmpfs of `mib` MiB at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, mib: u32) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the disk-full test mounts a tmpfs and must run as root (CI does)"
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_503_and_the_bridge_recovers_once_space_is_back() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(dir.path(), 8);
    let mut cfg = config(&broker.url(), API_SECRET);
    cfg.storage.data_dir = dir.path().join("data");
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    assert_eq!(
        post_json(addr, "/webhook", progress("p", 1)).await.status,
        200
    );

    // Fill the disk; keep a few webhooks coming until the store fails.
    let filler = dir.path().join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=1000"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let mut refused = None;
    for i in 2..400 {
        let answer = post_json(addr, "/webhook", progress("p", i)).await;
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a full disk refuses webhooks");
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("could not store the webhook"),
        "{}",
        refused.body
    );
    let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_ne!(ready.json()["storage"], "ok", "{}", ready.body);
    let again = post_json(addr, "/webhook", progress("p", 500)).await;
    assert_eq!(again.status, 503, "still full: {}", again.body);

    // Space is back: the bridge recovers by itself, no restart.
    std::fs::remove_file(&filler).unwrap();
    let mut ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    for _ in 0..200 {
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    }
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["storage"], "ok");
    let answer = post_json(addr, "/webhook", progress("p", 77)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(broker.port, "print2mqtt/p/progress", "77").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restarted_without_persistence_gets_every_retained_value_again() {
    let mut broker = Mosquitto::start(); // persistence off
    let bridge = app::start(config(&broker.url(), API_SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let hook = |progress: u32| {
        format!(
            r#"{{"PrinterId":"ender","SecretKey":"{API_SECRET}","EventType":6,"Progress":{progress},"FileName":"cube.gcode"}}"#
        )
    };
    assert_eq!(post_json(addr, "/webhook", hook(40)).await.status, 200);
    wait_retained(broker.port, "print2mqtt/ender/file", "cube.gcode").await;

    broker.restart(); // sessions and retained messages are gone
    // This webhook changes only the progress: it does not carry the rest.
    assert_eq!(post_json(addr, "/webhook", hook(41)).await.status, 200);
    wait_retained(broker.port, "print2mqtt/ender/progress", "41").await;
    wait_retained(broker.port, "print2mqtt/ender/file", "cube.gcode").await;
    wait_retained(broker.port, "print2mqtt/bridge/webhooks", "2").await;
    let all = retained(broker.port, "#").await;
    let topics: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        topics,
        [
            "homeassistant/device/print2mqtt_bridge/config",
            "homeassistant/device/print2mqtt_ender/config",
            "print2mqtt/bridge/last_webhook",
            "print2mqtt/bridge/state",
            "print2mqtt/bridge/version",
            "print2mqtt/bridge/webhooks",
            "print2mqtt/ender/file",
            "print2mqtt/ender/last_event",
            "print2mqtt/ender/progress",
            "print2mqtt/ender/state",
        ]
    );
    assert_eq!(all["print2mqtt/ender/state"].text(), "printing");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_counter_held_back_goes_out_at_shutdown() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), API_SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    // The first goes out with its webhook; the next two wait for the second
    // to pass, which shutdown does not.
    for p in 1..=3 {
        let answer = post_json(addr, "/webhook", progress("counted", p)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    bridge.shutdown().await;
    let all = retained(broker.port, "print2mqtt/bridge/+").await;
    assert_eq!(all["print2mqtt/bridge/webhooks"].text(), "3");
    assert_eq!(all["print2mqtt/bridge/state"].text(), "offline");
}
