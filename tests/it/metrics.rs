//! `GET /metrics` against a real bridge and Mosquitto: the exposition
//! parses with a Prometheus text-format parser, and its counters equal the
//! webhooks sent, by dialect and answer, and the events by kind.

use crate::common;

use common::*;
use print2mqtt::app;
use prometheus_parse::{Scrape, Value};

const SECRET: &str = "m3trics-secret";

fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(h) => h.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test]
async fn counters_match_the_webhooks_sent() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.printers.insert(
        "quiet".into(),
        toml::from_str(r#"events = ["complete"]"#).unwrap(),
    );
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let oe = |id: &str, kind: u8, secret: &str| {
        format!(r#"{{"PrinterId":"{id}","SecretKey":"{secret}","EventType":{kind}}}"#)
    };
    let op =
        format!(r#"{{"deviceIdentifier":"pi","apiSecret":"{SECRET}","topic":"Print Started"}}"#);
    let sent = [
        ("/webhook", oe("a", 1, SECRET), 200),
        ("/webhook", oe("a", 6, SECRET), 200),
        ("/webhook", oe("b", 6, SECRET), 200),
        ("/webhook", op.clone(), 200),
        ("/webhook/octoprint", op, 200),
        ("/webhook", oe("quiet", 6, SECRET), 200), // filtered
        ("/webhook", oe("a", 6, "wrong"), 401),
        ("/webhook", oe("a", 6, "wrong"), 401),
        ("/webhook/octoeverywhere", "[1]".to_owned(), 400),
        ("/webhook", "{".to_owned(), 400),
    ];
    for (path, body, status) in &sent {
        assert_eq!(
            post_json(addr, path, body.clone()).await.status,
            *status,
            "{path} {body}"
        );
    }
    wait_drained(addr).await;

    let answer = request(addr, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("text")
    );
    let lines = answer.body.lines().map(|l| Ok(l.to_owned()));
    let scrape = Scrape::parse(lines).expect("Prometheus text format");

    let webhooks = |dialect, code| {
        value(
            &scrape,
            "print2mqtt_webhooks_total",
            &[("dialect", dialect), ("code", code)],
        )
    };
    assert_eq!(
        webhooks("octoeverywhere", "200"),
        Some(4.0),
        "three accepted, one filtered"
    );
    assert_eq!(webhooks("octoprint", "200"), Some(2.0));
    assert_eq!(webhooks("octoeverywhere", "401"), Some(2.0));
    assert_eq!(
        webhooks("octoeverywhere", "400"),
        Some(1.0),
        "forced dialect"
    );
    assert_eq!(webhooks("unknown", "400"), Some(1.0));
    let total: f64 = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "print2mqtt_webhooks_total")
        .filter_map(|s| match s.value {
            Value::Counter(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
        .sum();
    assert_eq!(total, sent.len() as f64);

    let events = |kind| value(&scrape, "print2mqtt_events_total", &[("kind", kind)]);
    assert_eq!(events("started"), Some(3.0));
    assert_eq!(
        events("progress"),
        Some(2.0),
        "the filtered one is no event"
    );
    // The histogram's +Inf bucket (or its _count line) counts observations.
    let latency_count =
        value(&scrape, "print2mqtt_publish_latency_seconds_count", &[]).or_else(|| {
            scrape.samples.iter().find_map(|s| match &s.value {
                Value::Histogram(h) if s.metric == "print2mqtt_publish_latency_seconds" => h
                    .iter()
                    .find(|b| b.less_than == f64::INFINITY)
                    .map(|b| b.count),
                _ => None,
            })
        });
    assert_eq!(
        latency_count,
        Some(5.0),
        "one observation per delivered webhook"
    );
    assert_eq!(
        value(&scrape, "print2mqtt_broker_connected", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "print2mqtt_broker_reconnects_total", &[]),
        Some(0.0)
    );
    assert_eq!(value(&scrape, "print2mqtt_outbox_depth", &[]), Some(0.0));
    assert_eq!(
        value(&scrape, "print2mqtt_outbox_oldest_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&scrape, "print2mqtt_printers", &[]),
        Some(3.0),
        "a, b and pi"
    );
    bridge.shutdown().await;
}
