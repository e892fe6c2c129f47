//! Rules Home Assistant enforces (docs/home-assistant.md), checked on every config.

use std::collections::HashSet;

use serde_json::Value;

use super::*;
use crate::event::{EventKind, Status};
use crate::mqtt::topics::Topics;

/// Per-entity configs, the current release's format.
fn ctx(prefix: &str) -> Context {
    let ha = config::HomeAssistant {
        discovery_prefix: prefix.into(),
        discovery_mode: DiscoveryMode::Component,
        ..config::HomeAssistant::default()
    };
    Context::new(&ha, Topics::new("print2mqtt"), "1.2.3")
}

/// The default: one device config per device.
fn device_ctx(base: &str) -> Context {
    Context::new(
        &config::HomeAssistant::default(),
        Topics::new(base),
        "1.2.3",
    )
}

fn view() -> PrinterView {
    PrinterView {
        slug: "ender3".into(),
        name: "Ender 3".into(),
        source: Some(Source::OctoEverywhere),
        configuration_url: Some("https://octoeverywhere.com/quickview?id=Q".into()),
        app_connection: true,
        snapshot_url: true,
        snapshot_jpeg: true,
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
        "sensor/start_time",
        "sensor/error",
        "sensor/last_event",
        "sensor/last_update",
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
        node_filters(&c, Some("ender3"))[1],
        "my/ha/+/print2mqtt_ender3/+/config"
    );
    assert_eq!(
        node_filters(&c, None),
        [
            "my/ha/device/print2mqtt_bridge/config",
            "my/ha/+/print2mqtt_bridge/+/config"
        ]
    );
    let topics = config_topics("ender3", &c);
    let mut want = vec!["my/ha/device/print2mqtt_ender3/config".to_owned()];
    want.extend(configs(&view(), &c).into_iter().map(|m| m.topic));
    assert_eq!(topics, want, "both modes");
}

#[test]
fn views_take_the_configured_name_then_the_webhooks_then_the_id() {
    let mut s = PrinterState::with_id("ID-1");
    assert_eq!(PrinterView::new("id-1", &s, None).name, "ID-1");
    s.set_name(Some("Ender"));
    assert_eq!(PrinterView::new("id-1", &s, None).name, "Ender");
    assert_eq!(PrinterView::new("id-1", &s, Some("Mine")).name, "Mine");
    assert_eq!(PrinterView::new("id-1", &s, Some(" ")).name, "Ender");
    s.set_quickview_url(Some("javascript:x"));
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

#[test]
fn a_device_config_holds_every_entity_under_cmps_with_the_same_ids() {
    let per_entity = configs(&view(), &ctx("homeassistant"));
    let c = device_ctx("print2mqtt");
    let device = configs(&view(), &c);
    assert_eq!(device.len(), 1);
    let m = &device[0];
    assert_eq!(m.topic, "homeassistant/device/print2mqtt_ender3/config");
    assert!(m.retain);
    let j = json(m);
    assert_eq!(j["device"]["name"], "Ender 3");
    assert_eq!(j["device"]["identifiers"][0], "print2mqtt_ender3");
    assert_eq!(j["device"]["via_device"], "print2mqtt_bridge");
    assert_eq!(j["origin"]["name"], "print2mqtt");
    let cmps = j["cmps"].as_object().unwrap();
    assert_eq!(cmps.len(), per_entity.len());
    for old in &per_entity {
        let (component, _, object) = ctx("homeassistant").discovery.parse(&old.topic).unwrap();
        let key = if component == "device_automation" {
            format!("trigger_{object}")
        } else {
            object.to_owned()
        };
        let cmp = &cmps[&key];
        assert_eq!(cmp["platform"], component, "{key}");
        assert!(cmp.get("device").is_none() && cmp.get("origin").is_none());
        // Apart from device and origin, the same config as per entity.
        let mut want = json(old);
        let o = want.as_object_mut().unwrap();
        o.remove("device");
        o.remove("origin");
        o.insert("platform".into(), component.into());
        assert_eq!(cmp, &want, "{key}");
    }
    let bridge = bridge_configs(&c);
    assert_eq!(bridge.len(), 1);
    assert_eq!(
        bridge[0].topic,
        "homeassistant/device/print2mqtt_bridge/config"
    );
    assert_eq!(json(&bridge[0])["cmps"].as_object().unwrap().len(), 4);
}

#[test]
fn another_base_topic_puts_an_instance_id_in_every_id() {
    let c = device_ctx("farm2");
    let j = json(&configs(&view(), &c)[0]);
    assert_eq!(j["device"]["identifiers"][0], "print2mqtt-farm2_ender3");
    assert_eq!(j["device"]["via_device"], "print2mqtt-farm2_bridge");
    assert_eq!(
        j["cmps"]["progress"]["unique_id"],
        "print2mqtt-farm2_ender3_progress"
    );
    assert_eq!(
        j["cmps"]["progress"]["state_topic"],
        "farm2/ender3/progress"
    );
    assert_eq!(
        j["cmps"]["progress"]["availability_topic"],
        "farm2/bridge/state"
    );
    let b = json(&bridge_configs(&c)[0]);
    assert_eq!(b["device"]["identifiers"][0], "print2mqtt-farm2_bridge");
    assert_eq!(
        b["cmps"]["connection"]["unique_id"],
        "print2mqtt-farm2_bridge_connection"
    );
    // The default base topic keeps the ids of existing installs.
    let d = json(&configs(&view(), &device_ctx("print2mqtt"))[0]);
    assert_eq!(
        d["cmps"]["progress"]["unique_id"],
        "print2mqtt_ender3_progress"
    );
}

#[test]
fn among_peers_every_entity_is_available_while_any_bridge_is() {
    let peers = ["b1".to_owned(), "b2".to_owned()];
    let c = Context::new(
        &config::HomeAssistant::default(),
        Topics::with_peers("print2mqtt", "b2", &peers),
        "1.2.3",
    );
    let any = serde_json::json!([
        {"topic": "print2mqtt/bridge/b1/state"},
        {"topic": "print2mqtt/bridge/b2/state"},
    ]);
    let j = json(&configs(&view(), &c)[0]);
    let b = json(&bridge_configs(&c)[0]);
    let entities = j["cmps"].as_object().unwrap().iter();
    let bridge = b["cmps"].as_object().unwrap().iter();
    for (key, e) in entities.chain(bridge) {
        if e.get("platform") == Some(&"device_automation".into()) {
            continue;
        }
        assert_eq!(e["availability"], any, "{key}");
        assert_eq!(e["availability_mode"], "any", "{key}");
        assert!(e.get("availability_topic").is_none(), "{key}");
    }
    assert_eq!(
        b["cmps"]["connection"]["state_topic"],
        "print2mqtt/bridge/state"
    );
}

#[test]
fn images_only_for_what_the_printer_sends() {
    let c = ctx("homeassistant");
    let images = |v: &PrinterView| -> Vec<String> {
        configs(v, &c)
            .into_iter()
            .filter(|m| m.topic.starts_with("homeassistant/image/"))
            .map(|m| m.topic)
            .collect()
    };
    let mut v = view();
    v.snapshot_jpeg = false;
    assert_eq!(
        images(&v),
        ["homeassistant/image/print2mqtt_ender3/snapshot/config"]
    );
    v.snapshot_url = false;
    v.snapshot_jpeg = true;
    assert_eq!(
        images(&v),
        ["homeassistant/image/print2mqtt_ender3/snapshot_jpeg/config"]
    );
    v.snapshot_jpeg = false;
    assert!(images(&v).is_empty());

    let mut s = PrinterState::with_id("X");
    s.source = Some(Source::OctoEverywhere);
    let v = PrinterView::new("x", &s, None);
    assert!(!v.snapshot_url && !v.snapshot_jpeg, "nothing sent yet");
    s.latest.restore("snapshot_url", b"https://x.example/s.jpg");
    assert!(PrinterView::new("x", &s, None).snapshot_url);
    s.latest.restore("snapshot_url", b"");
    assert!(!PrinterView::new("x", &s, None).snapshot_url, "cleared");
    s.source = Some(Source::OctoPrint);
    s.latest.restore("snapshot", b"\xff\xd8jpeg");
    assert!(PrinterView::new("x", &s, None).snapshot_jpeg);
}

#[test]
fn sensors_graph_layers_and_round_z_and_progress() {
    let msgs = configs(&view(), &ctx("homeassistant"));
    let find = |o: &str| {
        json(
            msgs.iter()
                .find(|m| m.topic == format!("homeassistant/sensor/print2mqtt_ender3/{o}/config"))
                .unwrap(),
        )
    };
    assert_eq!(find("layer")["state_class"], "measurement");
    assert_eq!(find("total_layers")["state_class"], "measurement");
    assert_eq!(find("z")["suggested_display_precision"], 2);
    assert_eq!(find("progress")["suggested_display_precision"], 0);
    let start = find("start_time");
    assert_eq!(start["device_class"], "timestamp");
    assert_eq!(start["state_topic"], "print2mqtt/ender3/last_event");
    let update = find("last_update");
    assert_eq!(update["device_class"], "timestamp");
    assert_eq!(update["entity_category"], "diagnostic");
}
