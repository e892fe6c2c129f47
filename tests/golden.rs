//! Golden files: every discovery payload of a fixed printer and the bridge,
//! one file per platform under tests/golden/, compared exactly.
//!
//! After an intended change, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::path::PathBuf;

use print2mqtt::config::HomeAssistant;
use print2mqtt::event::Source;
use print2mqtt::homeassistant::{Context, PLATFORMS, PrinterView, platform_configs};
use print2mqtt::mqtt::topics::Topics;
use serde_json::{Value, json};

fn context() -> Context {
    // A pinned version, so a release does not rewrite every golden file.
    Context::new(
        &HomeAssistant::default(),
        Topics::new("print2mqtt"),
        "1.2.3",
    )
}

fn printer() -> PrinterView {
    PrinterView {
        slug: "ender3".into(),
        name: "Ender 3 V2".into(),
        source: Some(Source::OctoEverywhere),
        configuration_url: Some(
            "https://octoeverywhere.com/quickview?id=FUIHVMU660UFPBMS7DFRN16H".into(),
        ),
        // With an app_token: the "App Connection" sensor is in the file too.
        app_connection: true,
    }
}

/// The platform's configs as pretty JSON: `[{topic, retain, payload}]` in
/// publishing order.
fn render(component: &str) -> String {
    let platform = PLATFORMS
        .iter()
        .find(|p| p.component == component)
        .expect("platform in the table");
    let messages: Vec<Value> = platform_configs(platform, &printer(), &context())
        .into_iter()
        .map(|m| {
            let payload: Value = serde_json::from_slice(&m.payload).expect("valid JSON");
            json!({ "topic": m.topic, "retain": m.retain, "payload": payload })
        })
        .collect();
    serde_json::to_string_pretty(&messages).unwrap() + "\n"
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
