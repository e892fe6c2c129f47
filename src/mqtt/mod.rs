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
pub use crate::config::urls::{BrokerUrl, redact_url};
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

/// The bridge's topics: under `mqtt.base_topic`, with this bridge's
/// instance among `bridge.peers` when set.
pub fn topics_of(config: &Config) -> Topics {
    let bridge = &config.bridge;
    Topics::with_peers(
        &config.mqtt.base_topic,
        &bridge.instance_id(),
        &bridge.peers,
    )
}

/// The MQTT client id: `mqtt.client_id`, with the instance id appended among
/// peers (two sessions under one id would take turns throwing each other off).
pub fn client_id(config: &Config) -> String {
    if config.bridge.clustered() {
        format!("{}-{}", config.mqtt.client_id, config.bridge.instance_id())
    } else {
        config.mqtt.client_id.clone()
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
            topics_of(config).bridge_state(),
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
