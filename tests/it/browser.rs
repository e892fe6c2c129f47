//! End to end in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver with fantoccini): the page loads,
//! a webhook posted from outside makes the printer's card appear and update
//! without a reload, "send test event" shows the broker's acknowledgement,
//! and the page requests nothing from any other host — both loaded directly
//! and through a Home Assistant-style ingress proxy under a path prefix
//! with `X-Ingress-Path`.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::browser::{self, Browser};
use common::*;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use http_body_util::{BodyExt, combinators::UnsyncBoxBody};
use hyper_util::rt::TokioIo;
use print2mqtt::app;
use serde_json::{Value, json};

const INGRESS: &str = "/api/hassio_ingress/t0k3n-ABC";

/// Chromedriver's legacy log endpoint: the browser's console and the
/// DevTools network events (performance log).
#[derive(Debug)]
struct Logs(&'static str);

impl WebDriverCompatibleCommand for Logs {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// A reverse proxy like Home Assistant's ingress: `<INGRESS>/x` is
/// forwarded to the bridge's `/x` with `X-Ingress-Path`, responses streamed.
async fn ingress_proxy(bridge: SocketAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: http::Request<hyper::body::Incoming>| async move {
                        let path = req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned();
                        let Some(rest) = path.strip_prefix(INGRESS) else {
                            let body: UnsyncBoxBody<Bytes, hyper::Error> =
                                http_body_util::Full::new(Bytes::from_static(b"not ingress"))
                                    .map_err(|e| match e {})
                                    .boxed_unsync();
                            return Ok::<_, hyper::Error>(
                                http::Response::builder().status(404).body(body).unwrap(),
                            );
                        };
                        let rest = if rest.is_empty() {
                            "/".to_owned()
                        } else {
                            rest.to_owned()
                        };
                        let (mut parts, body) = req.into_parts();
                        parts.uri = rest.parse().unwrap();
                        parts
                            .headers
                            .insert("x-ingress-path", INGRESS.parse().unwrap());
                        parts
                            .headers
                            .insert("x-forwarded-for", "172.30.32.2".parse().unwrap());
                        let upstream = tokio::net::TcpStream::connect(bridge).await.unwrap();
                        let (mut send, conn) =
                            hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
                        tokio::spawn(conn);
                        let res = send
                            .send_request(http::Request::from_parts(parts, body))
                            .await?;
                        Ok(res.map(|b| b.boxed_unsync()))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, Vec::new()).await.expect("script runs")
}

/// Polls `script` until it returns `want`.
async fn wait_js(c: &Client, script: &str, want: Value) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = js(c, script).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{script}: got {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn round(c: &Client, bridge: SocketAddr, url: &str, printer: &str) {
    c.goto(url).await.unwrap();
    wait_js(c, "return document.body.dataset.live", json!("open")).await;
    js(c, "window.__noReload = 42; return null").await;
    let body = |p: u8| {
        format!(
            r#"{{"PrinterId":"{printer}","PrinterName":"Browser {printer}","EventType":6,"Progress":{p},"FileName":"cube.gcode","TimeRemainingSec":600}}"#
        )
    };
    assert_eq!(post_json(bridge, "/webhook", body(21)).await.status, 200);
    let card = format!(
        "document.querySelector('.card[data-printer=\"{printer}\"] .progress-value')?.textContent ?? null"
    );
    wait_js(c, &format!("return {card}"), json!("21%")).await;
    let name = format!(
        "return document.querySelector('.card[data-printer=\"{printer}\"] .name').textContent"
    );
    assert_eq!(js(c, &name).await, json!(format!("Browser {printer}")));
    assert_eq!(post_json(bridge, "/webhook", body(64)).await.status, 200);
    wait_js(c, &format!("return {card}"), json!("64%")).await;
    wait_js(
        c,
        "return document.querySelector('#log tr td:nth-child(4)')?.textContent ?? null",
        json!(printer),
    )
    .await;
    assert_eq!(
        js(c, "return window.__noReload ?? null").await,
        json!(42),
        "updated without a reload"
    );

    c.find(Locator::Css("#test-button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(
        c,
        "return document.querySelector('#test-result').dataset.status ?? null",
        json!("delivered"),
    )
    .await;
    let text = c
        .find(Locator::Css("#test-result"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Delivered"), "{text}");
    wait_js(
        c,
        "return document.querySelector('#oe-url').textContent.endsWith('/webhook/octoeverywhere')",
        json!(true),
    )
    .await;
}

/// A request that leaves the browser: http(s) or a WebSocket.
fn is_network_request(url: &str) -> bool {
    ["http://", "https://", "ws://", "wss://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

#[test]
fn only_network_requests_are_judged() {
    assert!(is_network_request("http://127.0.0.1:8080/app.js"));
    assert!(is_network_request("https://example.org/"));
    for internal in [
        "chrome-untrusted://new-tab-page/one-google-bar?paramsencoded=",
        "chrome://new-tab-page/",
        "data:image/svg+xml,<svg/>",
        "blob:http://127.0.0.1:8080/5d3c",
        "about:blank",
    ] {
        assert!(!is_network_request(internal), "{internal}");
    }
}

#[tokio::test]
async fn page_live_updates_test_button_and_no_other_hosts() {
    // Under CI a missing browser is a failure: the test must run there.
    // Elsewhere it is skipped loudly.
    if let Some(missing) = browser::missing() {
        assert!(
            !browser::ci(),
            "{missing}: the browser test cannot be skipped under CI"
        );
        eprintln!("\n!!!!!!!! SKIPPED: {missing} !!!!!!!!\n");
        return;
    }
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), "")).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let proxy = ingress_proxy(addr).await;

    let browser = Browser::start(
        &[],
        json!({ "goog:loggingPrefs": { "performance": "ALL", "browser": "ALL" } }),
    )
    .await;
    let c = browser.client.clone();

    round(&c, addr, &format!("http://{addr}/"), "direct").await;
    round(&c, addr, &format!("http://{proxy}{INGRESS}/"), "ingress").await;

    let perf = c.issue_cmd(Logs("performance")).await.unwrap();
    let mut urls = Vec::new();
    for entry in perf.as_array().unwrap() {
        let msg: Value = serde_json::from_str(entry["message"].as_str().unwrap()).unwrap();
        if msg["message"]["method"] == "Network.requestWillBeSent" {
            urls.push(
                msg["message"]["params"]["request"]["url"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert!(
        urls.iter()
            .any(|u| u.ends_with(&format!("{INGRESS}/app.js"))),
        "{urls:?}"
    );
    assert!(
        urls.iter()
            .any(|u| u.contains(&format!("{INGRESS}/api/stream"))),
        "{urls:?}"
    );
    // Only the page's own network requests are judged: the browser logs its
    // internal ones too (chrome://, chrome-untrusted://new-tab-page/ of the
    // first tab, data:, blob:), which reach no host.
    for u in urls.iter().filter(|u| is_network_request(u)) {
        let own = [
            format!("http://{addr}/"),
            format!("http://{proxy}{INGRESS}/"),
        ];
        assert!(
            own.iter().any(|o| u.starts_with(o.as_str())),
            "request to another host or outside the prefix: {u}"
        );
    }
    let console = c.issue_cmd(Logs("browser")).await.unwrap();
    for entry in console.as_array().unwrap() {
        let text = entry["message"].as_str().unwrap_or_default();
        assert!(
            !text.contains("Content Security Policy")
                && !text.contains("Uncaught")
                && entry["level"] != "SEVERE",
            "browser console: {text}"
        );
    }
    c.close().await.unwrap();
    bridge.shutdown().await;
}
