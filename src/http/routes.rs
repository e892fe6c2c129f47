//! Request routing: which path and method reach which handler (docs/http-api.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::reply::{self, Reply};
use super::{Shared, access, appconnection, status, webhook};
use crate::ingest;

/// Routes one request.
pub async fn route(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let path = req.uri().path();
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    }
    .to_owned();
    let dialect = match path.as_str() {
        "/webhook" => Some(None),
        other => ingest::dialects::for_route(other).map(Some),
    };
    if let Some(dialect) = dialect {
        return Ok(match *req.method() {
            Method::POST | Method::PUT | Method::GET => {
                webhook::handle(&shared, peer, req, dialect).await
            }
            _ => reply::method_not_allowed("POST, PUT, GET"),
        });
    }
    if path == "/api/appconnection" {
        return Ok(
            match access::check_request(&shared.config, peer.ip(), &req) {
                _ if req.method() != Method::GET => reply::method_not_allowed("GET"),
                access::Access::Allowed => appconnection::list(&shared),
                denied => access::refused(denied),
            },
        );
    }
    // The page, its assets, the API and /metrics.
    let req = match status::route(&shared, peer, req, &path).await {
        Ok(reply) => return Ok(reply),
        Err(req) => req,
    };
    let read = req.method() == Method::GET || req.method() == Method::HEAD;
    if path == "/readyz"
        && read
        && let Some(cluster) = &shared.cluster
    {
        return Ok(cluster_readyz(&shared, cluster).await);
    }
    let get_only = |handler: fn(&Shared) -> Reply| {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            handler(&shared)
        } else {
            reply::method_not_allowed("GET")
        }
    };
    Ok(match path.as_str() {
        "/healthz" => get_only(|_| reply::text(StatusCode::OK, "ok\n")),
        "/readyz" => get_only(readyz),
        _ => reply::error(StatusCode::NOT_FOUND, "not found"),
    })
}

/// Ready in the clustered mode: broker connected, NATS reachable and the
/// stream there (the local outbox holds no webhooks).
async fn cluster_readyz(shared: &Shared, cluster: &crate::cluster::Cluster) -> Reply {
    let connected = shared.health.is_connected();
    let nats = cluster.ready().await;
    let status = if connected && nats.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply::json(
        status,
        &json!({
            "broker": if connected { "connected" } else { "disconnected" },
            "storage": "jetstream",
            "nats": nats.err().unwrap_or_else(|| "ok".into()),
        }),
    )
}

/// Ready: broker connected and outbox below its bound.
fn readyz(shared: &Shared) -> Reply {
    let connected = shared.health.is_connected();
    let (depth, max) = (shared.outbox.depth(), shared.outbox.max_events());
    let oldest = shared
        .health
        .stats()
        .oldest_accepted_ms
        .load(Ordering::Relaxed);
    let now_ms = crate::event::now_ms();
    let oldest_age_secs = (oldest > 0).then(|| now_ms.saturating_sub(oldest) / 1000);
    let fault = shared.outbox.fault();
    let status = if connected && depth < max && fault.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply::json(
        status,
        &json!({
            "broker": if connected { "connected" } else { "disconnected" },
            "broker_url": shared.health.broker(),
            "outbox_depth": depth,
            "republishing": shared.pipeline.republishing(),
            "max_events": max,
            "oldest_age_secs": oldest_age_secs,
            "storage": fault.unwrap_or_else(|| "ok".into()),
        }),
    )
}
