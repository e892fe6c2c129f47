//! The printer table: when discovery configs go out, birth, start, removal.

use super::*;
use bytes::Bytes;

use crate::config::Config;
use crate::config::Printer;
use crate::event::{EventKind, Reception, Source};
use crate::state::Field;
use time::macros::datetime;
use ulid::Ulid;

fn config() -> Config {
    let mut c = Config::default();
    c.printers.insert(
        "NAMED".into(),
        Printer {
            name: "Configured".into(),
            ..Printer::default()
        },
    );
    c
}

fn event(id: &str, name: Option<&str>) -> Event {
    let rx = Reception {
        at: datetime!(2026-11-23 10:00:00 UTC),
        id: Ulid::nil(),
    };
    let mut e = Event::new(EventKind::Progress, Source::OctoEverywhere, id.into(), rx);
    e.printer_name = name.map(str::to_owned);
    e.progress = Some(5);
    e.snapshot_url = Some(format!("https://octoeverywhere.com/s/{id}.jpg"));
    e
}

/// The same table publishing per-entity configs (the current release's
/// format).
fn component_config() -> Config {
    let mut c = config();
    c.homeassistant.discovery_mode = crate::config::DiscoveryMode::Component;
    c
}

fn topics() -> Topics {
    Topics::new("print2mqtt")
}

fn configs(messages: &[Message]) -> Vec<&str> {
    messages
        .iter()
        .filter(|m| m.topic.starts_with("homeassistant/"))
        .map(|m| m.topic.as_str())
        .collect()
}

#[test]
fn configs_go_first_and_only_when_the_printer_changes() {
    let mut p = Printers::from_config(&config());
    let (slug, first) = p.accept(&topics(), &event("E3", Some("Ender")));
    assert_eq!(slug, "e3");
    let n = configs(&first).len();
    assert_eq!(n, 1, "one device config");
    assert_eq!(first[0].topic, "homeassistant/device/print2mqtt_e3/config");
    assert!(
        first[..n]
            .iter()
            .all(|m| m.retain && m.topic.starts_with("homeassistant/"))
    );
    assert_eq!(
        first[n].topic, "print2mqtt/e3/state",
        "values after the configs"
    );
    assert_eq!(first.last().unwrap().topic, "print2mqtt/e3/event");
    let counters: Vec<(String, Bytes)> = p
        .counters(&topics())
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    assert_eq!(
        counters,
        [
            (
                "print2mqtt/bridge/webhooks".into(),
                Bytes::from_static(b"1")
            ),
            (
                "print2mqtt/bridge/last_webhook".into(),
                Bytes::from_static(b"2026-11-23T10:00:00Z")
            ),
        ]
    );

    let (_, same) = p.accept(&topics(), &event("E3", Some("Ender")));
    assert!(
        configs(&same).is_empty(),
        "unchanged configs are not republished"
    );
    let (_, nameless) = p.accept(&topics(), &event("E3", None));
    assert!(
        configs(&nameless).is_empty(),
        "no name sent: the name is kept"
    );
    let (_, renamed) = p.accept(&topics(), &event("E3", Some("Ender 3")));
    assert_eq!(configs(&renamed).len(), 1);
    let json: serde_json::Value = serde_json::from_slice(&renamed[0].payload).unwrap();
    assert_eq!(json["device"]["name"], "Ender 3");
}

#[test]
fn the_configured_name_wins_and_discovery_off_publishes_none() {
    let mut p = Printers::from_config(&config());
    let (_, m) = p.accept(&topics(), &event("named", Some("From webhook")));
    let json: serde_json::Value = serde_json::from_slice(&m[0].payload).unwrap();
    assert_eq!(json["device"]["name"], "Configured");
    let (_, m) = p.accept(&topics(), &event("named", Some("Renamed")));
    assert!(configs(&m).is_empty(), "the configured name did not change");

    let mut off = config();
    off.homeassistant.discovery = false;
    let mut p = Printers::from_config(&off);
    let (_, m) = p.accept(&topics(), &event("x", Some("X")));
    assert!(configs(&m).is_empty());
    assert!(p.birth().is_empty());
    assert!(p.discovery_filters().is_empty());
    assert_eq!(p.startup(&[]).len(), 1, "only the version");
}

#[test]
fn birth_republishes_every_config_of_every_printer_and_the_bridge() {
    let mut p = Printers::from_config(&config());
    p.accept(&topics(), &event("a", Some("A")));
    p.accept(&topics(), &event("b", Some("B")));
    let all = p.birth();
    assert_eq!(all.len(), 1 + 2);
    assert!(all.iter().all(|m| m.retain));
    assert!(all[0].topic.contains("/print2mqtt_bridge/"));
    let (_, m) = p.accept(&topics(), &event("a", Some("A")));
    assert!(configs(&m).is_empty());
}

#[test]
fn a_lost_broker_gets_every_config_and_value_again_in_slices() {
    let mut p = Printers::from_config(&config());
    p.accept(&topics(), &event("a", Some("A")));
    p.accept(&topics(), &event("b", Some("B")));
    let (first, next) = p.republish_slice(None, 1);
    let summary: Vec<(&str, &[u8])> = first
        .iter()
        .map(|m| (m.topic.as_str(), &m.payload[..]))
        .filter(|(t, _)| !t.starts_with("homeassistant/"))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "print2mqtt/bridge/version",
                env!("CARGO_PKG_VERSION").as_bytes()
            ),
            ("print2mqtt/bridge/webhooks", b"2"),
            ("print2mqtt/bridge/last_webhook", b"2026-11-23T10:00:00Z"),
            ("print2mqtt/a/state", b"printing"),
            ("print2mqtt/a/progress", b"5"),
            (
                "print2mqtt/a/snapshot_url",
                b"https://octoeverywhere.com/s/a.jpg"
            ),
        ]
    );
    assert_eq!(configs(&first).len(), 2, "the bridge's and a's");
    assert_eq!(next.as_deref(), Some("b"));
    let (rest, next) = p.republish_slice(next.as_deref(), 1);
    assert_eq!(configs(&rest), ["homeassistant/device/print2mqtt_b/config"]);
    assert_eq!(rest.len(), 1 + 3);
    assert_eq!(next, None);
}

#[test]
fn startup_publishes_only_what_differs_and_clears_stale_configs() {
    let mut earlier = Printers::from_config(&component_config());
    earlier.accept(&topics(), &event("a", Some("A")));
    let mut retained: Vec<(String, Bytes)> = earlier
        .birth()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    let stale = "homeassistant/sensor/print2mqtt_a/retired/config".to_owned();
    retained.push((stale.clone(), Bytes::from_static(b"{}")));
    let values = [
        (
            "print2mqtt/a/last_event".to_owned(),
            Bytes::from(event("a", Some("A")).to_json()),
        ),
        (
            "print2mqtt/a/snapshot_url".to_owned(),
            Bytes::from_static(b"https://octoeverywhere.com/s/a.jpg"),
        ),
    ];

    let mut p = Printers::from_config(&component_config());
    p.restore(&topics(), pairs(&values));
    assert_eq!(
        p.discovery_filters(),
        [
            "homeassistant/device/print2mqtt_bridge/config",
            "homeassistant/+/print2mqtt_bridge/+/config",
            "homeassistant/device/print2mqtt_a/config",
            "homeassistant/+/print2mqtt_a/+/config"
        ]
    );
    let start = p.startup(&retained);
    let got: Vec<(&str, usize)> = start
        .iter()
        .map(|m| (m.topic.as_str(), m.payload.len()))
        .collect();
    assert_eq!(
        got,
        [
            ("print2mqtt/bridge/version", env!("CARGO_PKG_VERSION").len()),
            (stale.as_str(), 0)
        ]
    );
    let (_, m) = p.accept(&topics(), &event("a", Some("A")));
    assert!(
        configs(&m).is_empty(),
        "restored printers are not rediscovered"
    );

    let mut fresh = Printers::from_config(&component_config());
    fresh.restore(&topics(), pairs(&values));
    assert_eq!(
        fresh.startup(&[]).len(),
        1 + 4 + 36,
        "nothing retained: all"
    );
    let mut fresh = Printers::from_config(&config());
    fresh.restore(&topics(), pairs(&values));
    assert_eq!(fresh.startup(&[]).len(), 1 + 1 + 1, "device configs");
}

#[test]
fn a_restart_in_device_mode_migrates_per_entity_configs() {
    let mut earlier = Printers::from_config(&component_config());
    earlier.accept(&topics(), &event("a", Some("A")));
    let retained: Vec<(String, Bytes)> = earlier
        .birth()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    let old: Vec<&str> = retained.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(old.len(), 4 + 36);
    let values = [
        (
            "print2mqtt/a/last_event".to_owned(),
            Bytes::from(event("a", Some("A")).to_json()),
        ),
        (
            "print2mqtt/a/snapshot_url".to_owned(),
            Bytes::from_static(b"https://octoeverywhere.com/s/a.jpg"),
        ),
    ];
    let mut p = Printers::from_config(&config());
    p.restore(&topics(), pairs(&values));
    let start = p.startup(&retained);
    let migrate = crate::homeassistant::migration::MIGRATE.as_bytes();
    // The bridge, then the printer: migrate every old config, clear every
    // one, then the device config.
    let mut at = 1;
    for (node, n) in [("print2mqtt_bridge", 4), ("print2mqtt_a", 36)] {
        let device = start[at..at + n]
            .iter()
            .chain(&start[at + n..at + 2 * n])
            .all(|m| m.retain && m.topic.contains(&format!("/{node}/")));
        assert!(device, "{node}");
        assert!(start[at..at + n].iter().all(|m| &m.payload[..] == migrate));
        assert!(
            start[at + n..at + 2 * n]
                .iter()
                .all(|m| m.payload.is_empty())
        );
        let mut migrated: Vec<&str> = start[at..at + n].iter().map(|m| m.topic.as_str()).collect();
        let mut cleared: Vec<&str> = start[at + n..at + 2 * n]
            .iter()
            .map(|m| m.topic.as_str())
            .collect();
        migrated.sort();
        cleared.sort();
        assert_eq!(migrated, cleared);
        let new = &start[at + 2 * n];
        assert_eq!(new.topic, format!("homeassistant/device/{node}/config"));
        assert!(!new.payload.is_empty());
        at += 2 * n + 1;
    }
    assert_eq!(start.len(), at);
    let mut all_old: Vec<&str> = start
        .iter()
        .filter(|m| &m.payload[..] == migrate)
        .map(|m| m.topic.as_str())
        .collect();
    let mut want = old.clone();
    all_old.sort();
    want.sort();
    assert_eq!(all_old, want, "every old config migrates");

    // Back to per-entity configs: the device config migrates.
    let device: Vec<(String, Bytes)> = p
        .birth()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    let mut back = Printers::from_config(&component_config());
    back.restore(&topics(), pairs(&values));
    let start = back.startup(&device);
    assert_eq!(
        (start[1].topic.as_str(), &start[1].payload[..]),
        ("homeassistant/device/print2mqtt_bridge/config", migrate)
    );
    assert_eq!(
        start[2].topic,
        "homeassistant/device/print2mqtt_bridge/config"
    );
    assert!(start[2].payload.is_empty());
    assert_eq!(start.len(), 1 + 2 * 2 + 4 + 36);
}

#[test]
fn the_webhook_counter_continues_after_a_restart() {
    let mut p = Printers::from_config(&config());
    p.restore(
        &topics(),
        pairs(&[(
            "print2mqtt/bridge/webhooks".into(),
            Bytes::from_static(b"41"),
        )]),
    );
    assert!(p.counters(&topics()).is_empty(), "nothing new to publish");
    p.accept(&topics(), &event("a", None));
    let m = p.counters(&topics());
    assert_eq!(m[0].topic, "print2mqtt/bridge/webhooks");
    assert_eq!(&m[0].payload[..], b"42");
}

#[test]
fn removal_by_slug_or_id_clears_configs_and_values() {
    let mut p = Printers::from_config(&config());
    p.accept(&topics(), &event("Ender 3", Some("E")));
    assert_eq!(p.remove("nobody"), None);
    let r = p.remove("ender 3").expect("case-insensitive printer id");
    assert_eq!(r.slug, "ender_3");
    assert!(!p.contains("ender_3"));
    assert_eq!(
        r.configs.len(),
        1 + 38,
        "both modes, every image and the App Connection entity's too"
    );
    assert!(
        r.configs
            .iter()
            .chain(&r.values)
            .all(|m| m.retain && m.payload.is_empty())
    );
    let leaves: Vec<&str> = r
        .values
        .iter()
        .map(|m| m.topic.rsplit('/').next().unwrap())
        .collect();
    assert!(leaves.contains(&"snapshot_url") && leaves.contains(&"last_event"));
    assert!(leaves.contains(&"app_connection"));
    assert_eq!(leaves.len(), Field::ALL.len() + 2);

    let (_, back) = p.accept(&topics(), &event("Ender 3", Some("E")));
    assert_eq!(
        configs(&back).len(),
        1,
        "a printer that returns is discovered again"
    );
    assert!(p.remove("ender_3").is_some(), "by slug");
}

#[test]
fn a_printer_with_an_app_token_is_a_device_with_an_app_connection_entity() {
    let mut c = config();
    c.printers.insert(
        "OE-1".into(),
        Printer {
            app_token: crate::config::Secret::new("tok"),
            ..Printer::default()
        },
    );
    let mut p = Printers::from_config(&c);
    assert_eq!(p.ensure("OE-1"), "oe-1");
    assert_eq!(p.state("oe-1").unwrap().printer_id(), "OE-1");
    assert!(
        p.discovery_filters()
            .iter()
            .any(|f| f.contains("print2mqtt_oe-1"))
    );
    let start = p.startup(&[]);
    let device = start
        .iter()
        .find(|m| m.topic == "homeassistant/device/print2mqtt_oe-1/config")
        .expect("configs at start, before any webhook");
    let json: serde_json::Value = serde_json::from_slice(&device.payload).unwrap();
    assert_eq!(json["cmps"]["app_connection"]["platform"], "sensor");
    let m = p.app_connection(&topics(), "OE-1", AppState::Revoked);
    assert_eq!(m.len(), 1, "configs unchanged: only the state");
    assert_eq!(
        (m[0].topic.as_str(), &m[0].payload[..], m[0].retain),
        ("print2mqtt/oe-1/app_connection", &b"revoked"[..], true)
    );
    // A printer without a token has no such entity.
    let (_, other) = p.accept(&topics(), &event("E3", None));
    assert!(
        !other
            .iter()
            .any(|m| String::from_utf8_lossy(&m.payload).contains("app_connection"))
    );
}

/// Retained `(topic, payload)` pairs as `Printers::restore` takes them.
fn pairs(retained: &[(String, Bytes)]) -> impl Iterator<Item = (&str, &Bytes)> {
    retained.iter().map(|(t, p)| (t.as_str(), p))
}

#[test]
fn a_birth_republishes_in_slices_that_cover_every_device_once() {
    let mut p = Printers::from_config(&config());
    for id in ["a", "b", "c", "d", "e"] {
        p.accept(&topics(), &event(id, Some(id)));
    }
    let (first, next) = p.birth_slice(None, 2);
    let topics_of = |m: &[Message]| -> Vec<String> { m.iter().map(|m| m.topic.clone()).collect() };
    assert_eq!(
        topics_of(&first),
        [
            "homeassistant/device/print2mqtt_bridge/config",
            "homeassistant/device/print2mqtt_a/config",
            "homeassistant/device/print2mqtt_b/config"
        ]
    );
    assert_eq!(next.as_deref(), Some("c"));
    let (second, next) = p.birth_slice(next.as_deref(), 2);
    assert_eq!(second.len(), 2);
    assert_eq!(next.as_deref(), Some("e"));
    let (last, next) = p.birth_slice(next.as_deref(), 2);
    assert_eq!(
        topics_of(&last),
        ["homeassistant/device/print2mqtt_e/config"]
    );
    assert_eq!(next, None);
    assert_eq!(p.birth().len(), 1 + 5, "all at once: the same configs");
}

#[test]
fn a_snapshot_url_is_cleared_with_its_image_before_it_expires() {
    let mut p = Printers::from_config(&config());
    let mut e = event("oe", Some("OE"));
    e.snapshot_url = Some("https://octoeverywhere.com/s/1.jpg".into());
    let (_, first) = p.accept(&topics(), &e);
    let device: serde_json::Value = serde_json::from_slice(&first[0].payload).unwrap();
    assert_eq!(device["cmps"]["snapshot"]["platform"], "image");
    let at = e.received_at;
    let almost = at + time::Duration::days(6) - time::Duration::seconds(1);
    assert!(p.expire_snapshot_urls(almost).is_empty());
    let expired = p.expire_snapshot_urls(at + time::Duration::days(6));
    assert_eq!(expired.len(), 1);
    let (slug, configs, value) = &expired[0];
    assert_eq!(slug, "oe");
    assert_eq!(configs.len(), 1, "the device config again");
    let device: serde_json::Value = serde_json::from_slice(&configs[0].payload).unwrap();
    assert!(
        device["cmps"].get("snapshot").is_none(),
        "image entity gone"
    );
    assert_eq!(
        (value.topic.as_str(), value.payload.is_empty(), value.retain),
        ("print2mqtt/oe/snapshot_url", true, true)
    );
    assert!(p.url_cleared("oe"));
    assert!(
        p.expire_snapshot_urls(at + time::Duration::days(30))
            .is_empty()
    );
    // The next URL brings the entity back.
    let (_, back) = p.accept(&topics(), &e);
    let device: serde_json::Value = serde_json::from_slice(&back[0].payload).unwrap();
    assert_eq!(device["cmps"]["snapshot"]["platform"], "image");
    assert!(!p.url_cleared("oe"));
}

#[test]
fn a_replaced_state_renders_what_the_table_that_saw_the_events_renders() {
    // One table sees both events; another gets only the first one's
    // retained values (the clustered mode's shared state), then the second.
    let mut seen = Printers::from_config(&config());
    let (slug, first) = seen.accept(&topics(), &event("E3", Some("Ender")));
    let mut second = event("E3", Some("Ender"));
    second.event = EventKind::Paused;
    second.progress = Some(40);
    let (_, want) = seen.accept(&topics(), &second);

    let mut other = Printers::from_config(&config());
    let retained: Vec<(&str, &[u8])> = first
        .iter()
        .filter(|m| m.retain && m.topic.starts_with("print2mqtt/e3/"))
        .map(|m| (m.topic.as_str(), &m.payload[..]))
        .collect();
    other.replace(&topics(), &slug, retained);
    // Its configs went out with the first event, from another bridge.
    other.entry_mut(&slug).unwrap().published = seen.entry_mut(&slug).unwrap().published;
    other.set_webhooks(1);
    let (_, got) = other.accept(&topics(), &second);
    assert_eq!(got, want);

    other.replace(&topics(), &slug, []);
    assert!(!other.contains(&slug));
}

#[test]
fn undoing_a_failed_batch_keeps_a_finished_startup_check() {
    let mut p = Printers::from_config(&config());
    let (slug, _) = p.accept(&topics(), &event("E3", Some("Ender")));
    let before = p.state(&slug).unwrap().clone();
    let check = ConfigCheck::new(&p);
    check.defer_discovery(&mut p);

    // One batch: a webhook, then the check's end; its commit fails.
    let mut undo = table::Undo::default();
    p.remember(&mut undo, &slug);
    let mut paused = event("E3", Some("Ender"));
    paused.event = EventKind::Paused;
    p.accept(&topics(), &paused);
    check.finish(&mut p);
    p.undo(undo);

    assert_eq!(p.state(&slug), Some(&before), "the webhook is undone");
    let (_, messages) = p.accept(&topics(), &event("E3", Some("Renamed")));
    assert!(
        messages
            .iter()
            .any(|m| m.topic.starts_with("homeassistant/")),
        "the check stays finished: a changed device is published"
    );
}
