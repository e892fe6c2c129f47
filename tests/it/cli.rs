//! The `print2mqtt` binary: check-config, exit codes, signals, last will.

use crate::common;

use std::process::{Command, Output, Stdio};

use common::*;

const SECRET: &str = "tops3cret-value";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_print2mqtt"));
    // An empty working directory: no config/print2mqtt.toml is picked up.
    // Under target/tmp (not /tmp): `cargo clean` takes them away.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(ulid::Ulid::generate().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    c.current_dir(dir)
        .env_remove("PRINT2MQTT_CONFIG")
        .env_remove("RUST_LOG");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_redacted() {
    let out = run(bin()
        .arg("check-config")
        .env("PRINT2MQTT_AUTH__SECRET", SECRET)
        .env("PRINT2MQTT_MQTT__PASSWORD", "pw-456")
        .env("PRINT2MQTT_MQTT__URL", "mqtt://user:urlpass@broker:1883")
        .env("PRINT2MQTT_HTTP__LISTEN", "127.0.0.1:9999"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("listen = \"127.0.0.1:9999\""), "{stdout}");
    for secret in [SECRET, "pw-456", "urlpass"] {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
    assert!(stdout.contains("<redacted>"));
}

#[test]
fn a_bad_value_names_key_and_source_and_exits_2() {
    let out = run(bin().env("PRINT2MQTT_HTTP__LISTEN", "not-an-address"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`http.listen`") && stderr.contains("PRINT2MQTT_HTTP__LISTEN"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[mqtt]\nurl = \"mqtt://x\"\nbase_topic = \"a/#\"\n").unwrap();
    let out = run(bin().arg("--config").arg(&file).arg("check-config"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`mqtt.base_topic`") && stderr.contains("bad.toml"),
        "{stderr}"
    );

    let out = run(bin().args(["--config", "/nonexistent/p2m.toml"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_and_version() {
    let out = run(bin().arg("--help"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("check-config"));
    let out = run(bin().arg("--version"));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("print2mqtt {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_publishes_offline_and_exits_cleanly_without_logging_secrets() {
    let broker = Mosquitto::start();
    let mut state = Subscriber::new(broker.port, "print2mqtt/bridge/state").await;
    let bridge = Process::start(&broker.url(), &data_dir());
    assert_eq!(state.next().await.text(), "online");
    let addr = ([127, 0, 0, 1], bridge.http).into();
    let body = format!(r#"{{"PrinterId":"p","SecretKey":"{SECRET}","EventType":2}}"#);
    assert_eq!(post_json(addr, "/webhook", body).await.status, 200);
    let wrong = post_json(
        addr,
        "/webhook",
        r#"{"PrinterId":"p","SecretKey":"guess-1","EventType":2}"#,
    )
    .await;
    assert_eq!(wrong.status, 401);
    bridge.signal("-TERM");
    let out = bridge.wait();
    assert!(out.status.success(), "exit {:?}", out.status);
    assert_eq!(state.next().await.text(), "offline");
    wait_retained(broker.port, "print2mqtt/p/state", "complete").await;
    let log = &out.log;
    assert!(
        log.contains("Webhook accepted") && log.contains("event=complete"),
        "{log}"
    );
    assert!(log.contains("status=401"), "{log}");
    assert!(
        !log.contains(SECRET) && !log.contains("guess-1"),
        "secret in the log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_bridge_goes_offline_through_its_last_will() {
    let broker = Mosquitto::start();
    let mut state = Subscriber::new(broker.port, "print2mqtt/bridge/state").await;
    let bridge = Process::start(&broker.url(), &data_dir());
    assert_eq!(state.next().await.text(), "online");
    bridge.signal("-KILL");
    bridge.wait();
    assert_eq!(state.next().await.text(), "offline");
    wait_retained(broker.port, "print2mqtt/bridge/state", "offline").await;
}
