//! The Home Assistant add-on against the Supervisor's add-on spec: the
//! repository layout, config.yaml keys and types, the options schema and its
//! mapping onto print2mqtt's configuration keys, translations, versions.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use print2mqtt::config::{Config, Sources};
use regex::Regex;
use serde_yaml_ng::{Mapping, Value};

const ADDON: &str = "docker/homeassistant-addon";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn yaml(path: &str) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn addon() -> Mapping {
    yaml(&format!("{ADDON}/config.yaml"))
        .as_mapping()
        .expect("config.yaml is a mapping")
        .clone()
}

fn get<'a>(m: &'a Mapping, key: &str) -> &'a Value {
    m.get(key)
        .unwrap_or_else(|| panic!("config.yaml has no `{key}`"))
}

/// Every key the Supervisor's config schema knows (developer docs, "Add-on
/// configuration"); anything else is dropped without a word, so a typo
/// would silently lose a setting.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "version",
    "slug",
    "description",
    "arch",
    "machine",
    "url",
    "startup",
    "webui",
    "boot",
    "ports",
    "ports_description",
    "host_network",
    "host_ipc",
    "host_dbus",
    "host_pid",
    "host_uts",
    "devices",
    "homeassistant",
    "hassio_role",
    "hassio_api",
    "homeassistant_api",
    "docker_api",
    "privileged",
    "full_access",
    "apparmor",
    "map",
    "environment",
    "audio",
    "video",
    "gpio",
    "usb",
    "uart",
    "udev",
    "devicetree",
    "kernel_modules",
    "stdin",
    "legacy",
    "options",
    "schema",
    "image",
    "timeout",
    "tmpfs",
    "discovery",
    "services",
    "auth_api",
    "ingress",
    "ingress_port",
    "ingress_entry",
    "ingress_stream",
    "panel_icon",
    "panel_title",
    "panel_admin",
    "backup",
    "backup_pre",
    "backup_post",
    "backup_exclude",
    "advanced",
    "stage",
    "init",
    "watchdog",
    "realtime",
    "journald",
    "breaking_versions",
    "ulimits",
];

/// The option types the Supervisor accepts (its `RE_SCHEMA_ELEMENT`).
fn schema_element() -> Regex {
    Regex::new(concat!(
        r"^(?:|bool|email|url|port|device(?:\(subsystem=[a-z]+\))?",
        r"|str(?:\((\d+)?,(\d+)?\))?|password(?:\((\d+)?,(\d+)?\))?",
        r"|int(?:\((\d+)?,(\d+)?\))?|float(?:\(([\d\.]+)?,([\d\.]+)?\))?",
        r"|match\((.*)\)|list\((.+)\))\??$"
    ))
    .unwrap()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} must be a string: {v:?}"))
}

#[test]
fn config_yaml_follows_the_add_on_spec() {
    let c = addon();
    for key in c.keys() {
        let key = str_of(key, "a key");
        assert!(KNOWN_KEYS.contains(&key), "unknown config.yaml key `{key}`");
    }
    str_of(get(&c, "name"), "name");
    str_of(get(&c, "description"), "description");
    let version = str_of(get(&c, "version"), "version");
    assert!(Regex::new(r"^\d+\.\d+\.\d+$").unwrap().is_match(version));
    let slug = str_of(get(&c, "slug"), "slug");
    assert!(Regex::new(r"^[-_.A-Za-z0-9]+$").unwrap().is_match(slug));
    let url = str_of(get(&c, "url"), "url");
    assert!(url.starts_with("https://"), "{url}");
    let arch: Vec<_> = get(&c, "arch")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| str_of(a, "arch"))
        .collect();
    assert_eq!(arch, ["amd64", "aarch64"]);
    assert_eq!(str_of(get(&c, "startup"), "startup"), "application");
    assert_eq!(str_of(get(&c, "boot"), "boot"), "auto");

    let service = Regex::new(r"^(mqtt|mysql):(provide|want|need)$").unwrap();
    let services: Vec<_> = get(&c, "services")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| str_of(s, "service"))
        .collect();
    assert!(services.iter().all(|s| service.is_match(s)), "{services:?}");
    assert_eq!(
        services,
        ["mqtt:want"],
        "installable without a broker add-on"
    );

    let port_key = Regex::new(r"^\d+(/(tcp|udp))?$").unwrap();
    let ports = get(&c, "ports").as_mapping().unwrap();
    let mut container_ports = Vec::new();
    for (k, v) in ports {
        let k = str_of(k, "port key");
        assert!(port_key.is_match(k), "{k}");
        let host = v.as_u64().expect("host port");
        assert!((1..=65535).contains(&host));
        container_ports.push(k.split('/').next().unwrap().parse::<u64>().unwrap());
    }
    assert_eq!(container_ports, [8080], "the webhook port");
    for k in get(&c, "ports_description").as_mapping().unwrap().keys() {
        assert!(
            ports.contains_key(k),
            "description of an unknown port {k:?}"
        );
    }

    assert_eq!(get(&c, "ingress").as_bool(), Some(true));
    let ingress_port = get(&c, "ingress_port").as_u64().unwrap();
    assert!((1..=65535).contains(&ingress_port));
    assert!(
        !container_ports.contains(&ingress_port),
        "ingress has a port of its own, separate from the webhook port"
    );
    assert!(str_of(get(&c, "panel_icon"), "panel_icon").starts_with("mdi:"));

    let mapping_types = [
        "homeassistant_config",
        "addon_config",
        "ssl",
        "addons",
        "backup",
        "share",
        "media",
        "all_addon_configs",
        "data",
    ];
    for m in get(&c, "map").as_sequence().unwrap() {
        let t = str_of(&m["type"], "map type");
        assert!(mapping_types.contains(&t), "{t}");
        assert!(m.get("read_only").is_none_or(|r| r.as_bool().is_some()));
    }
    // No privileges the bridge does not need.
    for key in [
        "host_network",
        "hassio_api",
        "homeassistant_api",
        "full_access",
        "privileged",
    ] {
        assert!(c.get(key).is_none(), "{key} is not needed");
    }
}

/// Checks a schema element the way the Supervisor does: nested
/// dictionaries and lists at most two deep, leaves of a known type.
fn check_schema(value: &Value, path: &str, depth: usize, element: &Regex) {
    match value {
        Value::String(s) => assert!(element.is_match(s), "{path}: unknown type `{s}`"),
        Value::Mapping(m) => {
            assert!(depth < 2, "{path}: nested deeper than two levels");
            for (k, v) in m {
                check_schema(
                    v,
                    &format!("{path}.{}", str_of(k, "key")),
                    depth + 1,
                    element,
                );
            }
        }
        Value::Sequence(s) => {
            assert_eq!(s.len(), 1, "{path}: a list schema has one element");
            assert!(!s[0].is_sequence(), "{path}: a list may not hold a list");
            check_schema(&s[0], path, depth + 1, element);
        }
        other => panic!("{path}: not a schema element: {other:?}"),
    }
}

/// The Supervisor's option check: no option outside the schema, and every
/// schema entry either present or optional (`?`).
fn check_options(options: &Mapping, schema: &Mapping, path: &str) {
    for (k, v) in options {
        let key = str_of(k, "option");
        let typ = schema
            .get(key)
            .unwrap_or_else(|| panic!("{path}.{key}: option not in the schema"));
        if let (Some(o), Some(s)) = (v.as_mapping(), typ.as_mapping()) {
            check_options(o, s, &format!("{path}.{key}"));
        }
    }
    for (k, typ) in schema {
        let optional = typ.as_str().is_some_and(|t| t.ends_with('?'));
        assert!(
            options.contains_key(k) || optional,
            "{path}.{k:?}: required by the schema but missing from options"
        );
    }
}

#[test]
fn options_validate_against_their_schema() {
    let c = addon();
    let schema = get(&c, "schema").as_mapping().unwrap();
    let element = schema_element();
    for (k, v) in schema {
        check_schema(v, str_of(k, "key"), 0, &element);
    }
    check_options(get(&c, "options").as_mapping().unwrap(), schema, "options");
}

/// A sample value for every schema leaf, valid for print2mqtt's checks.
const SAMPLES: &[(&str, &str)] = &[
    ("mqtt.url", r#""mqtt://broker.lan:1884""#),
    ("mqtt.username", r#""addon-user""#),
    ("mqtt.password", r#""addon-pass""#),
    ("mqtt.client_id", r#""p2m-addon""#),
    ("mqtt.base_topic", r#""printers""#),
    ("auth.secret", r#""0123secret""#),
    ("http.admin_token", r#""admin-tok""#),
    ("storage.max_events", "5000"),
    ("homeassistant.discovery", "false"),
    ("homeassistant.discovery_mode", r#""component""#),
    ("homeassistant.discovery_prefix", r#""ha""#),
    ("homeassistant.status_topic", r#""ha/status""#),
    (
        "octoeverywhere.public_url",
        r#""https://prints.example.org""#,
    ),
    ("octoeverywhere.renew_days", "20"),
];

/// Every add-on option is a print2mqtt configuration key at the same path:
/// the Supervisor's /data/options.json is read as a configuration layer
/// with unknown keys rejected, so this loads only if they match.
#[test]
fn every_option_is_a_configuration_key() {
    let c = addon();
    let schema = get(&c, "schema").as_mapping().unwrap();
    let mut options = serde_json::Map::new();
    let mut leaves = BTreeSet::new();
    for (section, fields) in schema {
        let section = str_of(section, "section");
        let mut inner = serde_json::Map::new();
        for key in fields
            .as_mapping()
            .expect("sections are dictionaries")
            .keys()
        {
            let path = format!("{section}.{}", str_of(key, "key"));
            let (_, sample) = SAMPLES
                .iter()
                .find(|(p, _)| *p == path)
                .unwrap_or_else(|| panic!("no sample for option {path}: add one"));
            inner.insert(
                str_of(key, "key").to_owned(),
                serde_json::from_str(sample).unwrap(),
            );
            leaves.insert(path);
        }
        options.insert(section.to_owned(), inner.into());
    }
    assert_eq!(
        leaves.len(),
        SAMPLES.len(),
        "a sample for an option that is gone"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("options.json");
    std::fs::write(&file, serde_json::Value::from(options).to_string()).unwrap();
    let config = Config::load(&Sources {
        file: Some(repo("config/print2mqtt.toml")),
        addon_options: Some(file.clone()),
    })
    .unwrap_or_else(|e| panic!("options.json is not a valid configuration: {e}"));
    let loaded = serde_json::to_value(&config).unwrap();
    for (path, sample) in SAMPLES {
        let (section, key) = path.split_once('.').unwrap();
        assert_eq!(
            loaded[section][key],
            serde_json::from_str::<serde_json::Value>(sample).unwrap(),
            "{path}"
        );
    }

    // The options as installed (empty sections) keep every default.
    let defaults = get(&c, "options");
    std::fs::write(&file, serde_json::to_string(defaults).unwrap()).unwrap();
    let config = Config::load(&Sources {
        file: Some(repo("config/print2mqtt.toml")),
        addon_options: Some(file),
    })
    .unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn every_option_and_port_is_translated() {
    let c = addon();
    let t = yaml(&format!("{ADDON}/translations/en.yaml"));
    let configuration = t["configuration"].as_mapping().unwrap();
    for (section, fields) in get(&c, "schema").as_mapping().unwrap() {
        let tr = configuration
            .get(section)
            .unwrap_or_else(|| panic!("no translation for {section:?}"));
        str_of(&tr["name"], "name");
        for key in fields.as_mapping().unwrap().keys() {
            let field = &tr["fields"][key];
            str_of(&field["name"], "field name");
            str_of(&field["description"], "field description");
        }
        for key in tr["fields"].as_mapping().into_iter().flat_map(|m| m.keys()) {
            assert!(
                fields.as_mapping().unwrap().contains_key(key),
                "translation of an unknown option {section:?}.{key:?}"
            );
        }
    }
    assert_eq!(
        configuration.len(),
        get(&c, "schema").as_mapping().unwrap().len()
    );
    for key in t["network"].as_mapping().unwrap().keys() {
        assert!(get(&c, "ports").as_mapping().unwrap().contains_key(key));
    }
}

/// Files the Supervisor reads as add-on configs: `config.{json,yaml,yml}`
/// anywhere in the repository outside hidden folders and `rootfs`.
fn addon_configs(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "rootfs" || name == "target" {
            continue;
        }
        if path.is_dir() {
            addon_configs(&path, found);
        } else if ["config.json", "config.yaml", "config.yml"].contains(&name.as_str()) {
            found.push(path);
        }
    }
}

#[test]
fn the_repository_is_an_add_on_repository() {
    let r = yaml("repository.yaml");
    str_of(&r["name"], "repository name");
    let url = str_of(&r["url"], "repository url");
    assert_eq!(url, str_of(get(&addon(), "url"), "url"));
    let mut found = Vec::new();
    addon_configs(&repo(""), &mut found);
    assert_eq!(
        found,
        [repo(&format!("{ADDON}/config.yaml"))],
        "the Supervisor would read every one of these as an add-on"
    );
    for file in ["DOCS.md", "CHANGELOG.md", "README.md", "Dockerfile"] {
        assert!(repo(&format!("{ADDON}/{file}")).is_file(), "{file}");
    }
}

#[test]
fn versions_agree_and_the_base_image_is_named() {
    let c = addon();
    let version = str_of(get(&c, "version"), "version");
    assert_eq!(version, env!("CARGO_PKG_VERSION"), "add-on = crate version");
    let docker = read(&format!("{ADDON}/Dockerfile"));
    let from: Vec<_> = docker.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(from, ["FROM ${BASE_IMAGE}"]);
    assert!(
        docker.contains(&format!(
            "\nARG BASE_IMAGE=ghcr.io/print2mqtt/print2mqtt:{version}\n"
        )),
        "an explicit base image, tagged with the add-on's version"
    );
    assert!(
        !docker.contains("BUILD_FROM"),
        "no Supervisor-injected base"
    );
    assert!(docker.contains(&format!("io.hass.version=\"{version}\"")));
    assert!(docker.contains("io.hass.arch=\"${BUILD_ARCH}\""));
    assert!(docker.contains(&format!(
        "PRINT2MQTT_HTTP__INGRESS_LISTEN=0.0.0.0:{}",
        get(&c, "ingress_port").as_u64().unwrap()
    )));
    assert!(docker.contains("PRINT2MQTT_HTTP__LISTEN=0.0.0.0:8080"));
    let changelog = read(&format!("{ADDON}/CHANGELOG.md"));
    assert!(changelog.contains(&format!("## {version}")));
}

/// The Supervisor pulls `image` (with `{arch}` replaced) tagged with
/// `version`; the release workflow publishes exactly that, for every arch,
/// built on the print2mqtt image it publishes in the same run.
#[test]
fn the_release_publishes_the_add_on_image() {
    let c = addon();
    let image = str_of(get(&c, "image"), "image");
    assert_eq!(image, "ghcr.io/print2mqtt/{arch}-addon-print2mqtt");
    let release = read(".github/workflows/release.yml");
    assert!(
        release.contains(
            r#"image="$(sed -n 's/^image: *//p' docker/homeassistant-addon/config.yaml)""#
        ),
        "the workflow reads the image name from config.yaml"
    );
    assert!(release.contains(r#"--tag "${image/\{arch\}/$arch}:$VERSION""#));
    for arch in get(&c, "arch").as_sequence().unwrap() {
        let arch = str_of(arch, "arch");
        let platform = match arch {
            "amd64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            other => panic!("no Docker platform for add-on arch {other}"),
        };
        assert!(
            release.contains(&format!("{arch}:{platform}")),
            "the release builds the {arch} add-on image"
        );
    }
    let docker = read(&format!("{ADDON}/Dockerfile"));
    let base = docker
        .lines()
        .find_map(|l| l.strip_prefix("ARG BASE_IMAGE="))
        .unwrap();
    let (name, _) = base.rsplit_once(':').unwrap();
    assert!(release.contains(&format!("{name}:${{{{ env.VERSION }}}}")));
    assert!(release.contains(&format!("\"BASE_IMAGE={name}:$VERSION\"")));
}

#[test]
fn the_supervisor_watches_healthz_and_backs_up_cold() {
    let c: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docker/homeassistant-addon/config.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    // The Supervisor's form: http://[HOST]:[PORT:<container port>]/<path>,
    // on the webhook port, which serves /healthz without access rules.
    assert_eq!(
        c["watchdog"].as_str(),
        Some("http://[HOST]:[PORT:8080]/healthz")
    );
    assert!(c["ports"]["8080/tcp"].is_number());
    // The redb outbox is copied only while the add-on is stopped.
    assert_eq!(c["backup"].as_str(), Some("cold"));
}
