//! `print2mqtt oe-register`, `oe-test`, `oe-unregister` against the fake
//! OctoEverywhere API, the configuration rules of App Connection, and a
//! bridge process that registers without ever logging its secret.

use crate::common;

use std::path::PathBuf;
use std::process::{Output, Stdio};

use common::fake_oe::{Answer, FakeOe};
use common::*;
use print2mqtt::octoeverywhere::api::{DELETE_PATH, SET_PATH, TEST_PATH};
use serde_json::json;

const SECRET: &str = "cli-secret-4711";

/// A config file for printers `P1` (alias `first`) and `P2`, both with
/// tokens, registering with `api_url`.
fn config_file(api_url: &str, extra: &str) -> PathBuf {
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("print2mqtt.toml");
    std::fs::write(
        &file,
        format!(
            "[auth]\nsecret = \"{SECRET}\"\n\
             [octoeverywhere]\npublic_url = \"http://127.0.0.1:8080\"\napi_url = \"{api_url}\"\n\
             [printers.P1]\nalias = \"first\"\napp_token = \"token-p1\"\nevents = [\"error\"]\n\
             [printers.P2]\napp_token = \"token-p2\"\n{extra}"
        ),
    )
    .unwrap();
    file
}

async fn run(file: &PathBuf, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::from(bin());
    cmd.arg("--config")
        .arg(file)
        .args(args)
        .stdin(Stdio::null());
    tokio::time::timeout(TIMEOUT, cmd.output())
        .await
        .expect("the command ends in time")
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oe_register_registers_every_printer_and_says_so() {
    let fake = FakeOe::start().await;
    let file = config_file(&fake.url(), "");
    let out = run(&file, &["oe-register"]).await;
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "P1: registered: OctoEverywhere will call \
         http://127.0.0.1:8080/webhook/octoeverywhere?printer=P1&token=<redacted> for event \
         types [9]; a running bridge renews this every 30 days\n\
         P2: registered: OctoEverywhere will call \
         http://127.0.0.1:8080/webhook/octoeverywhere?printer=P2&token=<redacted> for every \
         event; a running bridge renews this every 30 days\n"
    );
    assert!(!stderr.contains(SECRET), "{stderr}");
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[0].method.as_str(), calls[0].path.as_str()),
        ("POST", SET_PATH)
    );
    assert_eq!(calls[0].app_token.as_deref(), Some("token-p1"));
    let url = format!("http://127.0.0.1:8080/webhook/octoeverywhere?printer=P1&token={SECRET}");
    assert_eq!(
        calls[0].body,
        json!({"CallbackUrl": url, "EventTypes": [9], "WebhookUrl": url,
               "InclusiveEventTypesFilter": [9]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oe_register_for_one_printer_reports_a_revoked_connection_and_fails() {
    let fake = FakeOe::start().await;
    fake.answer(604);
    let file = config_file(&fake.url(), "");
    let out = run(&file, &["oe-register", "--printer", "first"]).await;
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        stdout,
        "P1: registration failed: the App Connection was revoked or has expired (604); create \
         a new one in OctoEverywhere and put its token in printers.\"P1\".app_token\n"
    );
    assert_eq!(fake.calls().len(), 1, "only the printer asked for");

    fake.script([Answer::Status(503, "maintenance".into())]);
    let out = run(&file, &["oe-register", "--printer", "p2"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out).0,
        "P2: registration failed: OctoEverywhere answered 503: maintenance (temporary; try \
         again later)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oe_test_and_oe_unregister_call_their_endpoints() {
    let fake = FakeOe::start().await;
    let file = config_file(&fake.url(), "");
    let out = run(&file, &["oe-test", "--printer", "P2"]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(
        text(&out)
            .0
            .starts_with("P2: OctoEverywhere accepted the test")
    );
    let out = run(&file, &["oe-unregister", "--printer", "P2"]).await;
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    assert!(text(&out).0.starts_with("P2: unregistered: "));
    let calls: Vec<(String, String, Option<String>)> = fake
        .calls()
        .into_iter()
        .map(|c| (c.method, c.path, c.app_token))
        .collect();
    let token = Some("token-p2".to_owned());
    assert_eq!(
        calls,
        [
            ("GET".into(), TEST_PATH.into(), token.clone()),
            ("POST".into(), DELETE_PATH.into(), token),
        ]
    );

    fake.answer(603);
    let out = run(&file, &["oe-test", "--printer", "P2"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .contains("does not know this App Connection (603)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_without_a_printer_to_call_fail_clearly() {
    let fake = FakeOe::start().await;
    let file = config_file(&fake.url(), "");
    let out = run(&file, &["oe-test", "--printer", "nobody"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("no printer `nobody` with an app_token")
    );

    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let out = run(&empty, &["oe-register"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("no printer has an app_token"));
    assert!(fake.calls().is_empty());

    // The API down: a network failure, in plain words.
    let down = config_file(&format!("http://127.0.0.1:{}", free_port()), "");
    let out = run(&down, &["oe-register", "--printer", "P1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).0.contains("could not reach OctoEverywhere"),
        "{:?}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_tokens_need_a_public_https_url() {
    let cases = [
        ("", "`octoeverywhere.public_url`", "must be set"),
        (
            "http://prints.example.org",
            "`octoeverywhere.public_url`",
            "https://",
        ),
        ("https://x.org/?a=1", "`octoeverywhere.public_url`", "query"),
    ];
    for (public_url, key, problem) in cases {
        let mut cmd = bin();
        cmd.arg("check-config")
            .env("PRINT2MQTT_PRINTERS__P1__APP_TOKEN", "tok")
            .env("PRINT2MQTT_OCTOEVERYWHERE__PUBLIC_URL", public_url);
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{public_url}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key) && stderr.contains(problem) && stderr.contains("app_token"),
            "{public_url}: {stderr}"
        );
    }
    let out = bin()
        .arg("check-config")
        .env(
            "PRINT2MQTT_OCTOEVERYWHERE__API_URL",
            "ftp://octoeverywhere.com",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`octoeverywhere.api_url`"));
    let out = bin()
        .arg("check-config")
        .env("PRINT2MQTT_PRINTERS__P1__APP_TOKEN", "two words")
        .env(
            "PRINT2MQTT_OCTOEVERYWHERE__PUBLIC_URL",
            "https://prints.example.org",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`printers.p1.app_token`"));
    // Without any app_token no public URL is needed.
    let out = bin().arg("check-config").output().unwrap();
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_process_registers_at_start_and_never_logs_its_secret() {
    let broker = Mosquitto::start();
    let fake = FakeOe::start().await;
    let data = data_dir();
    let http = free_port();
    let public_url = format!("http://127.0.0.1:{http}");
    let bridge = Process::start_with(
        &broker.url(),
        &data,
        http,
        &[
            ("PRINT2MQTT_PRINTERS__P1__APP_TOKEN", "token-p1"),
            ("PRINT2MQTT_OCTOEVERYWHERE__PUBLIC_URL", &public_url),
            ("PRINT2MQTT_OCTOEVERYWHERE__API_URL", &fake.url()),
        ],
    );
    let calls = fake.wait_calls(1, TIMEOUT).await;
    let callback = calls[0].callback().to_owned();
    assert!(callback.ends_with(&format!("printer=p1&token={}", common::SECRET)));
    wait_retained(broker.port, "print2mqtt/p1/app_connection", "registered").await;
    let hook = r#"{"PrinterId":"whatever","EventType":16}"#;
    let path = callback.strip_prefix(&public_url).unwrap();
    assert_eq!(post_json(bridge.addr(), path, hook).await.status, 200);
    bridge.signal("-TERM");
    let exited = bridge.wait();
    assert!(exited.status.success(), "{}", exited.log);
    assert!(
        exited.log.contains("App Connection webhook registered")
            && exited.log.contains("<redacted>"),
        "{}",
        exited.log
    );
    assert!(
        !exited.log.contains(common::SECRET),
        "secret logged: {}",
        exited.log
    );
    assert!(
        !exited.log.contains("token-p1"),
        "token logged: {}",
        exited.log
    );
}
