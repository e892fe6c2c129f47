//! App Connection registration by the running bridge (DESIGN.md §9), against
//! a fake OctoEverywhere API on loopback and a real Mosquitto: what is
//! registered at start, that the registered callback reaches the bridge, and
//! each documented answer.

use crate::common;

use std::time::Duration;

use common::fake_oe::{Answer, FakeOe};
use common::*;
use print2mqtt::app::{self, Bridge};
use print2mqtt::config::{Config, EventFilter, Printer, Secret};
use print2mqtt::octoeverywhere::AppState;
use print2mqtt::octoeverywhere::api::SET_PATH;
use serde_json::{Value, json};

/// A secret that needs percent-encoding in a query string.
const SECRET: &str = "s3cret/&=+ü";
const SECRET_ENCODED: &str = "s3cret%2F%26%3D%2B%C3%BC";

/// A bridge whose public URL is its own loopback address, registering with
/// `fake`: printer `OE-1` (events started, complete, cancelled), `OE-2`
/// (alias `second`, every event), and `PLAIN` without a token.
fn bridge_config(broker: &Mosquitto, fake: &FakeOe) -> (Config, u16) {
    let port = free_port();
    let mut c = config(&broker.url(), SECRET);
    c.http.listen = ([127, 0, 0, 1], port).into();
    c.octoeverywhere.public_url = format!("http://127.0.0.1:{port}/");
    c.octoeverywhere.api_url = fake.url();
    c.printers.insert(
        "OE-1".into(),
        Printer {
            app_token: Secret::new("token-one"),
            events: EventFilter::from_names(["started", "complete", "cancelled"]),
            ..Printer::default()
        },
    );
    c.printers.insert(
        "OE-2".into(),
        Printer {
            alias: "second".into(),
            app_token: Secret::new("token-two"),
            ..Printer::default()
        },
    );
    c.printers.insert("PLAIN".into(), Printer::default());
    (c, port)
}

async fn app_connection(bridge: &Bridge) -> Value {
    let answer = request(
        bridge.http_addr(),
        "GET",
        "/api/appconnection",
        &[],
        Vec::new(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!answer.body.contains(SECRET_ENCODED), "{}", answer.body);
    answer.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_registers_each_printer_once_and_the_callback_reaches_the_bridge() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let (cfg, port) = bridge_config(&broker, &fake);
    let bridge = app::start(cfg).await.unwrap();

    let calls = fake.wait_calls(2, TIMEOUT).await;
    let mut by_token: Vec<_> = calls.iter().collect();
    by_token.sort_by_key(|c| c.app_token.clone());
    let base = format!("http://127.0.0.1:{port}/webhook/octoeverywhere");
    for (call, token, id, types) in [
        (by_token[0], "token-one", "OE-1", json!([1, 2, 3])),
        (by_token[1], "token-two", "OE-2", json!([])),
    ] {
        assert_eq!(
            (call.method.as_str(), call.path.as_str()),
            ("POST", SET_PATH)
        );
        assert_eq!(call.app_token.as_deref(), Some(token));
        assert_eq!(call.content_type.as_deref(), Some("application/json"));
        let url = format!("{base}?printer={id}&token={SECRET_ENCODED}");
        assert_eq!(
            call.body,
            json!({"CallbackUrl": url, "EventTypes": types,
                   "WebhookUrl": url, "InclusiveEventTypesFilter": types}),
        );
    }

    for slug in ["oe-1", "second"] {
        let topic = format!("print2mqtt/{slug}/app_connection");
        wait_retained(broker.port, &topic, "registered").await;
    }
    // One device config per printer: those with a token have the entity.
    let configs = retained(broker.port, "homeassistant/device/+/config").await;
    let nodes: Vec<&str> = configs
        .iter()
        .filter(|(_, m)| m.json()["cmps"].get("app_connection").is_some())
        .map(|(t, _)| t.split('/').nth(2).unwrap())
        .collect();
    assert_eq!(
        nodes,
        ["print2mqtt_oe-1", "print2mqtt_second"],
        "only printers with a token"
    );

    // OctoEverywhere calls the callback exactly as registered, without SecretKey.
    let mut body: Value =
        serde_json::from_slice(&fixture("octoeverywhere/02-print-complete.json")).unwrap();
    body.as_object_mut().unwrap().remove("SecretKey");
    let callback = by_token[0].callback();
    let path = callback
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap();
    let answer = post_json(bridge.http_addr(), path, body.to_string()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["printer"], "oe-1");
    wait_retained(broker.port, "print2mqtt/oe-1/state", "complete").await;
    wait_retained(broker.port, "print2mqtt/oe-1/progress", "100").await;

    let api = app_connection(&bridge).await;
    let states: Vec<(&str, &str)> = api
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["printer_id"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("OE-1", "registered"), ("OE-2", "registered")]);
    assert_eq!(
        api[0]["callback_url"],
        format!("{base}?printer=OE-1&token=<redacted>")
    );
    assert_eq!(fake.calls().len(), 2, "one registration per printer");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_604_the_bridge_stops_and_shows_revoked() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let (mut cfg, _) = bridge_config(&broker, &fake);
    cfg.printers.remove("OE-2");
    fake.answer(604);
    let bridge = app::start(cfg).await.unwrap();
    let status = bridge
        .registrations()
        .wait("OE-1", |s| s.state != AppState::Pending)
        .await;
    assert_eq!(status.state, AppState::Revoked);
    assert_eq!((status.status, status.next_attempt), (Some(604), None));
    assert!(
        status.detail.contains("revoked or has expired"),
        "{}",
        status.detail
    );
    wait_retained(broker.port, "print2mqtt/oe-1/app_connection", "revoked").await;
    assert_eq!(app_connection(&bridge).await[0]["state"], "revoked");
    assert_eq!(fake.calls().len(), 1);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_500_then_200_the_bridge_retries_and_succeeds() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let (mut cfg, _) = bridge_config(&broker, &fake);
    cfg.printers.remove("OE-2");
    fake.script([Answer::Status(500, "try later".into())]);
    let mut states = Subscriber::new(broker.port, "print2mqtt/oe-1/app_connection").await;
    let bridge = app::start(cfg).await.unwrap();
    assert_eq!(states.next().await.text(), "retrying");
    assert_eq!(states.next().await.text(), "registered");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    let waited = calls[1].at - calls[0].at;
    assert!(waited >= Duration::from_secs(4), "retried after {waited:?}");
    let status = bridge.registrations().get("OE-1").unwrap();
    assert_eq!((status.attempts, status.failures), (2, 0));
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_400_the_message_is_shown_and_the_bridge_stops() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let (mut cfg, _) = bridge_config(&broker, &fake);
    cfg.printers.remove("OE-2");
    fake.script([Answer::Status(
        400,
        r#"{"Error":"The callback URL must use https."}"#.into(),
    )]);
    let bridge = app::start(cfg).await.unwrap();
    wait_retained(broker.port, "print2mqtt/oe-1/app_connection", "rejected").await;
    let status = &app_connection(&bridge).await[0];
    assert_eq!(status["status"], 400);
    assert_eq!(
        status["detail"],
        "OctoEverywhere refused the request (400): The callback URL must use https."
    );
    assert_eq!(fake.calls().len(), 1);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_registration_is_refused_without_calling() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let (mut cfg, _) = bridge_config(&broker, &fake);
    cfg.auth.secret = Secret::default();
    cfg.printers.get_mut("OE-2").unwrap().secret = Secret::new("own-secret");
    let bridge = app::start(cfg).await.unwrap();
    let refused = bridge
        .registrations()
        .wait("OE-1", |s| s.state != AppState::Pending)
        .await;
    assert_eq!(refused.state, AppState::Rejected);
    assert!(
        refused.detail.contains("set auth.secret"),
        "{}",
        refused.detail
    );
    wait_retained(broker.port, "print2mqtt/oe-1/app_connection", "rejected").await;
    // The printer with a secret of its own registers.
    wait_retained(
        broker.port,
        "print2mqtt/second/app_connection",
        "registered",
    )
    .await;
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0]
            .callback()
            .ends_with("printer=OE-2&token=own-secret")
    );
    bridge.shutdown().await;
}
