//! Loading and validation: defaults, layering, every error named.
#![allow(clippy::result_large_err)] // figment::Jail closures return figment::Error

use super::*;
use crate::event::EventKind;

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
        // Numbers, booleans and lists are read from the text.
        jail.set_env("PRINT2MQTT_STORAGE__MAX_EVENTS", "5000");
        jail.set_env("PRINT2MQTT_HOMEASSISTANT__DISCOVERY", "false");
        jail.set_env("PRINT2MQTT_PRINTERS__ABC-123__EVENTS", "[started, failed]");
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
        assert_eq!(c.storage.max_events, 5000);
        assert!(!c.homeassistant.discovery);
        assert_eq!(
            c.printer("ABC-123").map(|p| p.events.kinds().to_vec()),
            Some(vec![EventKind::Started, EventKind::Failed])
        );
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
