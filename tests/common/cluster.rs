//! Several bridges serving the same printers: Home Assistant's availability
//! rule evaluated from retained topics, and the scale-out topology (three
//! nats-server nodes with JetStream and MQTT listeners, HAProxy, three
//! bridge processes; docs/scale-out.md) on free loopback ports.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Msg;

/// Home Assistant's availability rule for one entity config: with
/// `availability` (a list) and `availability_mode: any`, available while
/// any listed topic's retained value is its `payload_available`; with
/// `all`, while every one is; with `availability_topic`, while that one is.
/// Topics without a retained value count as not available.
pub fn ha_available(entity: &Value, retained: &BTreeMap<String, Msg>) -> bool {
    let says = |topic: &str, online: &str| retained.get(topic).is_some_and(|m| m.text() == online);
    if let Some(topic) = entity["availability_topic"].as_str() {
        let online = entity["payload_available"].as_str().unwrap_or("online");
        return says(topic, online);
    }
    let list = entity["availability"]
        .as_array()
        .expect("an entity config with availability");
    let up = list.iter().map(|a| {
        let topic = a["topic"].as_str().expect("availability topic");
        says(topic, a["payload_available"].as_str().unwrap_or("online"))
    });
    match entity["availability_mode"].as_str().unwrap_or("latest") {
        "any" => up.into_iter().any(|u| u),
        "all" => up.into_iter().all(|u| u),
        other => panic!("availability_mode {other} is not evaluated here"),
    }
}

/// The state topics an entity's availability follows.
pub fn availability_topics(entity: &Value) -> Vec<String> {
    if let Some(topic) = entity["availability_topic"].as_str() {
        return vec![topic.to_owned()];
    }
    entity["availability"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["topic"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
