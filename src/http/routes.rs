//! Request routing: which path and method reach which handler (DESIGN.md §6).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tracing::info;

use super::reply::{self, Reply};
use super::{Shared, appconnection, webhook};
use crate::auth;
use crate::ingest::Dialect;

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
    };
    let dialect = match path {
        "/webhook" => Some(None),
        "/webhook/octoeverywhere" => Some(Some(Dialect::OctoEverywhere)),
        "/webhook/octoprint" => Some(Some(Dialect::OctoPrint)),
        _ => None,
    };
    if let Some(dialect) = dialect {
        return Ok(match *req.method() {
            Method::POST | Method::PUT | Method::GET => {
                webhook::handle(&shared, peer, req, dialect).await
            }
            _ => reply::method_not_allowed("POST, PUT, GET"),
        });
    }
    if let Some(printer) = path.strip_prefix("/api/printers/") {
        return Ok(if !admin_allowed(&shared, peer, &req) {
            reply::error(StatusCode::UNAUTHORIZED, "admin token required")
        } else if req.method() == Method::DELETE {
            remove_printer(&shared, printer).await
        } else {
            reply::method_not_allowed("DELETE")
        });
    }
    let get_only = |handler: fn(&Shared) -> Reply| {
        if req.method() == Method::GET || req.method() == Method::HEAD {
            handler(&shared)
        } else {
            reply::method_not_allowed("GET")
        }
    };
    Ok(match path {
        "/healthz" => get_only(|_| reply::text(StatusCode::OK, "ok\n")),
        "/readyz" => get_only(readyz),
        "/" => get_only(|_| {
            reply::text(
                StatusCode::OK,
                concat!(
                    "print2mqtt ",
                    env!("CARGO_PKG_VERSION"),
                    ": send webhooks to /webhook\n"
                ),
            )
        }),
        "/api/printers" => {
            if !admin_allowed(&shared, peer, &req) {
                reply::error(StatusCode::UNAUTHORIZED, "admin token required")
            } else {
                get_only(printers)
            }
        }
        "/api/appconnection" => {
            if !admin_allowed(&shared, peer, &req) {
                reply::error(StatusCode::UNAUTHORIZED, "admin token required")
            } else {
                get_only(appconnection::list)
            }
        }
        _ => reply::error(StatusCode::NOT_FOUND, "not found"),
    })
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
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let oldest_age_secs = (oldest > 0).then(|| now_ms.saturating_sub(oldest) / 1000);
    let status = if connected && depth < max {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply::json(
        status,
        &json!({
            "broker": if connected { "connected" } else { "disconnected" },
            "outbox_depth": depth,
            "max_events": max,
            "oldest_age_secs": oldest_age_secs,
        }),
    )
}

fn printers(shared: &Shared) -> Reply {
    let table = shared
        .pipeline
        .printers()
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let list: Vec<_> = table
        .states
        .iter()
        .map(|(slug, s)| {
            json!({
                "printer": slug,
                "printer_id": s.printer_id,
                "name": s.name,
                "state": s.status.map(|s| s.name()),
                "progress": s.progress,
                "problem": s.problem,
            })
        })
        .collect();
    reply::json(StatusCode::OK, &json!(list))
}

/// `DELETE /api/printers/<slug or printer id>`: forgets the printer and
/// clears its retained topics and discovery configs.
async fn remove_printer(shared: &Shared, segment: &str) -> Reply {
    let Some(printer) = percent_decode(segment) else {
        return reply::error(StatusCode::BAD_REQUEST, "printer is not valid UTF-8");
    };
    match shared.pipeline.remove(&printer).await {
        Ok(Some(slug)) => {
            info!(printer = %slug, "Printer removed");
            reply::json(
                StatusCode::OK,
                &json!({ "status": "removed", "printer": slug }),
            )
        }
        Ok(None) => reply::error(
            StatusCode::NOT_FOUND,
            &format!("no printer `{printer}` (give its slug or printer id)"),
        ),
        Err(e) => reply::error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Decodes `%XX` escapes of one path segment; `None` if the result is not
/// UTF-8. A `%` without two hex digits stays as it is.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The status API is open to local clients while `http.admin_token` is
/// empty, and needs that token (as a Bearer header) once it is set.
fn admin_allowed(shared: &Shared, peer: SocketAddr, req: &Request<Incoming>) -> bool {
    let token = &shared.config.http.admin_token;
    let bearer = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer);
    let presented: Vec<&str> = bearer.into_iter().collect();
    auth::check(
        token,
        &presented,
        &webhook::senders(peer.ip(), req.headers()),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn printer_segments_are_percent_decoded() {
        assert_eq!(percent_decode("ender_3").as_deref(), Some("ender_3"));
        assert_eq!(percent_decode("Ender%203").as_deref(), Some("Ender 3"));
        assert_eq!(percent_decode("a%2Fb+c").as_deref(), Some("a/b+c"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(percent_decode("%C3%BC").as_deref(), Some("ü"));
        assert_eq!(percent_decode("%FF"), None);
    }
}
