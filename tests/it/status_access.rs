//! Who may use the status page, the API and `/metrics` (local only while
//! `http.admin_token` is empty; Bearer or the login cookie once it is set),
//! and the page under a Home Assistant ingress prefix, against a real bridge.

use crate::common;

use common::*;
use print2mqtt::app;
use print2mqtt::config::{Config, Secret};

const SECRET: &str = "webhook-s3cret-value";
const ADMIN: &str = "admin-t0ken-value";

async fn start(config: Config) -> app::Bridge {
    let bridge = app::start(config).await.unwrap();
    bridge.health().wait_connected().await;
    bridge
}

async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], Vec::new()).await
}

#[tokio::test]
async fn without_a_token_only_local_clients() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let public = [("x-forwarded-for", "203.0.113.7")];
    for path in [
        "/",
        "/api/printers",
        "/api/events",
        "/api/stream",
        "/metrics",
    ] {
        let a = request(addr, "GET", path, &public, Vec::new()).await;
        assert_eq!(a.status, 403, "{path}: {}", a.body);
    }
    let ha_ingress = [("x-forwarded-for", "172.30.32.2")];
    for path in ["/", "/api/printers", "/metrics"] {
        let a = request(addr, "GET", path, &ha_ingress, Vec::new()).await;
        assert_eq!(a.status, 200, "{path}");
    }
    let js = request(addr, "GET", "/app.js", &public, Vec::new()).await;
    assert_eq!(js.status, 200, "assets hold no data");
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn with_a_token_bearer_or_login_cookie() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.admin_token = Secret::new(ADMIN);
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();

    let api = get(addr, "/api/printers").await;
    assert_eq!(api.status, 401);
    assert!(
        api.json()["error"]
            .as_str()
            .unwrap()
            .contains("admin token")
    );
    assert_eq!(get(addr, "/metrics").await.status, 401);
    let page = get(addr, "/").await;
    assert_eq!(page.status, 401);
    assert!(
        page.body
            .contains("<form method=\"post\" action=\"login\">"),
        "login form"
    );

    let bearer = format!("Bearer {ADMIN}");
    let from_far = [
        ("authorization", bearer.as_str()),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    assert_eq!(
        request(addr, "GET", "/api/printers", &from_far, Vec::new())
            .await
            .status,
        200
    );
    assert_eq!(
        request(addr, "GET", "/metrics", &from_far, Vec::new())
            .await
            .status,
        200
    );

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = request(addr, "POST", "/login", &form, "token=guess").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong token."));
    assert!(wrong.headers.get("set-cookie").is_none());
    let login = request(addr, "POST", "/login", &form, format!("token={ADMIN}")).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.headers["location"], "./");
    let set = login.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        !set.contains(ADMIN),
        "the cookie never holds the token: {set}"
    );
    for part in [
        "print2mqtt_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let with_cookie = [("cookie", cookie.as_str())];
    assert_eq!(
        request(addr, "GET", "/api/printers", &with_cookie, Vec::new())
            .await
            .status,
        200
    );
    let page = request(addr, "GET", "/", &with_cookie, Vec::new()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("id=\"printers\""));

    let out = request(addr, "POST", "/logout", &with_cookie, Vec::new()).await;
    assert_eq!(out.status, 303);
    assert!(
        out.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );

    let ingress = [("x-ingress-path", "/api/hassio_ingress/XyZ")];
    let login = request(
        addr,
        "POST",
        "/login",
        &[form[0], ingress[0]],
        format!("token={ADMIN}"),
    )
    .await;
    assert!(
        login.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Path=/api/hassio_ingress/XyZ/")
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn page_under_an_ingress_prefix_uses_relative_urls() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let page = request(
        addr,
        "GET",
        "/",
        &[("x-ingress-path", "/api/hassio_ingress/t0k3n")],
        Vec::new(),
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<base href=\"/api/hassio_ingress/t0k3n/\">"),
        "{}",
        page.body
    );
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let direct = get(addr, "/").await;
    assert!(direct.body.contains("<base href=\"./\">"));
    // Every reference in the page is relative, and resolves to something served.
    for attr in ["src=\"", "href=\""] {
        for part in direct.body.split(attr).skip(1) {
            let url = &part[..part.find('"').unwrap()];
            assert!(
                !url.starts_with('/') && !url.contains("://"),
                "{attr}{url} is not relative"
            );
            if url.starts_with('#') || url == "./" {
                continue;
            }
            let a = get(addr, &format!("/{url}")).await;
            assert_eq!(a.status, 200, "{url}");
        }
    }
    let js = get(addr, "/app.js").await.body;
    for absolute in ["\"/api", "'/api", "`/api", "http://", "https://"] {
        assert!(!js.contains(absolute), "app.js uses {absolute}");
    }
    bridge.shutdown().await;
}
