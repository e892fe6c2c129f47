//! Several brokers in `mqtt.url`, against real Mosquittos: the bridge
//! moves on when the first is down or the one in use dies, says which it
//! uses in /readyz and /api/bridge, and loses nothing it accepted.

use crate::common::*;
use print2mqtt::app;

const SECRET: &str = "failover-secret";

fn progress(printer: &str, progress: u32) -> String {
    format!(
        r#"{{"PrinterId":"{printer}","SecretKey":"{SECRET}","EventType":6,"Progress":{progress}}}"#
    )
}

async fn broker_in_use(addr: std::net::SocketAddr) -> serde_json::Value {
    request(addr, "GET", "/readyz", &[], Vec::new())
        .await
        .json()["broker_url"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_broker_down_the_bridge_uses_the_second() {
    let down = format!("mqtt://127.0.0.1:{}", free_port());
    let up = Mosquitto::start();
    let mut cfg = config(&down, SECRET);
    cfg.mqtt.url.push(up.url());
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    assert_eq!(broker_in_use(addr).await, up.url());
    let api = request(addr, "GET", "/api/bridge", &[], Vec::new())
        .await
        .json();
    assert_eq!(api["broker_url"], up.url());

    let answer = post_json(addr, "/webhook", progress("p1", 42)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(up.port, "print2mqtt/p1/progress", "42").await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_broker_in_use_moves_on_and_loses_nothing_accepted() {
    let mut first = Mosquitto::start();
    let second = Mosquitto::start();
    let mut cfg = config(&first.url(), SECRET);
    cfg.mqtt.url.push(second.url());
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    assert_eq!(broker_in_use(addr).await, first.url());
    for p in 1..=20 {
        let answer = post_json(addr, "/webhook", progress("p1", p)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    wait_drained(addr).await;
    wait_retained(first.port, "print2mqtt/p1/progress", "20").await;

    let mut events = Subscriber::new(second.port, "print2mqtt/+/event").await;
    first.stop();
    // Accepted while the bridge notices and moves on: every one of them
    // reaches the second broker, in order.
    for p in 21..=60 {
        let answer = post_json(addr, "/webhook", progress("p1", p)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let mut got = Vec::new();
    while got.len() < 40 {
        got.push(events.next().await.json()["progress"].as_u64().unwrap());
    }
    assert_eq!(got, (21..=60).collect::<Vec<u64>>());
    wait_drained(addr).await;
    assert_eq!(broker_in_use(addr).await, second.url());
    wait_retained(second.port, "print2mqtt/p1/progress", "60").await;
    let api = request(addr, "GET", "/api/bridge", &[], Vec::new())
        .await
        .json();
    assert_eq!(api["reconnects"], 1, "{api}");
    bridge.shutdown().await;
}
