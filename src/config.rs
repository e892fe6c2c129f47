//! The typed configuration tree, its figment layering (defaults < TOML file <
//! add-on options < `PRINT2MQTT_*` environment) and validation that names the
//! key and the file or variable a bad value came from (docs/configuration.md).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Json, Toml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Deserializer, Serialize};

use crate::event::EventKind;
use crate::mqtt::topics;
use crate::slug;

mod bridge;
mod checks;
pub mod cluster;
pub mod urls;

pub use bridge::Bridge;

/// The file read when neither `--config` nor `PRINT2MQTT_CONFIG` names one.
pub const DEFAULT_FILE: &str = "config/print2mqtt.toml";
/// The Home Assistant add-on's options, read when present.
pub const ADDON_OPTIONS: &str = "/data/options.json";
/// Environment variable prefix; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "PRINT2MQTT_";

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub mqtt: Mqtt,
    pub storage: Storage,
    pub broker: Broker,
    pub homeassistant: HomeAssistant,
    pub auth: Auth,
    /// Per-printer settings keyed by the sender's printer id (matched
    /// without regard to case).
    pub printers: BTreeMap<String, Printer>,
    pub octoeverywhere: OctoEverywhere,
    pub bridge: Bridge,
    /// The NATS JetStream cluster of `storage.backend = "jetstream"`.
    pub nats: cluster::Nats,
}

/// `[http]`: the webhook listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    pub admin_token: Secret,
    /// A second listener for Home Assistant ingress: the status page and
    /// API, never webhooks. Empty: none.
    #[serde(deserialize_with = "text")]
    pub ingress_listen: String,
    /// Largest JSON or form body; larger ones get 413.
    pub max_body_bytes: u64,
    /// Largest multipart body (a snapshot JPEG rides along).
    pub max_multipart_bytes: u64,
    /// Request headers up to this size always get through (never a 431).
    pub max_header_bytes: u64,
    /// Time a client gets to send a request's headers.
    pub header_timeout_secs: u64,
    /// Time a client gets to send a webhook's body once the headers arrived.
    pub body_timeout_secs: u64,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout_secs: u64,
    /// Open connections beyond which the longest-idle one is closed.
    pub max_connections: u64,
    /// Open connections of one client address (IPv6: one /64) beyond which
    /// its own longest-stalled one is closed.
    pub max_connections_per_peer: u64,
    /// Bytes that bodies of requests not yet authenticated may hold in all
    /// (never less than `max_multipart_bytes`); beyond it they get 503.
    pub max_unauthenticated_bytes: u64,
    /// Host names (besides local names and IP addresses) under which the
    /// status page and API answer while `admin_token` is empty.
    pub allowed_hosts: Vec<String>,
    /// Deepest nesting of JSON objects and arrays in a body.
    pub max_json_depth: u64,
    /// PEM certificate chain; with `tls_key`, the listener speaks HTTPS.
    #[serde(deserialize_with = "text")]
    pub tls_cert: String,
    /// PEM private key of `tls_cert`.
    #[serde(deserialize_with = "text")]
    pub tls_key: String,
}

/// `[mqtt]`: the broker the bridge publishes to.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Mqtt {
    /// `mqtt://host:1883` or `mqtts://host:8883`, or several (a list, or
    /// one comma-separated string) tried in turn; empty starts the
    /// embedded broker.
    #[serde(deserialize_with = "bridge::list", serialize_with = "bridge::list_ser")]
    pub url: Vec<String>,
    #[serde(deserialize_with = "text")]
    pub username: String,
    pub password: Secret,
    #[serde(deserialize_with = "text")]
    pub client_id: String,
    #[serde(deserialize_with = "text")]
    pub base_topic: String,
    /// PEM CA certificate(s) trusted for `mqtts://` instead of the system roots.
    #[serde(deserialize_with = "text")]
    pub ca_file: String,
    /// PEM client certificate chain for `mqtts://` (with `client_key`).
    #[serde(deserialize_with = "text")]
    pub client_cert: String,
    /// PEM private key of `client_cert`.
    #[serde(deserialize_with = "text")]
    pub client_key: String,
    /// The largest MQTT packet the broker takes (Mosquitto's and EMQX's
    /// `max_packet_size`); 0: the protocol's limit (the embedded broker's
    /// own limit when it is used).
    pub max_packet_bytes: u64,
}

/// `[storage]`: where the durable outbox lives.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub data_dir: PathBuf,
    /// Undelivered webhooks the outbox holds at most.
    pub max_events: u64,
    /// Topic and payload bytes of undelivered webhooks the outbox holds at most.
    pub max_bytes: u64,
    /// Distinct printers; a webhook for a new one beyond it is refused.
    pub max_printers: u64,
    /// `redb` (the local outbox) or `jetstream` (`[nats]`, several bridges).
    pub backend: cluster::Backend,
}

impl Storage {
    /// The outbox's bounds.
    pub fn limits(&self) -> crate::outbox::Limits {
        crate::outbox::Limits {
            max_events: self.max_events,
            max_bytes: self.max_bytes,
        }
    }
}

/// `[broker]`: the embedded broker, used only while `mqtt.url` is empty.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Broker {
    pub listen: SocketAddr,
}

/// `[homeassistant]`: MQTT discovery.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomeAssistant {
    /// Publish discovery configs at all.
    pub discovery: bool,
    /// One device-based config per device, or one config per entity.
    pub discovery_mode: DiscoveryMode,
    /// First topic level of every discovery config.
    #[serde(deserialize_with = "text")]
    pub discovery_prefix: String,
    /// Where Home Assistant publishes its birth message (`online`), upon
    /// which every config is published again.
    #[serde(deserialize_with = "text")]
    pub status_topic: String,
}

/// `homeassistant.discovery_mode`: how configs are shaped
/// (docs/home-assistant.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DiscoveryMode {
    /// `<prefix>/device/<node>/config` with every entity under `cmps`
    /// (Home Assistant 2024.12 and later).
    #[default]
    Device,
    /// `<prefix>/<component>/<node>/<object>/config` per entity (openHAB,
    /// older Home Assistant).
    Component,
}

/// `[auth]`: the shared webhook secret.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub secret: Secret,
}

/// `[printers."<id>"]`: settings for one printer.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Printer {
    /// Topic slug; empty: derived from the printer id.
    #[serde(deserialize_with = "text")]
    pub alias: String,
    /// Display name; empty: the webhook's printer name.
    #[serde(deserialize_with = "text")]
    pub name: String,
    /// Overrides `auth.secret` for this printer.
    pub secret: Secret,
    /// Publish only these events (empty: all).
    pub events: Vec<String>,
    /// OctoEverywhere App Connection token.
    pub app_token: Secret,
}

/// `[octoeverywhere]`: App Connection registration.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OctoEverywhere {
    #[serde(deserialize_with = "text")]
    pub public_url: String,
    #[serde(deserialize_with = "text")]
    pub api_url: String,
    pub renew_days: u32,
}

impl Http {
    /// `ingress_listen` as an address; `Ok(None)` when empty.
    pub fn ingress_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        let text = self.ingress_listen.trim();
        (!text.is_empty()).then(|| text.parse()).transpose()
    }
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_token: Secret::default(),
            ingress_listen: String::new(),
            max_body_bytes: 1024 * 1024,
            max_multipart_bytes: 16 * 1024 * 1024,
            max_header_bytes: 64 * 1024,
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            idle_timeout_secs: 75,
            max_connections: 1024,
            max_connections_per_peer: 64,
            max_unauthenticated_bytes: 64 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            max_json_depth: 64,
            tls_cert: String::new(),
            tls_key: String::new(),
        }
    }
}

impl Default for Mqtt {
    fn default() -> Self {
        Mqtt {
            url: Vec::new(),
            username: String::new(),
            password: Secret::default(),
            client_id: "print2mqtt".into(),
            base_topic: "print2mqtt".into(),
            ca_file: String::new(),
            client_cert: String::new(),
            client_key: String::new(),
            max_packet_bytes: 0,
        }
    }
}

impl Mqtt {
    /// Every `mqtt.url`, parsed, in the order they are tried; empty: the
    /// embedded broker (or the add-on's Supervisor broker).
    pub fn broker_urls(&self) -> Result<Vec<urls::BrokerUrl>, String> {
        let mut out = Vec::new();
        for url in &self.url {
            out.extend(urls::BrokerUrl::parse(url)?);
        }
        Ok(out)
    }

    /// Every `mqtt.url` fit to print.
    pub fn shown_urls(&self) -> Vec<String> {
        self.url.iter().map(|u| urls::redact_url(u)).collect()
    }
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./data"),
            max_events: 100_000,
            max_bytes: 512 << 20,
            max_printers: 1000,
            backend: cluster::Backend::Redb,
        }
    }
}

impl Default for Broker {
    fn default() -> Self {
        Broker {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
        }
    }
}

impl Default for HomeAssistant {
    fn default() -> Self {
        HomeAssistant {
            discovery: true,
            discovery_mode: DiscoveryMode::Device,
            discovery_prefix: "homeassistant".into(),
            status_topic: "homeassistant/status".into(),
        }
    }
}

impl Default for OctoEverywhere {
    fn default() -> Self {
        OctoEverywhere {
            public_url: String::new(),
            api_url: "https://octoeverywhere.com".into(),
            renew_days: 30,
        }
    }
}

impl fmt::Debug for Mqtt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mqtt")
            .field("url", &self.shown_urls())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("client_id", &self.client_id)
            .field("base_topic", &self.base_topic)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

/// A secret string: never shown by `Debug`, redacted by [`Config::redacted`].
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret text, for comparison and for the broker login only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn redacted(&self) -> Secret {
        if self.0.is_empty() {
            Secret::default()
        } else {
            Secret("<redacted>".into())
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "<redacted>"
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        text(d).map(Secret)
    }
}

/// Reads a string, also from a number or boolean (environment variables such
/// as `PRINT2MQTT_AUTH__SECRET=1234` arrive parsed as numbers).
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(
        match Text::deserialize(d)
            .map_err(|_| serde::de::Error::custom("invalid type: expected a string"))?
        {
            Text::S(s) => s,
            Text::I(n) => n.to_string(),
            Text::U(n) => n.to_string(),
            Text::F(n) => n.to_string(),
            Text::B(b) => b.to_string(),
        },
    )
}

/// One configuration problem, naming the key and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub source: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.key)?;
        if !self.source.is_empty() {
            write!(f, " (from {})", self.source)?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// Every problem found while loading a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {e}")?;
        }
        Ok(())
    }
}

/// Where to look for configuration, besides the environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--config PATH`.
    pub file: Option<PathBuf>,
    /// Overrides [`ADDON_OPTIONS`] (tests).
    pub addon_options: Option<PathBuf>,
}

impl Config {
    /// Loads and validates the layered configuration.
    pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
        let figment = figment(sources)?;
        let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
        config.validate(&figment)?;
        Ok(config)
    }

    /// A copy with every secret replaced by `<redacted>` (for `check-config`).
    pub fn redacted(&self) -> Config {
        let mut c = self.clone();
        c.http.admin_token = c.http.admin_token.redacted();
        c.mqtt.password = c.mqtt.password.redacted();
        c.auth.secret = c.auth.secret.redacted();
        for p in c.printers.values_mut() {
            p.secret = p.secret.redacted();
            p.app_token = p.app_token.redacted();
        }
        c.mqtt.url = c.mqtt.shown_urls();
        c
    }

    /// The redacted configuration as TOML.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted()).unwrap_or_default()
    }

    /// The settings of the printer with this id, if configured.
    pub fn printer(&self, id: &str) -> Option<&Printer> {
        self.printers.get(id).or_else(|| {
            let id = slug::fold(id);
            self.printers
                .iter()
                .find(|(k, _)| slug::fold(k) == id)
                .map(|(_, p)| p)
        })
    }

    /// The secret a webhook for this printer must carry (empty: none).
    pub fn secret_for(&self, id: &str) -> &Secret {
        match self.printer(id) {
            Some(p) if !p.secret.is_empty() => &p.secret,
            _ => &self.auth.secret,
        }
    }

    /// (printer id, alias) for every configured alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.printers
            .iter()
            .filter(|(_, p)| !p.alias.is_empty())
            .map(|(id, p)| (id.as_str(), p.alias.as_str()))
    }

    fn validate(&self, figment: &Figment) -> Result<(), ConfigErrors> {
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
        if self.storage.backend == cluster::Backend::Jetstream && self.mqtt.url.is_empty() {
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
            for name in &p.events {
                if EventKind::from_name(name).is_none() {
                    let all: Vec<_> = EventKind::ALL.iter().map(|k| k.name()).collect();
                    bad(
                        key("events"),
                        format!("unknown event `{name}`; known: {}", all.join(", ")),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// The layered providers: defaults come from the `Default` impls.
fn figment(sources: &Sources) -> Result<Figment, ConfigErrors> {
    let mut figment = Figment::new();
    let from_env = || std::env::var_os(format!("{ENV_PREFIX}CONFIG")).map(PathBuf::from);
    let (explicit, named_by) = match sources.file.clone() {
        Some(path) => (Some(path), "--config".to_owned()),
        None => (from_env(), format!("{ENV_PREFIX}CONFIG")),
    };
    match explicit {
        Some(path) if !path.is_file() => {
            return Err(ConfigErrors(vec![ConfigError {
                key: named_by,
                source: String::new(),
                problem: format!("config file {} not found", path.display()),
            }]));
        }
        Some(path) => figment = figment.merge(Toml::file_exact(path)),
        None if Path::new(DEFAULT_FILE).is_file() => {
            figment = figment.merge(Toml::file_exact(DEFAULT_FILE));
        }
        None => {}
    }
    let options = sources
        .addon_options
        .clone()
        .unwrap_or_else(|| PathBuf::from(ADDON_OPTIONS));
    if options.is_file() {
        figment = figment.merge(Json::file_exact(options));
    }
    Ok(figment.merge(Environment))
}

/// Keys whose environment value is taken verbatim: figment would read
/// `PRINT2MQTT_AUTH__SECRET=007` as the number 7.
const TEXT_KEYS: [&str; 21] = [
    "admin_token",
    "url",
    "instance",
    "peers",
    "username",
    "password",
    "client_id",
    "base_topic",
    "discovery_prefix",
    "status_topic",
    "secret",
    "alias",
    "name",
    "app_token",
    "public_url",
    "api_url",
    "tls_cert",
    "tls_key",
    "ca_file",
    "client_cert",
    "client_key",
];

/// `PRINT2MQTT_<SECTION>__<KEY>` variables, nested on `__`, with the values
/// of text keys kept as written.
struct Environment;

impl Environment {
    fn env() -> Env {
        Env::prefixed(ENV_PREFIX)
            .split("__")
            .ignore(&["config", "supervisor_url"])
    }
}

impl figment::Provider for Environment {
    fn metadata(&self) -> figment::Metadata {
        Self::env().metadata()
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, raw) in Self::env().iter() {
            let leaf = key.as_str().rsplit('.').next().unwrap_or_default();
            let value = if TEXT_KEYS.contains(&leaf) {
                Value::from(raw)
            } else {
                // Value's FromStr never fails: unparseable text stays text.
                raw.parse().unwrap_or_else(|_| Value::from(raw))
            };
            insert(&mut dict, key.as_str(), value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

/// Inserts `value` at the dotted `path`, creating dictionaries on the way.
fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if entry.as_dict().is_none() {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

fn from_figment(figment: &Figment, error: figment::Error) -> ConfigErrors {
    ConfigErrors(
        error
            .into_iter()
            .map(|e| {
                let key = e.path.join(".");
                let source = e
                    .metadata
                    .as_ref()
                    .or_else(|| figment.find_metadata(&key))
                    .map(|m| describe(m, &key))
                    .unwrap_or_default();
                let problem = e.kind.to_string();
                ConfigError {
                    key: if key.is_empty() { "(file)".into() } else { key },
                    source,
                    problem,
                }
            })
            .collect(),
    )
}

/// "the TOML file config/x.toml" or "the environment variable PRINT2MQTT_X".
fn describe(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(path)) => format!("{} {}", md.name, path.display()),
        _ if md.name.contains("environment") => {
            let var = key.replace('.', "__").to_ascii_uppercase();
            format!("environment variable {ENV_PREFIX}{var}")
        }
        _ => md.name.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let c = Config::default();
        assert_eq!(c.http.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.mqtt.base_topic, "print2mqtt");
        assert_eq!(c.mqtt.client_id, "print2mqtt");
        assert_eq!(c.storage.max_events, 100_000);
        assert_eq!(c.broker.listen.to_string(), "127.0.0.1:1883");
        assert!(c.homeassistant.discovery);
        assert_eq!(c.homeassistant.discovery_prefix, "homeassistant");
        assert_eq!(c.homeassistant.status_topic, "homeassistant/status");
        assert_eq!(c.octoeverywhere.renew_days, 30);
    }

    #[test]
    fn secrets_never_print() {
        let mut c = Config::default();
        c.auth.secret = Secret::new("hunter2");
        c.mqtt.url = vec!["mqtt://u:pw@host:1883".into(), "mqtt://v:pw2@other".into()];
        c.printers.insert(
            "X".into(),
            Printer {
                secret: Secret::new("per-printer"),
                app_token: Secret::new("tok"),
                ..Printer::default()
            },
        );
        let shown = format!("{:?}\n{}", c, c.to_redacted_toml());
        for s in ["hunter2", "per-printer", "tok\"", ":pw@", ":pw2@"] {
            assert!(!shown.contains(s), "{s} leaked: {shown}");
        }
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn layers_in_order_and_env_values_stay_text() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "[http]\nlisten = \"127.0.0.1:9000\"\n[mqtt]\nurl = \"mqtt://file:1883\"\n",
            )?;
            jail.create_file("options.json", r#"{"mqtt": {"url": "mqtt://addon:1883"}}"#)?;
            jail.set_env("PRINT2MQTT_AUTH__SECRET", "007");
            jail.set_env("PRINT2MQTT_MQTT__USERNAME", "true");
            jail.set_env("PRINT2MQTT_PRINTERS__ABC-123__ALIAS", "ender3");
            jail.set_env("PRINT2MQTT_HOMEASSISTANT__STATUS_TOPIC", "ha/status");
            let c = Config::load(&Sources {
                file: Some("p.toml".into()),
                addon_options: Some("options.json".into()),
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(c.http.listen.to_string(), "127.0.0.1:9000");
            assert_eq!(
                c.mqtt.url,
                ["mqtt://addon:1883"],
                "add-on options beat the file"
            );
            assert_eq!(c.auth.secret.expose(), "007", "leading zeros survive");
            assert_eq!(c.mqtt.username, "true");
            assert_eq!(c.homeassistant.status_topic, "ha/status");
            assert_eq!(
                c.printer("ABC-123").map(|p| p.alias.as_str()),
                Some("ender3")
            );
            jail.set_env("PRINT2MQTT_MQTT__URL", "mqtt://env:1883");
            let c = Config::load(&Sources {
                file: Some("p.toml".into()),
                addon_options: Some("options.json".into()),
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(
                c.mqtt.url,
                ["mqtt://env:1883"],
                "environment beats everything"
            );
            Ok(())
        });
    }

    #[test]
    fn errors_name_key_and_source() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                "[mqtt]\nurl = \"http://x\"\n[storage]\nmax_events = \"lots\"\n",
            )?;
            let err = Config::load(&Sources {
                file: Some("bad.toml".into()),
                addon_options: Some("none.json".into()),
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("`storage.max_events`") && err.contains("bad.toml"),
                "{err}"
            );
            jail.create_file("bad.toml", "[mqtt]\nurl = \"http://x\"\n")?;
            jail.set_env("PRINT2MQTT_HTTP__LISTEN", "nowhere");
            let err = Config::load(&Sources {
                file: Some("bad.toml".into()),
                addon_options: Some("none.json".into()),
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("PRINT2MQTT_HTTP__LISTEN"), "{err}");
            jail.set_env("PRINT2MQTT_HTTP__LISTEN", "127.0.0.1:1");
            let err = Config::load(&Sources {
                file: Some("bad.toml".into()),
                addon_options: Some("none.json".into()),
            })
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("`mqtt.url` (from TOML file") && err.contains("scheme"),
                "{err}"
            );
            Ok(())
        });
    }

    #[test]
    fn per_printer_secret_and_case_insensitive_ids() {
        let mut c = Config::default();
        c.auth.secret = Secret::new("global");
        c.printers.insert(
            "ABC".into(),
            Printer {
                secret: Secret::new("own"),
                ..Printer::default()
            },
        );
        assert_eq!(c.secret_for("abc").expose(), "own");
        assert_eq!(c.secret_for("other").expose(), "global");
    }
}
