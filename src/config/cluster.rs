//! The clustered mode's settings: `storage.backend` and `[nats]`, the NATS
//! JetStream cluster that holds accepted webhooks (docs/configuration.md).

use serde::{Deserialize, Deserializer, Serialize};

/// `storage.backend`: where accepted webhooks are kept until delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The local redb outbox (one bridge).
    #[default]
    Redb,
    /// A replicated NATS JetStream stream shared by several bridges.
    Jetstream,
}

/// `[nats]`: the JetStream cluster used while `storage.backend = "jetstream"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nats {
    /// Every node's `nats://host:port`; the client moves between them.
    #[serde(deserialize_with = "url_list")]
    pub urls: Vec<String>,
    /// Copies the stream and the state bucket keep (1, 3 or 5).
    pub replicas: u64,
    /// Partitions of the stream: one printer's events stay in one, in order.
    pub partitions: u64,
    /// The stream's name; the state bucket is `<stream>_printers`.
    pub stream: String,
    /// A message held by a bridge that stopped answering goes to another
    /// after this long.
    pub ack_wait_secs: u64,
}

impl Default for Nats {
    fn default() -> Self {
        Nats {
            urls: Vec::new(),
            replicas: 3,
            partitions: 16,
            stream: "PRINT2MQTT".into(),
            ack_wait_secs: 30,
        }
    }
}

impl Nats {
    /// Each problem with its key, for `Config::validate`.
    pub fn problems(&self, backend: Backend) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if backend == Backend::Jetstream && self.urls.is_empty() {
            out.push((
                "nats.urls",
                "must name at least one NATS server with storage.backend = \"jetstream\"".into(),
            ));
        }
        if let Some(bad) = self.urls.iter().find(|u| !valid_url(u)) {
            out.push((
                "nats.urls",
                format!("{bad:?} is not a nats://host:port URL"),
            ));
        }
        if ![1, 3, 5].contains(&self.replicas) {
            out.push(("nats.replicas", "must be 1, 3 or 5".into()));
        }
        if !(1..=1024).contains(&self.partitions) {
            out.push(("nats.partitions", "must be 1 to 1024".into()));
        }
        let name_ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if self.stream.is_empty() || self.stream.len() > 64 || !self.stream.chars().all(name_ok) {
            out.push((
                "nats.stream",
                "must be 1 to 64 letters, digits, `_` or `-`".into(),
            ));
        }
        if !(1..=3600).contains(&self.ack_wait_secs) {
            out.push(("nats.ack_wait_secs", "must be 1 to 3600".into()));
        }
        out
    }
}

fn valid_url(text: &str) -> bool {
    url::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some())
}

/// A TOML or JSON list, or one string of comma-separated URLs (environment
/// variables, add-on options).
fn url_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let list = match List::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a list of URLs or a comma list"))?
    {
        List::One(text) => text.split(',').map(str::to_owned).collect(),
        List::Many(urls) => urls,
    };
    Ok(list
        .into_iter()
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_as_a_list_or_a_comma_list() {
        let from_toml: Nats = toml::from_str("urls = [\"nats://a:1\", \"nats://b:2\"]").unwrap();
        let from_text: Nats = toml::from_str("urls = \" nats://a:1 ,nats://b:2,\"").unwrap();
        assert_eq!(from_toml.urls, ["nats://a:1", "nats://b:2"]);
        assert_eq!(from_text.urls, from_toml.urls);
        assert!(from_text.problems(Backend::Jetstream).is_empty());
    }

    #[test]
    fn jetstream_needs_urls_and_sane_numbers() {
        let nats = Nats {
            replicas: 2,
            partitions: 0,
            stream: "a.b".into(),
            urls: vec!["http://x".into()],
            ack_wait_secs: 0,
        };
        let keys: Vec<&str> = nats
            .problems(Backend::Jetstream)
            .iter()
            .map(|p| p.0)
            .collect();
        let expected = [
            "nats.urls",
            "nats.replicas",
            "nats.partitions",
            "nats.stream",
            "nats.ack_wait_secs",
        ];
        assert_eq!(keys, expected);
        assert_eq!(Nats::default().problems(Backend::Redb), []);
        assert_eq!(
            Nats::default().problems(Backend::Jetstream)[0].0,
            "nats.urls"
        );
    }
}
