//! The only place a topic string is built: the bridge's own topics
//! (docs/mqtt-topics.md) and Home Assistant's discovery config topics
//! (docs/home-assistant.md).

use crate::state::Field;

/// Topic names under one base topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
    /// Set when several bridges serve the same printers
    /// (docs/scale-out.md): this bridge's instance id and every peer's.
    cluster: Option<Cluster>,
}

/// This bridge among its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cluster {
    instance: String,
    peers: Vec<String>,
}

/// The retained `last_event` leaf and the non-retained `event` stream leaf.
pub const LAST_EVENT: &str = "last_event";
pub const EVENT: &str = "event";
/// The retained App Connection registration state leaf (docs/mqtt-topics.md).
pub const APP_CONNECTION: &str = "app_connection";

/// Leaves under `<base>/bridge/`: connection state (`online`/`offline`),
/// webhooks accepted since the counter began, the time of the last one, and
/// the bridge's version. All retained.
pub const BRIDGE_STATE: &str = "state";
pub const BRIDGE_WEBHOOKS: &str = "webhooks";
pub const BRIDGE_LAST_WEBHOOK: &str = "last_webhook";
pub const BRIDGE_VERSION: &str = "version";

/// The base topic whose installs keep the plain ids `print2mqtt_<slug>` and
/// `print2mqtt_bridge`; under any other base topic the ids carry an
/// instance id (`print2mqtt-<instance>_<slug>`), so two bridges on one
/// broker never share a device.
pub const DEFAULT_BASE: &str = "print2mqtt";
/// What every node id starts with.
const NODE_PREFIX: &str = "print2mqtt";
/// The slug of the bridge's own device (reserved for printers).
const BRIDGE_SLUG: &str = "bridge";

impl Topics {
    /// Topics under `base`, which config validation has checked to be a
    /// non-empty topic without wildcards.
    pub fn new(base: &str) -> Topics {
        Topics {
            base: base.to_owned(),
            cluster: None,
        }
    }

    /// Topics of the bridge `instance` among `peers` (valid slugs, checked
    /// by config validation): each has its own state topic. No peers: the
    /// same as [`Topics::new`].
    pub fn with_peers(base: &str, instance: &str, peers: &[String]) -> Topics {
        let cluster = (!peers.is_empty()).then(|| Cluster {
            instance: instance.to_owned(),
            peers: peers.to_vec(),
        });
        Topics {
            cluster,
            ..Topics::new(base)
        }
    }

    /// True when several bridges serve the same printers.
    pub fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    /// The base topic, e.g. `print2mqtt`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// This bridge's connection state, `online` / `offline` (its last
    /// will): `<base>/bridge/state`, or `<base>/bridge/<instance>/state`
    /// among peers.
    pub fn bridge_state(&self) -> String {
        match &self.cluster {
            None => self.bridge(BRIDGE_STATE),
            Some(c) => self.instance_state(&c.instance),
        }
    }

    /// `<base>/bridge/<instance>/state`.
    pub fn instance_state(&self, instance: &str) -> String {
        format!("{}/bridge/{instance}/{BRIDGE_STATE}", self.base)
    }

    /// The state topics Home Assistant's availability follows: this
    /// bridge's, or every peer's (any one `online` is enough).
    pub fn availability(&self) -> Vec<String> {
        match &self.cluster {
            None => vec![self.bridge_state()],
            Some(c) => c.peers.iter().map(|p| self.instance_state(p)).collect(),
        }
    }

    /// `<base>/bridge/<leaf>`.
    pub fn bridge(&self, leaf: &str) -> String {
        format!("{}/bridge/{leaf}", self.base)
    }

    /// The leaf of a `<base>/bridge/<leaf>` topic (no allocation).
    pub fn bridge_leaf<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic.strip_prefix(&self.base)?.strip_prefix("/bridge/")
    }

    /// `<base>/<slug>/<leaf>`.
    pub fn printer(&self, slug: &str, leaf: &str) -> String {
        format!("{}/{slug}/{leaf}", self.base)
    }

    /// The topic of one retained per-printer field.
    pub fn field(&self, slug: &str, field: Field) -> String {
        self.printer(slug, field.leaf())
    }

    /// A filter matching every per-printer topic (used to restore state).
    pub fn all_printers(&self) -> String {
        format!("{}/+/+", self.base)
    }

    /// Splits a per-printer topic into slug and leaf.
    pub fn parse_printer<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix('/')?;
        let (slug, leaf) = rest.split_once('/')?;
        (!leaf.contains('/') && slug != "bridge").then_some((slug, leaf))
    }
}

/// Home Assistant discovery topics under one prefix: per component
/// `<prefix>/<component>/<node>/<object>/config`, per device
/// `<prefix>/device/<node>/config`. Node ids are `print2mqtt_<slug>`, or
/// `print2mqtt-<instance>_<slug>` under a base topic other than
/// [`DEFAULT_BASE`]; the instance never holds `_`, so no two bridges' ids
/// meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    prefix: String,
    /// `print2mqtt_` or `print2mqtt-<instance>_`.
    node_prefix: String,
}

/// The component level of a device-based discovery topic.
pub const DEVICE_COMPONENT: &str = "device";

impl Discovery {
    /// Topics under `prefix` (checked by config validation like a base
    /// topic) for the bridge publishing under `base`.
    pub fn new(prefix: &str, base: &str) -> Discovery {
        let node_prefix = match instance_id(base) {
            None => format!("{NODE_PREFIX}_"),
            Some(instance) => format!("{NODE_PREFIX}-{instance}_"),
        };
        Discovery {
            prefix: prefix.to_owned(),
            node_prefix,
        }
    }

    /// The node id of a printer's device, e.g. `print2mqtt_ender3`.
    pub fn node(&self, slug: &str) -> String {
        format!("{}{slug}", self.node_prefix)
    }

    /// The node id of the bridge's own device, e.g. `print2mqtt_bridge`.
    pub fn bridge_node(&self) -> String {
        self.node(BRIDGE_SLUG)
    }

    /// One per-component config topic.
    pub fn config(&self, component: &str, node: &str, object: &str) -> String {
        format!("{}/{component}/{node}/{object}/config", self.prefix)
    }

    /// The device-based config topic of one node.
    pub fn device_config(&self, node: &str) -> String {
        format!("{}/{DEVICE_COMPONENT}/{node}/config", self.prefix)
    }

    /// A filter matching every per-component config of one node.
    pub fn node_configs(&self, node: &str) -> String {
        format!("{}/+/{node}/+/config", self.prefix)
    }

    /// Splits a per-component config topic into (component, node, object).
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str, &'t str)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let rest = rest.strip_suffix("/config")?;
        let mut levels = rest.split('/');
        match (levels.next(), levels.next(), levels.next(), levels.next()) {
            (Some(component), Some(node), Some(object), None) => Some((component, node, object)),
            _ => None,
        }
    }

    /// The node of a device-based config topic.
    pub fn parse_device<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let node = rest
            .strip_prefix(DEVICE_COMPONENT)?
            .strip_prefix('/')?
            .strip_suffix("/config")?;
        (!node.contains('/')).then_some(node)
    }

    /// The node of either kind of config topic.
    pub fn parse_node<'t>(&self, topic: &'t str) -> Option<&'t str> {
        self.parse_device(topic)
            .or_else(|| self.parse(topic).map(|(_, node, _)| node))
    }
}

/// The instance id of a bridge publishing under `base`: none for
/// [`DEFAULT_BASE`] (existing installs keep their ids), else the base topic
/// lowercased with every character outside `[a-z0-9]` as `-`, plus a short
/// hash of the base topic when that changed anything (so `home/printers` and
/// `home-printers` stay apart).
pub fn instance_id(base: &str) -> Option<String> {
    if base == DEFAULT_BASE {
        return None;
    }
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean == base {
        return Some(clean);
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(base.as_bytes());
    let hash: String = digest[..3].iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{clean}-{hash}"))
}

/// True when `topic` can serve as a base topic: non-empty, no wildcards,
/// no NUL, no empty level.
pub fn is_valid_base(topic: &str) -> bool {
    !topic.is_empty()
        && !topic.contains(['+', '#', '\0'])
        && topic.split('/').all(|level| !level.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let t = Topics::new("print2mqtt");
        assert_eq!(t.bridge_state(), "print2mqtt/bridge/state");
        assert_eq!(t.availability(), ["print2mqtt/bridge/state"]);
        assert_eq!(Topics::with_peers("print2mqtt", "b1", &[]), t);
        let peers = ["b1".to_owned(), "b2".to_owned()];
        let c = Topics::with_peers("print2mqtt", "b2", &peers);
        assert!(c.clustered() && !t.clustered());
        assert_eq!(c.bridge_state(), "print2mqtt/bridge/b2/state");
        assert_eq!(
            c.availability(),
            ["print2mqtt/bridge/b1/state", "print2mqtt/bridge/b2/state"]
        );
        assert_eq!(c.parse_printer("print2mqtt/bridge/b2/state"), None);
        assert_eq!(
            t.field("ender3", Field::TimeRemaining),
            "print2mqtt/ender3/time_remaining"
        );
        assert_eq!(
            t.parse_printer("print2mqtt/ender3/state"),
            Some(("ender3", "state"))
        );
        assert_eq!(t.parse_printer("print2mqtt/bridge/state"), None);
        assert_eq!(t.parse_printer("other/ender3/state"), None);
        assert_eq!(t.parse_printer("print2mqtt/a/b/c"), None);
        assert_eq!(t.bridge(BRIDGE_WEBHOOKS), "print2mqtt/bridge/webhooks");
        assert_eq!(t.parse_printer("print2mqtt/bridge/webhooks"), None);
    }

    #[test]
    fn discovery_names() {
        let d = Discovery::new("ha", DEFAULT_BASE);
        let topic = d.config("sensor", &d.node("ender3"), "progress");
        assert_eq!(topic, "ha/sensor/print2mqtt_ender3/progress/config");
        assert_eq!(
            d.parse(&topic),
            Some(("sensor", "print2mqtt_ender3", "progress"))
        );
        assert_eq!(
            d.node_configs(&d.bridge_node()),
            "ha/+/print2mqtt_bridge/+/config"
        );
        let device = d.device_config("print2mqtt_ender3");
        assert_eq!(device, "ha/device/print2mqtt_ender3/config");
        assert_eq!(d.parse_device(&device), Some("print2mqtt_ender3"));
        assert_eq!(d.parse_node(&device), Some("print2mqtt_ender3"));
        assert_eq!(d.parse_node(&topic), Some("print2mqtt_ender3"));
        assert_eq!(d.parse_device(&topic), None);
        assert_eq!(d.parse("ha/sensor/x/config"), None);
        assert_eq!(d.parse("other/sensor/n/o/config"), None);
        assert_eq!(d.parse("ha/sensor/n/o/p/config"), None);
    }

    #[test]
    fn other_base_topics_carry_an_instance_id() {
        assert_eq!(instance_id("print2mqtt"), None);
        assert_eq!(instance_id("farm2").as_deref(), Some("farm2"));
        let a = instance_id("home/printers").unwrap();
        let b = instance_id("home-printers").unwrap();
        assert!(a.starts_with("home-printers-") && a.len() == 20, "{a}");
        assert_eq!(b, "home-printers");
        assert!(!a.contains('_'));
        let d = Discovery::new("homeassistant", "farm2");
        assert_eq!(d.node("ender3"), "print2mqtt-farm2_ender3");
        assert_eq!(d.bridge_node(), "print2mqtt-farm2_bridge");
        assert_eq!(
            Discovery::new("homeassistant", "print2mqtt").node("ender3"),
            "print2mqtt_ender3"
        );
    }

    #[test]
    fn base_validation() {
        assert!(is_valid_base("print2mqtt"));
        assert!(is_valid_base("home/printers"));
        for bad in ["", "a/+", "#", "a//b", "/a", "a/", "a\0"] {
            assert!(!is_valid_base(bad), "{bad:?}");
        }
    }
}
