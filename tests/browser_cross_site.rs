//! The cross-site refusal proven in a real browser: headless Chromium
//! (Debian's `chromium` and `chromium-driver`, over WebDriver with
//! fantoccini) opens a page served from another origin that tries every way
//! a web page has to send a webhook without the user's say — `fetch` in
//! no-cors mode, an `<img>`, a form posted as `text/plain`, and
//! `navigator.sendBeacon` — against a bridge with the defaults (no secret,
//! LAN senders accepted). Each reaches the bridge and is refused with 403;
//! nothing is published. Without Chromium the test fails: it cannot prove
//! anything by being skipped.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use fantoccini::ClientBuilder;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use print2mqtt::app;
use print2mqtt::config::Secret;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The printer ids the page tries to create, one per technique.
const TRIES: [&str; 4] = ["fetch", "img", "form", "beacon"];

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The attacker's page: every request goes to `bridge`.
fn page(bridge: SocketAddr) -> String {
    format!(
        r#"<!doctype html><html><head><title>cats</title></head><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="http://{bridge}/webhook/octoprint" target="sink" enctype="text/plain">
<input name='{{"deviceIdentifier":"form","topic":"Print Failed","x":"' value='"}}'>
</form>
<script>
const b = "http://{bridge}";
fetch(b + "/webhook", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{EventType: 3, PrinterId: "fetch", Error: "x"}})}}).catch(() => {{}});
const img = new Image();
img.src = b + "/webhook/octoprint?deviceIdentifier=img&topic=Print%20Failed";
document.body.appendChild(img);
navigator.sendBeacon(b + "/webhook/octoeverywhere",
  JSON.stringify({{EventType: 3, PrinterId: "beacon", Error: "x"}}));
document.getElementById("f").submit();
document.title = "fired";
</script></body></html>"#
    )
}

/// Serves `html` for every request on a port of its own.
async fn serve_page(html: String) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let html = Bytes::from(html);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let html = html.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let html = html.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("content-type", "text/html; charset=utf-8")
                                .body(Full::new(html))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The bridge's webhook log, polled until it holds `n` entries.
async fn log_entries(bridge: SocketAddr, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let log = request(bridge, "GET", "/api/events", &[], Vec::new())
            .await
            .json();
        let entries = log.as_array().unwrap().clone();
        if entries.len() >= n {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests reached the bridge: {log}",
            entries.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_send_webhooks() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            std::path::Path::new(tool).exists(),
            "{tool} is missing: install Debian's chromium and chromium-driver"
        );
    }
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), "");
    cfg.auth.secret = Secret::default(); // the defaults: LAN senders only
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let evil = serve_page(page(addr)).await;

    let port = free_port();
    let log = tempfile::NamedTempFile::new().unwrap();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("chromedriver starts"),
    );
    wait_until("chromedriver listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let c = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");

    // `localhost` is another site than the bridge's `127.0.0.1`.
    c.goto(&format!("http://localhost:{}/", evil.port()))
        .await
        .unwrap();
    let entries = log_entries(addr, TRIES.len()).await;
    assert_eq!(entries.len(), TRIES.len(), "{entries:?}");
    for e in &entries {
        assert_eq!(e["status"], 403, "{e}");
        assert_eq!(
            e["reason"], "cross-site browser request refused (Sec-Fetch-Site: cross-site)",
            "{e}"
        );
    }
    let mut paths: Vec<&str> = entries
        .iter()
        .map(|e| e["dialect"].as_str().unwrap_or("auto"))
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["auto", "octoeverywhere", "octoprint", "octoprint"],
        "fetch, beacon, img and form"
    );
    c.close().await.unwrap();

    for printer in TRIES {
        let topics = retained(broker.port, &format!("print2mqtt/{printer}/#")).await;
        assert!(topics.is_empty(), "{printer}: {:?}", topics.keys());
    }
    // The same body from a real sender is accepted: the refusal is the
    // browser's headers, not the content.
    let body = r#"{"EventType":3,"PrinterId":"fetch","Error":"x"}"#;
    assert_eq!(post_json(addr, "/webhook", body).await.status, 200);
    bridge.shutdown().await;
}
