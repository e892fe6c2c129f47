//! What the fuzz targets run, and the invariants they check: parsing any
//! request either fails with an `IngestError` (a 4xx) or yields an event
//! whose values are safe to publish; applying and rendering any accepted
//! events yields only well-formed topics, JSON that parses, and no control
//! characters in plain-text payloads. A broken invariant panics (a crash
//! for libFuzzer).
//!
//! Framed input (`octoprint`, `detect`): the first byte picks the method
//! and dialect, the bytes up to the first `\n` are the `Content-Type` (empty:
//! none), the rest is the body — or, with the GET bit, the query string.

use print2mqtt::config::Config;
use print2mqtt::event::{Event, Reception};
use print2mqtt::ingest::{self, Dialect, Limits, Webhook};
use print2mqtt::mqtt::messages::Message;
use print2mqtt::mqtt::topics::Topics;
use print2mqtt::pipeline::Printers;

/// The OctoEverywhere dialect, forced, with a JSON body.
pub fn octoeverywhere(data: &[u8]) {
    let hook = Webhook {
        body: data,
        content_type: Some("application/json"),
        query: &[],
        dialect: Some(Dialect::OctoEverywhere),
        limits: Limits::default(),
    };
    check_parse(&hook);
}

/// The OctoPrint-Webhooks dialect, forced, in every encoding.
pub fn octoprint(data: &[u8]) {
    framed(data, Some(Dialect::OctoPrint));
}

/// Detection: the dialect from the first byte (none, either).
pub fn detect(data: &[u8]) {
    let dialect = match data.first().map(|b| b % 3) {
        Some(1) => Some(Dialect::OctoEverywhere),
        Some(2) => Some(Dialect::OctoPrint),
        _ => None,
    };
    framed(data, dialect);
}

fn framed(data: &[u8], dialect: Option<Dialect>) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (ct, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let ct = String::from_utf8_lossy(ct);
    let get = flags & 0x80 != 0;
    let query: Vec<(String, String)> = if get {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    } else {
        Vec::new()
    };
    let hook = Webhook {
        body: if get { &[] } else { body },
        content_type: Some(ct.as_ref()).filter(|c| !c.is_empty()),
        query: &query,
        dialect,
        limits: Limits::default(),
    };
    check_parse(&hook);
}

fn check_parse(hook: &Webhook) -> Option<Event> {
    let parsed = match ingest::parse(hook, Reception::now()) {
        Ok(p) => p,
        Err(e) => {
            let status = e.status().as_u16();
            assert!((400..500).contains(&status), "{e} -> {status}");
            assert!(e.to_string().len() < 1000, "long error: {e}");
            return None;
        }
    };
    check_event(&parsed.event);
    Some(parsed.event)
}

fn check_event(e: &Event) {
    assert!(!e.printer_id.is_empty());
    let texts = [
        Some(&e.printer_id),
        e.printer_name.as_ref(),
        e.print_id.as_ref(),
        e.file.as_ref(),
        e.error.as_ref(),
        e.platform_error_code.as_ref(),
        e.snapshot_url.as_ref(),
        e.quickview_url.as_ref(),
        e.topic.as_ref(),
    ];
    for t in texts.into_iter().flatten() {
        assert!(
            t.chars().count() <= ingest::sanitize::MAX_TEXT_CHARS,
            "long text"
        );
        assert!(
            !t.chars().any(char::is_control),
            "control character in {t:?}"
        );
    }
    assert!(e.progress.is_none_or(|p| p <= 100));
    assert!(e.z.is_none_or(f64::is_finite));
    serde_json::from_str::<serde_json::Value>(&e.to_json()).expect("event JSON");
}

/// NUL-separated bodies, each recognised from its content, accepted into one
/// printer table; every message checked.
pub fn messages(data: &[u8]) {
    let config = Config::default();
    let topics = Topics::new(&config.mqtt.base_topic);
    let mut printers = Printers::from_config(&config);
    for body in data.split(|b| *b == 0).take(16) {
        let hook = Webhook {
            body,
            content_type: None,
            query: &[],
            dialect: None,
            limits: Limits::default(),
        };
        let Some(event) = check_parse(&hook) else {
            continue;
        };
        let (slug, msgs) = printers.accept(&topics, &event);
        check_messages(&slug, &msgs);
    }
    let birth = printers.birth();
    for m in &birth {
        check_topic(m);
    }
}

fn check_topic(m: &Message) {
    let t = &m.topic;
    assert!(
        !t.is_empty() && !t.contains(['+', '#', '\0']) && !t.split('/').any(str::is_empty),
        "bad topic {t:?}"
    );
    if t.starts_with("homeassistant/") && !m.payload.is_empty() {
        serde_json::from_slice::<serde_json::Value>(&m.payload).expect("discovery JSON");
    }
}

fn check_messages(slug: &str, msgs: &[Message]) {
    assert!(print2mqtt::slug::is_valid(slug), "slug {slug:?}");
    for m in msgs {
        check_topic(m);
        let levels: Vec<&str> = m.topic.split('/').collect();
        match levels[0] {
            "homeassistant" => assert_eq!(levels.len(), 5, "{}", m.topic),
            "print2mqtt" if levels[1] == "bridge" => {}
            "print2mqtt" => {
                assert_eq!((levels.len(), levels[1]), (3, slug), "{}", m.topic);
                match levels[2] {
                    "snapshot" => {}
                    "event" | "last_event" => {
                        serde_json::from_slice::<serde_json::Value>(&m.payload)
                            .expect("event JSON");
                    }
                    _ => {
                        let text = std::str::from_utf8(&m.payload).expect("UTF-8 payload");
                        assert!(!text.chars().any(char::is_control), "{text:?}");
                    }
                }
            }
            other => panic!("topic outside the tree: {other}"),
        }
    }
}
