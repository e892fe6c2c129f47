//! `[homeassistant]`: MQTT discovery (docs/configuration.md#keys).

use serde::{Deserialize, Serialize};

use super::text;

/// `[homeassistant]`: MQTT discovery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistant {
    /// Publish discovery configs at all.
    pub discovery: bool,
    /// One device-based config per device, or one config per entity.
    pub discovery_mode: DiscoveryMode,
    /// First topic level of every discovery config.
    #[serde(deserialize_with = "text")]
    pub discovery_prefix: String,
    /// Where Home Assistant publishes its birth message (`online`), upon
    /// which every config is published again.
    #[serde(deserialize_with = "text")]
    pub status_topic: String,
}

/// `homeassistant.discovery_mode`: how configs are shaped
/// (docs/home-assistant.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// `<prefix>/device/<node>/config` with every entity under `cmps`
    /// (Home Assistant 2024.12 and later).
    #[default]
    Device,
    /// `<prefix>/<component>/<node>/<object>/config` per entity (openHAB,
    /// older Home Assistant).
    Component,
}

impl Default for HomeAssistant {
    fn default() -> Self {
        HomeAssistant {
            discovery: true,
            discovery_mode: DiscoveryMode::Device,
            discovery_prefix: "homeassistant".into(),
            status_topic: "homeassistant/status".into(),
        }
    }
}
