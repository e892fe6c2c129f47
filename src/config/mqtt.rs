//! `[mqtt]`: the broker the bridge publishes to (docs/configuration.md#keys).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Secret, bridge, text, urls};

/// `[mqtt]`: the broker the bridge publishes to.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    /// `mqtt://host:1883` or `mqtts://host:8883`, or several (a list, or
    /// one comma-separated string) tried in turn; empty starts the
    /// embedded broker.
    #[serde(deserialize_with = "bridge::list", serialize_with = "bridge::list_ser")]
    pub url: Vec<String>,
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
            url: Vec::new(),
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

impl Mqtt {
    /// Every `mqtt.url`, parsed, in the order they are tried; empty: the
    /// embedded broker (or the add-on's Supervisor broker).
    pub fn broker_urls(&self) -> Result<Vec<urls::BrokerUrl>, String> {
        let mut out = Vec::new();
        for url in &self.url {
            out.extend(urls::BrokerUrl::parse(url)?);
        }
        Ok(out)
    }

    /// Every `mqtt.url` fit to print.
    pub fn shown_urls(&self) -> Vec<String> {
        self.url.iter().map(|u| urls::redact_url(u)).collect()
    }
}

impl fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &self.shown_urls())
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
