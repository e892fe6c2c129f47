//! Golden files: every discovery payload of a fixed printer and the bridge,
//! per entity one insta snapshot per platform under tests/golden/, and the
//! two device-based configs in tests/golden/device.snap, compared exactly.
//!
//! After an intended change, run `cargo test --test it golden::` and
//! review with `cargo insta review` (docs/development.md#snapshots). Under
//! `CI=true` a missing or changed snapshot fails.

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

/// Compares the platform's configs with tests/golden/<component>.snap.
fn check(component: &str) {
    insta::with_settings!({
        snapshot_path => "../golden",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(component, render(component));
    });
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
    for p in &PLATFORMS {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(format!("{}.snap", p.component));
        assert!(path.is_file(), "{} has no golden file", p.component);
    }
}
