//! What every discovery config shares: the `device` block, the `origin`
//! block, availability on the bridge state topic(s), and the flattened `Base`
//! of the entity platforms. In device mode `device` and `origin` appear once
//! per device config, not in each entity.

use serde::Serialize;

use super::{Context, Feed, PrinterView};
use crate::config::DiscoveryMode;
use crate::ingest::dialects;

/// The origin's name in every config.
const ORIGIN_NAME: &str = "print2mqtt";
/// Where users get help, from Cargo.toml.
const SUPPORT_URL: &str = env!("CARGO_PKG_REPOSITORY");
/// The bridge device's display name.
const BRIDGE_NAME: &str = "print2mqtt bridge";

/// The `device` block: Home Assistant groups entities by its identifiers and
/// needs its `name` in every config that carries it.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Device {
    identifiers: [String; 1],
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    manufacturer: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sw_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via_device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    configuration_url: Option<String>,
}

/// The `origin` block: which application published the config.
#[derive(Debug, Serialize)]
pub(super) struct Origin<'a> {
    name: &'static str,
    sw_version: &'a str,
    support_url: &'static str,
}

/// Availability on the bridge's last-will topic, or among peers on every
/// peer's (`availability_mode: any`: available while any bridge is online).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(super) enum Availability {
    One {
        availability_topic: String,
    },
    Any {
        availability: Vec<AvailabilityTopic>,
        availability_mode: &'static str,
    },
}

/// One entry of an `availability` list.
#[derive(Debug, Serialize)]
pub(super) struct AvailabilityTopic {
    topic: String,
}

impl Availability {
    fn of(topics: &crate::mqtt::topics::Topics) -> Availability {
        if !topics.clustered() {
            return Availability::One {
                availability_topic: topics.bridge_state(),
            };
        }
        let availability = topics
            .availability()
            .into_iter()
            .map(|topic| AvailabilityTopic { topic })
            .collect();
        Availability::Any {
            availability,
            availability_mode: "any",
        }
    }
}

/// The keys every entity config starts with; each platform's struct
/// flattens it in.
#[derive(Debug, Serialize)]
pub(super) struct Base<'a> {
    name: &'static str,
    unique_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a Device>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<Origin<'a>>,
    #[serde(flatten)]
    availability: Option<Availability>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    icon: Option<&'static str>,
}

/// Per-entity choices that go into [`Base`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Look {
    pub object: &'static str,
    pub name: &'static str,
    pub icon: Option<&'static str>,
    /// `entity_category: diagnostic`.
    pub diagnostic: bool,
    /// Unavailable while the bridge is offline (all but the bridge's own
    /// connection state, which must be able to show offline).
    pub available_with_bridge: bool,
}

impl Look {
    /// A plain entity: no icon, not diagnostic, available with the bridge.
    pub const fn new(object: &'static str, name: &'static str) -> Look {
        Look {
            object,
            name,
            icon: None,
            diagnostic: false,
            available_with_bridge: true,
        }
    }
}

/// The device an entity belongs to, with what its configs need to know.
pub(super) struct Owner<'a> {
    pub device: Device,
    /// Discovery node id, also the `unique_id` prefix.
    pub node: String,
    slug: &'a str,
    pub ctx: &'a Context,
    /// The printer has an `app_token` (never the bridge).
    pub app_connection: bool,
    /// The printer sends snapshot URLs / JPEGs (never the bridge).
    pub snapshot_url: bool,
    pub snapshot_jpeg: bool,
}

impl<'a> Owner<'a> {
    /// A printer's device, hanging off the bridge device.
    pub fn printer(view: &'a PrinterView, ctx: &'a Context) -> Owner<'a> {
        // The device names what the printer is fed from.
        let source = view.source.map(dialects::row);
        let node = ctx.discovery.node(&view.slug);
        Owner {
            device: Device {
                identifiers: [node.clone()],
                name: view.name.clone(),
                manufacturer: source.map(|r| r.manufacturer),
                model: source.map(|r| r.model),
                sw_version: None,
                via_device: Some(ctx.discovery.bridge_node()),
                configuration_url: view.configuration_url.clone(),
            },
            node,
            slug: &view.slug,
            ctx,
            app_connection: view.app_connection,
            snapshot_url: view.snapshot_url,
            snapshot_jpeg: view.snapshot_jpeg,
        }
    }

    /// The bridge's own device.
    pub fn bridge(ctx: &'a Context) -> Owner<'a> {
        let node = ctx.discovery.bridge_node();
        Owner {
            device: Device {
                identifiers: [node.clone()],
                name: BRIDGE_NAME.to_owned(),
                manufacturer: Some(ORIGIN_NAME),
                model: Some("Webhook to MQTT bridge"),
                sw_version: Some(ctx.version.clone()),
                via_device: None,
                configuration_url: None,
            },
            node,
            slug: "",
            ctx,
            app_connection: false,
            snapshot_url: false,
            snapshot_jpeg: false,
        }
    }

    /// The origin block.
    pub fn origin(&self) -> Origin<'a> {
        Origin {
            name: ORIGIN_NAME,
            sw_version: &self.ctx.version,
            support_url: SUPPORT_URL,
        }
    }

    /// True for the bridge's own device.
    pub fn is_bridge(&self) -> bool {
        self.slug.is_empty()
    }

    /// True when each entity config carries `device` and `origin` itself
    /// (per-entity configs); a device config carries them once.
    pub fn per_entity(&self) -> bool {
        self.ctx.mode == DiscoveryMode::Component
    }

    /// The shared keys of one entity.
    pub fn base(&self, look: &Look) -> Base<'_> {
        Base {
            name: look.name,
            unique_id: format!("{}_{}", self.node, look.object),
            device: self.per_entity().then_some(&self.device),
            origin: self.per_entity().then(|| self.origin()),
            // Among peers the bridge's own connection state follows them
            // too: no single bridge's last will speaks for all.
            availability: (look.available_with_bridge || self.ctx.topics.clustered())
                .then(|| Availability::of(&self.ctx.topics)),
            entity_category: look.diagnostic.then_some("diagnostic"),
            icon: look.icon,
        }
    }

    /// The topic `feed` names for this device.
    pub fn topic(&self, feed: Feed) -> String {
        feed.topic(&self.ctx.topics, self.slug)
    }
}

/// A QuickView URL Home Assistant accepts as `configuration_url`: an http(s)
/// URL with a host. Anything else is left out, since Home Assistant rejects
/// the whole config over an invalid one.
pub(super) fn configuration_url(url: Option<&str>) -> Option<String> {
    let parsed = url::Url::parse(url?).ok()?;
    (matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty()))
    .then(|| parsed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_become_configuration_urls() {
        let ok = "https://octoeverywhere.com/quickview?id=AB";
        assert_eq!(configuration_url(Some(ok)).as_deref(), Some(ok));
        for bad in [
            "javascript:alert(1)",
            "ftp://x/y",
            "not a url",
            "",
            "file:///etc",
        ] {
            assert_eq!(configuration_url(Some(bad)), None, "{bad}");
        }
        assert_eq!(configuration_url(None), None);
    }
}
