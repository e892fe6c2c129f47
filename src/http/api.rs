//! The JSON API behind the status page (docs/http-api.md#json-api): printers, one
//! printer and its snapshot, the recent-webhooks log, the bridge's health,
//! the setup panel, the "send test event" button, and `/metrics`.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::info;

use super::reply::{self, Reply};
use super::{Shared, setup};
use crate::event::{Reception, Source, format_time};
use crate::ingest::{self, DIALECTS, Webhook, dialects};
use crate::metrics::{self, Gauges};
use crate::pipeline::Printers;
use crate::state::{Field, PrinterState};

/// How long `POST /api/test` waits for the broker's PUBACK.
const TEST_DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The printer a test event goes to when the request names none.
pub const TEST_PRINTER: &str = "print2mqtt-test";
/// Largest `POST /api/test` body.
const MAX_TEST_BODY: usize = 4096;

/// One printer as the API and the page show it.
pub fn printer_json(shared: &Shared, slug: &str, s: &PrinterState) -> Value {
    let l = &s.latest;
    let text = |f: Field| l.text(f);
    let number = |f: Field| text(f).and_then(|t| t.parse::<u64>().ok());
    let name = shared
        .config
        .printer(s.printer_id())
        .map(|p| p.name.trim())
        .filter(|n| !n.is_empty())
        .or(s.name())
        .unwrap_or(s.printer_id());
    let snapshot = l
        .snapshot
        .then(|| format!("api/printers/{slug}/snapshot?rev={}", l.snapshot_rev));
    json!({
        "printer": slug,
        "printer_id": s.printer_id(),
        "name": name,
        "source": s.source.map(Source::name),
        "state": s.status.map(|s| s.name()),
        "progress": s.progress,
        "problem": s.problem,
        "time_remaining": number(Field::TimeRemaining),
        "eta": text(Field::Eta),
        "print_duration": number(Field::PrintDuration),
        "file": text(Field::File),
        "z": text(Field::Z).and_then(|z| z.parse::<f64>().ok()),
        "layer": number(Field::Layer),
        "total_layers": number(Field::TotalLayers),
        "error": text(Field::Error),
        "snapshot_url": text(Field::SnapshotUrl),
        "snapshot": snapshot,
        "quickview_url": s.quickview_url(),
        "last_event": l.last_event.as_ref().map(|e| json!({
            "event": e.event,
            "received_at": format_time(e.received_at),
        })),
    })
}

/// Every printer, by slug.
pub fn printers(shared: &Shared) -> Value {
    let table = read(shared);
    let list: Vec<Value> = table
        .states()
        .map(|(slug, s)| printer_json(shared, slug, s))
        .collect();
    Value::Array(list)
}

/// `GET /api/printers/<p>` (slug or printer id).
pub fn printer(shared: &Shared, printer: &str) -> Reply {
    let table = read(shared);
    match find(&table, printer) {
        Some((slug, s)) => reply::json(StatusCode::OK, &printer_json(shared, &slug, s)),
        None => not_found(printer),
    }
}

/// `GET /api/printers/<p>/snapshot`: the last JPEG, if one arrived (read
/// from disk: snapshots are not held in memory).
pub async fn snapshot(shared: &Shared, printer: &str) -> Reply {
    let slug = {
        let table = read(shared);
        find(&table, printer)
            .filter(|(_, s)| s.latest.snapshot)
            .map(|(slug, _)| slug)
    };
    let store = crate::snapshots::Snapshots::new(&shared.config.storage.data_dir);
    let jpeg = match slug {
        Some(slug) => tokio::task::spawn_blocking(move || store.read(&slug))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    match jpeg {
        Some(jpeg) => {
            let mut r = reply::bytes(StatusCode::OK, "image/jpeg", jpeg);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            r
        }
        None => reply::error(StatusCode::NOT_FOUND, "no snapshot for this printer"),
    }
}

/// `GET /api/events`: the recent-webhooks log, newest first.
pub fn events(shared: &Shared) -> Value {
    let recent = shared.monitor.log.recent();
    let newest_first: Vec<&crate::webhook_log::Entry> = recent.iter().rev().map(|e| &**e).collect();
    json!(newest_first)
}

/// `GET /api/bridge`: broker, outbox, uptime, version.
pub fn bridge(shared: &Shared) -> Value {
    let g = gauges(shared);
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": format_time(shared.monitor.started_at()),
        "uptime_secs": g.uptime_secs as u64,
        "broker": if g.broker_connected { "connected" } else { "disconnected" },
        "broker_url": shared.health.broker(),
        "reconnects": g.reconnects,
        "outbox_depth": g.outbox_depth,
        "outbox_bytes": g.outbox_bytes,
        "max_events": g.outbox_max_events,
        "max_bytes": shared.outbox.limits().max_bytes,
        "storage_fault": shared.outbox.fault(),
        "parked": g.parked,
        "snapshots_dropped": g.snapshots_dropped,
        "oldest_age_secs": (g.outbox_oldest_age_secs > 0.0).then_some(g.outbox_oldest_age_secs as u64),
        "printers": g.printers,
        "now": format_time(OffsetDateTime::now_utc()),
    })
}

/// `GET /api/bridge/parked`: the messages the broker would not take.
pub async fn parked(shared: &Shared) -> Reply {
    let outbox = shared.outbox.clone();
    let listed = tokio::task::spawn_blocking(move || outbox.parked(PARKED_LISTED)).await;
    let parked = match listed {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return reply::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        Err(e) => return reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let items: Vec<Value> = parked
        .iter()
        .map(|p| {
            json!({
                "topic": p.message.topic,
                "bytes": crate::mqtt::delivery::packet_size(&p.message),
                "retain": p.message.retain,
                "reason": p.reason,
                "accepted_at_ms": p.accepted_at_ms,
                "parked_at_ms": p.parked_at_ms,
            })
        })
        .collect();
    let body = json!({ "count": shared.outbox.parked_count(), "messages": items });
    reply::json(StatusCode::OK, &body)
}

/// A JSON content type makes a cross-site form post impossible (CORS
/// preflight), so a web page cannot press a button for the user.
fn require_json(headers: &http::HeaderMap) -> Option<Reply> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    (!json_type).then(|| {
        reply::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send Content-Type: application/json",
        )
    })
}

/// `POST /api/bridge/parked/retry`: every parked message back to the broker.
pub async fn retry_parked(shared: &Shared, headers: &http::HeaderMap) -> Reply {
    if let Some(refused) = require_json(headers) {
        return refused;
    }
    match shared.pipeline.retry_parked().await {
        Ok(n) => reply::json(StatusCode::OK, &json!({ "requeued": n })),
        Err(e) => reply::error(e.status(), &e.to_string()),
    }
}

/// Parked messages listed by `GET /api/bridge/parked` at most.
const PARKED_LISTED: usize = 100;

/// `GET /api/setup`.
pub fn setup_panel(shared: &Shared, headers: &http::HeaderMap) -> Value {
    setup::setup(&shared.config, headers)
}

/// `GET /metrics`.
pub fn metrics(shared: &Shared) -> Reply {
    let latency = &shared.health.stats().publish_latency;
    let text = shared.monitor.metrics.encode(latency, &gauges(shared));
    reply::bytes(StatusCode::OK, metrics::CONTENT_TYPE, text)
}

fn gauges(shared: &Shared) -> Gauges {
    let stats = shared.health.stats();
    let oldest = stats
        .oldest_accepted_ms
        .load(std::sync::atomic::Ordering::Relaxed);
    let now_ms = crate::event::now_ms();
    Gauges {
        broker_connected: shared.health.is_connected(),
        reconnects: stats.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        outbox_depth: shared.outbox.depth(),
        outbox_bytes: shared.outbox.depth_bytes(),
        outbox_max_events: shared.outbox.max_events(),
        storage_fault: shared.outbox.fault().is_some(),
        parked: shared.outbox.parked_count(),
        snapshots_dropped: shared.pipeline.snapshots_dropped(),
        anomalies: stats.anomalies.load(std::sync::atomic::Ordering::Relaxed),
        outbox_oldest_age_secs: if oldest > 0 {
            now_ms.saturating_sub(oldest) as f64 / 1000.0
        } else {
            0.0
        },
        printers: read(shared).len() as u64,
        uptime_secs: shared.monitor.uptime_secs(),
    }
}

/// `POST /api/test`: a test event through ingest, the outbox and the
/// broker, for the named printer (`{"printer": "<slug or id>"}`) or
/// [`TEST_PRINTER`]. Answers once the broker acknowledged it, or after
/// [`TEST_DELIVERY_TIMEOUT`] with `delivered: false`.
pub async fn test_event(shared: &Shared, req: Request<Incoming>) -> Reply {
    if let Some(refused) = require_json(req.headers()) {
        return refused;
    }
    let body = match Limited::new(req.into_body(), MAX_TEST_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply::error(StatusCode::BAD_REQUEST, "body unreadable or too large"),
    };
    let wanted = match test_target(&body) {
        Ok(p) => p,
        Err(e) => return reply::error(StatusCode::BAD_REQUEST, e),
    };
    let (printer_id, source) = match wanted {
        None => (TEST_PRINTER.to_owned(), DIALECTS[0].dialect),
        Some(p) => {
            let table = read(shared);
            match find(&table, &p) {
                Some((_, s)) => (
                    s.printer_id().to_owned(),
                    s.source.unwrap_or(DIALECTS[0].dialect),
                ),
                None => return not_found(&p),
            }
        }
    };
    let body = (dialects::row(source).test_webhook)(&printer_id);
    let hook = Webhook {
        body: body.as_bytes(),
        content_type: Some("application/json"),
        query: &[],
        dialect: Some(source),
        limits: super::limits::Limits::new(&shared.config.http).ingest(),
    };
    let event = match ingest::parse(&hook, Reception::now()) {
        Ok(p) => p.event,
        Err(e) => return reply::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let (id, kind) = (event.id.to_string(), event.event.name());
    let started = std::time::Instant::now();
    let receipt = match shared.pipeline.submit_tracked(event).await {
        Ok(r) => r,
        Err(e) => return reply::error(e.status(), &e.to_string()),
    };
    shared.monitor.metrics.event(kind);
    let delivered = tokio::time::timeout(
        TEST_DELIVERY_TIMEOUT,
        shared.health.wait_delivered(receipt.seq),
    )
    .await
    .unwrap_or(false);
    let ms = started.elapsed().as_millis() as u64;
    info!(printer = %receipt.slug, delivered, "Test event sent from the status page");
    let message = if delivered {
        format!("Delivered: the broker acknowledged the test event in {ms} ms.")
    } else {
        format!(
            "Accepted into the outbox, but the broker has not acknowledged it within {} s; it will be delivered when the broker is reachable.",
            TEST_DELIVERY_TIMEOUT.as_secs()
        )
    };
    reply::json(
        StatusCode::OK,
        &json!({
            "status": if delivered { "delivered" } else { "queued" },
            "id": id,
            "printer": receipt.slug,
            "event": kind,
            "delivered": delivered,
            "elapsed_ms": ms,
            "message": message,
        }),
    )
}

/// The printer a test request names, if any.
fn test_target(body: &Bytes) -> Result<Option<String>, &'static str> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(body).map_err(|_| "body is not JSON")?;
    match v.get("printer") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(_) => Err("`printer` must be a string"),
    }
}

fn read(shared: &Shared) -> std::sync::RwLockReadGuard<'_, Printers> {
    // The writer never panics while holding the lock (see pipeline.rs).
    shared
        .pipeline
        .printers()
        .read()
        .unwrap_or_else(|e| e.into_inner())
}

/// The printer with this slug, else this printer id (exact, then any case).
fn find<'t>(table: &'t Printers, printer: &str) -> Option<(String, &'t PrinterState)> {
    let slug = table.find(printer)?;
    let state = table.state(&slug)?;
    Some((slug, state))
}

fn not_found(printer: &str) -> Reply {
    reply::error(
        StatusCode::NOT_FOUND,
        &format!("no printer `{printer}` (give its slug or printer id)"),
    )
}

/// `DELETE /api/printers/<slug or printer id>`: forgets the printer and
/// clears its retained topics and discovery configs.
pub async fn remove_printer(shared: &Shared, printer: &str) -> Reply {
    match shared.pipeline.remove(printer).await {
        Ok(Some(slug)) => {
            info!(printer = %slug, "Printer removed");
            reply::json(
                StatusCode::OK,
                &json!({ "status": "removed", "printer": slug }),
            )
        }
        Ok(None) => not_found(printer),
        Err(e) => reply::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
