//! The cross-site refusal proven in a real browser: headless Chromium
//! (Debian's `chromium` and `chromium-driver`, over WebDriver with
//! fantoccini) opens a page served from another origin that tries every way
//! a web page has to send a webhook without the user's say — `fetch` in
//! no-cors mode, an `<img>`, a form posted as `text/plain`, and
//! `navigator.sendBeacon` — against a bridge with the defaults (no secret,
//! LAN senders accepted). Each reaches the bridge and is refused with 403;
//! nothing is published. Twice: at `127.0.0.1`, where Chromium sends Fetch
//! metadata (`Sec-Fetch-Site`), and at a plain-HTTP LAN name
//! (`bridge.lan`, resolved to loopback by Chromium's host rules), where it
//! sends none and `Origin` or `Referer` give the page away — or, with
//! `referrerpolicy="no-referrer"`, the `Accept` of an image or page load.
//! Without
//! Chromium the test fails: it cannot prove anything by being skipped.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::browser::{self, Browser};
use common::*;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use print2mqtt::app;
use print2mqtt::config::Secret;
use serde_json::{Value, json};

/// The printer ids the page tries to create, one per technique.
const TRIES: [&str; 4] = ["fetch", "img", "form", "beacon"];
/// A LAN name that is not a potentially trustworthy origin for Chromium.
const LAN_NAME: &str = "bridge.lan";

/// The attacker's page: every request goes to `bridge` (`host:port`), the
/// printer ids start with `prefix`.
fn page(bridge: &str, prefix: &str) -> String {
    format!(
        r#"<!doctype html><html><head><title>cats</title></head><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="http://{bridge}/webhook/octoprint" target="sink" enctype="text/plain">
<input name='{{"deviceIdentifier":"{prefix}form","topic":"Print Failed","x":"' value='"}}'>
</form>
<script>
const b = "http://{bridge}";
fetch(b + "/webhook", {{method: "POST", mode: "no-cors", headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{EventType: 3, PrinterId: "{prefix}fetch", Error: "x"}})}}).catch(() => {{}});
const img = new Image();
img.src = b + "/webhook/octoprint?deviceIdentifier={prefix}img&topic=Print%20Failed";
document.body.appendChild(img);
navigator.sendBeacon(b + "/webhook/octoeverywhere",
  JSON.stringify({{EventType: 3, PrinterId: "{prefix}beacon", Error: "x"}}));
document.getElementById("f").submit();
document.title = "fired";
</script></body></html>"#
    )
}

/// Serves `html` for every request on a port of its own.
async fn serve_page(html: String) -> SocketAddr {
    assert!(!html.is_empty());
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

/// The log entries of one page's four tries (newest first): all 403 with a
/// reason `ok` accepts, one per technique.
fn check(entries: &[Value], ok: impl Fn(&str) -> bool) {
    let tries = &entries[..TRIES.len()];
    for e in tries {
        assert_eq!(e["status"], 403, "{e}");
        assert!(ok(e["reason"].as_str().unwrap_or_default()), "{e}");
    }
    let mut paths: Vec<&str> = tries
        .iter()
        .map(|e| e["dialect"].as_str().unwrap_or("auto"))
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        ["auto", "octoeverywhere", "octoprint", "octoprint"],
        "fetch, beacon, img and form: {tries:?}"
    );
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_send_webhooks() {
    // Skipped, it would prove nothing: a missing browser always fails.
    if let Some(missing) = browser::missing() {
        panic!("{missing}");
    }
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), "");
    cfg.auth.secret = Secret::default(); // the defaults: LAN senders only
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let addr = bridge.http_addr();
    let direct = serve_page(page(&addr.to_string(), "")).await;
    let noref = serve_page(format!(
        r#"<!doctype html><img referrerpolicy="no-referrer"
             src="http://{LAN_NAME}:{}/webhook/octoprint?deviceIdentifier=noref&topic=Print%20Failed">
           <a id="go" referrerpolicy="no-referrer"
             href="http://{LAN_NAME}:{}/webhook/octoprint?deviceIdentifier=noref&topic=Print%20Done">x</a>
           <script>document.getElementById("go").click()</script>"#,
        addr.port(),
        addr.port()
    ))
    .await;
    let lan = serve_page(page(&format!("{LAN_NAME}:{}", addr.port()), "lan-")).await;

    let browser = Browser::start(
        &[format!("--host-resolver-rules=MAP {LAN_NAME} 127.0.0.1")],
        json!({}),
    )
    .await;
    let c = browser.client.clone();

    // `localhost` is another site than the bridge's `127.0.0.1`.
    c.goto(&format!("http://localhost:{}/", direct.port()))
        .await
        .unwrap();
    let entries = log_entries(addr, TRIES.len()).await;
    assert_eq!(entries.len(), TRIES.len(), "{entries:?}");
    check(&entries, |reason| {
        reason == "cross-site browser request refused (Sec-Fetch-Site: cross-site)"
    });

    // Plain HTTP to a LAN name: no Fetch metadata, but Origin or Referer.
    c.goto(&format!("http://localhost:{}/", lan.port()))
        .await
        .unwrap();
    let entries = log_entries(addr, 2 * TRIES.len()).await;
    assert_eq!(entries.len(), 2 * TRIES.len(), "{entries:?}");
    let page_origin = format!("http://localhost:{}", lan.port());
    let newest = &entries[..TRIES.len()];
    check(newest, |reason| {
        reason == format!("cross-site browser request refused (origin: {page_origin})")
            || reason == format!("cross-site browser request refused (referer: {page_origin}/)")
    });

    // No Origin, no Referer, no Fetch metadata: an image and a link with
    // `referrerpolicy="no-referrer"` still say what they load in `Accept`.
    c.goto(&format!("http://localhost:{}/", noref.port()))
        .await
        .unwrap();
    let entries = log_entries(addr, 2 * TRIES.len() + 2).await;
    assert_eq!(entries.len(), 2 * TRIES.len() + 2, "{entries:?}");
    let mut reasons: Vec<&str> = entries[..2]
        .iter()
        .map(|e| {
            assert_eq!(e["status"], 403, "{e}");
            e["reason"].as_str().unwrap_or_default()
        })
        .collect();
    reasons.sort_unstable();
    // The first image type Chromium names differs between versions.
    assert!(
        reasons[0].starts_with("cross-site browser request refused (Accept: image/")
            && reasons[0].ends_with(": an image or page load)"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "cross-site browser request refused (Accept: text/html: an image or page load)"
    );
    c.close().await.unwrap();

    for printer in TRIES
        .iter()
        .flat_map(|t| [t.to_string(), format!("lan-{t}")])
    {
        let topics = retained(broker.port, &format!("print2mqtt/{printer}/#")).await;
        assert!(topics.is_empty(), "{printer}: {:?}", topics.keys());
    }
    // The same body from a real sender is accepted: the refusal is the
    // browser's headers, not the content.
    let body = r#"{"EventType":3,"PrinterId":"fetch","Error":"x"}"#;
    assert_eq!(post_json(addr, "/webhook", body).await.status, 200);
    bridge.shutdown().await;
}
