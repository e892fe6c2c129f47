//! The webhook handler: refuse cross-site browser requests, check secrets
//! outside the body, read the body within its limits, parse, authenticate,
//! filter, hand to the pipeline, answer — and log one line per webhook.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{Request, StatusCode, header};
use hyper::body::Incoming;
use serde_json::json;
use tracing::{info, warn};

use super::body::{self, BodyError};
use super::limits::{Activity, Limits};
use super::reply::{self, Reply};
use super::{Shared, origin};
use crate::auth::{self, AuthError};
use crate::config::Secret;
use crate::event::Reception;
use crate::ingest::{self, Dialect, Webhook};
use crate::slug::slugify;
use crate::webhook_log::Outcome;

/// Custom header the OctoPrint-Webhooks plugin can be set to send.
const SECRET_HEADER: &str = "x-print2mqtt-secret";

/// Handles one webhook request: refuse a browser's cross-site request,
/// check a secret presented in the URL or headers, read the body within its
/// limits (drawing on the unauthenticated budget unless that secret was
/// right), parse, check every credential presented, filter, submit.
pub async fn handle(
    shared: &Shared,
    peer: SocketAddr,
    req: Request<Incoming>,
    dialect: Option<Dialect>,
) -> Reply {
    let (parts, body) = req.into_parts();
    let limits = Limits::new(&shared.config.http);
    let senders = senders(peer.ip(), &parts.headers);
    let mut seen = Outcome {
        peer: Some(peer.ip()),
        forwarded_for: senders.get(1).copied(),
        dialect: dialect.map(Dialect::name),
        ..Outcome::default()
    };
    if let Some(why) = origin::cross_site(&parts.headers) {
        // Logged by `rejected` at info: a page can send these at will.
        return rejected(shared, &seen, StatusCode::FORBIDDEN, &why);
    }
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let outside = outside_secrets(&parts.headers, &query);
    let config = &shared.config;
    // A printer named in the URL is known before the body; otherwise a
    // secret in the URL or headers must be one of the configured ones.
    let named = query_value(&query, "printer");
    let early = match named {
        Some(id) => printer_check(config.secret_for(id), &outside, &senders),
        None => early_check(config, &outside, &senders),
    };
    let authenticated = match early {
        Ok(done) => done,
        Err(e) => return refused(shared, &seen, peer, named.unwrap_or(""), e),
    };

    let content_type = header_text(&parts.headers, header::CONTENT_TYPE.as_str());
    let multipart = content_type.as_deref().is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/")
    });
    let limit = if multipart {
        limits.max_multipart
    } else {
        limits.max_body
    };
    let declared = header_text(&parts.headers, header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        let why = BodyError::TooLarge(limit).to_string();
        return rejected(shared, &seen, StatusCode::PAYLOAD_TOO_LARGE, &why);
    }
    let reading = body::Reading {
        limits: &limits,
        multipart,
        budget: (!authenticated).then_some(&shared.guard),
        activity: parts.extensions.get::<Arc<Activity>>(),
    };
    let (body, _held) = match body::read(body, reading).await {
        Ok(read) => read,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
                BodyError::Unreadable => StatusCode::BAD_REQUEST,
                BodyError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            };
            return rejected(shared, &seen, status, &e.to_string());
        }
    };

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
    let dialect = dialect.unwrap_or(event.source);
    let printer_slug = slugify(&event.printer_id);
    seen.dialect = Some(dialect.name());
    seen.printer = Some(&printer_slug);
    seen.event = Some(event.event.name());

    // Every credential presented must be this printer's secret.
    let mut presented: Vec<&str> = outside.iter().map(String::as_str).collect();
    presented.extend(parsed.secret.as_deref().filter(|s| !s.is_empty()));
    if let Err(e) = auth::check(config.secret_for(&event.printer_id), &presented, &senders) {
        return refused(shared, &seen, peer, &event.printer_id, e);
    }

    let kind = event.event;
    let filter = config.printer(&event.printer_id).map(|p| &p.events);
    if filter.is_some_and(|events| !events.allows(kind)) {
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
    let submitted = match &shared.cluster {
        Some(cluster) => cluster.accept(event).await,
        None => shared.pipeline.submit(event).await,
    };
    match submitted {
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

/// The non-empty secrets a request carries outside its body: `?token=`,
/// `?apiSecret=`, `Authorization: Bearer` and `X-Print2mqtt-Secret`.
fn outside_secrets(headers: &http::HeaderMap, query: &[(String, String)]) -> Vec<String> {
    let bearer = header_text(headers, header::AUTHORIZATION.as_str());
    let custom = header_text(headers, SECRET_HEADER);
    let from_query = query
        .iter()
        .filter(|(k, _)| k == "token" || k == "apiSecret")
        .map(|(_, v)| v.clone());
    from_query
        .chain(bearer.as_deref().and_then(auth::bearer).map(str::to_owned))
        .chain(custom)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Before the body is read, for the printer the URL names: `Ok(true)` when
/// the secrets outside the body are its secret (authenticated), `Ok(false)`
/// when the body may still bring it, an error when one is wrong or, with no
/// secret, the sender is not local.
fn printer_check(
    expected: &Secret,
    outside: &[String],
    senders: &[IpAddr],
) -> Result<bool, AuthError> {
    if expected.is_empty() {
        return auth::check(expected, &[], senders).map(|()| false);
    }
    if outside.is_empty() {
        return Ok(false);
    }
    let presented: Vec<&str> = outside.iter().map(String::as_str).collect();
    auth::check(expected, &presented, senders).map(|()| true)
}

/// Before the body is read, with the printer not known yet: each secret in
/// the URL or headers must be one of the configured secrets (`Ok(true)`:
/// authenticated); with no secret configured at all, the sender must be
/// local.
fn early_check(
    config: &crate::config::Config,
    outside: &[String],
    senders: &[IpAddr],
) -> Result<bool, AuthError> {
    let configured: Vec<&Secret> = std::iter::once(&config.auth.secret)
        .chain(config.printers.values().map(|p| &p.secret))
        .filter(|s| !s.is_empty())
        .collect();
    if configured.is_empty() {
        return auth::check(&Secret::default(), &[], senders).map(|()| false);
    }
    if outside.is_empty() {
        return Ok(false);
    }
    let each_known = outside.iter().all(|presented| {
        configured
            .iter()
            .any(|expected| auth::check(expected, &[presented], &[]).is_ok())
    });
    if each_known {
        Ok(true)
    } else {
        Err(AuthError::Wrong)
    }
}

fn refused(
    shared: &Shared,
    seen: &Outcome<'_>,
    peer: SocketAddr,
    printer: &str,
    e: AuthError,
) -> Reply {
    if e == AuthError::NotLocal {
        warn!(%peer, printer = %slugify(printer), "{e}");
    }
    rejected(shared, seen, StatusCode::UNAUTHORIZED, &e.to_string())
}

/// The first non-empty value of a query parameter.
fn query_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
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

fn header_text(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The peer and every address a proxy says it forwarded for
/// (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`). An entry that is not an
/// address counts as a public sender.
pub fn senders(peer: IpAddr, headers: &http::HeaderMap) -> Vec<IpAddr> {
    let unknown = IpAddr::from([192, 0, 2, 0]);
    let mut out = vec![peer];
    out.extend(
        origin::forwarded_for(headers)
            .into_iter()
            .map(|ip| ip.unwrap_or(unknown)),
    );
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
