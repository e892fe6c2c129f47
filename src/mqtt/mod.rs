//! Everything that speaks MQTT: topic names, message rendering, delivery
//! bookkeeping, reconnect backoff, the publisher task over rumqttc, state
//! restore, printer removal and the embedded broker.

pub mod backoff;
pub mod delivery;
pub mod embedded;
pub mod messages;
pub mod publisher;
pub mod remove;
pub mod restore;
pub mod topics;

use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

use crate::config::Config;
use topics::Topics;

/// The largest MQTT packet the bridge reads, and the embedded broker's
/// limit (snapshots are JPEGs of a few MB).
pub const MAX_PACKET: usize = 32 * 1024 * 1024;
/// The largest packet MQTT 3.1.1 can express (remaining length 268,435,455).
pub const PROTOCOL_MAX_PACKET: usize = 268_435_455 + 5;

/// The largest packet the broker takes: `mqtt.max_packet_bytes`, else the
/// embedded broker's own limit, else the protocol's (an MQTT 3.1.1 broker
/// does not announce its limit).
pub fn max_packet(config: &Config, embedded: bool) -> usize {
    match config.mqtt.max_packet_bytes {
        0 if embedded => MAX_PACKET,
        0 => PROTOCOL_MAX_PACKET,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

impl BrokerUrl {
    /// Parses `mqtt://[user[:pass]@]host[:port]` or `mqtts://…`; an empty
    /// string means "use the embedded broker" and gives `None`.
    pub fn parse(url: &str) -> Result<Option<BrokerUrl>, String> {
        if url.trim().is_empty() {
            return Ok(None);
        }
        let shown = redact_url(url);
        let u = url::Url::parse(url).map_err(|e| format!("`{shown}` is not a URL: {e}"))?;
        let tls = match u.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" | "tls" => true,
            other => {
                return Err(format!(
                    "unsupported scheme `{other}`: use mqtt://host:1883 or mqtts://host:8883"
                ));
            }
        };
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("`{shown}` names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(Some(BrokerUrl {
            tls,
            host,
            port: u.port().unwrap_or(if tls { 8883 } else { 1883 }),
            username: Some(u.username()).filter(|s| !s.is_empty()).map(decode),
            password: u.password().map(decode),
        }))
    }
}

/// `url` fit to print: everything between the user name's `:` and the
/// last `@` of the text replaced by `<redacted>` — read as text, not as a
/// URL, so a password that breaks the URL (or holds an `@`) is hidden too.
pub fn redact_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url[start..].rfind('@').map(|i| start + i) else {
        return url.to_owned();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:<redacted>{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// Which connection options are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The publishing connection: persistent session, last will `offline`.
    Bridge,
    /// A short-lived reader (state restore): clean session, no last will.
    Reader,
}

/// rumqttc options: credentials, TLS, and the session and last will `role`
/// asks for.
pub fn options(
    config: &Config,
    url: &BrokerUrl,
    client_id: &str,
    role: Role,
) -> anyhow::Result<MqttOptions> {
    let mut o = MqttOptions::new(client_id, &url.host, url.port);
    o.set_keep_alive(Duration::from_secs(30))
        // Outgoing packets are sized by the delivery bookkeeping against
        // `mqtt.max_packet_bytes`; rumqttc must never fail the connection
        // over one.
        .set_max_packet_size(MAX_PACKET, PROTOCOL_MAX_PACKET)
        .set_inflight(100)
        .set_clean_session(role == Role::Reader);
    if role == Role::Bridge {
        o.set_last_will(LastWill::new(
            Topics::new(&config.mqtt.base_topic).bridge_state(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    }
    let username = Some(config.mqtt.username.clone())
        .filter(|u| !u.is_empty())
        .or_else(|| url.username.clone());
    let password = Some(config.mqtt.password.expose().to_owned())
        .filter(|p| !p.is_empty())
        .or_else(|| url.password.clone());
    if let Some(user) = username {
        o.set_credentials(user, password.unwrap_or_default());
    }
    if url.tls {
        o.set_transport(Transport::tls_with_config(tls_config(config)?));
    }
    Ok(o)
}

/// TLS trusting `mqtt.ca_file` (else the system's root certificates), with
/// the client certificate of `mqtt.client_cert` and `mqtt.client_key` if set.
fn tls_config(config: &Config) -> anyhow::Result<TlsConfiguration> {
    let m = &config.mqtt;
    let ca = Some(m.ca_file.as_str()).filter(|s| !s.is_empty());
    let client = Some((m.client_cert.as_str(), m.client_key.as_str()))
        .filter(|(c, k)| !c.is_empty() && !k.is_empty());
    let config = crate::tls::client_config(ca, client)?;
    Ok(TlsConfiguration::Rustls(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(BrokerUrl::parse("").unwrap(), None);
        let u = BrokerUrl::parse("mqtt://127.0.0.1:18830").unwrap().unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port),
            (false, "127.0.0.1", 18830)
        );
        let u = BrokerUrl::parse("mqtts://user:p%40ss@broker.lan")
            .unwrap()
            .unwrap();
        assert_eq!((u.tls, u.port), (true, 8883));
        assert_eq!(u.username.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        let u = BrokerUrl::parse("mqtt://[::1]").unwrap().unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 1883));
        assert!(BrokerUrl::parse("http://x").unwrap_err().contains("scheme"));
        assert!(BrokerUrl::parse("localhost:1883").is_err());
        assert!(BrokerUrl::parse("not a url").is_err());
        for (bad, shown) in [
            (
                "mqtt://user:pa ss@broker:99999",
                "mqtt://user:<redacted>@broker:99999",
            ),
            (
                "mqtt://user:p@ss/w@broker:99999",
                "mqtt://user:<redacted>@broker:99999",
            ),
            ("mqtt://user:secret@:1883", "mqtt://user:<redacted>@:1883"),
        ] {
            let err = BrokerUrl::parse(bad).map_or_else(|e| e, |_| shown.to_owned());
            assert!(
                !err.contains("pa ss") && !err.contains("p@ss") && !err.contains("secret"),
                "{err}"
            );
            assert!(err.contains(shown), "{err}");
            assert_eq!(redact_url(bad), shown);
        }
        assert_eq!(
            redact_url("mqtts://u:p%40ss@broker.lan"),
            "mqtts://u:<redacted>@broker.lan"
        );
        assert_eq!(redact_url("mqtt://u@broker"), "mqtt://u@broker");
    }
}
