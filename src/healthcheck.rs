//! `print2mqtt healthcheck`: asks a running bridge's `/healthz` on this
//! machine, for a container's HEALTHCHECK (no curl needed in the image),
//! over HTTPS when the listener speaks it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::config::Config;

/// How long the bridge gets to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The `/healthz` URL of the bridge that `config` describes: its
/// `http.listen` port, on loopback when it listens on every address, with
/// `https` when `http.tls_cert` and `http.tls_key` are set.
pub fn url(config: &Config) -> String {
    let listen = config.http.listen;
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if https(config) { "https" } else { "http" };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, listen.port()))
}

fn https(config: &Config) -> bool {
    !config.http.tls_cert.is_empty() && !config.http.tls_key.is_empty()
}

/// GETs `/healthz`; `Err` says why the bridge is not healthy.
pub async fn check(config: &Config) -> Result<(), String> {
    let url = url(config);
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .no_proxy()
        // This asks whether the process on this machine answers, by its
        // address, not a name its certificate could carry; no secret is sent.
        .tls_danger_accept_invalid_certs(https(config))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let answer = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: no answer: {e}"))?;
    match answer.status().as_u16() {
        200 => Ok(()),
        status => Err(format!("{url} answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_loopback_when_listening_everywhere() {
        let mut c = Config::default();
        assert_eq!(url(&c), "http://127.0.0.1:8080/healthz");
        c.http.listen = "[::]:9000".parse().unwrap();
        assert_eq!(url(&c), "http://[::1]:9000/healthz");
        c.http.listen = "192.168.1.5:81".parse().unwrap();
        assert_eq!(url(&c), "http://192.168.1.5:81/healthz");
        c.http.tls_cert = "cert.pem".into();
        c.http.tls_key = "key.pem".into();
        assert_eq!(url(&c), "https://192.168.1.5:81/healthz");
    }
}
