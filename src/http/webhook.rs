//! The webhook handler: read the body within its limits, parse, authenticate,
//! filter, hand to the pipeline, answer — and log one line per webhook.

use std::net::{IpAddr, SocketAddr};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::{info, warn};

use super::Shared;
use super::limits::Limits;
use super::reply::{self, Reply};
use crate::auth::{self, AuthError};
use crate::event::Reception;
use crate::ingest::{self, Dialect, Webhook};
use crate::slug::slugify;
use crate::webhook_log::Outcome;

/// Custom header the OctoPrint-Webhooks plugin can be set to send.
const SECRET_HEADER: &str = "x-print2mqtt-secret";

/// Handles one webhook request.
pub async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    req: Request<Incoming>,
    dialect: Option<Dialect>,
) -> Reply {
    let (parts, body) = req.into_parts();
    let limits = Limits::new(&shared.config.http);
    let mut seen = Outcome {
        peer: Some(peer.ip()),
        forwarded_for: senders(peer.ip(), &parts.headers).get(1).copied(),
        dialect: dialect.map(Dialect::name),
        ..Outcome::default()
    };
    let content_type = header_text(&parts.headers, header::CONTENT_TYPE.as_str());
    let limit = if content_type.as_deref().is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    }) {
        limits.max_multipart
    } else {
        limits.max_body
    };
    let declared = header_text(&parts.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return rejected(
            shared,
            &seen,
            StatusCode::PAYLOAD_TOO_LARGE,
            &too_large(limit),
        );
    }
    let body = match tokio::time::timeout(limits.body_timeout, Limited::new(body, limit).collect())
        .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return rejected(
                shared,
                &seen,
                StatusCode::PAYLOAD_TOO_LARGE,
                &too_large(limit),
            );
        }
        Ok(Err(_)) => {
            return rejected(
                shared,
                &seen,
                StatusCode::BAD_REQUEST,
                "could not read the body",
            );
        }
        Err(_) => {
            return rejected(
                shared,
                &seen,
                StatusCode::REQUEST_TIMEOUT,
                "body not received in time",
            );
        }
    };
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();

    let hook = Webhook {
        body: &body,
        content_type: content_type.as_deref(),
        query: &query,
        dialect,
        limits: limits.ingest(),
    };
    let parsed = match ingest::parse(&hook, Reception::now()) {
        Ok(p) => p,
        Err(e) => return rejected(shared, &seen, e.status(), &e.to_string()),
    };
    let event = parsed.event;
    let dialect = dialect.unwrap_or(match event.source {
        crate::event::Source::OctoEverywhere => Dialect::OctoEverywhere,
        crate::event::Source::OctoPrint => Dialect::OctoPrint,
    });
    let printer_slug = slugify(&event.printer_id);
    seen.dialect = Some(dialect.name());
    seen.printer = Some(&printer_slug);
    seen.event = Some(event.event.name());

    let bearer = header_text(&parts.headers, header::AUTHORIZATION.as_str());
    let custom = header_text(&parts.headers, SECRET_HEADER);
    let token = query
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    let presented: Vec<&str> = [
        parsed.secret.as_deref(),
        token,
        bearer.as_deref().and_then(auth::bearer),
        custom.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect();
    let senders = senders(peer.ip(), &parts.headers);
    let config = &shared.config;
    if let Err(e) = auth::check(config.secret_for(&event.printer_id), &presented, &senders) {
        if e == AuthError::NotLocal {
            warn!(%peer, printer = %slugify(&event.printer_id), "{e}");
        }
        return rejected(shared, &seen, StatusCode::UNAUTHORIZED, &e.to_string());
    }

    let kind = event.event;
    let filter = config.printer(&event.printer_id).map(|p| &p.events);
    if filter.is_some_and(|events| !events.is_empty() && !events.iter().any(|e| e == kind.name())) {
        info!(printer = %slugify(&event.printer_id), event = %kind, dialect = dialect.name(), status = 200, "Webhook filtered");
        shared.monitor.webhook(&Outcome {
            status: 200,
            filtered: true,
            ..seen
        });
        return reply::json(StatusCode::OK, &json!({ "status": "filtered" }));
    }
    let id = event.id;
    let printer = event.printer_id.clone();
    match shared.pipeline.submit(event).await {
        Ok(slug) => {
            info!(printer = %slug, event = %kind, dialect = dialect.name(), status = 200, "Webhook accepted");
            shared.monitor.webhook(&Outcome {
                printer: Some(&slug),
                status: 200,
                id: Some(id.to_string()),
                ..seen
            });
            reply::json(
                StatusCode::OK,
                &json!({ "status": "accepted", "id": id.to_string(), "printer": slug }),
            )
        }
        Err(e) => {
            let status = e.status();
            warn!(%peer, printer = %slugify(&printer), event = %kind, status = status.as_u16(), "Webhook refused: {e}");
            shared.monitor.webhook(&Outcome {
                status: status.as_u16(),
                reason: Some(&e.to_string()),
                ..seen
            });
            reply::error(status, &e.to_string())
        }
    }
}

fn rejected(shared: &Shared, seen: &Outcome<'_>, status: StatusCode, reason: &str) -> Reply {
    let peer = seen.peer.map(|ip| ip.to_string()).unwrap_or_default();
    info!(%peer, status = status.as_u16(), reason, "Webhook rejected");
    shared.monitor.webhook(&Outcome {
        status: status.as_u16(),
        reason: Some(reason),
        ..seen.clone()
    });
    reply::error(status, reason)
}

fn too_large(limit: usize) -> String {
    format!("body larger than {limit} bytes")
}

fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The peer and every address a proxy says it forwarded for. An entry that
/// is not an address counts as a public sender.
pub fn senders(peer: IpAddr, headers: &http::HeaderMap) -> Vec<IpAddr> {
    let unknown = IpAddr::from([192, 0, 2, 0]);
    let mut out = vec![peer];
    for name in ["x-forwarded-for", "x-real-ip"] {
        for value in headers.get_all(name) {
            let text = String::from_utf8_lossy(value.as_bytes());
            out.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap_or(unknown)),
            );
        }
    }
    out
}
