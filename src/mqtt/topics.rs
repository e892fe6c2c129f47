//! The only place a topic string is built (DESIGN.md §4).

use crate::state::Field;

/// Topic names under one base topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    base: String,
}

/// The retained `last_event` leaf and the non-retained `event` stream leaf.
pub const LAST_EVENT: &str = "last_event";
pub const EVENT: &str = "event";

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
        format!("{}/bridge/state", self.base)
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
