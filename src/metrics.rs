//! Prometheus metrics (`GET /metrics`): the webhook and event counters the
//! HTTP handler feeds, the publish latency histogram the publisher feeds,
//! and gauges read from the bridge's parts at each scrape. Encoded by
//! `prometheus-client` in the text exposition format.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    dialect: &'static str,
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    kind: &'static str,
}

/// Time from a webhook's commit to the outbox until the broker has
/// acknowledged the last message of its record.
#[derive(Debug, Clone)]
pub struct PublishLatency(Histogram);

impl Default for PublishLatency {
    fn default() -> Self {
        // 1 ms .. ~65 s.
        PublishLatency(Histogram::new(exponential_buckets(0.001, 2.0, 17)))
    }
}

impl PublishLatency {
    /// Records one delivered record.
    pub fn observe(&self, latency: Duration) {
        self.0.observe(latency.as_secs_f64());
    }
}

/// Values owned elsewhere, read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub broker_connected: bool,
    pub reconnects: u64,
    pub outbox_depth: u64,
    pub outbox_bytes: u64,
    pub outbox_max_events: u64,
    pub storage_fault: bool,
    pub parked: u64,
    pub snapshots_dropped: u64,
    pub anomalies: u64,
    pub outbox_oldest_age_secs: f64,
    pub printers: u64,
    pub uptime_secs: f64,
}

/// The counters the HTTP handler feeds. Cheap to clone (shared counters).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    webhooks: Family<WebhookLabels, Counter>,
    events: Family<EventLabels, Counter>,
}

impl Metrics {
    /// Counts one webhook answer; `dialect` is `unknown` when the body was
    /// not recognised.
    pub fn webhook(&self, dialect: &'static str, code: u16) {
        let labels = WebhookLabels {
            dialect,
            code: code.to_string(),
        };
        self.webhooks.get_or_create(&labels).inc();
    }

    /// Counts one accepted event by kind.
    pub fn event(&self, kind: &'static str) {
        self.events.get_or_create(&EventLabels { kind }).inc();
    }

    /// The exposition text with `latency` and the current `gauges`.
    pub fn encode(&self, latency: &PublishLatency, gauges: &Gauges) -> String {
        let mut r = Registry::with_prefix("print2mqtt");
        r.register(
            "webhooks",
            "Webhooks answered, by dialect and HTTP status code",
            self.webhooks.clone(),
        );
        r.register(
            "events",
            "Events accepted into the outbox, by kind",
            self.events.clone(),
        );
        r.register_with_unit(
            "publish_latency",
            "Time from accepting a webhook to the broker's PUBACK of its last message",
            Unit::Seconds,
            latency.0.clone(),
        );
        r.register(
            "broker_connected",
            "1 while the MQTT broker connection is up",
            ConstGauge::new(i64::from(gauges.broker_connected)),
        );
        r.register(
            "broker_reconnects",
            "Successful broker connections after the first",
            ConstCounter::new(gauges.reconnects),
        );
        r.register(
            "outbox_depth",
            "Accepted webhooks not yet delivered to the broker",
            ConstGauge::new(to_i64(gauges.outbox_depth)),
        );
        r.register(
            "outbox_max_events",
            "The outbox bound (storage.max_events); beyond it webhooks get 503",
            ConstGauge::new(to_i64(gauges.outbox_max_events)),
        );
        r.register_with_unit(
            "outbox",
            "Topic and payload bytes of accepted webhooks not yet delivered",
            Unit::Bytes,
            ConstGauge::new(to_i64(gauges.outbox_bytes)),
        );
        r.register(
            "storage_fault",
            "1 while the outbox store fails (webhooks get 503 until it recovers)",
            ConstGauge::new(i64::from(gauges.storage_fault)),
        );
        r.register(
            "outbox_parked",
            "Messages the broker would not take, set aside (GET /api/bridge/parked)",
            ConstGauge::new(to_i64(gauges.parked)),
        );
        r.register(
            "snapshots_dropped",
            "Snapshots left out of accepted webhooks: larger than mqtt.max_packet_bytes",
            ConstCounter::new(gauges.snapshots_dropped),
        );
        r.register(
            "delivery_anomalies",
            "Broker connections dropped because a packet id could not be mapped with certainty",
            ConstCounter::new(gauges.anomalies),
        );
        r.register_with_unit(
            "outbox_oldest_age",
            "Age of the oldest undelivered webhook (0: none)",
            Unit::Seconds,
            ConstGauge::new(gauges.outbox_oldest_age_secs),
        );
        r.register(
            "printers",
            "Printers known to the bridge",
            ConstGauge::new(to_i64(gauges.printers)),
        );
        r.register_with_unit(
            "uptime",
            "Time since the bridge started",
            Unit::Seconds,
            ConstGauge::new(gauges.uptime_secs),
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &r);
        out
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_are_exposed() {
        let m = Metrics::default();
        m.webhook("octoeverywhere", 200);
        m.webhook("octoeverywhere", 200);
        m.webhook("unknown", 400);
        m.event("progress");
        let latency = PublishLatency::default();
        latency.observe(Duration::from_millis(3));
        let text = m.encode(
            &latency,
            &Gauges {
                broker_connected: true,
                printers: 2,
                ..Gauges::default()
            },
        );
        for line in [
            r#"print2mqtt_webhooks_total{dialect="octoeverywhere",code="200"} 2"#,
            r#"print2mqtt_webhooks_total{dialect="unknown",code="400"} 1"#,
            r#"print2mqtt_events_total{kind="progress"} 1"#,
            "print2mqtt_publish_latency_seconds_count 1",
            "print2mqtt_broker_connected 1",
            "print2mqtt_printers 2",
            "print2mqtt_broker_reconnects_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
