//! `[mqtt]`: the broker the bridge publishes to (docs/configuration.md#keys).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Secret, redact_url, text};

/// `[mqtt]`: the broker the bridge publishes to.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    /// `mqtt://host:1883` or `mqtts://host:8883`; empty starts the embedded broker.
    #[serde(deserialize_with = "text")]
    pub url: String,
    #[serde(deserialize_with = "text")]
    pub username: String,
    pub password: Secret,
    #[serde(deserialize_with = "text")]
    pub client_id: String,
    #[serde(deserialize_with = "text")]
    pub base_topic: String,
    /// PEM CA certificate(s) trusted for `mqtts://` instead of the system roots.
    #[serde(deserialize_with = "text")]
    pub ca_file: String,
    /// PEM client certificate chain for `mqtts://` (with `client_key`).
    #[serde(deserialize_with = "text")]
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    #[serde(deserialize_with = "text")]
    pub client_key: String,
    /// The largest MQTT packet the broker takes (Mosquitto's and EMQX's
    /// `max_packet_size`); 0: the protocol's limit (the embedded broker's
    /// own limit when it is used).
    pub max_packet_bytes: u64,
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            url: String::new(),
            username: String::new(),
            password: Secret::default(),
            client_id: "print2mqtt".into(),
            base_topic: "print2mqtt".into(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            max_packet_bytes: 0,
        }
    }
}

impl fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("client_id", &self.client_id)
            .field("base_topic", &self.base_topic)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}
