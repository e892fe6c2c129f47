//! OctoPrint-Webhooks requests beyond the recordings, against the real bridge:
//! broken bodies get the contract's 4xx and publish nothing, bad snapshots
//! are dropped without failing the webhook, and the plugin's GET, form
//! bodies and every way of sending the secret work.

use crate::common;
use crate::expected;
use crate::recording;

use std::collections::BTreeMap;

use common::*;
use expected::{API_SECRET, SLUG};
use print2mqtt::app;
use print2mqtt::config::{Printer, Secret};
use recording::{Recorded, recording};

fn by_seq(file: &str, seq: u64) -> Recorded {
    recording(file).into_iter().find(|r| r.seq == seq).unwrap()
}

fn encode(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

/// The retained values of one printer, snapshot as its size.
async fn state_of(port: u16, slug: &str) -> BTreeMap<String, String> {
    retained(port, &format!("print2mqtt/{slug}/+"))
        .await
        .into_values()
        .filter(|m| m.leaf() != "last_event")
        .map(|m| {
            let v = match m.leaf() {
                "snapshot" => format!("<{} bytes>", m.payload.len()),
                _ => m.text(),
            };
            (m.leaf().to_owned(), v)
        })
        .collect()
}

/// POSTs like a plain HTTP/1.1 client (urllib3, curl) does: when the bridge
/// answers before the body is sent and stops reading, the rest of the body
/// is given up and the answer is still read.
async fn post_raw(addr: std::net::SocketAddr, path: &str, ct: &str, body: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {ct}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok());
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    Answer {
        status: status.unwrap_or_else(|| panic!("no HTTP answer: {text:?}")),
        headers: http::HeaderMap::new(),
        body: body.to_owned(),
    }
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_4xx_and_publish_nothing() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), API_SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();

    let mp = by_seq("multipart-fulldata-snapshot.jsonl", 8);
    let ct = mp.content_type().to_owned();
    let form = by_seq("form-fulldata.jsonl", 9);
    let form_text = String::from_utf8(form.body.clone()).unwrap();
    let job_at = form_text.find("&job=").unwrap();
    let job_end = job_at + 1 + form_text[job_at + 1..].find('&').unwrap();
    let broken_job = format!(
        "{}&job=%7B%22file%22%3A{}",
        &form_text[..job_at],
        &form_text[job_end..]
    );
    let huge = mp.with_file(&vec![0xFF; 20 << 20]);
    let no_device = encode(&[
        ("apiSecret", API_SECRET),
        ("topic", "Print Done"),
        ("extra", "{}"),
    ]);
    let wrong_secret = encode(&[
        ("deviceIdentifier", "hostile"),
        ("apiSecret", "nope"),
        ("topic", "Print Done"),
    ]);
    let form_ct = "application/x-www-form-urlencoded";
    // (what, path, Content-Type, body, status, text in the error message)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated multipart",
            "/webhook",
            &ct,
            mp.body[..mp.body.len() / 2].to_vec(),
            400,
            "multipart",
        ),
        (
            "multipart without its end",
            "/webhook/octoprint",
            &ct,
            mp.body[..mp.body.len() - 40].to_vec(),
            400,
            "truncated",
        ),
        (
            "wrong boundary",
            "/webhook",
            "multipart/form-data; boundary=0123456789abcdef",
            mp.body.clone(),
            400,
            "boundary",
        ),
        (
            "no boundary",
            "/webhook",
            "multipart/form-data",
            mp.body.clone(),
            400,
            "multipart",
        ),
        (
            "invalid JSON in a form field",
            "/webhook",
            form_ct,
            broken_job.into_bytes(),
            400,
            "field `job` is not valid JSON",
        ),
        ("20 MB snapshot", "/webhook", &ct, huge, 413, "larger than"),
        (
            "no deviceIdentifier",
            "/webhook/octoprint",
            form_ct,
            no_device.into_bytes(),
            400,
            "deviceIdentifier",
        ),
        (
            "wrong apiSecret",
            "/webhook",
            form_ct,
            wrong_secret.into_bytes(),
            401,
            "wrong secret",
        ),
        (
            "form to the OctoEverywhere path",
            "/webhook/octoeverywhere",
            form_ct,
            form.body.clone(),
            415,
            "not accepted",
        ),
        (
            "xml",
            "/webhook/octoprint",
            "application/xml",
            b"<topic/>".to_vec(),
            415,
            "unsupported media type",
        ),
    ];
    for (what, path, ct, body, status, needle) in cases {
        let answer = post_raw(addr, path, ct, &body).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        let message = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(
            !answer.body.contains(API_SECRET),
            "{what}: secret in the answer"
        );
    }

    let valid = format!(
        r#"{{"deviceIdentifier":"valid-printer","apiSecret":"{API_SECRET}","topic":"Print Done","extra":{{}}}}"#
    );
    assert_eq!(post_json(addr, "/webhook", valid).await.status, 200);
    let seen = all.until_leaf("event").await;
    assert!(
        seen.iter()
            .any(|m| m.topic == "print2mqtt/valid-printer/state")
    );
    for m in &seen {
        assert!(
            !m.topic.contains(SLUG) && !m.topic.contains("hostile"),
            "published by a rejected request: {}",
            m.topic
        );
        assert!(!m.text().contains("Drucker"), "{}: {}", m.topic, m.text());
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshots_are_dropped_and_the_rest_is_published() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), API_SECRET)).await.unwrap();
    let mut events = Subscriber::new(broker.port, &format!("print2mqtt/{SLUG}/event")).await;
    let mp = by_seq("multipart-fulldata-snapshot.jsonl", 8);
    let mut oversized = vec![0xFF, 0xD8, 0xFF, 0xE0];
    oversized.resize(9 << 20, 0);
    let files: [(&str, Vec<u8>); 3] = [
        ("PNG", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
        ("9 MiB JPEG", oversized),
        ("empty", Vec::new()),
    ];
    let without_snapshot = values(&[
        ("state", "printing"),
        ("progress", "10"),
        ("time_remaining", "23"),
        ("print_duration", "2"),
        ("file", "Bench Würfel ä (slow).gcode"),
        ("z", "0.2"),
    ]);
    for (what, file) in files {
        let headers = [("content-type", mp.content_type())];
        let answer = request(
            bridge.http_addr(),
            "POST",
            "/webhook",
            &headers,
            mp.with_file(&file),
        )
        .await;
        assert_eq!(answer.status, 200, "{what}: {}", answer.body);
        assert_eq!(events.next().await.json()["event"], "progress", "{what}");
        let mut state = state_of(broker.port, SLUG).await;
        assert!(state.remove("eta").is_some(), "{what}");
        assert_eq!(
            state, without_snapshot,
            "{what}: no snapshot, the rest published"
        );
    }
    let headers = [("content-type", mp.content_type())];
    let answer = request(
        bridge.http_addr(),
        "POST",
        "/webhook",
        &headers,
        mp.body.clone(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    events.next().await;
    let snap = retained(broker.port, &format!("print2mqtt/{SLUG}/snapshot")).await;
    let snap = snap
        .values()
        .next()
        .expect("the good snapshot is published");
    assert_eq!(snap.payload.to_vec(), mp.jpeg());
    assert!(snap.retain);
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_form_and_every_way_of_sending_the_secret() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), API_SECRET);
    cfg.printers.insert(
        "Own-Printer".into(),
        Printer {
            secret: Secret::new("printer-own"),
            ..Printer::default()
        },
    );
    let bridge = app::start(cfg).await.unwrap();
    let addr = bridge.http_addr();
    let mut events = Subscriber::new(broker.port, "print2mqtt/+/event").await;
    let json = ("content-type", "application/json");
    let form = ("content-type", "application/x-www-form-urlencoded");
    let bearer = format!("Bearer {API_SECRET}");
    let token_path = format!("/webhook?{}", encode(&[("token", API_SECRET)]));
    let api_secret_path = format!("/webhook?{}", encode(&[("apiSecret", API_SECRET)]));
    let progress = |device: &str, secret: Option<&str>, milestone: &str| {
        let mut pairs = vec![
            ("deviceIdentifier", device.to_owned()),
            ("topic", "Print Progress".to_owned()),
            ("message", format!("Your print is {milestone} % complete.")),
        ];
        pairs.extend(secret.map(|s| ("apiSecret", s.to_owned())));
        serde_urlencoded::to_string(&pairs).unwrap()
    };
    // The plugin's GET: data in the query string, nested objects flattened
    // to their keys, and its Content-Type header sent along anyway.
    let get = format!(
        "/webhook?{}&extra=name&extra=path",
        progress("get", Some(API_SECRET), "40")
    );
    let get_test = format!(
        "/webhook/octoprint?{}&extra=name&extra=popup&extra=hook_index",
        progress("get", Some(API_SECRET), "50")
    );
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
    );
    let cases: Vec<Case> = vec![
        ("GET", "GET", &get, vec![json], String::new(), 200),
        (
            "GET test webhook",
            "GET",
            &get_test,
            vec![],
            String::new(),
            200,
        ),
        (
            "GET without secret",
            "GET",
            "/webhook?deviceIdentifier=get&topic=Print+Done",
            vec![],
            String::new(),
            401,
        ),
        (
            "form + header",
            "POST",
            "/webhook",
            vec![form, ("x-print2mqtt-secret", API_SECRET)],
            progress("hdr", None, "10"),
            200,
        ),
        (
            "form + bearer",
            "POST",
            "/webhook",
            vec![form, ("authorization", &bearer)],
            progress("bearer", None, "20"),
            200,
        ),
        (
            "form + token",
            "POST",
            &token_path,
            vec![form],
            progress("token", None, "30"),
            200,
        ),
        (
            "apiSecret in the query",
            "POST",
            &api_secret_path,
            vec![form],
            progress("q", None, "35"),
            200,
        ),
        (
            "own printer secret",
            "POST",
            "/webhook",
            vec![form],
            progress("own-printer", Some("printer-own"), "60"),
            200,
        ),
        (
            "global secret on own printer",
            "POST",
            "/webhook",
            vec![form],
            progress("own-printer", Some(API_SECRET), "70"),
            401,
        ),
        (
            "wrong apiSecret",
            "POST",
            "/webhook",
            vec![json],
            r#"{"deviceIdentifier":"j","apiSecret":"x","topic":"Print Done"}"#.to_owned(),
            401,
        ),
    ];
    for (what, method, path, headers, body, status) in cases {
        let answer = request(addr, method, path, &headers, body).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        if status == 200 {
            let event = events.next().await.json();
            let want = if what.contains("test") {
                "test"
            } else {
                "progress"
            };
            assert_eq!(event["event"], want, "{what}");
        }
    }
    let printing = |p: &str| values(&[("state", "printing"), ("progress", p)]);
    assert_eq!(
        state_of(broker.port, "get").await,
        printing("40"),
        "the test changed nothing"
    );
    assert_eq!(state_of(broker.port, "hdr").await, printing("10"));
    assert_eq!(state_of(broker.port, "bearer").await, printing("20"));
    assert_eq!(state_of(broker.port, "token").await, printing("30"));
    assert_eq!(state_of(broker.port, "q").await, printing("35"));
    assert_eq!(state_of(broker.port, "own-printer").await, printing("60"));
    bridge.shutdown().await;
}
