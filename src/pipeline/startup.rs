//! The start-up comparison of discovery configs (docs/home-assistant.md: unchanged
//! configs are not republished). The broker's retained configs are checked
//! one at a time as they arrive against the table's rendering of the same
//! device, so neither side is ever held whole: with 10,000 printers that is
//! 350,000 configs the bridge would otherwise keep twice. A device whose
//! configs the broker holds in the other discovery mode is migrated
//! (`homeassistant::migration`).

use std::collections::HashMap;

use bytes::Bytes;

use super::Printers;
use crate::homeassistant::{self, migration};
use crate::mqtt::messages::Message;
use crate::mqtt::topics::BRIDGE_VERSION;

/// One device's configs as the table renders them: topic → (payload, index).
struct Rendered {
    node: String,
    configs: HashMap<String, (Bytes, usize)>,
}

/// Which retained configs the broker already holds unchanged, and which it
/// holds that no device publishes any more.
#[derive(Default)]
pub struct ConfigCheck {
    /// Node id → slug (`None`: the bridge device).
    nodes: HashMap<String, Option<String>>,
    /// The printers to check, in table order.
    slugs: Vec<String>,
    /// Node id → for each of its configs, whether the broker holds it as is.
    matched: HashMap<String, Vec<bool>>,
    /// Empty retained messages for configs no device publishes any more.
    stale: Vec<Message>,
    /// Node id → its configs the broker holds in the other mode: the
    /// device migrates.
    old: HashMap<String, Vec<String>>,
    /// The device rendered last: the broker sends one filter's (one
    /// device's) retained messages together, so this is nearly always it.
    last: Option<Rendered>,
}

impl ConfigCheck {
    /// A check of every device in `printers`' table.
    pub fn new(printers: &Printers) -> ConfigCheck {
        let discovery = &printers.ha.discovery;
        let mut nodes: HashMap<String, Option<String>> = printers
            .states()
            .map(|(slug, _)| (discovery.node(slug), Some(slug.to_owned())))
            .collect();
        nodes.insert(discovery.bridge_node(), None);
        ConfigCheck {
            nodes,
            slugs: printers.states().map(|(slug, _)| slug.to_owned()).collect(),
            ..ConfigCheck::default()
        }
    }

    /// For a check that runs while webhooks are already accepted: the
    /// checked printers' webhooks publish no configs until
    /// [`ConfigCheck::finish`] (it publishes what differs then).
    pub fn defer_discovery(&self, printers: &mut Printers) {
        for slug in &self.slugs {
            if let Some(entry) = printers.entry_mut(slug) {
                entry.unchecked = true;
            }
        }
    }

    /// The same check with nothing compared yet: after a failed read, every
    /// config is published.
    pub fn forget_matches(self) -> ConfigCheck {
        ConfigCheck {
            nodes: self.nodes,
            slugs: self.slugs,
            ..ConfigCheck::default()
        }
    }

    /// Compares one retained config from the broker.
    pub fn offer(&mut self, printers: &Printers, topic: &str, payload: &Bytes) {
        let Some(node) = printers.ha.discovery.parse_node(topic) else {
            return;
        };
        let Some(slug) = self.nodes.get(node) else {
            return; // not one of the filters this check asked for
        };
        if self.last.as_ref().is_none_or(|r| r.node != node) {
            let configs = render(printers, slug.as_deref())
                .into_iter()
                .enumerate()
                .map(|(i, m)| (m.topic, (m.payload, i)))
                .collect::<HashMap<_, _>>();
            self.matched
                .entry(node.to_owned())
                .or_insert_with(|| vec![false; configs.len()]);
            self.last = Some(Rendered {
                node: node.to_owned(),
                configs,
            });
        }
        let Some(rendered) = &self.last else { return };
        match rendered.configs.get(topic) {
            Some((wanted, i)) if wanted == payload => {
                if let Some(flag) = self
                    .matched
                    .get_mut(node)
                    .and_then(|flags| flags.get_mut(*i))
                {
                    *flag = true;
                }
            }
            Some(_) => {} // changed: republished by `finish`
            None if payload.is_empty() => {}
            None if migration::is_other_mode(&printers.ha, topic) => self
                .old
                .entry(node.to_owned())
                .or_default()
                .push(topic.to_owned()),
            None => self
                .stale
                .push(Message::retained(topic.to_owned(), Bytes::new())),
        }
    }

    /// The messages that make the broker hold the table's configs: the
    /// stale configs cleared, then every config of the checked devices the
    /// broker does not hold as is. Marks those printers' configs as
    /// published. Printers that arrived during the check were discovered by
    /// their own webhooks; those removed meanwhile are left out.
    pub fn finish(self, printers: &mut Printers) -> Vec<Message> {
        for entry in printers.entries_mut() {
            entry.unchecked = false;
        }
        if !printers.ha.enabled {
            return Vec::new();
        }
        let mut out = self.stale;
        let mut old = self.old;
        let all_held = |node: &str| {
            self.matched
                .get(node)
                .is_some_and(|flags| flags.iter().all(|f| *f))
        };
        let bridge = printers.ha.discovery.bridge_node();
        if let Some(topics) = old.remove(&bridge) {
            out.extend(migrate(printers, None, &topics, render(printers, None)));
        } else if !all_held(&bridge) {
            out.extend(missing(render(printers, None), self.matched.get(&bridge)));
        }
        for slug in self.slugs {
            let node = printers.ha.discovery.node(&slug);
            let Some(view) = printers.view(&slug) else {
                continue;
            };
            let configs = || homeassistant::configs(&view, &printers.ha);
            if let Some(topics) = old.remove(&node) {
                out.extend(migrate(printers, Some(&view), &topics, configs()));
            } else if !all_held(&node) {
                out.extend(missing(configs(), self.matched.get(&node)));
            }
            if let Some(entry) = printers.entry_mut(&slug) {
                entry.published = Some(view.digest());
            }
        }
        out
    }
}

/// The bridge's version, retained: published at every start.
pub fn version(printers: &Printers) -> Message {
    Message::retained(
        printers.ha.topics.bridge(BRIDGE_VERSION),
        printers.ha.version.clone(),
    )
}

/// A device's configs as the table renders them (`None`: the bridge's).
fn render(printers: &Printers, slug: Option<&str>) -> Vec<Message> {
    match slug {
        None => homeassistant::bridge_configs(&printers.ha),
        Some(slug) => printers
            .view(slug)
            .map(|view| homeassistant::configs(&view, &printers.ha))
            .unwrap_or_default(),
    }
}

/// A device's move from the other mode's configs at `topics` to `configs`.
fn migrate(
    printers: &Printers,
    view: Option<&homeassistant::PrinterView>,
    topics: &[String],
    configs: Vec<Message>,
) -> Vec<Message> {
    let kept = migration::Kept::of(view, &printers.ha);
    let old: Vec<(String, bool)> = topics
        .iter()
        .map(|t| (t.clone(), kept.keeps(&printers.ha, t)))
        .collect();
    tracing::debug!(
        device = %configs.first().map_or("", |m| m.topic.as_str()),
        old_configs = old.len(),
        "Migrating a device's discovery configs (homeassistant.discovery_mode changed)"
    );
    migration::messages(&old, configs)
}

/// The configs not flagged as held by the broker.
fn missing(configs: Vec<Message>, held: Option<&Vec<bool>>) -> impl Iterator<Item = Message> {
    configs
        .into_iter()
        .enumerate()
        .filter(move |(i, _)| !held.and_then(|h| h.get(*i)).copied().unwrap_or(false))
        .map(|(_, m)| m)
}
