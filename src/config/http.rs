//! `[http]`: the webhook listener's address, limits, TLS and ingress
//! (docs/configuration.md#keys).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Secret, text};

/// `[http]`: the webhook listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    pub admin_token: Secret,
    /// A second listener for Home Assistant ingress: the status page and
    /// API, never webhooks. Empty: none.
    #[serde(deserialize_with = "text")]
    pub ingress_listen: String,
    /// Largest JSON or form body; larger ones get 413.
    pub max_body_bytes: u64,
    /// Largest multipart body (a snapshot JPEG rides along).
    pub max_multipart_bytes: u64,
    /// Request headers up to this size always get through (never a 431).
    pub max_header_bytes: u64,
    /// Time a client gets to send a request's headers.
    pub header_timeout_secs: u64,
    /// Time a client gets to send a webhook's body once the headers arrived.
    pub body_timeout_secs: u64,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout_secs: u64,
    /// Open connections beyond which the longest-idle one is closed.
    pub max_connections: u64,
    /// Open connections of one client address (IPv6: one /64) beyond which
    /// its own longest-stalled one is closed.
    pub max_connections_per_peer: u64,
    /// Bytes that bodies of requests not yet authenticated may hold in all
    /// (never less than `max_multipart_bytes`); beyond it they get 503.
    pub max_unauthenticated_bytes: u64,
    /// Host names (besides local names and IP addresses) under which the
    /// status page and API answer while `admin_token` is empty.
    pub allowed_hosts: Vec<String>,
    /// Deepest nesting of JSON objects and arrays in a body.
    pub max_json_depth: u64,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS.
    #[serde(deserialize_with = "text")]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(deserialize_with = "text")]
    pub tls_key: String,
}

impl Http {
    /// `ingress_listen` as an address; `Ok(None)` when empty.
    pub fn ingress_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        let text = self.ingress_listen.trim();
        (!text.is_empty()).then(|| text.parse()).transpose()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_token: Secret::default(),
            ingress_listen: String::new(),
            max_body_bytes: 1024 * 1024,
            max_multipart_bytes: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            idle_timeout_secs: 75,
            max_connections: 1024,
            max_connections_per_peer: 64,
            max_unauthenticated_bytes: 64 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            max_json_depth: 64,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}
