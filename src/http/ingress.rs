//! The Home Assistant ingress listener (`http.ingress_listen`): the status
//! page and API behind the Supervisor's proxy, never webhooks. Home
//! Assistant has already authenticated the user, so a request here acts
//! with the admin token and without the forwarded-for headers that would
//! make a remote Home Assistant user look like a public client.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use http::{HeaderValue, Request, StatusCode, header};
use hyper::body::Incoming;

use super::reply::{self, Reply};
use super::{Shared, routes};

/// The address the Supervisor's ingress proxy connects from.
pub const SUPERVISOR_PROXY: IpAddr = IpAddr::V4(Ipv4Addr::new(172, 30, 32, 2));

/// Headers that name the browser behind the proxy.
const FORWARDED: [&str; 3] = ["x-forwarded-for", "x-real-ip", "forwarded"];

/// Only the Supervisor's proxy (and loopback, for checks on the machine
/// itself) may use the ingress listener.
pub fn allowed_peer(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip == SUPERVISOR_PROXY || ip.is_loopback()
}

/// Routes one ingress request.
pub async fn route(
    shared: Arc<Shared>,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    if !allowed_peer(peer.ip()) {
        return Ok(reply::error(
            StatusCode::FORBIDDEN,
            "the ingress port accepts only Home Assistant's ingress proxy",
        ));
    }
    if req.uri().path().starts_with("/webhook") {
        return Ok(reply::error(
            StatusCode::NOT_FOUND,
            "webhooks are not served on the ingress port; send them to the webhook port",
        ));
    }
    req.extensions_mut().insert(super::access::Ingress);
    let headers = req.headers_mut();
    for name in FORWARDED {
        headers.remove(name);
    }
    let token = shared.config.http.admin_token.expose();
    if !token.is_empty() {
        // A token that is not a valid header value cannot be presented by
        // any client either; the request then stays unauthenticated.
        if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
            headers.insert(header::AUTHORIZATION, value);
        }
    }
    routes::route(shared, peer, req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_proxy_and_loopback_get_in() {
        assert!(allowed_peer("172.30.32.2".parse().unwrap()));
        assert!(allowed_peer("127.0.0.1".parse().unwrap()));
        assert!(allowed_peer("::1".parse().unwrap()));
        assert!(allowed_peer("::ffff:172.30.32.2".parse().unwrap()));
        assert!(!allowed_peer("172.30.32.3".parse().unwrap()));
        assert!(!allowed_peer("192.168.1.20".parse().unwrap()));
    }
}
