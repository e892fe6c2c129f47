//! The bridge as a Home Assistant add-on: the broker from a fake Supervisor
//! (a hyper server on loopback) used against a real Mosquitto that demands
//! those credentials, the embedded broker when the Supervisor has none, and
//! the ingress listener.

use crate::common;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use print2mqtt::config::Secret;

const TOKEN: &str = "supervisor-token-123";
const USER: &str = "addons";
const PASS: &str = "Pa55-from-supervisor";

/// A Mosquitto with two listeners: `login_port` demands USER/PASS,
/// `open_port` lets the test's own subscribers in.
struct SecuredMosquitto {
    login_port: u16,
    open_port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl SecuredMosquitto {
    fn start() -> SecuredMosquitto {
        let dir = tempfile::tempdir().unwrap();
        let passwords = dir.path().join("passwd");
        let status = Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(&passwords)
            .args([USER, PASS])
            .status()
            .expect("mosquitto_passwd (package mosquitto) must be installed");
        assert!(status.success());
        let (login_port, open_port) = (free_port(), free_port());
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings true\n\
                 listener {login_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 listener {open_port} 127.0.0.1\nallow_anonymous true\n",
                passwords.display()
            ),
        )
        .unwrap();
        let bin = if std::path::Path::new("/usr/sbin/mosquitto").exists() {
            "/usr/sbin/mosquitto"
        } else {
            "mosquitto"
        };
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for port in [login_port, open_port] {
            let addr = ([127, 0, 0, 1], port).into();
            wait_until("mosquitto to listen", || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
            });
        }
        SecuredMosquitto {
            login_port,
            open_port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for SecuredMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the fake Supervisor saw: (path, Authorization header).
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// Serves `status` and `body` for every request on a loopback port.
async fn fake_supervisor(status: u16, body: String) -> (SocketAddr, Seen) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, body) = (log.clone(), body.clone());
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock()
                    .unwrap()
                    .push((req.uri().path().to_owned(), auth));
                let mut res = Response::new(Full::new(Bytes::from(body.clone())));
                *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
                res.headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                async move { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    (addr, seen)
}

/// The bridge binary as an add-on: SUPERVISOR_TOKEN set, no mqtt.url.
struct AddonBridge {
    child: Child,
    http: u16,
    log: PathBuf,
}

impl AddonBridge {
    fn start(supervisor: SocketAddr, embedded_port: u16, extra: &[(&str, &str)]) -> AddonBridge {
        let http = free_port();
        let log = tempfile::tempdir().unwrap().keep().join("bridge.log");
        let mut cmd = bin();
        cmd.env("SUPERVISOR_TOKEN", TOKEN)
            .env("PRINT2MQTT_SUPERVISOR_URL", format!("http://{supervisor}"))
            .env("PRINT2MQTT_HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env(
                "PRINT2MQTT_BROKER__LISTEN",
                format!("127.0.0.1:{embedded_port}"),
            )
            .env("PRINT2MQTT_AUTH__SECRET", SECRET)
            .env("PRINT2MQTT_STORAGE__DATA_DIR", data_dir())
            .env("RUST_LOG", "info");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr = ([127, 0, 0, 1], http).into();
        wait_until("the bridge to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        });
        AddonBridge { child, http, log }
    }

    fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.http).into()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for AddonBridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn started_webhook() -> Vec<u8> {
    let mut body: serde_json::Value =
        serde_json::from_slice(&fixture("octoeverywhere/01-print-started.json")).unwrap();
    body["SecretKey"] = SECRET.into();
    body.to_string().into_bytes()
}

// The fake Supervisor answers while the test thread waits for the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_logs_in_with_the_credentials_the_supervisor_returns() {
    let broker = SecuredMosquitto::start();
    let answer = serde_json::json!({"result": "ok", "data": {
        "addon": "core_mosquitto", "host": "127.0.0.1", "port": broker.login_port,
        "ssl": false, "protocol": "3.1.1", "username": USER, "password": PASS}});
    let (supervisor, seen) = fake_supervisor(200, answer.to_string()).await;

    // Without the credentials the login listener refuses a client.
    let mut o = rumqttc::MqttOptions::new("anonymous-probe", "127.0.0.1", broker.login_port);
    o.set_keep_alive(Duration::from_secs(5));
    let (_c, mut events) = rumqttc::AsyncClient::new(o, 10);
    let refused = tokio::time::timeout(TIMEOUT, events.poll()).await.unwrap();
    assert!(refused.is_err(), "anonymous login accepted: {refused:?}");

    let bridge = AddonBridge::start(supervisor, free_port(), &[]);
    wait_retained(broker.open_port, "print2mqtt/bridge/state", "online").await;
    let answer = post_json(bridge.addr(), "/webhook", started_webhook()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(
        broker.open_port,
        &format!("print2mqtt/{OE_SLUG}/state"),
        "printing",
    )
    .await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [("/services/mqtt".to_owned(), format!("Bearer {TOKEN}"))]
    );
    let log = bridge.log();
    assert!(
        log.contains("Using the MQTT broker the Home Assistant Supervisor provides"),
        "{log}"
    );
    assert!(!log.contains(PASS), "the password was logged: {log}");
}

// The fake Supervisor answers while the test thread waits for the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_mqtt_service_the_bridge_starts_the_embedded_broker() {
    let body = r#"{"result":"error","message":"Service not enabled","data":{}}"#;
    let (supervisor, seen) = fake_supervisor(400, body.into()).await;
    let embedded = free_port();
    let bridge = AddonBridge::start(supervisor, embedded, &[]);
    wait_retained(embedded, "print2mqtt/bridge/state", "online").await;
    let answer = post_json(bridge.addr(), "/webhook", started_webhook()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_retained(embedded, &format!("print2mqtt/{OE_SLUG}/state"), "printing").await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    let log = bridge.log();
    assert!(
        log.contains("the Supervisor answered 400: Service not enabled")
            && log.contains("starting the embedded broker"),
        "{log}"
    );
}

// The fake Supervisor answers while the test thread waits for the bridge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_mqtt_url_wins_over_the_supervisor() {
    let broker = Mosquitto::start();
    let (supervisor, seen) = fake_supervisor(500, "{}".into()).await;
    let _bridge = AddonBridge::start(
        supervisor,
        free_port(),
        &[("PRINT2MQTT_MQTT__URL", &broker.url())],
    );
    wait_retained(broker.port, "print2mqtt/bridge/state", "online").await;
    assert!(seen.lock().unwrap().is_empty(), "the Supervisor was asked");
}

/// The ingress listener serves the status page and API, never webhooks, and
/// acts with the admin token: Home Assistant has signed the user in.
#[tokio::test]
async fn the_ingress_listener_serves_status_and_api_but_no_webhooks() {
    let broker = Mosquitto::start();
    let mut config = config(&broker.url(), SECRET);
    config.http.ingress_listen = "127.0.0.1:0".into();
    config.http.admin_token = Secret::new("admin-token-xyz");
    let bridge = print2mqtt::app::start(config).await.unwrap();
    let ingress = bridge.ingress_addr().expect("an ingress listener");
    assert_ne!(ingress, bridge.http_addr());

    let answer = post_json(bridge.http_addr(), "/webhook", started_webhook()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);

    let answer = post_json(ingress, "/webhook", started_webhook()).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .contains("webhook port")
    );
    let answer = post_json(ingress, "/webhook/octoeverywhere", started_webhook()).await;
    assert_eq!(answer.status, 404);

    assert_eq!(
        request(ingress, "GET", "/healthz", &[], Vec::new())
            .await
            .status,
        200
    );
    let main = request(bridge.http_addr(), "GET", "/api/printers", &[], Vec::new()).await;
    assert_eq!(main.status, 401, "the webhook port wants the token");
    // A remote Home Assistant user arrives through the proxy with a public
    // X-Forwarded-For; ingress answers anyway.
    let listed = request(
        ingress,
        "GET",
        "/api/printers",
        &[("x-forwarded-for", "203.0.113.9")],
        Vec::new(),
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.json()[0]["printer"], OE_SLUG);
    bridge.shutdown().await;
}
