//! `GET /api/stream`: the status page's live feed as Server-Sent Events.
//! On connect: `printers` (the whole table), `events` (the webhook log,
//! newest first) and `bridge` (health); then `printer` (one printer, after
//! each commit), `removed`, `webhook` (one log entry) and `bridge` every
//! few seconds. A reader that falls behind gets the whole table or log
//! again. Every stream ends when the bridge shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Shared;
use super::api;
use super::reply::{self, Reply};
use crate::pipeline::TableChange;

/// How often health is pushed (also keeps proxies from closing the stream).
const HEALTH_EVERY: Duration = Duration::from_secs(3);
/// Frames buffered for a slow reader before the feed waits for it.
const BUFFER: usize = 64;

/// Starts one client's feed.
pub fn stream(shared: Arc<Shared>) -> Reply {
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(feed(shared, tx));
    let mut r = reply::bytes(StatusCode::OK, "text/event-stream", Bytes::new());
    *r.body_mut() = Feed(rx).boxed_unsync();
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

async fn feed(shared: Arc<Shared>, tx: mpsc::Sender<Bytes>) {
    let mut table = shared.pipeline.watch();
    let mut log = shared.monitor.log.watch();
    let closing = shared.monitor.closing().clone();
    let mut health = tokio::time::interval(HEALTH_EVERY);
    let sent = send(&tx, "printers", &api::printers(&shared)).await
        && send(&tx, "events", &api::events(&shared)).await;
    if !sent {
        return;
    }
    loop {
        let (name, data) = tokio::select! {
            () = closing.cancelled() => return,
            () = tx.closed() => return,
            _ = health.tick() => ("bridge", api::bridge(&shared)),
            change = table.recv() => match change {
                Ok(TableChange::Updated(slug)) => match printer(&shared, &slug) {
                    Some(p) => ("printer", p),
                    None => ("removed", json!({ "printer": slug })),
                },
                Ok(TableChange::Removed(slug)) => ("removed", json!({ "printer": slug })),
                Err(RecvError::Lagged(_)) => ("printers", api::printers(&shared)),
                Err(RecvError::Closed) => return,
            },
            entry = log.recv() => match entry {
                Ok(entry) => ("webhook", json!(*entry)),
                Err(RecvError::Lagged(_)) => ("events", api::events(&shared)),
                Err(RecvError::Closed) => return,
            },
        };
        if !send(&tx, name, &data).await {
            return;
        }
    }
}

fn printer(shared: &Shared, slug: &str) -> Option<Value> {
    let table = shared
        .pipeline
        .printers()
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let state = table.state(slug)?;
    Some(api::printer_json(shared, slug, state))
}

/// Sends one event; false once the client is gone.
async fn send(tx: &mpsc::Sender<Bytes>, name: &str, data: &Value) -> bool {
    // Compact JSON has no newlines, so it fits one `data:` line.
    let frame = format!("event: {name}\ndata: {data}\n\n");
    tx.send(Bytes::from(frame)).await.is_ok()
}

/// The response body: frames from the feed task until it ends.
struct Feed(mpsc::Receiver<Bytes>);

impl Body for Feed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|b| Ok(Frame::data(b))))
    }
}
