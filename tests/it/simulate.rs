//! `print2mqtt simulate` (the binary) against a running bridge and a real
//! Mosquitto: a whole print arrives in MQTT and in Home Assistant
//! discovery, in order, for both dialects; refusals stop it with status 1.

use crate::common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use common::*;

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap()
}

fn simulate(url: &str, dialect: &str, secret: &str) -> Command {
    simulate_at(url, dialect, secret, "100000")
}

fn simulate_at(url: &str, dialect: &str, secret: &str, speed: &str) -> Command {
    let mut cmd = bin();
    cmd.args(["simulate", "--url", url, "--printer", "Sim Printer"])
        .args(["--dialect", dialect, "--speed", speed, "--secret", secret])
        .env_remove("PRINT2MQTT_AUTH__SECRET");
    cmd
}

const SLUG: &str = "sim_printer";

/// Runs a simulation and returns the event names the stream carried.
async fn play(dialect: &str) -> (Mosquitto, Vec<String>) {
    let broker = Mosquitto::start();
    let bridge = print2mqtt::app::start(config(&broker.url(), SECRET))
        .await
        .unwrap();
    let mut events = Subscriber::new(broker.port, &format!("print2mqtt/{SLUG}/event")).await;
    let url = format!("http://{}/webhook", bridge.http_addr());
    let out = output(simulate(&url, dialect, SECRET)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("simulated a whole print: 15 webhooks, all accepted"),
        "{stdout}"
    );
    wait_drained(bridge.http_addr()).await;
    let mut ids = BTreeSet::new();
    let names = events
        .sync()
        .await
        .into_iter()
        .map(|m| m.json())
        // QoS 1 may deliver twice; the id tells.
        .filter(|e| ids.insert(e["id"].as_str().unwrap().to_owned()))
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    bridge.shutdown().await;
    (broker, names)
}

const PROGRESS_4: [&str; 4] = ["progress"; 4];

#[tokio::test]
async fn an_octoeverywhere_print_plays_out_in_mqtt_and_home_assistant() {
    let (broker, events) = play("octoeverywhere").await;
    let mut expected = vec!["started", "first_layer_complete"];
    expected.extend(["progress"; 5]);
    expected.extend(["paused", "resumed"]);
    expected.extend(PROGRESS_4);
    expected.extend(["complete", "bed_cooldown_complete"]);
    assert_eq!(events, expected);

    let base = format!("print2mqtt/{SLUG}");
    let values = retained(broker.port, &format!("{base}/+")).await;
    let value = |leaf: &str| values[&format!("{base}/{leaf}")].text();
    assert_eq!(value("state"), "idle", "after the bed cooled down");
    assert_eq!(value("progress"), "100");
    assert_eq!(value("problem"), "OFF");
    assert_eq!(value("time_remaining"), "0");
    assert_eq!(value("file"), "simulated_benchy.gcode");
    assert_eq!(value("total_layers"), "240");
    assert_eq!(value("layer"), "240");
    assert!(!values.contains_key(&format!("{base}/eta")), "eta cleared");

    // Home Assistant: the printer is a device with its entities.
    let topic = format!("homeassistant/device/print2mqtt_{SLUG}/config");
    let configs = retained(broker.port, &topic).await;
    let config = configs
        .get(&topic)
        .unwrap_or_else(|| panic!("{topic} missing: {:?}", configs.keys()))
        .json();
    assert_eq!(config["device"]["name"], "Sim Printer");
    for (object, platform) in [
        ("state", "sensor"),
        ("progress", "sensor"),
        ("notification", "event"),
    ] {
        assert_eq!(config["cmps"][object]["platform"], platform, "{object}");
    }
}

#[tokio::test]
async fn an_octoprint_print_plays_out_in_mqtt() {
    let (broker, events) = play("octoprint").await;
    // OctoPrint-Webhooks has no first-layer or bed-cooldown topic: the
    // simulator sends those as "Custom Event".
    let mut expected = vec!["started", "custom"];
    expected.extend(["progress"; 5]);
    expected.extend(["paused", "resumed"]);
    expected.extend(PROGRESS_4);
    expected.extend(["complete", "custom"]);
    assert_eq!(events, expected);
    let base = format!("print2mqtt/{SLUG}");
    wait_retained(broker.port, &format!("{base}/state"), "complete").await;
    wait_retained(broker.port, &format!("{base}/progress"), "100").await;
    let last = retained(broker.port, &format!("{base}/last_event")).await;
    let last = last[&format!("{base}/last_event")].json();
    assert_eq!(last["source"], "octoprint");
    assert_eq!(last["topic"], "Bed cooldown complete");
}

#[tokio::test]
async fn a_refused_webhook_stops_the_simulation_with_status_1() {
    let broker = Mosquitto::start();
    let bridge = print2mqtt::app::start(config(&broker.url(), SECRET))
        .await
        .unwrap();
    let url = format!("http://{}/webhook", bridge.http_addr());
    let out = output(simulate(&url, "octoeverywhere", "wrong-secret")).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the bridge answered 401 to `started`"),
        "{stderr}"
    );
    bridge.shutdown().await;

    let out = output(simulate(&url, "octoeverywhere", SECRET)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot reach the bridge at {url} (started)")),
        "{stderr}"
    );
    let out = output(simulate_at(&url, "octoeverywhere", SECRET, "0")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed must be a positive number"));
}
