//! Availability that survives losing a bridge, against a real Mosquitto:
//! two bridges with `bridge.peers`, each with its own retained state topic
//! and last will; Home Assistant's `availability_mode: any` rule over the
//! discovery configs keeps the printer available while either is up.

use crate::common::cluster::{availability_topics, ha_available};
use crate::common::*;

const PEERS: &str = "b1,b2";

fn bridge(broker: &Mosquitto, instance: &str) -> Process {
    let env = [
        ("PRINT2MQTT_BRIDGE__INSTANCE", instance),
        ("PRINT2MQTT_BRIDGE__PEERS", PEERS),
    ];
    Process::start_with(&broker.url(), &data_dir(), free_port(), &env)
}

fn progress(printer: &str, progress: u32) -> String {
    format!(
        r#"{{"PrinterId":"{printer}","SecretKey":"{SECRET}","EventType":6,"Progress":{progress}}}"#
    )
}

/// The printer's entities with availability, each as (key, config).
async fn entities(port: u16, slug: &str) -> Vec<(String, serde_json::Value)> {
    let topic = format!("homeassistant/device/print2mqtt_{slug}/config");
    wait_until_retained(port, &topic).await;
    let device = retained(port, &topic).await[&topic].json();
    let cmps = device["cmps"].as_object().expect("a device config").clone();
    cmps.into_iter()
        .filter(|(_, c)| c.get("availability").is_some() || c.get("availability_topic").is_some())
        .collect()
}

async fn wait_until_retained(port: u16, topic: &str) {
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !retained(port, topic).await.contains_key(topic) {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic} never retained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How many of the entities Home Assistant would show available.
async fn available(port: u16, entities: &[(String, serde_json::Value)]) -> usize {
    let held = retained(port, "print2mqtt/bridge/#").await;
    entities
        .iter()
        .filter(|(_, e)| ha_available(e, &held))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printers_stay_available_while_any_bridge_is_up() {
    let broker = Mosquitto::start();
    let b1 = bridge(&broker, "b1");
    let b2 = bridge(&broker, "b2");
    wait_retained(broker.port, "print2mqtt/bridge/b1/state", "online").await;
    wait_retained(broker.port, "print2mqtt/bridge/b2/state", "online").await;
    let answer = post_json(b1.addr(), "/webhook", progress("p1", 5)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let entities = entities(broker.port, "p1").await;
    assert!(entities.len() >= 5, "{entities:?}");
    for (key, e) in &entities {
        assert_eq!(e["availability_mode"], "any", "{key}: {e}");
        assert_eq!(
            availability_topics(e),
            ["print2mqtt/bridge/b1/state", "print2mqtt/bridge/b2/state"],
            "{key}"
        );
    }
    let all = entities.len();
    assert_eq!(available(broker.port, &entities).await, all);

    b1.signal("-KILL");
    wait_retained(broker.port, "print2mqtt/bridge/b1/state", "offline").await;
    assert_eq!(available(broker.port, &entities).await, all, "b2 is up");
    let answer = post_json(b2.addr(), "/webhook", progress("p1", 6)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(broker.port, "print2mqtt/p1/progress", "6").await;

    b2.signal("-KILL");
    wait_retained(broker.port, "print2mqtt/bridge/b2/state", "offline").await;
    assert_eq!(
        available(broker.port, &entities).await,
        0,
        "no bridge is up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_bridge_keeps_the_one_state_topic() {
    let broker = Mosquitto::start();
    let b = Process::start(&broker.url(), &data_dir());
    wait_retained(broker.port, "print2mqtt/bridge/state", "online").await;
    let answer = post_json(b.addr(), "/webhook", progress("p1", 5)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let entities = entities(broker.port, "p1").await;
    for (key, e) in &entities {
        assert_eq!(availability_topics(e), ["print2mqtt/bridge/state"], "{key}");
        assert!(e.get("availability_mode").is_none(), "{key}");
    }
    let held = retained(broker.port, "print2mqtt/bridge/+/state").await;
    assert!(held.is_empty(), "{held:?}");
}
