//! Moving a device between the two discovery shapes (device-based and
//! per-entity) the way Home Assistant's `migrate_discovery` procedure
//! describes, so entity ids, the names users gave them and their history
//! survive (docs/home-assistant.md).
//!
//! Home Assistant identifies a discovered entity by its component and
//! `"<node> <object>"`: a device config at `<prefix>/device/<node>/config`
//! with the entity under `cmps.<object>` has the same id as the per-entity
//! config at `<prefix>/<component>/<node>/<object>/config`. Each old config
//! that carries an entity the new configs keep gets
//! `{"migrate_discovery": true}` first (Home Assistant unloads the entity
//! and keeps its registry entry), then every old config is cleared, then the
//! new configs take the entities over. Clearing before the new configs
//! arrive, not after, keeps Home Assistant 2026.2 from logging the empty
//! payload as a conflicting discovery message.

use std::collections::HashSet;

use bytes::Bytes;

use super::{Context, PrinterView, TRIGGER_KEY, TRIGGERS, device, discovery_ids, empty};
use crate::config::DiscoveryMode;
use crate::mqtt::messages::Message;

/// The payload that starts a migration on an old config topic.
pub const MIGRATE: &str = r#"{"migrate_discovery":true}"#;

/// What a device's new configs hold, to tell which old configs migrate.
#[derive(Debug, Clone, Default)]
pub struct Kept {
    /// `(component, object)` in the new mode's naming.
    ids: HashSet<(&'static str, String)>,
}

impl Kept {
    /// The discovery ids of a printer's configs (`None`: the bridge's).
    pub fn of(view: Option<&PrinterView>, ctx: &Context) -> Kept {
        let owner = match view {
            Some(view) => device::Owner::printer(view, ctx),
            None => device::Owner::bridge(ctx),
        };
        Kept {
            ids: discovery_ids(&owner).into_iter().collect(),
        }
    }

    /// True when the old config at `topic` (the other mode's) carries an
    /// entity the new configs keep: it gets a migrate message.
    pub fn keeps(&self, ctx: &Context, topic: &str) -> bool {
        match ctx.mode {
            // A device config holds many entities: Home Assistant sends
            // the migration on to each.
            DiscoveryMode::Component => ctx.discovery.parse_device(topic).is_some(),
            DiscoveryMode::Device => {
                let Some((component, _, object)) = ctx.discovery.parse(topic) else {
                    return false;
                };
                let key = if component == TRIGGERS {
                    format!("{TRIGGER_KEY}{object}")
                } else {
                    object.to_owned()
                };
                self.ids.iter().any(|(c, o)| *c == component && *o == key)
            }
        }
    }
}

/// True when `topic` is a config of the mode `ctx` does not publish.
pub fn is_other_mode(ctx: &Context, topic: &str) -> bool {
    let device = ctx.discovery.parse_device(topic).is_some();
    match ctx.mode {
        DiscoveryMode::Device => !device && ctx.discovery.parse(topic).is_some(),
        DiscoveryMode::Component => device,
    }
}

/// The messages that move one device: a migrate message on each old topic
/// whose entity is kept, an empty message on every old topic, then `new`.
pub fn messages(old: &[(String, bool)], new: Vec<Message>) -> Vec<Message> {
    let migrate = old
        .iter()
        .filter(|(_, kept)| *kept)
        .map(|(topic, _)| Message::retained(topic.clone(), Bytes::from_static(MIGRATE.as_bytes())));
    let clear = old.iter().map(|(topic, _)| empty(topic.clone()));
    migrate.chain(clear).chain(new).collect()
}
