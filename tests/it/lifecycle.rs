//! Start, restart, broker outages and the embedded broker.

use crate::common;

use common::*;
use print2mqtt::app;

const S: &str = "s";

fn hook(printer: &str, code: u32) -> String {
    format!(r#"{{"PrinterId":"{printer}","SecretKey":"{S}","EventType":{code},"Progress":40}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_state_is_online_while_running_and_offline_after_shutdown() {
    let broker = Mosquitto::start();
    let mut sub = Subscriber::new(broker.port, "print2mqtt/bridge/state").await;
    let bridge = app::start(config(&broker.url(), S)).await.unwrap();
    assert_eq!(sub.next().await.text(), "online");
    assert_eq!(
        retained(broker.port, "print2mqtt/bridge/state").await["print2mqtt/bridge/state"].text(),
        "online"
    );
    bridge.shutdown().await;
    assert_eq!(sub.next().await.text(), "offline");
    let after = retained(broker.port, "print2mqtt/bridge/state").await;
    let state = &after["print2mqtt/bridge/state"];
    assert_eq!((state.text().as_str(), state.retain), ("offline", true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_state_and_slugs_from_retained_topics() {
    let broker = Mosquitto::start();
    let cfg = config(&broker.url(), S);
    let first = app::start(cfg.clone()).await.unwrap();
    let mut live = Subscriber::new(broker.port, "print2mqtt/+/+").await;
    let addr = first.http_addr();
    assert_eq!(
        post_json(addr, "/webhook", hook("Ender 3", 7)).await.json()["printer"],
        "ender_3"
    );
    live.until_leaf("event").await;
    let collided = post_json(addr, "/webhook", hook("ender/3", 4)).await.json()["printer"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(collided.starts_with("ender_3_"), "{collided}");
    live.until_leaf("event").await;
    first.shutdown().await;

    let second = app::start(cfg).await.unwrap();
    let addr = second.http_addr();
    let printers = request(addr, "GET", "/api/printers", &[], Vec::new())
        .await
        .json();
    let find = |slug: &str| {
        printers
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["printer"] == slug)
            .cloned()
            .unwrap_or_else(|| panic!("{slug} not restored: {printers}"))
    };
    let a = find("ender_3");
    assert_eq!(
        (a["printer_id"].as_str(), a["problem"].as_bool()),
        (Some("Ender 3"), Some(true))
    );
    let b = find(&collided);
    assert_eq!(
        (b["printer_id"].as_str(), b["state"].as_str()),
        (Some("ender/3"), Some("paused"))
    );
    // The collided id comes first after the restart and still gets its own slug.
    let again = post_json(addr, "/webhook", hook("ender/3", 5)).await;
    assert_eq!(again.json()["printer"], collided.as_str());
    assert_eq!(
        post_json(addr, "/webhook", hook("Ender 3", 6)).await.json()["printer"],
        "ender_3"
    );
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_accepted_while_the_broker_is_down_and_delivered_later() {
    let port = free_port();
    let bridge = app::start(config(&format!("mqtt://127.0.0.1:{port}"), S))
        .await
        .unwrap();
    let addr = bridge.http_addr();
    for code in [1, 6, 2] {
        let answer = post_json(addr, "/webhook", hook("p", code)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    assert_eq!(ready.status, 503);
    let broker = Mosquitto::start_on(port);
    bridge.health().wait_connected().await;
    wait_retained(broker.port, "print2mqtt/p/state", "complete").await;
    wait_retained(broker.port, "print2mqtt/p/progress", "100").await;
    assert_eq!(
        request(addr, "GET", "/readyz", &[], Vec::new())
            .await
            .status,
        200
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_mqtt_url_starts_the_embedded_broker() {
    let port = free_port();
    let mut cfg = config("", S);
    cfg.broker.listen = format!("127.0.0.1:{port}").parse().unwrap();
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let mut live = Subscriber::new(port, "print2mqtt/p/+").await;
    let answer = post_json(bridge.http_addr(), "/webhook", hook("p", 4)).await;
    assert_eq!(answer.status, 200);
    let got = live.until_leaf("event").await;
    assert_eq!(
        (got[0].topic.as_str(), got[0].text().as_str()),
        ("print2mqtt/p/state", "paused")
    );
    let snapshot = retained(port, "print2mqtt/p/state").await;
    assert_eq!(
        snapshot["print2mqtt/p/state"].text(),
        "paused",
        "retained messages work"
    );
    bridge.shutdown().await;
}
