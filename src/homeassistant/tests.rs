//! Rules Home Assistant enforces (docs/home-assistant.md), checked on every config.

use std::collections::HashSet;

use serde_json::Value;

use super::*;
use crate::event::{EventKind, Status};

fn ctx(prefix: &str) -> Context {
    let ha = config::HomeAssistant {
        discovery_prefix: prefix.into(),
        ..config::HomeAssistant::default()
    };
    Context::new(&ha, Topics::new("print2mqtt"), "1.2.3")
}

fn view() -> PrinterView {
    PrinterView {
        slug: "ender3".into(),
        name: "Ender 3".into(),
        source: Some(Source::OctoEverywhere),
        configuration_url: Some("https://octoeverywhere.com/quickview?id=Q".into()),
        app_connection: true,
    }
}

fn json(m: &Message) -> Value {
    serde_json::from_slice(&m.payload).unwrap()
}

fn all() -> Vec<Message> {
    let c = ctx("homeassistant");
    let mut all = configs(&view(), &c);
    all.extend(bridge_configs(&c));
    all
}

#[test]
fn every_config_follows_the_rules() {
    let mut unique_ids = HashSet::new();
    let mut topics = HashSet::new();
    for m in all() {
        assert!(m.retain, "{}", m.topic);
        assert!(topics.insert(m.topic.clone()), "duplicate {}", m.topic);
        let j = json(&m);
        let (component, node, object) = ctx("homeassistant").discovery.parse(&m.topic).unwrap();
        assert!(node.starts_with("print2mqtt_"));
        assert!(
            object
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "{object}"
        );
        assert!(j["device"]["name"].is_string(), "{}: device name", m.topic);
        assert_eq!(j["device"]["identifiers"][0], node);
        assert_eq!(j["origin"]["name"], "print2mqtt");
        assert_eq!(j["origin"]["sw_version"], "1.2.3");
        assert!(
            j["origin"]["support_url"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
        assert!(j.get("object_id").is_none(), "{}: object_id", m.topic);
        assert!(
            !(j.get("content_type").is_some() && j.get("url_topic").is_some()),
            "{}",
            m.topic
        );
        if component == "device_automation" {
            assert!(j.get("unique_id").is_none() && j.get("availability_topic").is_none());
            continue;
        }
        let uid = j["unique_id"].as_str().unwrap();
        assert_eq!(uid, format!("{node}_{object}"));
        assert!(unique_ids.insert(uid.to_owned()), "duplicate {uid}");
        assert!(j["name"].is_string());
    }
}

#[test]
fn printer_configs_cover_the_entity_table() {
    let objects: Vec<String> = configs(&view(), &ctx("homeassistant"))
        .iter()
        .map(|m| m.topic.trim_start_matches("homeassistant/").to_owned())
        .collect();
    let mut want: Vec<String> = [
        "sensor/state",
        "sensor/progress",
        "sensor/time_remaining",
        "sensor/eta",
        "sensor/print_duration",
        "sensor/file",
        "sensor/z",
        "sensor/layer",
        "sensor/total_layers",
        "sensor/error",
        "sensor/last_event",
        "sensor/app_connection",
        "binary_sensor/printing",
        "binary_sensor/problem",
        "image/snapshot",
        "image/snapshot_jpeg",
        "event/notification",
    ]
    .iter()
    .map(|s| {
        let (c, o) = s.split_once('/').unwrap();
        format!("{c}/print2mqtt_ender3/{o}/config")
    })
    .collect();
    want.extend(
        EventKind::ALL
            .iter()
            .map(|k| format!("device_automation/print2mqtt_ender3/{k}/config")),
    );
    assert_eq!(objects, want);
    let without = PrinterView {
        app_connection: false,
        ..view()
    };
    let without: Vec<_> = configs(&without, &ctx("homeassistant"));
    assert_eq!(without.len(), objects.len() - 1, "only with an app_token");
    assert!(!without.iter().any(|m| m.topic.contains("app_connection")));
}

#[test]
fn enum_options_and_event_types_are_complete() {
    let msgs = configs(&view(), &ctx("homeassistant"));
    let find = |t: &str| json(msgs.iter().find(|m| m.topic.contains(t)).unwrap());
    let state = find("/sensor/print2mqtt_ender3/state/");
    assert_eq!(state["device_class"], "enum");
    let options: Vec<&str> = Status::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(state["options"], serde_json::json!(options));
    assert!(state.get("unit_of_measurement").is_none() && state.get("state_class").is_none());
    let event = find("/event/");
    let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(event["event_types"], serde_json::json!(names));
    assert_eq!(event["state_topic"], "print2mqtt/ender3/event");
    let app = find("/sensor/print2mqtt_ender3/app_connection/");
    assert_eq!(app["device_class"], "enum");
    assert_eq!(app["entity_category"], "diagnostic");
    assert_eq!(app["state_topic"], "print2mqtt/ender3/app_connection");
    let options: Vec<&str> = crate::octoeverywhere::AppState::ALL
        .iter()
        .map(|s| s.name())
        .collect();
    assert_eq!(app["options"], serde_json::json!(options));
}

#[test]
fn bridge_unique_ids_never_meet_a_printers() {
    // A printer slug `bridge_<x>` gives unique ids `print2mqtt_bridge_<x>_<object>`:
    // no bridge object may end in `_<printer object>`.
    let c = ctx("homeassistant");
    let printer_objects: Vec<String> = configs(&view(), &c)
        .iter()
        .map(|m| c.discovery.parse(&m.topic).unwrap().2.to_owned())
        .collect();
    for m in bridge_configs(&c) {
        let object = c.discovery.parse(&m.topic).unwrap().2;
        for p in &printer_objects {
            assert!(!object.ends_with(&format!("_{p}")), "{object} vs {p}");
        }
    }
}

#[test]
fn the_prefix_is_honoured_and_the_view_decides() {
    let c = ctx("my/ha");
    assert!(
        configs(&view(), &c)
            .iter()
            .all(|m| m.topic.starts_with("my/ha/"))
    );
    assert_eq!(
        node_filter(&c, Some("ender3")),
        "my/ha/+/print2mqtt_ender3/+/config"
    );
    assert_eq!(node_filter(&c, None), "my/ha/+/print2mqtt_bridge/+/config");
    let topics = config_topics("ender3", &c);
    assert_eq!(
        topics,
        configs(&view(), &c)
            .into_iter()
            .map(|m| m.topic)
            .collect::<Vec<_>>()
    );
}

#[test]
fn views_take_the_configured_name_then_the_webhooks_then_the_id() {
    let mut s = PrinterState {
        printer_id: "ID-1".into(),
        ..PrinterState::default()
    };
    assert_eq!(PrinterView::new("id-1", &s, None).name, "ID-1");
    s.name = Some("Ender".into());
    assert_eq!(PrinterView::new("id-1", &s, None).name, "Ender");
    assert_eq!(PrinterView::new("id-1", &s, Some("Mine")).name, "Mine");
    assert_eq!(PrinterView::new("id-1", &s, Some(" ")).name, "Ender");
    s.quickview_url = Some("javascript:x".into());
    assert_eq!(PrinterView::new("id-1", &s, None).configuration_url, None);
}

#[test]
fn octoprint_printers_name_their_source_and_unknown_sources_name_none() {
    let c = ctx("homeassistant");
    let mut v = view();
    v.source = Some(Source::OctoPrint);
    v.configuration_url = None;
    let j = json(&configs(&v, &c)[0]);
    assert_eq!(j["device"]["manufacturer"], "OctoPrint");
    assert_eq!(j["device"]["model"], "OctoPrint-Webhooks");
    assert!(j["device"].get("configuration_url").is_none());
    v.source = None;
    let j = json(&configs(&v, &c)[0]);
    assert!(j["device"].get("manufacturer").is_none());
    assert_eq!(j["device"]["via_device"], "print2mqtt_bridge");
}
