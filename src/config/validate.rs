//! `validate()`: every check of values that deserialized, all problems
//! collected at once, each naming its key and where its value came from.

use std::collections::BTreeMap;

use figment::Figment;

use super::load::describe;
use super::{Config, ConfigError, ConfigErrors, urls};
use crate::event::EventKind;
use crate::mqtt::topics;
use crate::slug;

/// Records one problem: key, what is wrong.
type Bad<'a> = dyn FnMut(String, String) + 'a;

impl Config {
    /// Every problem of the loaded values, each with where it came from.
    pub(super) fn validate(&self, figment: &Figment) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        let mut bad = |key: String, problem: String| {
            let source = figment
                .find_metadata(&key)
                .map(|m| describe(m, &key))
                .unwrap_or_default();
            errors.push(ConfigError {
                key,
                source,
                problem,
            });
        };
        self.check_transport(&mut bad);
        self.check_storage(&mut bad);
        self.check_octoeverywhere(&mut bad);
        self.check_printers(&mut bad);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// `[http]` and `[mqtt]`: addresses, URLs, topics, limits and TLS files.
    fn check_transport(&self, bad: &mut Bad) {
        if self.http.ingress_addr().is_err() {
            bad(
                "http.ingress_listen".into(),
                "must be an address such as 0.0.0.0:8099, or empty".into(),
            );
        }
        if let Err(problem) = self.mqtt.broker_urls() {
            bad("mqtt.url".into(), problem);
        }
        for (key, problem) in self.bridge.problems() {
            bad(key, problem);
        }
        if self.storage.backend == super::cluster::Backend::Jetstream && self.mqtt.url.is_empty() {
            bad(
                "mqtt.url".into(),
                "must name the broker with storage.backend = \"jetstream\" (every bridge publishes there)".into(),
            );
        }
        if !topics::is_valid_base(&self.mqtt.base_topic) {
            bad(
                "mqtt.base_topic".into(),
                "must be a topic without `+`, `#`, NUL or empty levels".into(),
            );
        }
        if self.mqtt.client_id.is_empty() || self.mqtt.client_id.len() > 200 {
            bad(
                "mqtt.client_id".into(),
                "must be 1 to 200 characters".into(),
            );
        }
        if !topics::is_valid_base(&self.homeassistant.discovery_prefix) {
            bad(
                "homeassistant.discovery_prefix".into(),
                "must be a topic without `+`, `#`, NUL or empty levels".into(),
            );
        }
        if !topics::is_valid_base(&self.homeassistant.status_topic) {
            bad(
                "homeassistant.status_topic".into(),
                "must be a topic without `+`, `#`, NUL or empty levels".into(),
            );
        }
        for (key, problem) in self
            .http
            .problems()
            .into_iter()
            .chain(self.mqtt.tls_problems())
            .chain(self.nats.problems(self.storage.backend))
        {
            bad(key.into(), problem);
        }
    }

    /// `[storage]` bounds and the MQTT packet size.
    fn check_storage(&self, bad: &mut Bad) {
        if self.storage.max_events == 0 {
            bad("storage.max_events".into(), "must be at least 1".into());
        }
        if self.storage.max_bytes < 1 << 20 {
            bad(
                "storage.max_bytes".into(),
                "must be at least 1048576 (1 MiB)".into(),
            );
        }
        if self.mqtt.max_packet_bytes != 0 && self.mqtt.max_packet_bytes < 4096 {
            bad(
                "mqtt.max_packet_bytes".into(),
                "must be 0 (the protocol's limit) or at least 4096".into(),
            );
        }
        if !(1..=1_000_000).contains(&self.storage.max_printers) {
            bad(
                "storage.max_printers".into(),
                format!(
                    "{} is out of range: must be 1 to 1000000 printers",
                    self.storage.max_printers
                ),
            );
        }
    }

    /// `[octoeverywhere]`: renewal and URLs.
    fn check_octoeverywhere(&self, bad: &mut Bad) {
        if self.octoeverywhere.renew_days == 0 || self.octoeverywhere.renew_days > 179 {
            bad(
                "octoeverywhere.renew_days".into(),
                "must be 1 to 179 (OctoEverywhere forgets a webhook after 180 days)".into(),
            );
        }
        if let Err(problem) = urls::check_url(&self.octoeverywhere.api_url) {
            bad("octoeverywhere.api_url".into(), problem);
        }
        let with_token = self.printers.iter().find(|(_, p)| !p.app_token.is_empty());
        if let Some((id, _)) = with_token {
            let public_url = &self.octoeverywhere.public_url;
            let problem = if public_url.is_empty() {
                Some("must be set".to_owned())
            } else {
                urls::check_url(public_url).err()
            };
            if let Some(problem) = problem {
                bad(
                    "octoeverywhere.public_url".into(),
                    format!(
                        "{problem}: printers.\"{id}\".app_token registers it as the \
                         callback OctoEverywhere calls from the internet"
                    ),
                );
            }
        }
    }

    /// `[printers]`: ids that fold alike, aliases, tokens and event names.
    fn check_printers(&self, bad: &mut Bad) {
        let mut aliases = BTreeMap::new();
        let mut folded = BTreeMap::new();
        for (id, p) in &self.printers {
            let key = |k: &str| format!("printers.{id}.{k}");
            if let Some(other) = folded.insert(slug::fold(id), id.clone()) {
                bad(
                    format!("printers.{id}"),
                    format!(
                        "names the same printer as `{other}` (ids are compared without regard to case)"
                    ),
                );
            }
            if !p.alias.is_empty() {
                if !slug::is_valid(&p.alias) || slug::RESERVED.contains(&p.alias.as_str()) {
                    bad(
                        key("alias"),
                        format!(
                            "`{}` must be 1 to {} characters of a-z, 0-9, `_`, `-` and not `bridge`",
                            p.alias,
                            slug::MAX_LEN
                        ),
                    );
                } else if let Some(other) = aliases.insert(p.alias.clone(), id.clone()) {
                    bad(
                        key("alias"),
                        format!("`{}` is also the alias of `{other}`", p.alias),
                    );
                }
            }
            let token = p.app_token.expose();
            if token.chars().any(|c| !c.is_ascii_graphic()) {
                bad(
                    key("app_token"),
                    "must be the token as OctoEverywhere shows it: printable ASCII, no spaces"
                        .into(),
                );
            }
            for name in p.events.unknown() {
                let all: Vec<_> = EventKind::ALL.iter().map(|k| k.name()).collect();
                bad(
                    key("events"),
                    format!("unknown event `{name}`; known: {}", all.join(", ")),
                );
            }
        }
    }
}
