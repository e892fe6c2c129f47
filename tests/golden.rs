//! Golden files: every discovery payload of a fixed printer and the bridge,
//! per entity one file per platform under tests/golden/, and the two
//! device-based configs in tests/golden/device.json, compared exactly.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::path::PathBuf;

use print2mqtt::config::{DiscoveryMode, HomeAssistant};
use print2mqtt::event::Source;
use print2mqtt::homeassistant::{
    Context, PLATFORMS, PrinterView, bridge_configs, configs, platform_configs,
};
use print2mqtt::mqtt::messages::Message;
use print2mqtt::mqtt::topics::Topics;
use serde_json::{Value, json};

fn context(mode: DiscoveryMode) -> Context {
    // A pinned version, so a release does not rewrite every golden file.
    let ha = HomeAssistant {
        discovery_mode: mode,
        ..HomeAssistant::default()
    };
    Context::new(&ha, Topics::new("print2mqtt"), "1.2.3")
}

fn printer() -> PrinterView {
    PrinterView {
        slug: "ender3".into(),
        name: "Ender 3 V2".into(),
        source: Some(Source::OctoEverywhere),
        configuration_url: Some(
            "https://octoeverywhere.com/quickview?id=FUIHVMU660UFPBMS7DFRN16H".into(),
        ),
        // With an app_token and both kinds of snapshot: every entity.
        app_connection: true,
        snapshot_url: true,
        snapshot_jpeg: true,
    }
}

fn pretty(messages: Vec<Message>) -> String {
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|m| {
            let payload: Value = serde_json::from_slice(&m.payload).expect("valid JSON");
            json!({ "topic": m.topic, "retain": m.retain, "payload": payload })
        })
        .collect();
    serde_json::to_string_pretty(&messages).unwrap() + "\n"
}

/// The platform's configs as pretty JSON: `[{topic, retain, payload}]` in
/// publishing order.
fn render(component: &str) -> String {
    if component == "device" {
        let ctx = context(DiscoveryMode::Device);
        let mut all = configs(&printer(), &ctx);
        all.extend(bridge_configs(&ctx));
        return pretty(all);
    }
    let ctx = context(DiscoveryMode::Component);
    pretty(platform_configs(platform_of(component), &printer(), &ctx))
}

fn platform_of(component: &str) -> &'static print2mqtt::homeassistant::Platform {
    PLATFORMS
        .iter()
        .find(|p| p.component == component)
        .expect("platform in the table")
}

fn check(component: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{component}.json"));
    let got = render(component);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_GOLDEN=1 cargo test --test golden",
            path.display()
        )
    });
    assert!(
        got == want,
        "{component} discovery differs from {}; if intended, run \
         UPDATE_GOLDEN=1 cargo test --test golden and review the diff\n--- got\n{got}",
        path.display()
    );
}

#[test]
fn sensor() {
    check("sensor");
}

#[test]
fn binary_sensor() {
    check("binary_sensor");
}

#[test]
fn image() {
    check("image");
}

#[test]
fn event() {
    check("event");
}

#[test]
fn device_automation() {
    check("device_automation");
}

#[test]
fn device() {
    check("device");
}

#[test]
fn every_platform_has_a_golden_file() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // being written right now
    }
    for p in &PLATFORMS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{}.json", p.component));
        assert!(path.is_file(), "{} has no golden file", p.component);
    }
}
