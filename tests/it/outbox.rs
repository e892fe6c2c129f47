//! The durable outbox against a real Mosquitto that the tests stop and
//! start, and a bridge process they kill: no accepted webhook is ever lost.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use common::*;
use print2mqtt::app;

/// Webhook `i` of printer `p`: progress `i` (the order check), and the last
/// one of each printer ends the print in a state that depends on `p`.
fn webhook(p: usize, i: usize, last: usize, secret: &str) -> String {
    let code = match (i == last, p % 2) {
        (true, 0) => 4,  // paused
        (true, _) => 2,  // complete
        (false, _) => 6, // progress
    };
    format!(
        r#"{{"PrinterId":"printer-{p}","SecretKey":"{secret}","EventType":{code},"Progress":{i},"PrintId":"job-{p}"}}"#
    )
}

fn final_state(p: usize) -> &'static str {
    if p.is_multiple_of(2) {
        "paused"
    } else {
        "complete"
    }
}

/// Posts `per_printer` webhooks for each of `printers` printers: one task per
/// printer, each sending its webhooks in order. Every answer must be 200.
async fn load(addr: SocketAddr, printers: usize, per_printer: usize, secret: &'static str) {
    let tasks: Vec<_> = (0..printers)
        .map(|p| {
            tokio::spawn(async move {
                for i in 0..per_printer {
                    let answer =
                        post_json(addr, "/webhook", webhook(p, i, per_printer - 1, secret)).await;
                    assert_eq!(
                        answer.status, 200,
                        "printer {p} webhook {i}: {}",
                        answer.body
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Reads event-stream messages until `expected` distinct event ids arrived;
/// checks each printer's events came in order (duplicates from QoS 1 are
/// dropped by id, as a consumer would).
async fn expect_events(sub: &mut Subscriber, printers: usize, per_printer: usize, early: Vec<Msg>) {
    let mut seen = HashSet::new();
    let mut order: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut early = early.into_iter();
    while seen.len() < printers * per_printer {
        let m = match early.next() {
            Some(m) => m,
            None => sub.next().await,
        };
        if !m.topic.ends_with("/event") {
            continue;
        }
        let json = m.json();
        if seen.insert(json["id"].as_str().unwrap().to_owned()) {
            let printer = json["printer_id"].as_str().unwrap().to_owned();
            order
                .entry(printer)
                .or_default()
                .push(json["progress"].as_i64().unwrap());
        }
    }
    assert_eq!(order.len(), printers);
    let want: Vec<i64> = (0..per_printer as i64).collect();
    for (printer, progress) in order {
        assert_eq!(progress, want, "{printer}: events out of order or missing");
    }
}

async fn expect_final_states(port: u16, printers: usize, per_printer: usize) {
    let retained = retained(port, "print2mqtt/+/+").await;
    for p in 0..printers {
        let topic = |leaf: &str| format!("print2mqtt/printer-{p}/{leaf}");
        let state = retained.get(&topic("state")).map(Msg::text);
        assert_eq!(state.as_deref(), Some(final_state(p)), "printer {p}");
        let last = retained[&topic("last_event")].json();
        assert_eq!(
            last["progress"].as_i64(),
            Some(per_printer as i64 - 1),
            "printer {p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_while_the_broker_is_down_survives_sigkill() {
    const PRINTERS: usize = 20;
    const EACH: usize = 50;
    let port = free_port();
    let data = data_dir();
    let url = format!("mqtt://127.0.0.1:{port}");
    let first = Process::start(&url, &data);
    load(first.addr(), PRINTERS, EACH, SECRET).await;
    first.signal("-KILL");
    first.wait();

    let broker = Mosquitto::start_on(port);
    let mut events = Subscriber::new(port, "print2mqtt/+/event").await;
    let second = Process::start(&url, &data);
    expect_events(&mut events, PRINTERS, EACH, Vec::new()).await;
    expect_final_states(port, PRINTERS, EACH).await;
    wait_drained(second.addr()).await;
    drop(broker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_load_loses_nothing() {
    const PRINTERS: usize = 8;
    const EACH: usize = 60;
    let mut broker = Mosquitto::start_persistent();
    let mut cfg = config(&broker.url(), "s");
    cfg.mqtt.client_id = "print2mqtt-restart-test".into();
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let mut events = Subscriber::durable(broker.port, "print2mqtt/+/event", "durable-events").await;
    let addr = bridge.http_addr();
    let load = tokio::spawn(load(addr, PRINTERS, EACH, "s"));
    // Restart the broker once some of the load went through.
    let mut early = Vec::new();
    while early.len() < 60 {
        early.push(events.next().await);
    }
    broker.restart();
    load.await.unwrap();
    expect_events(&mut events, PRINTERS, EACH, early).await;
    wait_drained(addr).await;
    expect_final_states(broker.port, PRINTERS, EACH).await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_answers_503_and_keeps_what_it_accepted() {
    let port = free_port();
    let mut cfg = config(&format!("mqtt://127.0.0.1:{port}"), "s");
    cfg.storage.max_events = 50;
    let bridge = app::start(cfg).await.unwrap();
    let addr = bridge.http_addr();
    for i in 0..50 {
        let answer = post_json(addr, "/webhook", webhook(0, i, 49, "s")).await;
        assert_eq!(answer.status, 200, "webhook {i}: {}", answer.body);
    }
    let full = post_json(addr, "/webhook", webhook(0, 50, 50, "s")).await;
    assert_eq!(full.status, 503);
    assert!(
        full.json()["error"]
            .as_str()
            .unwrap()
            .contains("outbox is full"),
        "{}",
        full.body
    );
    let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["outbox_depth"], 50);

    let broker = Mosquitto::start_on(port);
    let mut events = Subscriber::new(broker.port, "print2mqtt/+/event").await;
    bridge.health().wait_connected().await;
    // Delivered after the subscriber attached or before: the retained end
    // state proves all 50 arrived in order; the stream shows the rest.
    wait_retained(port, "print2mqtt/printer-0/state", "paused").await;
    let last = retained(port, "print2mqtt/printer-0/last_event").await;
    assert_eq!(
        last["print2mqtt/printer-0/last_event"].json()["progress"],
        49
    );
    wait_drained(addr).await;
    let again = post_json(addr, "/webhook", webhook(1, 0, 0, "s")).await;
    assert_eq!(
        again.status, 200,
        "room again once delivered: {}",
        again.body
    );
    let m = events.until_topic("print2mqtt/printer-1/event").await;
    assert_eq!(m.json()["progress"], 0);
    bridge.shutdown().await;
}
