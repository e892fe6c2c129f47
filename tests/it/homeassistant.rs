//! Home Assistant discovery against a real Mosquitto: the exact set of
//! retained configs per printer in both discovery modes, publishing order,
//! the birth message, republishing only on change, the prefix, removal (HTTP
//! and CLI), the migration of the current release's per-entity configs and
//! two bridges on one broker.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use print2mqtt::app;
use print2mqtt::config::{Config, DiscoveryMode, Printer};

/// (component, object) of every entity of an OctoEverywhere printer.
const PRINTER_ENTITIES: [(&str, &str); 17] = [
    ("sensor", "state"),
    ("sensor", "progress"),
    ("sensor", "time_remaining"),
    ("sensor", "eta"),
    ("sensor", "print_duration"),
    ("sensor", "file"),
    ("sensor", "z"),
    ("sensor", "layer"),
    ("sensor", "total_layers"),
    ("sensor", "start_time"),
    ("sensor", "error"),
    ("sensor", "last_event"),
    ("sensor", "last_update"),
    ("binary_sensor", "printing"),
    ("binary_sensor", "problem"),
    ("image", "snapshot"),
    ("event", "notification"),
];
/// Per-entity configs of one printer: entities and device triggers.
const PER_ENTITY: usize = 17 + 19;
/// Every event name: one device trigger each.
const EVENTS: [&str; 19] = [
    "started",
    "complete",
    "failed",
    "cancelled",
    "paused",
    "resumed",
    "progress",
    "failure_warning",
    "failure_paused",
    "error",
    "first_layer_complete",
    "filament_change",
    "user_interaction",
    "notification_limit",
    "third_layer_complete",
    "bed_cooldown_complete",
    "custom",
    "test",
    "unknown",
];
const BRIDGE_ENTITIES: [(&str, &str); 4] = [
    ("sensor", "webhooks_received"),
    ("sensor", "last_webhook"),
    ("sensor", "version"),
    ("binary_sensor", "connection"),
];

/// The one device config of a printer (device mode, the default).
fn printer_configs(prefix: &str, slug: &str) -> BTreeSet<String> {
    BTreeSet::from([format!("{prefix}/device/print2mqtt_{slug}/config")])
}

fn bridge_configs(prefix: &str) -> BTreeSet<String> {
    BTreeSet::from([format!("{prefix}/device/print2mqtt_bridge/config")])
}

/// Every per-entity config of a printer (component mode).
fn component_configs(prefix: &str, slug: &str) -> BTreeSet<String> {
    let node = format!("print2mqtt_{slug}");
    PRINTER_ENTITIES
        .iter()
        .copied()
        .chain(EVENTS.iter().map(|e| ("device_automation", *e)))
        .map(|(c, o)| format!("{prefix}/{c}/{node}/{o}/config"))
        .collect()
}

fn bridge_component_configs(prefix: &str) -> BTreeSet<String> {
    BRIDGE_ENTITIES
        .iter()
        .map(|(c, o)| format!("{prefix}/{c}/print2mqtt_bridge/{o}/config"))
        .collect()
}

fn started() -> Vec<u8> {
    fixture("octoeverywhere/01-print-started.json")
}

fn renamed(sample: &str, name: &str) -> String {
    String::from_utf8(fixture(sample))
        .unwrap()
        .replace("Ender 3 V2", name)
}

/// Is this message one of the printer's (values or configs)?
fn of_printer(m: &Msg, slug: &str) -> bool {
    m.topic.starts_with(&format!("print2mqtt/{slug}/"))
        || m.topic.contains(&format!("/print2mqtt_{slug}/"))
}

fn config_topics(msgs: &[Msg], slug: &str) -> BTreeSet<String> {
    msgs.iter()
        .filter(|m| m.topic.contains(&format!("/print2mqtt_{slug}/")))
        .map(|m| m.topic.clone())
        .collect()
}

async fn start(config: Config) -> app::Bridge {
    let bridge = app::start(config).await.unwrap();
    bridge.health().wait_connected().await;
    bridge
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_webhook_publishes_exactly_its_configs_retained_before_its_values() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), OE_SECRET)).await;
    let mut live = Subscriber::new(broker.port, "#").await;
    let answer = post_json(bridge.http_addr(), "/webhook", started()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let got = live.until_leaf("event").await;
    let ours: Vec<&Msg> = got.iter().filter(|m| of_printer(m, OE_SLUG)).collect();
    let first_value = ours
        .iter()
        .position(|m| m.topic.starts_with("print2mqtt/"))
        .unwrap();
    assert_eq!(
        first_value, 1,
        "the device config comes before the first value"
    );
    assert_eq!(
        config_topics(&got, OE_SLUG),
        printer_configs("homeassistant", OE_SLUG)
    );

    let held = retained(broker.port, "homeassistant/#").await;
    let mut want = printer_configs("homeassistant", OE_SLUG);
    want.extend(bridge_configs("homeassistant"));
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    for m in held.values() {
        assert!(m.retain, "{} is retained", m.topic);
        let json = m.json();
        assert!(json.is_object(), "{}", m.topic);
        assert!(!m.text().contains(OE_SECRET), "secret in {}", m.topic);
    }
    let device = &held[&format!("homeassistant/device/print2mqtt_{OE_SLUG}/config")].json();
    assert_eq!(device["device"]["name"], "Ender 3 V2");
    assert_eq!(device["device"]["manufacturer"], "OctoEverywhere");
    assert_eq!(device["device"]["via_device"], "print2mqtt_bridge");
    assert_eq!(
        device["device"]["configuration_url"],
        "https://octoeverywhere.com/quickview?id=FUIHVMU660UFPBMS7DFRN16H"
    );
    assert_eq!(device["origin"]["sw_version"], env!("CARGO_PKG_VERSION"));
    let cmps = device["cmps"].as_object().unwrap();
    assert_eq!(cmps.len(), PER_ENTITY);
    for (component, object) in PRINTER_ENTITIES {
        assert_eq!(cmps[object]["platform"], component, "{object}");
        assert_eq!(
            cmps[object]["unique_id"],
            format!("print2mqtt_{OE_SLUG}_{object}")
        );
    }
    for event in EVENTS {
        assert_eq!(cmps[&format!("trigger_{event}")]["subtype"], event);
    }
    assert_eq!(
        cmps["state"]["state_topic"],
        format!("print2mqtt/{OE_SLUG}/state")
    );

    let everything = retained(broker.port, "#").await;
    assert!(
        everything.values().all(|m| !m.text().contains(OE_SECRET)),
        "no secret anywhere on the broker"
    );
    assert_eq!(everything["print2mqtt/bridge/webhooks"].text(), "1");
    assert_eq!(
        everything["print2mqtt/bridge/version"].text(),
        env!("CARGO_PKG_VERSION")
    );
    let last = &everything["print2mqtt/bridge/last_webhook"];
    assert_eq!(last.text(), got.last().unwrap().json()["received_at"]);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistants_birth_message_republishes_every_config() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), OE_SECRET)).await;
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(
        post_json(bridge.http_addr(), "/webhook", started())
            .await
            .status,
        200
    );
    live.until_leaf("event").await;
    let stats = bridge.health().stats().clone();
    wait_until("the bridge to listen for Home Assistant's birth", || {
        stats.subscribed.load(std::sync::atomic::Ordering::Relaxed) > 0
    });

    live.publish("homeassistant/status", "online", false).await;
    let mut missing = printer_configs("homeassistant", OE_SLUG);
    missing.extend(bridge_configs("homeassistant"));
    while !missing.is_empty() {
        let m = live.next().await;
        if missing.remove(&m.topic) {
            assert!(m.json().is_object(), "{}", m.topic);
        }
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_republished_when_the_name_changes_and_only_then() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), OE_SECRET)).await;
    let addr = bridge.http_addr();
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(post_json(addr, "/webhook", started()).await.status, 200);
    assert_eq!(
        config_topics(&live.until_leaf("event").await, OE_SLUG).len(),
        1
    );

    let progress = fixture("octoeverywhere/06-print-progress.json");
    assert_eq!(post_json(addr, "/webhook", progress).await.status, 200);
    let got = live.until_leaf("event").await;
    assert!(
        !got.iter().any(|m| m.topic.starts_with("homeassistant/")),
        "same name: no config again"
    );

    let body = renamed("octoeverywhere/06-print-progress.json", "Workshop Ender");
    assert_eq!(post_json(addr, "/webhook", body).await.status, 200);
    let got = live.until_leaf("event").await;
    let configs: Vec<&Msg> = got
        .iter()
        .filter(|m| m.topic.contains(&format!("/print2mqtt_{OE_SLUG}/")))
        .collect();
    assert_eq!(configs.len(), 1);
    assert!(
        configs
            .iter()
            .all(|m| m.json()["device"]["name"] == "Workshop Ender")
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_republishes_only_configs_that_changed() {
    let broker = Mosquitto::start();
    let cfg = config(&broker.url(), OE_SECRET);
    let first = start(cfg.clone()).await;
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(
        post_json(first.http_addr(), "/webhook", started())
            .await
            .status,
        200
    );
    live.until_leaf("event").await;
    first.shutdown().await;

    // Same version, same name: the retained configs stand.
    let second = start(cfg.clone()).await;
    let progress = fixture("octoeverywhere/06-print-progress.json");
    assert_eq!(
        post_json(second.http_addr(), "/webhook", progress.clone())
            .await
            .status,
        200
    );
    let got = live.until_leaf("event").await;
    let configs: Vec<&str> = got
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(configs.is_empty(), "republished: {configs:?}");
    second.shutdown().await;

    // A configured name: this printer's configs change, the bridge's do not.
    let mut named = cfg;
    named.printers.insert(
        "5KL9F8YYLBEG1RHDSV3UCDRD4PM4HU0Z7X0ZD867QTTIDVZ5ORA1368TLM42".into(),
        Printer {
            name: "Garage printer".into(),
            ..Printer::default()
        },
    );
    let third = start(named).await;
    assert_eq!(
        post_json(third.http_addr(), "/webhook", progress)
            .await
            .status,
        200
    );
    let got = live.until_leaf("event").await;
    let configs: Vec<&Msg> = got
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .collect();
    assert_eq!(
        configs
            .iter()
            .map(|m| m.topic.clone())
            .collect::<BTreeSet<_>>(),
        printer_configs("homeassistant", OE_SLUG)
    );
    assert!(
        configs
            .iter()
            .all(|m| m.json()["device"]["name"] == "Garage printer")
    );
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_off_publishes_no_config_and_the_prefix_is_honoured() {
    let broker = Mosquitto::start();
    let mut off = config(&broker.url(), OE_SECRET);
    off.homeassistant.discovery = false;
    let bridge = start(off).await;
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(
        post_json(bridge.http_addr(), "/webhook", started())
            .await
            .status,
        200
    );
    let got = live.until_leaf("event").await;
    assert!(!got.iter().any(|m| m.topic.starts_with("homeassistant/")));
    bridge.shutdown().await;
    let everything = retained(broker.port, "#").await;
    assert!(
        everything.keys().all(|t| t.starts_with("print2mqtt/")),
        "{:?}",
        everything.keys()
    );

    let mut custom = config(&broker.url(), OE_SECRET);
    custom.homeassistant.discovery_prefix = "ha-test/discovery".into();
    custom.homeassistant.status_topic = "ha-test/status".into();
    let bridge = start(custom).await;
    assert_eq!(
        post_json(bridge.http_addr(), "/webhook", started())
            .await
            .status,
        200
    );
    live.until_leaf("event").await;
    let held = retained(broker.port, "ha-test/discovery/#").await;
    let mut want = printer_configs("ha-test/discovery", OE_SLUG);
    want.extend(bridge_configs("ha-test/discovery"));
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    assert!(retained(broker.port, "homeassistant/#").await.is_empty());

    let stats = bridge.health().stats().clone();
    wait_until(
        "the bridge to listen on the configured status topic",
        || stats.subscribed.load(std::sync::atomic::Ordering::Relaxed) > 0,
    );
    live.publish("ha-test/status", "online", false).await;
    let topic = format!("ha-test/discovery/device/print2mqtt_{OE_SLUG}/config");
    live.until_topic(&topic).await;
    bridge.shutdown().await;
}

/// Every retained topic of the printer: values and configs.
async fn held_by(port: u16, slug: &str) -> BTreeSet<String> {
    retained(port, "#")
        .await
        .into_values()
        .filter(|m| of_printer(m, slug))
        .map(|m| m.topic)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_clears_the_printers_topics_and_configs() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), OE_SECRET);
    cfg.http.admin_token = print2mqtt::config::Secret::new("adm-token");
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(post_json(addr, "/webhook", started()).await.status, 200);
    live.until_leaf("event").await;
    let other = format!(r#"{{"PrinterId":"Other","SecretKey":"{OE_SECRET}","EventType":4}}"#);
    assert_eq!(post_json(addr, "/webhook", other).await.status, 200);
    live.until_leaf("event").await;

    let before = held_by(broker.port, OE_SLUG).await;
    assert_eq!(
        before.len(),
        1 + 7,
        "config and retained values: {before:?}"
    );
    let path = format!("/api/printers/{OE_SLUG}");
    let admin = [("authorization", "Bearer adm-token")];
    let denied = request(addr, "DELETE", &path, &[], Vec::new()).await;
    assert_eq!(denied.status, 401, "same access rule as GET /api/printers");
    let wrong = request(addr, "POST", &path, &admin, Vec::new()).await;
    assert_eq!(wrong.status, 405);

    let answer = request(addr, "DELETE", &path, &admin, Vec::new()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["printer"], OE_SLUG);
    // Every retained topic is cleared, the configs before the values.
    let mut pending = before.clone();
    let mut order = Vec::new();
    while !pending.is_empty() {
        let m = live.next().await;
        if pending.remove(&m.topic) {
            assert!(m.payload.is_empty(), "{} cleared", m.topic);
            order.push(m.topic.starts_with("homeassistant/"));
        }
    }
    assert!(order[0], "the config first");
    assert!(held_by(broker.port, OE_SLUG).await.is_empty());
    assert!(
        !held_by(broker.port, "other").await.is_empty(),
        "other printers stay"
    );
    assert_eq!(
        retained(broker.port, "homeassistant/device/print2mqtt_bridge/config")
            .await
            .len(),
        1
    );

    let again = request(addr, "DELETE", &path, &admin, Vec::new()).await;
    assert_eq!(again.status, 404, "{}", again.body);
    let list = request(addr, "GET", "/api/printers", &admin, Vec::new()).await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
    // By printer id, any case.
    let by_id = request(addr, "DELETE", "/api/printers/OTHER", &admin, Vec::new()).await;
    assert_eq!(
        (by_id.status, by_id.json()["printer"].as_str()),
        (200, Some("other"))
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_printer_command_clears_what_the_broker_holds() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), OE_SECRET)).await;
    let addr = bridge.http_addr();
    let mut live = Subscriber::new(broker.port, "#").await;
    assert_eq!(post_json(addr, "/webhook", started()).await.status, 200);
    live.until_leaf("event").await;
    let other = format!(r#"{{"PrinterId":"other","SecretKey":"{OE_SECRET}","EventType":4}}"#);
    assert_eq!(post_json(addr, "/webhook", other).await.status, 200);
    live.until_leaf("event").await;
    bridge.shutdown().await;
    assert_eq!(held_by(broker.port, OE_SLUG).await.len(), 1 + 7);

    let dir = tempfile::tempdir().unwrap();
    let run = |printer: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_print2mqtt"))
            .args(["remove-printer", printer])
            .current_dir(dir.path())
            .env_remove("PRINT2MQTT_CONFIG")
            .env("PRINT2MQTT_MQTT__URL", broker.url())
            .env("RUST_LOG", "warn")
            .output()
    };
    // By the printer id as the webhook sent it.
    let out = run("5KL9F8YYLBEG1RHDSV3UCDRD4PM4HU0Z7X0ZD867QTTIDVZ5ORA1368TLM42")
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "removed printer `{OE_SLUG}`: cleared 7 retained topics and 1 discovery configs"
        )),
        "{stdout}"
    );
    assert!(held_by(broker.port, OE_SLUG).await.is_empty());
    assert!(!held_by(broker.port, "other").await.is_empty());

    let out = run(OE_SLUG).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("no printer `{OE_SLUG}`")),
        "{stderr}"
    );
}

/// A webhook for printer `n` of many (ids FLEET000..).
fn fleet(n: usize, event_type: u32, name: &str) -> String {
    format!(
        r#"{{"PrinterId":"FLEET{n:03}","SecretKey":"{OE_SECRET}","EventType":{event_type},"PrinterName":"{name}","Progress":40}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_many_printers_the_start_up_check_runs_in_the_background_and_republishes_only_changes()
{
    // More restored printers than the bridge compares before listening.
    const PRINTERS: usize = 120;
    let broker = Mosquitto::start();
    let cfg = config(&broker.url(), OE_SECRET);
    let first = start(cfg.clone()).await;
    for n in 0..PRINTERS {
        let answer = post_json(first.http_addr(), "/webhook", fleet(n, 1, "Fleet")).await;
        assert_eq!(answer.status, 200);
    }
    wait_drained(first.http_addr()).await;
    first.shutdown().await;

    // Printer 7 gets a configured name: its configs change, no one else's.
    let mut named = cfg;
    named.printers.insert(
        "FLEET007".into(),
        Printer {
            name: "Renamed".into(),
            ..Printer::default()
        },
    );
    let mut live = Subscriber::new(broker.port, "#").await;
    let second = start(named).await;
    // Webhooks while the check may still run publish no configs of their own.
    for n in [0, 7] {
        let answer = post_json(second.http_addr(), "/webhook", fleet(n, 6, "Fleet")).await;
        assert_eq!(answer.status, 200);
    }
    let want = printer_configs("homeassistant", "fleet007");
    let mut got = Vec::new();
    while config_topics(&got, "fleet007") != want {
        got.push(live.next().await);
    }
    // Then a completion: every message before it in the stream is what the
    // restart published.
    let answer = post_json(second.http_addr(), "/webhook", fleet(0, 2, "Fleet")).await;
    assert_eq!(answer.status, 200);
    loop {
        let m = live.next().await;
        let done = m.topic == "print2mqtt/fleet000/state" && m.text() == "complete";
        got.push(m);
        if done {
            break;
        }
    }
    let configs: Vec<&Msg> = got
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .collect();
    let others: Vec<&str> = configs
        .iter()
        .filter(|m| !m.topic.contains("/print2mqtt_fleet007/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert!(others.is_empty(), "republished: {others:?}");
    assert_eq!(configs.len(), want.len(), "each changed config once");
    assert!(
        configs
            .iter()
            .all(|m| m.json()["device"]["name"] == "Renamed"),
        "printer 7's configs carry its new name"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn component_mode_publishes_one_config_per_entity() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), OE_SECRET);
    cfg.homeassistant.discovery_mode = DiscoveryMode::Component;
    let bridge = start(cfg).await;
    let mut live = Subscriber::new(broker.port, "#").await;
    let answer = post_json(bridge.http_addr(), "/webhook", started()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got = live.until_leaf("event").await;
    let ours: Vec<&Msg> = got.iter().filter(|m| of_printer(m, OE_SLUG)).collect();
    assert!(
        ours[..PER_ENTITY]
            .iter()
            .all(|m| m.topic.starts_with("homeassistant/"))
    );
    let held = retained(broker.port, "homeassistant/#").await;
    let mut want = component_configs("homeassistant", OE_SLUG);
    want.extend(bridge_component_configs("homeassistant"));
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    let state = held[&format!("homeassistant/sensor/print2mqtt_{OE_SLUG}/state/config")].json();
    assert_eq!(state["device"]["name"], "Ender 3 V2");
    assert_eq!(state["origin"]["name"], "print2mqtt");
    assert!(held.values().all(|m| m.retain));
    bridge.shutdown().await;
}

/// The printer of the release fixture, as the broker holds it: its last
/// event arrived just now (a snapshot URL days old would be cleared).
fn release_last_event() -> String {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    format!(
        r#"{{"event":"progress","code":6,"source":"octoeverywhere","printer_id":"ender3","printer_name":"Ender 3 V2","quickview_url":"https://octoeverywhere.com/quickview?id=FUIHVMU660UFPBMS7DFRN16H","received_at":"{now}","id":"01JDZ3Q7R8X1N4S5T6V7W8Y9Z0"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_releases_per_entity_configs_migrate_to_device_configs() {
    let broker = Mosquitto::start();
    // What the current release left on the broker: its per-entity configs
    // (tests/fixtures/homeassistant, its golden files) and a printer.
    let release: Vec<serde_json::Value> =
        serde_json::from_slice(&fixture("homeassistant/release-0.1.0-configs.json")).unwrap();
    assert_eq!(release.len(), 16 + 19 + 4 + 1);
    let seed = Subscriber::new(broker.port, "seed/#").await;
    for c in &release {
        let topic = c["topic"].as_str().unwrap();
        seed.publish(topic, &c["payload"].to_string(), true).await;
    }
    seed.publish("print2mqtt/ender3/last_event", &release_last_event(), true)
        .await;
    seed.publish("print2mqtt/ender3/state", "printing", true)
        .await;
    seed.publish(
        "print2mqtt/ender3/snapshot_url",
        "https://snapshots.octoeverywhere.com/n/ABC.jpg",
        true,
    )
    .await;
    let old: BTreeSet<String> = release
        .iter()
        .map(|c| c["topic"].as_str().unwrap().to_owned())
        .collect();
    let mut seeded = old.clone();
    seeded.insert("print2mqtt/ender3/snapshot_url".into());
    seeded.insert("print2mqtt/ender3/state".into());
    seeded.insert("print2mqtt/ender3/last_event".into());
    wait_until_held(broker.port, &seeded).await;

    let mut live = Subscriber::new(broker.port, "homeassistant/#").await;
    let bridge = start(config(&broker.url(), OE_SECRET)).await;
    // The printer's device config is the last message of the migration.
    let device = "homeassistant/device/print2mqtt_ender3/config";
    let got = live.collect_until(device).await;
    let migrate = r#"{"migrate_discovery":true}"#;
    for node in ["print2mqtt_bridge", "print2mqtt_ender3"] {
        let mine: Vec<&Msg> = got
            .iter()
            .filter(|m| m.topic.contains(&format!("/{node}/")))
            .collect();
        let n = mine.len() - 1;
        // Migrate messages, then clearing messages, then the device config.
        let k = mine.iter().take_while(|m| m.text() == migrate).count();
        let (migrated, cleared) = mine[..n].split_at(k);
        // (Live copies carry no retain flag; what the broker keeps is
        // checked below.)
        assert!(cleared.iter().all(|m| m.payload.is_empty()));
        let a: BTreeSet<&str> = migrated.iter().map(|m| m.topic.as_str()).collect();
        let b: BTreeSet<&str> = cleared.iter().map(|m| m.topic.as_str()).collect();
        assert!(a.is_subset(&b), "{node}");
        let olds: BTreeSet<&str> = old
            .iter()
            .filter(|t| t.contains(&format!("/{node}/")))
            .map(String::as_str)
            .collect();
        assert_eq!(b, olds, "{node}: every old config cleared");
        let last = mine[n];
        assert_eq!(last.topic, format!("homeassistant/device/{node}/config"));
    }
    // The JPEG image the release gave every printer is not migrated, only
    // cleared (an OctoEverywhere printer sends URLs), nor is the App
    // Connection entity of a printer without an app_token.
    for gone in [
        "image/print2mqtt_ender3/snapshot_jpeg",
        "sensor/print2mqtt_ender3/app_connection",
    ] {
        let topic = format!("homeassistant/{gone}/config");
        assert!(got.iter().any(|m| m.topic == topic && m.payload.is_empty()));
        assert!(!got.iter().any(|m| m.topic == topic && m.text() == migrate));
    }
    let migrated: BTreeSet<&str> = got
        .iter()
        .filter(|m| m.text() == migrate)
        .map(|m| m.topic.as_str())
        .collect();
    let not: Vec<&String> = old
        .iter()
        .filter(|t| !migrated.contains(t.as_str()))
        .collect();
    assert_eq!(migrated.len(), old.len() - 2, "not migrated: {not:?}");

    // Afterwards the broker holds the device configs only, with the same
    // unique ids as before.
    let held = retained(broker.port, "homeassistant/#").await;
    let want: BTreeSet<String> = [device, "homeassistant/device/print2mqtt_bridge/config"]
        .map(str::to_owned)
        .into();
    assert_eq!(held.keys().cloned().collect::<BTreeSet<_>>(), want);
    let cmps = held[device].json()["cmps"].clone();
    for c in &release {
        let payload = &c["payload"];
        if let Some(uid) = payload["unique_id"]
            .as_str()
            .filter(|u| u.contains("ender3"))
        {
            let object = uid.trim_start_matches("print2mqtt_ender3_");
            if matches!(object, "snapshot_jpeg" | "app_connection") {
                continue;
            }
            assert_eq!(cmps[object]["unique_id"], uid);
            assert_eq!(cmps[object]["name"], payload["name"], "names kept");
        }
    }
    assert_eq!(held[device].json()["device"]["name"], "Ender 3 V2");
    bridge.shutdown().await;
}

async fn wait_until_held(port: u16, topics: &BTreeSet<String>) {
    let wait = async {
        loop {
            let held = retained(port, "#").await;
            let missing: Vec<&String> = topics.iter().filter(|t| !held.contains_key(*t)).collect();
            if missing.is_empty() {
                return;
            }
        }
    };
    tokio::time::timeout(TIMEOUT, wait)
        .await
        .expect("the seeded topics held in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_on_one_broker_keep_their_own_devices() {
    let broker = Mosquitto::start();
    let mut bridges = Vec::new();
    for base in ["farm-a", "farm-b"] {
        let mut cfg = config(&broker.url(), OE_SECRET);
        cfg.mqtt.base_topic = base.into();
        cfg.mqtt.client_id = format!("print2mqtt-{base}");
        let bridge = start(cfg).await;
        let mut live = Subscriber::new(broker.port, &format!("{base}/#")).await;
        let answer = post_json(bridge.http_addr(), "/webhook", started()).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        live.until_leaf("event").await;
        bridges.push(bridge);
    }
    let held = retained(broker.port, "homeassistant/#").await;
    let topics: BTreeSet<String> = held.keys().cloned().collect();
    let want: BTreeSet<String> = ["farm-a", "farm-b"]
        .iter()
        .flat_map(|i| {
            [
                format!("homeassistant/device/print2mqtt-{i}_bridge/config"),
                format!("homeassistant/device/print2mqtt-{i}_{OE_SLUG}/config"),
            ]
        })
        .collect();
    assert_eq!(topics, want);
    let mut ids = BTreeSet::new();
    for m in held.values() {
        let j = m.json();
        assert!(ids.insert(j["device"]["identifiers"][0].to_string()));
        for (_, c) in j["cmps"].as_object().unwrap() {
            if let Some(uid) = c["unique_id"].as_str() {
                assert!(ids.insert(uid.to_owned()), "{uid} twice");
            }
        }
    }
    let a = held[&format!("homeassistant/device/print2mqtt-farm-a_{OE_SLUG}/config")].json();
    assert_eq!(a["device"]["via_device"], "print2mqtt-farm-a_bridge");
    assert_eq!(
        a["cmps"]["state"]["state_topic"],
        format!("farm-a/{OE_SLUG}/state")
    );
    assert_eq!(
        a["cmps"]["state"]["availability_topic"],
        "farm-a/bridge/state"
    );
    for b in bridges {
        b.shutdown().await;
    }
}
