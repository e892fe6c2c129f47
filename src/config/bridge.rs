//! `[bridge]`: which bridge this is among several behind one load balancer
//! (`instance`, `peers`; docs/scale-out.md), and the list form shared by
//! `mqtt.url` and `bridge.peers`: a TOML array, or one comma-separated
//! string (environment variables, the add-on's options).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::slug;

/// The instance id when neither `bridge.instance` nor the host name gives one.
const FALLBACK_INSTANCE: &str = "print2mqtt";

/// `[bridge]`: this bridge among its peers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bridge {
    /// This bridge's id in `<base>/bridge/<instance>/state`; empty: the
    /// host name, folded to a slug.
    #[serde(deserialize_with = "super::text")]
    pub instance: String,
    /// The instance ids whose state topics Home Assistant's availability
    /// follows (any one online is enough); empty: a single bridge on
    /// `<base>/bridge/state`.
    #[serde(deserialize_with = "list", serialize_with = "list_ser")]
    pub peers: Vec<String>,
}

impl Bridge {
    /// True when several bridges serve the same printers (`peers` set).
    pub fn clustered(&self) -> bool {
        !self.peers.is_empty()
    }

    /// This bridge's instance id: `instance`, else the host name folded to
    /// a slug.
    pub fn instance_id(&self) -> String {
        if !self.instance.is_empty() {
            return self.instance.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_default();
        let host = host.trim();
        if host.is_empty() {
            FALLBACK_INSTANCE.to_owned()
        } else {
            slug::slugify(host)
        }
    }

    /// (key, problem) for each bad value.
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let valid = |id: &str| slug::is_valid(id);
        let rule = format!(
            "must be 1 to {} characters of a-z, 0-9, `_`, `-`",
            slug::MAX_LEN
        );
        if !self.instance.is_empty() && !valid(&self.instance) {
            out.push((
                "bridge.instance".into(),
                format!("`{}` {rule}", self.instance),
            ));
        }
        for peer in self.peers.iter().filter(|p| !valid(p)) {
            out.push(("bridge.peers".into(), format!("`{peer}` {rule}")));
        }
        let me = self.instance_id();
        if self.clustered() && !self.peers.contains(&me) {
            out.push((
                "bridge.peers".into(),
                format!("must name this bridge's own instance `{me}` (bridge.instance)"),
            ));
        }
        out
    }
}

/// Reads a list: an array of strings, or one string split on commas (a
/// string starting with `[` is read as a JSON array). Entries are trimmed;
/// empty ones are dropped.
pub(super) fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
    {
        List::One(s) if s.trim_start().starts_with('[') => serde_json::from_str(&s)
            .map_err(|e| serde::de::Error::custom(format!("not a JSON list of strings: {e}")))?,
        List::One(s) => s.split(',').map(str::to_owned).collect(),
        List::Many(v) => v,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Writes a list the way it is most often written: none or one entry as a
/// string, more as an array.
pub(super) fn list_ser<S: Serializer>(items: &[String], s: S) -> Result<S::Ok, S::Error> {
    match items {
        [] => s.serialize_str(""),
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::super::{Config, Sources};
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct L {
        #[serde(deserialize_with = "list", serialize_with = "list_ser")]
        v: Vec<String>,
    }

    fn read(json: &str) -> Vec<String> {
        serde_json::from_str::<L>(json).unwrap().v
    }

    #[test]
    fn lists_read_from_arrays_comma_strings_and_json_strings() {
        assert_eq!(read(r#"{"v": ""}"#), Vec::<String>::new());
        assert_eq!(read(r#"{"v": "mqtt://a:1"}"#), ["mqtt://a:1"]);
        assert_eq!(read(r#"{"v": " a , b,,c "}"#), ["a", "b", "c"]);
        assert_eq!(read(r#"{"v": ["a", " b"]}"#), ["a", "b"]);
        assert_eq!(read(r#"{"v": "[\"a\", \"b\"]"}"#), ["a", "b"]);
        assert!(serde_json::from_str::<L>(r#"{"v": "[a"}"#).is_err());
        assert!(serde_json::from_str::<L>(r#"{"v": {"x": 1}}"#).is_err());
        let shown = |v: &[&str]| {
            let l = L {
                v: v.iter().map(|s| s.to_string()).collect(),
            };
            serde_json::to_string(&l).unwrap()
        };
        assert_eq!(shown(&[]), r#"{"v":""}"#);
        assert_eq!(shown(&["a"]), r#"{"v":"a"}"#);
        assert_eq!(shown(&["a", "b"]), r#"{"v":["a","b"]}"#);
    }

    #[test]
    fn peers_must_name_valid_ids_including_this_one() {
        let b = Bridge {
            instance: "b1".into(),
            peers: vec!["b1".into(), "b2".into()],
        };
        assert!(b.clustered() && b.problems().is_empty());
        assert_eq!(b.instance_id(), "b1");
        let b = Bridge {
            instance: "b9".into(),
            peers: vec!["b1".into()],
        };
        assert_eq!(b.problems().len(), 1, "{:?}", b.problems());
        let b = Bridge {
            instance: "B 1".into(),
            peers: vec!["b/1".into()],
        };
        assert_eq!(b.problems().len(), 3, "{:?}", b.problems());
        let b = Bridge::default();
        assert!(!b.clustered() && b.problems().is_empty());
        assert!(slug::is_valid(&b.instance_id()));
    }

    #[test]
    fn broker_lists_and_peers_from_toml_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "[mqtt]\nurl = [\"mqtt://a:1883\", \"mqtts://b\"]\n[bridge]\ninstance = \"b1\"\npeers = [\"b1\", \"b2\"]\n",
            )?;
            let sources = Sources {
                file: Some("p.toml".into()),
                addon_options: Some("none.json".into()),
            };
            let c = Config::load(&sources).map_err(|e| e.to_string())?;
            let urls = c.mqtt.broker_urls().map_err(|e| e.to_string())?;
            let hosts: Vec<_> = urls.iter().map(|u| (u.host.as_str(), u.port)).collect();
            assert_eq!(hosts, [("a", 1883), ("b", 8883)]);
            assert_eq!(c.bridge.peers, ["b1", "b2"]);
            jail.set_env("PRINT2MQTT_MQTT__URL", "mqtt://x:1,mqtt://y:2");
            jail.set_env("PRINT2MQTT_BRIDGE__INSTANCE", "007");
            jail.set_env("PRINT2MQTT_BRIDGE__PEERS", "007,b2");
            let c = Config::load(&sources).map_err(|e| e.to_string())?;
            assert_eq!(c.mqtt.url, ["mqtt://x:1", "mqtt://y:2"]);
            assert_eq!(
                (c.bridge.instance_id(), c.bridge.peers.len()),
                ("007".into(), 2)
            );
            jail.set_env("PRINT2MQTT_MQTT__URL", "mqtt://x:1,http://y");
            jail.set_env("PRINT2MQTT_BRIDGE__PEERS", "b2");
            let err = Config::load(&sources).unwrap_err().to_string();
            assert!(
                err.contains("`mqtt.url`") && err.contains("scheme"),
                "{err}"
            );
            assert!(
                err.contains("`bridge.peers`") && err.contains("`007`"),
                "{err}"
            );
            Ok(())
        });
    }
}
