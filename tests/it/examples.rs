//! examples/ against the code: the Node-RED flows are importable and
//! subscribe to real topics, the Home Assistant automations name the
//! entities and events discovery publishes (tests/golden/), the systemd
//! unit's settings are a valid configuration, and examples/curl.sh gets a
//! 200 for every sample from a real bridge.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use print2mqtt::event::EventKind;
use serde_json::Value as Json;
use serde_yaml_ng::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The leaves of `print2mqtt/<p>/<leaf>` (DESIGN.md §4).
const TOPIC_LEAVES: &[&str] = &[
    "state",
    "progress",
    "time_remaining",
    "eta",
    "print_duration",
    "file",
    "z",
    "layer",
    "total_layers",
    "error",
    "problem",
    "snapshot_url",
    "snapshot",
    "last_event",
    "event",
];

/// Fields of the normalized event JSON (DESIGN.md §3), plus `event_type`,
/// which the event entity adds.
const EVENT_FIELDS: &[&str] = &[
    "event",
    "code",
    "topic",
    "source",
    "printer_id",
    "printer_name",
    "print_id",
    "file",
    "progress",
    "print_duration",
    "time_remaining",
    "eta",
    "z",
    "layer",
    "total_layers",
    "error",
    "platform_error_code",
    "snapshot_url",
    "quickview_url",
    "received_at",
    "id",
    "event_type",
];

fn event_names() -> BTreeSet<&'static str> {
    EventKind::ALL.iter().map(|k| k.name()).collect()
}

/// A subscription filter on the contract: `print2mqtt/+/<leaf>` or one
/// printer's `print2mqtt/<slug>/<leaf>`.
fn is_contract_filter(topic: &str) -> bool {
    let parts: Vec<_> = topic.split('/').collect();
    parts.len() == 3
        && parts[0] == "print2mqtt"
        && (parts[1] == "+" || print2mqtt::slug::is_valid(parts[1]))
        && TOPIC_LEAVES.contains(&parts[2])
}

#[test]
fn node_red_flows_are_importable_and_subscribe_to_the_contract() {
    let events = event_names();
    let mut files: Vec<_> = std::fs::read_dir(repo("examples/node-red"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    let mut subscribed = BTreeSet::new();
    for file in files {
        let name = file.display().to_string();
        let flow: Vec<Json> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let by_id: BTreeMap<&str, &Json> = flow
            .iter()
            .map(|n| (n["id"].as_str().expect("every node has an id"), n))
            .collect();
        assert_eq!(by_id.len(), flow.len(), "{name}: duplicate ids");
        let kind = |id: &str| by_id.get(id).map(|n| n["type"].as_str().unwrap());
        let tabs: Vec<_> = flow.iter().filter(|n| n["type"] == "tab").collect();
        assert_eq!(tabs.len(), 1, "{name}: one tab per flow");
        for node in &flow {
            let id = node["id"].as_str().unwrap();
            if let Some(z) = node["z"].as_str() {
                assert_eq!(kind(z), Some("tab"), "{name}: {id} sits on a missing tab");
            }
            for output in node["wires"].as_array().into_iter().flatten() {
                for target in output.as_array().unwrap() {
                    let target = target.as_str().unwrap();
                    assert!(by_id.contains_key(target), "{name}: {id} wires to {target}");
                }
            }
            if let Some(outputs) = node["outputs"].as_u64() {
                assert_eq!(
                    node["wires"].as_array().map(Vec::len),
                    Some(outputs as usize),
                    "{name}: {id} wires every output"
                );
            }
            let typ = node["type"].as_str().unwrap();
            let references = [
                ("mqtt ", "broker", "mqtt-broker"),
                ("ui_", "group", "ui_group"),
                ("ui_group", "tab", "ui_tab"),
            ];
            for (prefix, key, want) in references {
                let config_node = ["mqtt-broker", "ui_group", "ui_tab"].contains(&typ);
                let applies = typ.starts_with(prefix) && (!config_node || prefix == typ);
                if applies {
                    let reference = node[key].as_str().unwrap_or_default();
                    assert_eq!(kind(reference), Some(want), "{name}: {id}.{key}");
                }
            }
            match node["type"].as_str().unwrap() {
                "mqtt in" => {
                    let topic = node["topic"].as_str().unwrap();
                    assert!(is_contract_filter(topic), "{name}: {topic}");
                    assert_eq!(node["qos"], "1", "{name}: {topic} at QoS 1");
                    let datatype = if topic.ends_with("/event") {
                        "json"
                    } else {
                        "utf8"
                    };
                    assert_eq!(node["datatype"], datatype, "{name}: {topic}");
                    subscribed.insert(topic.to_owned());
                }
                "switch" => {
                    assert_eq!(node["property"], "payload.event");
                    for rule in node["rules"].as_array().unwrap() {
                        let v = rule["v"].as_str().unwrap();
                        assert!(events.contains(v), "{name}: no event `{v}`");
                    }
                }
                "function" => {
                    let code = node["func"].as_str().unwrap();
                    assert!(code.contains("return"), "{name}: {id} returns a message");
                    for field in code
                        .split("e.")
                        .skip(1)
                        .chain(code.split("msg.payload.").skip(1))
                    {
                        let field: String = field
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        assert!(
                            field.is_empty() || EVENT_FIELDS.contains(&field.as_str()),
                            "{name}: {id} reads `{field}`, not an event field"
                        );
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(
        subscribed,
        BTreeSet::from(
            [
                "print2mqtt/+/event",
                "print2mqtt/+/progress",
                "print2mqtt/+/state"
            ]
            .map(String::from)
        )
    );
}

/// Home Assistant's entity id for an entity `name` of the device `device`.
fn entity_id(component: &str, device: &str, name: &str) -> String {
    let mut slug = String::new();
    for c in format!("{device} {name}").to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('_') {
            slug.push('_');
        }
    }
    format!("{component}.{}", slug.trim_matches('_'))
}

/// Entity ids discovery creates for the golden printer, with their config.
fn discovered() -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    for platform in ["sensor", "binary_sensor", "image", "event"] {
        let snap = read(&format!("tests/golden/{platform}.snap"));
        // An insta snapshot: a `---` header, then the JSON.
        let json = snap.splitn(3, "---\n").nth(2).unwrap();
        let golden: Vec<Json> = serde_json::from_str(json).unwrap();
        for message in golden {
            let p = &message["payload"];
            let device = p["device"]["name"].as_str().unwrap();
            out.insert(
                entity_id(platform, device, p["name"].as_str().unwrap()),
                p.clone(),
            );
        }
    }
    out
}

/// Every string in a YAML tree, with the key it sits under.
fn strings<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::String(s) => out.push((key.to_owned(), s)),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, key, out)),
        Value::Mapping(m) => {
            for (k, v) in m {
                strings(v, k.as_str().unwrap_or_default(), out);
            }
        }
        _ => {}
    }
}

/// Quoted words in a template: `'failure_warning'`.
fn quoted(template: &str) -> Vec<&str> {
    template.split('\'').skip(1).step_by(2).collect()
}

#[test]
fn home_assistant_automations_use_what_discovery_publishes() {
    let automations: Vec<Value> =
        serde_yaml_ng::from_str(&read("examples/homeassistant/automations.yaml")).unwrap();
    assert_eq!(automations.len(), 3);
    let entities = discovered();
    let notification = &entities["event.ender_3_v2_notification"];
    let event_types: BTreeSet<_> = notification["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let states: BTreeSet<_> = entities["sensor.ender_3_v2_state"]["options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let mut ids = BTreeSet::new();
    let action = regex::Regex::new(r"^[a-z_]+\.[a-z0-9_]+$").unwrap();
    for a in &automations {
        let alias = a["alias"].as_str().expect("alias");
        assert!(ids.insert(a["id"].as_str().expect("id")), "{alias}: id");
        let triggers = a["triggers"]
            .as_sequence()
            .expect("triggers (2024.10 syntax)");
        assert!(!triggers.is_empty() && !a["actions"].as_sequence().unwrap().is_empty());
        for t in triggers {
            match t["trigger"].as_str().unwrap() {
                "mqtt" => {
                    let topic = t["topic"].as_str().unwrap();
                    assert!(is_contract_filter(topic), "{alias}: {topic}");
                    assert!(
                        topic.ends_with("/event"),
                        "{alias}: events, not retained topics"
                    );
                    let payload = t["payload"].as_str().unwrap();
                    assert!(event_types.contains(payload), "{alias}: {payload}");
                }
                "state" => {}
                other => panic!("{alias}: trigger {other}"),
            }
        }
        for step in a["actions"].as_sequence().unwrap() {
            assert!(action.is_match(step["action"].as_str().unwrap()), "{alias}");
        }
        let mut found = Vec::new();
        strings(a, "", &mut found);
        for (key, text) in &found {
            if key == "entity_id" {
                let theirs = ["switch.", "light."].iter().any(|p| text.starts_with(p));
                assert!(
                    theirs || entities.contains_key(*text),
                    "{alias}: {text} is not an entity discovery creates"
                );
            }
            if text.contains("event_type") {
                for word in quoted(text) {
                    assert!(event_types.contains(word), "{alias}: event type {word}");
                }
            }
            for prefix in ["payload_json.", "attributes."] {
                for rest in text.split(prefix).skip(1) {
                    let field: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    assert!(EVENT_FIELDS.contains(&field.as_str()), "{alias}: {field}");
                }
            }
        }
        if let Some(conditions) = a["conditions"].as_sequence() {
            for c in conditions.iter().filter(|c| c["condition"] == "state") {
                let state = c["state"].as_str().unwrap();
                assert!(states.contains(state), "{alias}: state {state}");
            }
        }
    }
    // The event-entity automations read the entity whose state topic is the
    // non-retained event stream.
    assert_eq!(notification["state_topic"], "print2mqtt/ender3/event");
}

fn unit_settings() -> Vec<(String, String)> {
    read("examples/print2mqtt.service")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn the_systemd_unit_keeps_the_outbox_in_its_state_directory() {
    let settings = unit_settings();
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("DynamicUser"), ["yes"]);
    assert_eq!(get("StateDirectory"), ["print2mqtt"]);
    assert_eq!(get("ConfigurationDirectory"), ["print2mqtt"]);
    assert_eq!(
        get("ExecStart"),
        ["/usr/local/bin/print2mqtt --config /etc/print2mqtt/print2mqtt.toml"]
    );
    assert_eq!(get("ProtectSystem"), ["strict"]);
    assert_eq!(
        get("RestartPreventExitStatus"),
        ["2"],
        "config errors exit 2"
    );
    let env: Vec<_> = get("Environment")
        .into_iter()
        .map(|e| e.split_once('=').unwrap())
        .collect();
    assert!(env.contains(&("PRINT2MQTT_STORAGE__DATA_DIR", "/var/lib/print2mqtt")));
    // The install page's steps put the binary and the file where the unit
    // expects them.
    let readme = read("docs/install.md");
    for step in [
        "sudo install -m 0755 target/release/print2mqtt /usr/local/bin/print2mqtt",
        "sudo install -D -m 0644 config/print2mqtt.toml /etc/print2mqtt/print2mqtt.toml",
        "sudo install -m 0644 examples/print2mqtt.service /etc/systemd/system/",
    ] {
        assert!(readme.contains(step), "docs/install.md: {step}");
    }
    // The unit's command line and environment are a valid configuration.
    let mut cmd = bin();
    cmd.arg("--config")
        .arg(repo("config/print2mqtt.toml"))
        .arg("check-config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("data_dir = \"/var/lib/print2mqtt\""));
}

/// examples/curl.sh posts every OctoEverywhere sample and replays every
/// OctoPrint-Webhooks recording; a bridge without a secret (loopback
/// sender) accepts all of them.
#[tokio::test]
async fn curl_sh_gets_200_for_every_sample() {
    let broker = Mosquitto::start();
    let bridge = print2mqtt::app::start(config(&broker.url(), ""))
        .await
        .unwrap();
    let url = format!("http://{}/webhook", bridge.http_addr());
    let mut cmd = Command::new("bash");
    cmd.arg(repo("examples/curl.sh")).args([&url, "all"]);
    let out = tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<_> = stdout.lines().collect();
    let recordings: usize = std::fs::read_dir(repo("tests/fixtures/octoprint-webhooks"))
        .unwrap()
        .map(|e| {
            read(&format!(
                "tests/fixtures/octoprint-webhooks/{}",
                e.unwrap().file_name().to_string_lossy()
            ))
            .lines()
            .count()
        })
        .sum();
    let samples = std::fs::read_dir(repo("tests/fixtures/octoeverywhere"))
        .unwrap()
        .count();
    assert_eq!(lines.len(), samples + recordings, "{stdout}");
    for line in lines {
        assert!(line.ends_with(" [200]"), "{line}");
    }
    bridge.shutdown().await;
}
