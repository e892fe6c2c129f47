//! The hyper listener: accepts connections, applies the protocol limits
//! (header size, header read timeout), and shuts down gracefully — stop
//! accepting, let in-flight requests finish.

mod access;
mod api;
mod reply;
mod routes;
mod setup;
mod sse;
mod status;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::Config;
use crate::monitor::Monitor;
use crate::mqtt::publisher::Health;
use crate::outbox::Outbox;
use crate::pipeline::Pipeline;

/// Request headers up to this size are accepted (never a 431 below it:
/// OctoEverywhere's relay resends a 431'd body with no headers at all).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest JSON or form body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest multipart body (a snapshot JPEG rides along).
pub const MAX_MULTIPART_BYTES: usize = 16 * 1024 * 1024;
/// Time a client gets to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// What every request handler can reach.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub health: Health,
    pub outbox: Outbox,
    pub started: Instant,
    /// The webhook log, metrics and live-stream shutdown signal.
    pub monitor: Monitor,
}

/// Serves HTTP on `listener` until `shutdown`, then drains.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, shutdown: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES * 2)
        .max_buf_size(MAX_HEADER_BYTES * 4)
        .max_headers(1024);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    warn!(error = %e, "Accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| routes::route(shared.clone(), peer, req));
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(shared);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("In-flight HTTP requests did not finish in time");
    }
}

/// Binds the listener (separate from [`serve`] so start-up errors surface
/// before anything runs).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
