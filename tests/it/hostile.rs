//! The hostile-request corpus (tests/hostile/cases.toml) and the requests
//! only a raw socket can send, against the real server with a subscriber on
//! `#`: every rejected request gets its status and a JSON error naming the
//! problem and publishes nothing; every accepted hostile value is published
//! sanitised under its own printer's topics; the bridge stays healthy.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::raw;
use common::*;
use print2mqtt::app;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

const SECRET: &str = "Hostile-Corpus-Secret-42";

/// One request of the corpus and what it must get.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "post")]
    method: String,
    #[serde(default = "webhook_path")]
    path: String,
    /// `None`: application/json; empty: no Content-Type header.
    content_type: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    body_hex: Option<String>,
    /// (token, text, times): the token in the body becomes text * times.
    pad: Option<(String, String, usize)>,
    status: u16,
    error: Option<String>,
    /// Accepted cases: the slug the answer must name.
    printer: Option<String>,
    /// Accepted cases: last topic level -> exact payload.
    #[serde(default)]
    publishes: BTreeMap<String, String>,
    /// Accepted cases: last topic levels that must not be published.
    #[serde(default)]
    absent: Vec<String>,
}

fn post() -> String {
    "POST".into()
}

fn webhook_path() -> String {
    "/webhook".into()
}

#[derive(Debug, Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

fn corpus() -> Vec<Case> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile/cases.toml");
    let text = std::fs::read_to_string(path).unwrap();
    toml::from_str::<Corpus>(&text).unwrap().case
}

fn fill(text: &str) -> String {
    text.replace("{SECRET_UPPER}", &SECRET.to_uppercase())
        .replace("{SECRET_PREFIX}", &SECRET[..SECRET.len() - 1])
        .replace("{SECRET}", SECRET)
}

impl Case {
    fn body(&self) -> Vec<u8> {
        let mut body = match (&self.body, &self.body_hex) {
            (_, Some(hex)) => (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect(),
            (Some(text), None) => fill(text).into_bytes(),
            (None, None) => Vec::new(),
        };
        if let Some((token, text, times)) = &self.pad {
            let at = body
                .windows(token.len())
                .position(|w| w == token.as_bytes())
                .unwrap_or_else(|| panic!("{}: no pad token", self.name));
            let tail = body.split_off(at + token.len());
            body.truncate(at);
            body.extend(text.repeat(*times).into_bytes());
            body.extend(tail);
        }
        body
    }

    async fn send(&self, addr: std::net::SocketAddr) -> Answer {
        let path = fill(&self.path);
        let ct = self.content_type.as_deref().unwrap_or("application/json");
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if !ct.is_empty() {
            headers.push(("content-type", ct));
        }
        let req = raw::build(&self.method, &path, &headers, &self.body());
        raw::exchange(addr, req)
            .await
            .unwrap_or_else(|| panic!("{}: closed without an answer", self.name))
    }
}

/// Topics a message may have besides those of the printers in `allowed`.
fn is_bridge(topic: &str) -> bool {
    topic.starts_with("print2mqtt/bridge/")
        || (topic.starts_with("homeassistant/") && topic.contains("/print2mqtt_bridge/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_get_their_answer_and_change_nothing() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();
    let cases: Vec<Case> = corpus().into_iter().filter(|c| c.status != 200).collect();
    assert!(cases.len() >= 150, "only {} rejected cases", cases.len());
    for case in &cases {
        let answer = case.send(addr).await;
        assert_eq!(answer.status, case.status, "{}: {}", case.name, answer.body);
        let message = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let needle = case.error.as_deref().unwrap_or_default();
        assert!(
            !message.is_empty() && message.contains(needle),
            "{}: {message:?} lacks {needle:?}",
            case.name
        );
        assert!(message.len() <= 300, "{}: long answer {message}", case.name);
        assert!(
            !answer.body.contains(SECRET),
            "{}: secret in answer",
            case.name
        );
    }
    let last = format!(r#"{{"PrinterId":"final","SecretKey":"{SECRET}","EventType":2}}"#);
    assert_eq!(post_json(addr, "/webhook", last).await.status, 200);
    for m in all.collect_until("print2mqtt/final/event").await {
        let ours = m.topic.starts_with("print2mqtt/final/")
            || (m.topic.starts_with("homeassistant/") && m.topic.contains("/print2mqtt_final/"))
            || is_bridge(&m.topic);
        assert!(
            ours,
            "published by a rejected request: {} {}",
            m.topic,
            m.text()
        );
    }
    assert_eq!(
        request(addr, "GET", "/healthz", &[], Vec::new())
            .await
            .status,
        200
    );
    wait_drained(addr).await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_hostile_values_are_published_sanitised() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();
    for case in corpus().into_iter().filter(|c| c.status == 200) {
        let answer = case.send(addr).await;
        assert_eq!(answer.status, 200, "{}: {}", case.name, answer.body);
        let slug = answer.json()["printer"].as_str().unwrap().to_owned();
        assert!(
            !slug.is_empty()
                && slug.len() <= 64
                && slug.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "{}: slug {slug}",
            case.name
        );
        if let Some(expected) = &case.printer {
            assert_eq!(&slug, expected, "{}", case.name);
        }
        let seen = all.collect_until(&format!("print2mqtt/{slug}/event")).await;
        let mut leaves = BTreeMap::new();
        for m in seen.iter().filter(|m| !is_bridge(&m.topic)) {
            let levels: Vec<&str> = m.topic.split('/').collect();
            if levels[0] == "homeassistant" {
                // <prefix>/device/<node>/config
                assert_eq!(levels.len(), 4, "{}: {}", case.name, m.topic);
                assert_eq!(levels[2], format!("print2mqtt_{slug}"), "{}", case.name);
                let config: serde_json::Value = serde_json::from_slice(&m.payload)
                    .unwrap_or_else(|e| panic!("{}: {} not JSON: {e}", case.name, m.topic));
                let name = config["device"]["name"].as_str().unwrap_or_default();
                assert!(name.chars().count() <= 1024, "{}: device name", case.name);
                assert!(
                    !name.chars().any(char::is_control),
                    "{}: {name:?}",
                    case.name
                );
                continue;
            }
            assert_eq!(levels.len(), 3, "{}: {}", case.name, m.topic);
            assert_eq!(levels[1], slug, "{}: {}", case.name, m.topic);
            let text = m.text();
            assert!(
                !text
                    .chars()
                    .any(|c| c.is_control() || ('\u{202A}'..='\u{202E}').contains(&c)),
                "{}: {} carries control characters: {text:?}",
                case.name,
                m.topic
            );
            if levels[2] == "event" || levels[2] == "last_event" {
                let event = m.json();
                assert!(!text.contains(SECRET), "{}: secret published", case.name);
                for field in ["printer_id", "printer_name", "file", "error"] {
                    let v = event[field].as_str().unwrap_or_default();
                    assert!(v.chars().count() <= 1024, "{}: {field} too long", case.name);
                }
            }
            leaves.insert(levels[2].to_owned(), text);
        }
        for (leaf, payload) in &case.publishes {
            assert_eq!(leaves.get(leaf), Some(payload), "{}: {leaf}", case.name);
        }
        for leaf in &case.absent {
            assert!(
                !leaves.contains_key(leaf),
                "{}: {leaf} published",
                case.name
            );
        }
    }
    assert_eq!(
        request(addr, "GET", "/healthz", &[], Vec::new())
            .await
            .status,
        200
    );
    bridge.shutdown().await;
}

/// What a raw request must get: an answer with this status (and error
/// fragment, for the bridge's own JSON answers), or a closed connection.
enum Expect {
    Answer(u16, &'static str),
    Closed,
}

/// (name, request bytes sent at once, parts trickled after, expectation).
type RawCase<'a> = (&'a str, Vec<u8>, Vec<&'a [u8]>, Expect);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_abuse_gets_its_answer_and_changes_nothing() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.http.header_timeout_secs = 1;
    cfg.http.body_timeout_secs = 1;
    let bridge = app::start(cfg).await.unwrap();
    bridge.health().wait_connected().await;
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();
    let valid = |p: &str| {
        format!(r#"{{"PrinterId":"{p}","SecretKey":"{SECRET}","EventType":6,"Progress":1}}"#)
    };
    let unsigned = r#"{"PrinterId":"raw","EventType":1}"#;
    let big_header = format!("x-padding: {}\r\n", "h".repeat(60 * 1024));
    let many_headers: String = (0..500)
        .map(|i| format!("x-h{i}: {}\r\n", "v".repeat(100)))
        .collect();
    let huge_header = format!("x-padding: {}\r\n", "h".repeat(300 * 1024));
    let chunked_over = {
        let mut r = b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..20 {
            r.extend_from_slice(
                format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024)).as_bytes(),
            );
        }
        r.extend_from_slice(b"0\r\n\r\n");
        r
    };
    let cases: Vec<RawCase> = vec![
        ("slowloris headers", Vec::new(),
         vec![b"POST /webhook HTTP/1.1\r\n", b"host: x\r\n", b"x-a: 1\r\n", b"x-b: 2\r\n", b"x-c: 3\r\n", b"x-d: 4\r\n", b"x-e: 5\r\n", b"x-f: 6\r\n"],
         Expect::Closed),
        ("slowloris body", b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"PrinterId\"".to_vec(),
         Vec::new(), Expect::Answer(408, "body not received in time")),
        ("60 KiB header", raw::post("/webhook", &big_header, valid("big-header").as_bytes()), Vec::new(), Expect::Answer(200, "")),
        ("500 headers", raw::post("/webhook", &many_headers, valid("many-headers").as_bytes()), Vec::new(), Expect::Answer(200, "")),
        ("300 KiB header", raw::post("/webhook", &huge_header, unsigned.as_bytes()), Vec::new(), Expect::Answer(431, "")),
        ("chunked body over the limit", chunked_over, Vec::new(), Expect::Answer(413, "body larger than 1048576 bytes")),
        ("declared 2 GB", b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2000000000\r\n\r\n".to_vec(),
         Vec::new(), Expect::Answer(413, "body larger than 1048576 bytes")),
        ("expect 100-continue over the limit", b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: 5000000\r\n\r\n".to_vec(),
         Vec::new(), Expect::Answer(413, "body larger than")),
        ("bad chunk size", b"POST /webhook HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
         Vec::new(), Expect::Answer(400, "could not read the body")),
        ("garbage request line", b"HELLO THERE\r\n\r\n".to_vec(), Vec::new(), Expect::Answer(400, "")),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), Vec::new(), Expect::Closed),
        ("NUL in a header", raw::post("/webhook", "x-evil: a\0b\r\n", unsigned.as_bytes()), Vec::new(), Expect::Answer(400, "")),
        ("binary noise", (0..=255u8).cycle().take(4096).collect(), Vec::new(), Expect::Answer(400, "")),
    ];
    for (name, at_once, parts, expect) in cases {
        let mut s = raw::connect(addr).await;
        if !at_once.is_empty() {
            let _ = s.write_all(&at_once).await;
        }
        raw::trickle(&mut s, &parts, Duration::from_millis(300)).await;
        let answer = raw::read_answer(&mut s).await;
        match (expect, answer) {
            (Expect::Closed, None) => {}
            (Expect::Closed, Some(a)) => {
                assert!(a.status >= 400, "{name}: {} {}", a.status, a.body)
            }
            (Expect::Answer(status, needle), Some(a)) => {
                assert_eq!(a.status, status, "{name}: {}", a.body);
                if !needle.is_empty() {
                    let message = a.json()["error"].as_str().unwrap_or_default().to_owned();
                    assert!(message.contains(needle), "{name}: {message}");
                }
            }
            (Expect::Answer(status, _), None) => {
                panic!("{name}: closed without the expected {status}")
            }
        }
    }
    assert_eq!(
        post_json(addr, "/webhook", valid("final")).await.status,
        200
    );
    let allowed = ["big-header", "many-headers", "final"];
    for m in all.collect_until("print2mqtt/final/event").await {
        let ours = is_bridge(&m.topic)
            || allowed.iter().any(|p| {
                m.topic.starts_with(&format!("print2mqtt/{p}/"))
                    || m.topic.contains(&format!("/print2mqtt_{p}/"))
            });
        assert!(ours, "published by a rejected request: {}", m.topic);
    }
    assert_eq!(
        request(addr, "GET", "/healthz", &[], Vec::new())
            .await
            .status,
        200
    );
    bridge.shutdown().await;
}
