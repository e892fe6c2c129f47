//! HTTP answers and authentication against the real server: every rejected
//! request gets the contract's status and publishes nothing at all.

use crate::common;

use common::*;
use print2mqtt::app;
use print2mqtt::config::{EventFilter, Printer, Secret};

const SECRET: &str = "correct horse battery staple";

fn valid(printer: &str) -> String {
    format!(r#"{{"PrinterId":"{printer}","SecretKey":"{SECRET}","EventType":6,"Progress":10}}"#)
}

/// Sends `hostile` requests, then one valid webhook, and checks that the only
/// messages on the broker are those of the valid one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_get_their_status_and_publish_nothing() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), SECRET)).await.unwrap();
    bridge.health().wait_connected().await;
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();
    let json = [("content-type", "application/json")];
    let big = format!(
        r#"{{"PrinterId":"p","EventType":6,"x":"{}"}}"#,
        "a".repeat(1_100_000)
    );
    // (what, path, headers, body, expected status, text in the error message)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "wrong secret",
            "/webhook",
            json.to_vec(),
            br#"{"PrinterId":"p","SecretKey":"nope","EventType":1}"#.to_vec(),
            401,
            "wrong secret",
        ),
        (
            "missing secret",
            "/webhook",
            json.to_vec(),
            br#"{"PrinterId":"p","EventType":1}"#.to_vec(),
            401,
            "missing secret",
        ),
        (
            "secret in wrong case",
            "/webhook",
            json.to_vec(),
            valid("p").replace("correct", "CORRECT").into_bytes(),
            401,
            "wrong secret",
        ),
        (
            "wrong token",
            "/webhook?token=nope",
            json.to_vec(),
            br#"{"PrinterId":"p","EventType":1}"#.to_vec(),
            401,
            "wrong secret",
        ),
        (
            "wrong bearer",
            "/webhook",
            vec![
                ("content-type", "application/json"),
                ("authorization", "Bearer nope"),
            ],
            br#"{"PrinterId":"p","EventType":1}"#.to_vec(),
            401,
            "wrong secret",
        ),
        (
            "broken JSON",
            "/webhook",
            json.to_vec(),
            br#"{"PrinterId":"p","EventType":"#.to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "JSON array",
            "/webhook",
            json.to_vec(),
            b"[1,2]".to_vec(),
            400,
            "JSON object",
        ),
        (
            "wrong type",
            "/webhook",
            json.to_vec(),
            format!(
                r#"{{"PrinterId":"p","SecretKey":"{SECRET}","EventType":6,"Progress":{{"a":1}}}}"#
            )
            .into_bytes(),
            400,
            "field `Progress`",
        ),
        (
            "printer id a number",
            "/webhook",
            json.to_vec(),
            br#"{"PrinterId":5,"EventType":6}"#.to_vec(),
            400,
            "field `PrinterId`",
        ),
        (
            "missing EventType",
            "/webhook/octoeverywhere",
            json.to_vec(),
            br#"{"PrinterId":"p"}"#.to_vec(),
            400,
            "`EventType`",
        ),
        (
            "neither dialect",
            "/webhook",
            json.to_vec(),
            br#"{"hello":"world"}"#.to_vec(),
            400,
            "neither",
        ),
        (
            "empty body",
            "/webhook",
            json.to_vec(),
            Vec::new(),
            400,
            "empty",
        ),
        (
            "invalid UTF-8",
            "/webhook",
            json.to_vec(),
            b"{\"PrinterId\":\"\xff\xfe\",\"EventType\":1}".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "deep nesting",
            "/webhook",
            json.to_vec(),
            format!("{{\"a\":{}", "[".repeat(5000)).into_bytes(),
            400,
            "nested deeper than 64 levels",
        ),
        (
            "xml",
            "/webhook",
            vec![("content-type", "application/xml")],
            b"<a/>".to_vec(),
            415,
            "unsupported media type",
        ),
        (
            "too large",
            "/webhook",
            json.to_vec(),
            big.into_bytes(),
            413,
            "larger than",
        ),
        (
            "unknown path",
            "/hook",
            json.to_vec(),
            valid("p").into_bytes(),
            404,
            "not found",
        ),
    ];
    for (what, path, headers, body, status, needle) in cases {
        let answer = request(addr, "POST", path, &headers, body).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        let message = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(!answer.body.contains(SECRET), "{what}: secret in answer");
    }
    let answer = request(addr, "DELETE", "/webhook", &[], Vec::new()).await;
    assert_eq!(answer.status, 405);

    let ok = post_json(addr, "/webhook", valid("p")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let seen = printer_only(all.until_leaf("event").await);
    for m in &seen {
        // The accepted webhook's printer, its discovery configs, and the
        // bridge's own topics and configs; nothing else.
        let ours = ["print2mqtt/p/", "print2mqtt/bridge/"]
            .iter()
            .any(|p| m.topic.starts_with(p))
            || ["print2mqtt_p", "print2mqtt_bridge"].iter().any(|node| {
                m.topic.starts_with("homeassistant/") && m.topic.contains(&format!("/{node}/"))
            });
        assert!(ours, "published by a rejected request: {}", m.topic);
        assert!(
            !m.text().contains(SECRET),
            "secret on the broker: {}",
            m.topic
        );
    }
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_from_body_token_bearer_or_header_and_per_printer() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.printers.insert(
        "OWN-SECRET".into(),
        Printer {
            secret: Secret::new("printer-own"),
            ..Printer::default()
        },
    );
    let bridge = app::start(cfg).await.unwrap();
    let addr = bridge.http_addr();
    let bare = br#"{"PrinterId":"p","EventType":16}"#;
    let token_path = format!("/webhook?token={}", SECRET.replace(' ', "%20"));
    let bearer = format!("Bearer {SECRET}");
    for (path, headers) in [
        (token_path.as_str(), vec![]),
        ("/webhook", vec![("authorization", bearer.as_str())]),
        ("/webhook", vec![("x-print2mqtt-secret", SECRET)]),
    ] {
        let answer = request(addr, "POST", path, &headers, bare.to_vec()).await;
        assert_eq!(answer.status, 200, "{path} {headers:?}: {}", answer.body);
    }
    let own = |secret: &str| {
        format!(r#"{{"PrinterId":"own-secret","SecretKey":"{secret}","EventType":16}}"#)
    };
    assert_eq!(
        post_json(addr, "/webhook", own("printer-own")).await.status,
        200
    );
    assert_eq!(
        post_json(addr, "/webhook", own(SECRET)).await.status,
        401,
        "the global secret does not open a printer with its own"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_only_local_senders_are_accepted() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), "")).await.unwrap();
    let addr = bridge.http_addr();
    let body = br#"{"PrinterId":"p","EventType":16}"#;
    assert_eq!(
        post_json(addr, "/webhook", body.to_vec()).await.status,
        200,
        "loopback is local"
    );
    let lan = request(
        addr,
        "POST",
        "/webhook",
        &[("x-forwarded-for", "192.168.1.20")],
        body.to_vec(),
    )
    .await;
    assert_eq!(lan.status, 200);
    let internet = request(
        addr,
        "POST",
        "/webhook",
        &[("x-forwarded-for", "203.0.113.7, 10.0.0.1")],
        body.to_vec(),
    )
    .await;
    assert_eq!(internet.status, 401);
    assert!(
        internet.json()["error"]
            .as_str()
            .unwrap()
            .contains("set auth.secret")
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_events_are_answered_200_and_not_published() {
    let broker = Mosquitto::start();
    let mut cfg = config(&broker.url(), SECRET);
    cfg.printers.insert(
        "p".into(),
        Printer {
            events: EventFilter::from_names(["complete"]),
            ..Printer::default()
        },
    );
    let bridge = app::start(cfg).await.unwrap();
    // Only the printer's topics: the bridge's retained `online` may arrive
    // live after the subscription, before or after the webhooks.
    let mut all = Subscriber::new(broker.port, "print2mqtt/p/+").await;
    let addr = bridge.http_addr();
    let filtered = post_json(addr, "/webhook", valid("p")).await;
    assert_eq!(
        (filtered.status, filtered.json()["status"].as_str()),
        (200, Some("filtered"))
    );
    let complete = valid("p").replace("\"EventType\":6", "\"EventType\":2");
    assert_eq!(post_json(addr, "/webhook", complete).await.status, 200);
    let seen = printer_only(all.until_leaf("event").await);
    assert_eq!(seen[0].topic, "print2mqtt/p/state");
    assert_eq!(
        seen[0].text(),
        "complete",
        "the filtered progress event published nothing"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_printer_ids_cannot_change_the_topic_tree() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), SECRET)).await.unwrap();
    let mut all = Subscriber::new(broker.port, "#").await;
    let addr = bridge.http_addr();
    let ids = [
        "a/b",
        "+",
        "#",
        "a\\u0000b",
        "../..",
        "bridge",
        "x/+/#",
        "\\u202egnp.exe",
        "Ender 3",
        "ender/3",
        "$SYS/broker",
        " ",
        "UPPER",
    ];
    let mut slugs = std::collections::HashSet::new();
    for id in ids {
        let body = format!(r#"{{"PrinterId":"{id}","SecretKey":"{SECRET}","EventType":1}}"#);
        let answer = post_json(addr, "/webhook", body).await;
        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
        let slug = answer.json()["printer"].as_str().unwrap().to_owned();
        assert!(
            !slug.is_empty()
                && slug.len() <= 64
                && slug.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "{id} -> {slug}"
        );
        assert!(
            slugs.insert(slug.clone()),
            "{id}: slug {slug} shared with another id"
        );
        let seen = all.until_leaf("event").await;
        for m in seen
            .iter()
            .filter(|m| !m.topic.starts_with("print2mqtt/bridge/"))
        {
            let levels: Vec<&str> = m.topic.split('/').collect();
            if levels[0] == "homeassistant" {
                // <prefix>/device/<node>/config
                assert_eq!(levels.len(), 4, "{id}: {}", m.topic);
                let node = format!("print2mqtt_{slug}");
                assert!(
                    levels[2] == node || levels[2] == "print2mqtt_bridge",
                    "{id}: {}",
                    m.topic
                );
                continue;
            }
            assert_eq!(levels.len(), 3, "{id}: {}", m.topic);
            assert_eq!(levels[1], slug, "{id}: {}", m.topic);
        }
    }
    assert!(
        !slugs.contains("bridge"),
        "the bridge's own level is reserved"
    );
    // Ids that differ only in case are one printer (docs/security.md).
    let body = format!(r#"{{"PrinterId":"upper","SecretKey":"{SECRET}","EventType":1}}"#);
    let answer = post_json(addr, "/webhook", body).await;
    assert_eq!(answer.json()["printer"], "upper");
    bridge.shutdown().await;
}
