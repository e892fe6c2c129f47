//! Safe by default (issue 15), against a real bridge and a real Mosquitto:
//! cross-site browser requests refused while real senders' recorded headers
//! pass, DNS rebinding and `Forwarded`, pre-authentication bounds, one
//! case-folding rule for printer ids, every credential checked, the printer
//! limit, answers that reach the sender, and the smaller fixes.

use crate::common;

use std::net::SocketAddr;

use common::raw;
use common::*;
use print2mqtt::app;
use print2mqtt::config::{Config, Printer, Secret};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "safe-s3cret";

async fn start(config: Config) -> app::Bridge {
    let bridge = app::start(config).await.unwrap();
    bridge.health().wait_connected().await;
    bridge
}

/// A request with exactly these header lines (no Host of its own), a
/// `Content-Length` and `connection: close`.
fn exact(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    req
}

async fn send(addr: SocketAddr, request: Vec<u8>) -> Answer {
    raw::exchange(addr, request)
        .await
        .expect("the bridge answers")
}

fn oe(printer: &str, secret: &str) -> String {
    format!(r#"{{"EventType":3,"PrinterId":"{printer}","SecretKey":"{secret}","Error":"x"}}"#)
}

/// Every retained topic under `print2mqtt/<slug>/`, after a sync.
async fn printer_topics(port: u16, slug: &str) -> Vec<String> {
    retained(port, &format!("print2mqtt/{slug}/#"))
        .await
        .into_keys()
        .collect()
}

#[tokio::test]
async fn cross_site_browser_requests_are_refused_and_publish_nothing() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), "");
    cfg.auth.secret = Secret::default(); // the default: LAN senders only
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let host = addr.to_string();
    let body = br#"{"EventType":3,"PrinterId":"Ender3","Error":"x"}"#;
    let cases: [(&str, &str, &str); 5] = [
        (
            "origin",
            "https://evil.example",
            "origin: https://evil.example",
        ),
        ("origin", "null", "origin: null"),
        ("sec-fetch-site", "cross-site", "Sec-Fetch-Site: cross-site"),
        ("sec-fetch-site", "same-site", "Sec-Fetch-Site: same-site"),
        (
            "referer",
            "http://evil.example/a.html",
            "referer: http://evil.example/a.html",
        ),
    ];
    for (name, value, reason) in cases {
        let headers = [
            ("host", host.as_str()),
            ("content-type", "text/plain"),
            (name, value),
        ];
        let a = send(addr, exact("POST", "/webhook", &headers, body)).await;
        assert_eq!(a.status, 403, "{name}: {}", a.body);
        assert_eq!(
            a.json()["error"],
            format!("cross-site browser request refused ({reason})")
        );
        // A GET with the data in the query (an <img src>) too.
        let get = exact(
            "GET",
            "/webhook/octoprint?deviceIdentifier=Ender3&topic=Print%20Failed",
            &[("host", host.as_str()), (name, value)],
            b"",
        );
        assert_eq!(send(addr, get).await.status, 403, "GET {name}");
    }
    assert_eq!(
        printer_topics(broker.port, "ender3").await,
        Vec::<String>::new()
    );

    // The bridge's own origin is not cross-site.
    let own = format!("http://{host}");
    let headers = [
        ("host", host.as_str()),
        ("origin", own.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    let a = send(addr, exact("POST", "/webhook", &headers, body)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    bridge.shutdown().await;
}

#[tokio::test]
async fn real_senders_recorded_headers_pass() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sender-headers");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "http"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "{files:?}");
    for (i, file) in files.iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let form = text.contains("x-www-form-urlencoded");
        let body = if form {
            format!("deviceIdentifier=sender{i}&apiSecret={SECRET}&topic=Print+Done&message=x")
        } else {
            oe(&format!("sender{i}"), SECRET)
        };
        let mut req = String::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let lower = line.to_ascii_lowercase();
            assert!(
                !["origin:", "referer:", "sec-fetch-"]
                    .iter()
                    .any(|h| lower.starts_with(h)),
                "{name}: {line}"
            );
            if lower.starts_with("host:") {
                req.push_str(&format!("Host: {addr}\r\n"));
            } else if lower.starts_with("content-length:") {
                req.push_str(&format!("Content-Length: {}\r\n", body.len()));
            } else if !lower.starts_with("connection:") {
                req.push_str(line);
                req.push_str("\r\n");
            }
        }
        req.push_str("Connection: close\r\n\r\n");
        req.push_str(&body);
        let a = send(addr, req.into_bytes()).await;
        assert_eq!(a.status, 200, "{name}: {}", a.body);
    }
    bridge.shutdown().await;
}

#[tokio::test]
async fn dns_rebinding_and_forwarded_are_refused() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.allowed_hosts = vec!["prints.example.org".into()];
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    assert_eq!(
        post_json(addr, "/webhook", oe("Ender3", SECRET))
            .await
            .status,
        200
    );

    for path in ["/api/printers", "/api/printers/ender3", "/", "/metrics"] {
        let a = send(
            addr,
            exact("GET", path, &[("host", "rebind.evil.example:8080")], b""),
        )
        .await;
        assert_eq!(a.status, 421, "{path}: {}", a.body);
        assert!(a.body.contains("rebind.evil.example"), "{path}: {}", a.body);
    }
    let delete = exact(
        "DELETE",
        "/api/printers/ender3",
        &[("host", "rebind.evil.example")],
        b"",
    );
    assert_eq!(send(addr, delete).await.status, 421);
    for host in [
        addr.to_string(),
        "localhost:8080".into(),
        "printers.local".into(),
        "homeassistant:8080".into(),
        "prints.example.org".into(),
    ] {
        let a = send(
            addr,
            exact("GET", "/api/printers/ender3", &[("host", &host)], b""),
        )
        .await;
        assert_eq!(a.status, 200, "{host}: {}", a.body);
    }

    // Forwarded is read like X-Forwarded-For, on the API and on webhooks.
    let host = addr.to_string();
    for forwarded in [
        "for=203.0.113.7",
        "for=10.0.0.1, for=\"[2001:db8::7]:4711\"",
        "for=unknown",
    ] {
        let headers = [("host", host.as_str()), ("forwarded", forwarded)];
        let a = send(addr, exact("GET", "/api/printers", &headers, b"")).await;
        assert_eq!(a.status, 403, "{forwarded}: {}", a.body);
    }
    let ok = [
        ("host", host.as_str()),
        ("forwarded", "for=192.168.1.20;proto=http"),
    ];
    assert_eq!(
        send(addr, exact("GET", "/api/printers", &ok, b""))
            .await
            .status,
        200
    );
    bridge.shutdown().await;

    let mut cfg = config(&broker.url(), "");
    cfg.auth.secret = Secret::default();
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let host = addr.to_string();
    let headers = [("host", host.as_str()), ("forwarded", "for=203.0.113.7")];
    let a = send(
        addr,
        exact("POST", "/webhook", &headers, oe("Lan", "").as_bytes()),
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(a.body.contains("only local-network senders"), "{}", a.body);
    bridge.shutdown().await;
}

#[tokio::test]
async fn pre_auth_cost_is_bounded() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.max_multipart_bytes = 4 << 20;
    cfg.http.max_unauthenticated_bytes = 4 << 20;
    cfg.http.body_timeout_secs = 5;
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let host = addr.to_string();

    // JSON labelled multipart gets the JSON limit (1 MiB), not 4 MiB.
    let big = format!("{{\"a\":\"{}\"}}", "x".repeat(2 << 20));
    let labelled = [
        ("host", host.as_str()),
        ("content-type", "multipart/form-data; boundary=x"),
    ];
    let a = send(addr, exact("POST", "/webhook", &labelled, big.as_bytes())).await;
    assert_eq!(a.status, 413, "{}", a.body);

    // Many tiny values: refused by count, before they become values.
    let many = format!(
        "{{\"PrinterId\":\"p\",\"EventType\":1,\"a\":[{}1]}}",
        "1,".repeat(200_000)
    );
    let a = post_json(addr, "/webhook", many).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "body holds more than 20000 values");

    // A wrong secret in the URL or a header is refused before the body is
    // read: the answer comes while the body is still owed.
    for (path, extra) in [
        ("/webhook?token=wrong", ""),
        ("/webhook", "authorization: Bearer wrong\r\n"),
        ("/webhook", "x-print2mqtt-secret: wrong\r\n"),
    ] {
        let mut s = raw::connect(addr).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}content-length: 100000\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let a = raw::read_answer(&mut s)
            .await
            .expect("answered before the body");
        assert_eq!(a.status, 401, "{path} {extra}: {}", a.body);
    }

    // The budget of unauthenticated bytes (4 MiB): of two bodies of 3 MiB
    // that stall before their end, one is refused at once; one that
    // authenticated in the URL does not draw on it.
    let head = |path: &str, len: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: multipart/form-data; boundary=x\r\ncontent-length: {len}\r\n\r\n"
        )
    };
    let stalled = head("/webhook", (3 << 20) + 100);
    let mut a = tokio::spawn(stall(addr, stalled.clone()));
    let mut b = tokio::spawn(stall(addr, stalled));
    let (refused, holder) = tokio::select! {
        r = &mut a => (r.unwrap(), b),
        r = &mut b => (r.unwrap(), a),
    };
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("http.max_unauthenticated_bytes"),
        "{}",
        refused.body
    );
    let body = format!(
        "--x\r\nContent-Disposition: form-data; name=\"deviceIdentifier\"\r\n\r\nbig\r\n\
         --x\r\nContent-Disposition: form-data; name=\"topic\"\r\n\r\nPrint Done\r\n\
         --x\r\nContent-Disposition: form-data; name=\"s\"; filename=\"s.jpg\"\r\n\r\n{}\r\n--x--\r\n",
        "j".repeat(2 << 20)
    );
    let mut authenticated = head(&format!("/webhook?token={SECRET}"), body.len()).into_bytes();
    authenticated.extend_from_slice(body.as_bytes());
    let a = send(addr, authenticated).await;
    assert_eq!(
        a.status, 200,
        "authenticated bodies do not draw on the budget: {}",
        a.body
    );
    assert_eq!(
        holder.await.unwrap().status,
        408,
        "the stalled holder times out"
    );
    bridge.shutdown().await;
}

/// Sends headers and 3 MiB of a longer multipart body, then waits for the
/// answer.
async fn stall(addr: SocketAddr, head: String) -> Answer {
    let mut s = raw::connect(addr).await;
    s.write_all(head.as_bytes()).await.unwrap();
    let part = format!(
        "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n{}",
        "y".repeat(3 << 20)
    );
    let _ = s.write_all(part.as_bytes()).await;
    raw::read_answer(&mut s).await.expect("an answer")
}

#[tokio::test]
async fn one_folding_rule_for_printer_ids_and_every_credential_checked() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.printers.insert(
        "Drucker Ä".into(),
        Printer {
            alias: "drucker".into(),
            secret: Secret::new("own-secret"),
            ..Printer::default()
        },
    );
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let op = |id: &str, secret: &str| {
        serde_json::json!({"deviceIdentifier": id, "apiSecret": secret, "topic": "Print Started", "message": "m"})
            .to_string()
    };
    for lookalike in [
        "drucker ä",
        "DRUCKER Ä",
        "Drucker A\u{308}",
        "ｄｒｕｃｋｅｒ ä",
        "dru\u{200b}cker ä",
    ] {
        let a = post_json(addr, "/webhook", op(lookalike, SECRET)).await;
        assert_eq!(
            a.status, 401,
            "{lookalike:?} with the shared secret: {}",
            a.body
        );
    }
    assert_eq!(
        printer_topics(broker.port, "drucker").await,
        Vec::<String>::new()
    );
    let a = post_json(addr, "/webhook", op("drucker ä", "own-secret")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["printer"], "drucker");
    for lookup in ["drucker", "DRUCKER%20%C3%84", "drucker%20a%CC%88"] {
        let a = request(
            addr,
            "GET",
            &format!("/api/printers/{lookup}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(a.status, 200, "{lookup}: {}", a.body);
        assert_eq!(a.json()["printer"], "drucker");
    }
    // Two spellings of one id are one printer, with one slug.
    assert_eq!(
        post_json(addr, "/webhook", oe("Ender3", SECRET))
            .await
            .json()["printer"],
        "ender3"
    );
    assert_eq!(
        post_json(addr, "/webhook", oe("ENDER3", SECRET))
            .await
            .json()["printer"],
        "ender3"
    );

    // Every credential presented must be right.
    let path = "/webhook?token=wrong";
    assert_eq!(
        post_json(addr, path, oe("Ender3", SECRET)).await.status,
        401
    );
    let headers = [
        ("content-type", "application/json"),
        ("authorization", "Bearer wrong"),
    ];
    let a = request(addr, "POST", "/webhook", &headers, oe("Ender3", SECRET)).await;
    assert_eq!(a.status, 401, "{}", a.body);
    let right = format!("/webhook?token={SECRET}");
    assert_eq!(
        post_json(addr, &right, oe("Ender3", "wrong")).await.status,
        401
    );
    assert_eq!(
        post_json(addr, &right, oe("Ender3", SECRET)).await.status,
        200
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn a_new_printer_beyond_the_limit_is_refused_and_nothing_published() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.storage.max_printers = 2;
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    for p in ["one", "two"] {
        assert_eq!(post_json(addr, "/webhook", oe(p, SECRET)).await.status, 200);
    }
    let a = post_json(addr, "/webhook", oe("three", SECRET)).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(
        a.json()["error"],
        "printer limit reached: the bridge knows 2 printers (storage.max_printers); \
         remove one (DELETE /api/printers/<p>) or raise the limit"
    );
    assert_eq!(
        printer_topics(broker.port, "three").await,
        Vec::<String>::new()
    );
    assert_eq!(
        post_json(addr, "/webhook", oe("two", SECRET)).await.status,
        200,
        "known printers go on"
    );
    bridge.shutdown().await;
}

/// Sends a request with a body of `len` bytes whole (as urllib does, before
/// reading anything), then reads the answer.
async fn send_whole(
    addr: SocketAddr,
    head: String,
    len: usize,
) -> (Result<(), std::io::Error>, Option<Answer>) {
    let mut s = raw::connect(addr).await;
    let mut request = head.into_bytes();
    request.extend(std::iter::repeat_n(b'a', len));
    let wrote = tokio::time::timeout(TIMEOUT, s.write_all(&request))
        .await
        .expect("written in time");
    (wrote, raw::read_answer(&mut s).await)
}

#[tokio::test]
async fn too_large_answers_reach_the_sender() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let len = 4 << 20;
    for round in 0..3 {
        let head = format!(
            "POST /webhook HTTP/1.1\r\nhost: bridge\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
        );
        let (wrote, answer) = send_whole(addr, head, len).await;
        wrote.unwrap_or_else(|e| panic!("round {round}: the body could not be sent: {e}"));
        let a = answer.expect("a 413, not a reset");
        assert_eq!(a.status, 413, "round {round}: {}", a.body);
    }
    // Headers beyond the limit: 431 read by the sender.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nhost: bridge\r\nx-big: {}\r\ncontent-length: {len}\r\n\r\n",
        "h".repeat(200 << 10)
    );
    let (wrote, answer) = send_whole(addr, big, len).await;
    wrote.expect("the whole request could be sent");
    assert_eq!(answer.expect("a 431, not a reset").status, 431);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_webhook_gets_through_while_a_thousand_slow_senders_hold_connections() {
    let got = rlimit::increase_nofile_limit(8192).expect("raise RLIMIT_NOFILE");
    assert!(got >= 2300, "open-file limit {got} is too low for the test");
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.max_connections = 500;
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let mut all = Subscriber::new(broker.port, "print2mqtt/+/progress").await;

    // 1,000 senders from 10 addresses: headers, one body byte, then nothing.
    let mut slow = Vec::new();
    for i in 0..1000u32 {
        let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % 10) as u8);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        s.write_all(b"POST /webhook HTTP/1.1\r\nhost: bridge\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{")
            .await
            .unwrap();
        slow.push(s);
    }
    let body =
        format!(r#"{{"PrinterId":"farm","SecretKey":"{SECRET}","EventType":6,"Progress":42}}"#);
    let a = post_json(addr, "/webhook", body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        all.until_topic("print2mqtt/farm/progress").await.text(),
        "42"
    );

    // One address never holds more than http.max_connections_per_peer (64):
    // the 36 oldest of 127.0.0.2's 100 were closed.
    for s in slow.iter_mut().step_by(10).take(36) {
        raw::closed_by_server(s).await;
    }
    drop(slow);
    bridge.shutdown().await;
}

/// An HTTPS client that trusts any certificate (the test's own CA signed it).
fn https_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_https_the_healthcheck_and_the_session_cookie_follow() {
    let pki = common::pki::Pki::new();
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.tls_cert = common::pki::Pki::path(&pki.server_cert);
    cfg.http.tls_key = common::pki::Pki::path(&pki.server_key);
    cfg.http.admin_token = Secret::new("adm1n");
    let bridge = start(cfg.clone()).await;
    let addr = bridge.http_addr();

    let out = bin()
        .arg("healthcheck")
        .env("PRINT2MQTT_HTTP__LISTEN", addr.to_string())
        .env("PRINT2MQTT_HTTP__TLS_CERT", &cfg.http.tls_cert)
        .env("PRINT2MQTT_HTTP__TLS_KEY", &cfg.http.tls_key)
        .env("PRINT2MQTT_MQTT__URL", broker.url())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let login = https_client()
        .post(format!("https://localhost:{}/login", addr.port()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=adm1n")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status().as_u16(), 303);
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    bridge.shutdown().await;
}

#[tokio::test]
async fn login_is_rate_limited_per_peer() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.admin_token = Secret::new("adm1n");
    let bridge = start(cfg).await;
    let addr = bridge.http_addr();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for _ in 0..5 {
        let a = request(addr, "POST", "/login", &form, "token=guess").await;
        assert_eq!(a.status, 401);
    }
    let a = request(addr, "POST", "/login", &form, "token=adm1n").await;
    assert_eq!(a.status, 429, "even the right token waits: {}", a.body);
    let wait: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(a.body.contains("Too many attempts"), "{}", a.body);
    bridge.shutdown().await;
}

#[tokio::test]
async fn snapshots_are_not_cached_and_only_web_urls_are_published() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let jpeg: &[u8] = b"\xFF\xD8\xFF\xE0 a tiny jpeg";
    let mut body =
        b"--b\r\nContent-Disposition: form-data; name=\"deviceIdentifier\"\r\n\r\ncam\r\n\
--b\r\nContent-Disposition: form-data; name=\"topic\"\r\n\r\nPrint Started\r\n"
            .to_vec();
    body.extend_from_slice(
        format!("--b\r\nContent-Disposition: form-data; name=\"apiSecret\"\r\n\r\n{SECRET}\r\n")
            .as_bytes(),
    );
    body.extend_from_slice(
        b"--b\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"s.jpg\"\r\n\r\n",
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(b"\r\n--b--\r\n");
    let ct = [("content-type", "multipart/form-data; boundary=b")];
    let a = request(addr, "POST", "/webhook/octoprint", &ct, body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let snap = request(addr, "GET", "/api/printers/cam/snapshot", &[], Vec::new()).await;
    assert_eq!(snap.status, 200);
    assert_eq!(snap.headers["cache-control"], "no-store");

    let hook = format!(
        r#"{{"PrinterId":"urls","SecretKey":"{SECRET}","EventType":1,
            "SnapshotUrl":"file:///etc/passwd","QuickViewUrl":"javascript:alert(1)"}}"#
    );
    let mut sub = Subscriber::new(broker.port, "print2mqtt/urls/#").await;
    assert_eq!(post_json(addr, "/webhook", hook).await.status, 200);
    let last = sub.until_topic("print2mqtt/urls/last_event").await;
    assert!(!last.text().contains("passwd"), "{}", last.text());
    let p = request(addr, "GET", "/api/printers/urls", &[], Vec::new())
        .await
        .json();
    assert_eq!(
        (&p["snapshot_url"], &p["quickview_url"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    let kept = retained(broker.port, "print2mqtt/urls/#").await;
    assert!(
        kept.keys().all(|t| !t.ends_with("/snapshot_url")),
        "{:?}",
        kept.keys()
    );
    assert!(
        kept.contains_key("print2mqtt/urls/last_event"),
        "{:?}",
        kept.keys()
    );
    bridge.shutdown().await;
}

#[test]
fn an_unparsable_mqtt_url_never_shows_its_password() {
    for (url, shown) in [
        (
            "mqtt://user:pa ss@broker:99999",
            "mqtt://user:<redacted>@broker:99999",
        ),
        (
            "mqtts://user:p@ss@[::1:8883",
            "mqtts://user:<redacted>@[::1:8883",
        ),
    ] {
        for args in [&["check-config"][..], &[][..]] {
            let out = bin()
                .args(args)
                .env("PRINT2MQTT_MQTT__URL", url)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{url} {args:?}");
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(all.contains("`mqtt.url`"), "{all}");
            assert!(all.contains(shown), "{all}");
            for secret in ["pa ss", "p@ss"] {
                assert!(!all.contains(secret), "{secret} shown: {all}");
            }
        }
    }
}
