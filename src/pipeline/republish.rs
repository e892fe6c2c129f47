//! What the bridge publishes again when the broker has lost its retained
//! messages (it restarted without persistence): the bridge's own topics,
//! then each printer's discovery configs and retained values, in slices.

use super::{Printers, startup};
use crate::homeassistant;
use crate::mqtt::messages::Message;
use crate::state::Field;

impl Printers {
    /// One slice of that republish: from the start, the bridge's version,
    /// counters and configs, then `n` printers' configs and values (in slug
    /// order); else `n` printers from the slug `from` on. Also returns where
    /// the next slice starts, if any printers are left. Values not held in
    /// memory (`snapshot`, `last_event`, `app_connection`) come back with
    /// the printer's next webhook or state.
    pub fn republish_slice(
        &mut self,
        from: Option<&str>,
        n: usize,
    ) -> (Vec<Message>, Option<String>) {
        let mut out = Vec::new();
        if from.is_none() {
            out.push(startup::version(self));
            out.extend(self.counters(&self.ha.topics));
            if self.ha.enabled {
                out.extend(homeassistant::bridge_configs(&self.ha));
            }
        }
        let (this, next) = self.slugs_from(from, n);
        for slug in this {
            out.extend(self.discover(&slug, true));
            out.extend(self.values(&slug));
        }
        (out, next)
    }

    /// The printer's retained values as last published (empty ones, which
    /// clear a topic, left out).
    fn values(&self, slug: &str) -> Vec<Message> {
        let Some(state) = self.state(slug) else {
            return Vec::new();
        };
        Field::ALL
            .into_iter()
            .filter_map(|f| {
                let payload = state.latest.get(f)?;
                Some(Message::retained(
                    self.ha.topics.field(slug, f),
                    bytes::Bytes::copy_from_slice(payload),
                ))
            })
            .collect()
    }
}
