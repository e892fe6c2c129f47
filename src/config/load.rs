//! Loading: the figment layers (defaults < TOML file < add-on options <
//! environment) and figment errors turned into [`ConfigErrors`] that name
//! the key and where its value came from.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Json, Toml};
use figment::value::{Dict, Value};

use super::{ADDON_OPTIONS, ConfigError, ConfigErrors, DEFAULT_FILE, ENV_PREFIX, Sources};

/// The layered providers: defaults come from the `Default` impls.
pub(super) fn figment(sources: &Sources) -> Result<Figment, ConfigErrors> {
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

/// `PRINT2MQTT_<SECTION>__<KEY>` variables, nested on `__`. A single value
/// stays text as written (`PRINT2MQTT_AUTH__SECRET=007` is not the number
/// 7); numbers and booleans are read from text by `extract_lossy`. Arrays
/// and tables (`[a, b]`) are parsed.
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
            let value = match raw.parse::<Value>() {
                Ok(v @ (Value::Array(..) | Value::Dict(..))) => v,
                _ => Value::from(raw),
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

pub(super) fn from_figment(figment: &Figment, error: figment::Error) -> ConfigErrors {
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
pub(super) fn describe(md: &figment::Metadata, key: &str) -> String {
    match &md.source {
        Some(figment::Source::File(path)) => format!("{} {}", md.name, path.display()),
        _ if md.name.contains("environment") => {
            let var = key.replace('.', "__").to_ascii_uppercase();
            format!("environment variable {ENV_PREFIX}{var}")
        }
        _ => md.name.to_string(),
    }
}
