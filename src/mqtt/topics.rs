//! The only place a topic string is built: the bridge's own topics
//! (docs/mqtt-topics.md) and Home Assistant's discovery config topics
//! (docs/home-assistant.md).

use crate::state::Field;

/// Topic names under one base topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
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

/// The discovery node id of the bridge device; printers get
/// `print2mqtt_<slug>` (the slug `bridge` is reserved, so they never meet).
pub const BRIDGE_NODE: &str = "print2mqtt_bridge";
const NODE_PREFIX: &str = "print2mqtt_";

impl Topics {
    /// Topics under `base`, which config validation has checked to be a
    /// non-empty topic without wildcards.
    pub fn new(base: &str) -> Topics {
        Topics {
            base: base.to_owned(),
        }
    }

    /// The base topic, e.g. `print2mqtt`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `<base>/bridge/state`: `online` / `offline`.
    pub fn bridge_state(&self) -> String {
        self.bridge(BRIDGE_STATE)
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

/// Home Assistant discovery topics under one prefix:
/// `<prefix>/<component>/<node>/<object>/config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    prefix: String,
}

impl Discovery {
    /// Topics under `prefix`, checked by config validation like a base topic.
    pub fn new(prefix: &str) -> Discovery {
        Discovery {
            prefix: prefix.to_owned(),
        }
    }

    /// The node id of a printer's device: `print2mqtt_<slug>`.
    pub fn node(slug: &str) -> String {
        format!("{NODE_PREFIX}{slug}")
    }

    /// One config topic.
    pub fn config(&self, component: &str, node: &str, object: &str) -> String {
        format!("{}/{component}/{node}/{object}/config", self.prefix)
    }

    /// A filter matching every config of one node, whatever the component.
    pub fn node_configs(&self, node: &str) -> String {
        format!("{}/+/{node}/+/config", self.prefix)
    }

    /// Splits a config topic into (component, node, object).
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str, &'t str)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let rest = rest.strip_suffix("/config")?;
        let mut levels = rest.split('/');
        match (levels.next(), levels.next(), levels.next(), levels.next()) {
            (Some(component), Some(node), Some(object), None) => Some((component, node, object)),
            _ => None,
        }
    }
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
        let d = Discovery::new("ha");
        let topic = d.config("sensor", &Discovery::node("ender3"), "progress");
        assert_eq!(topic, "ha/sensor/print2mqtt_ender3/progress/config");
        assert_eq!(
            d.parse(&topic),
            Some(("sensor", "print2mqtt_ender3", "progress"))
        );
        assert_eq!(
            d.node_configs(BRIDGE_NODE),
            "ha/+/print2mqtt_bridge/+/config"
        );
        assert_eq!(d.parse("ha/sensor/x/config"), None);
        assert_eq!(d.parse("other/sensor/n/o/config"), None);
        assert_eq!(d.parse("ha/sensor/n/o/p/config"), None);
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
