//! The status page's JSON API against a real bridge and a real Mosquitto:
//! printers, one printer, snapshots, the webhook log, health, setup, the
//! test button through to the broker's PUBACK and the live stream. No
//! answer ever carries a secret. Access rules: tests/it/status_access.rs.

use crate::common;

use common::sse::Sse;
use common::*;
use print2mqtt::app;
use print2mqtt::config::Config;

const SECRET: &str = "webhook-s3cret-value";
const ADMIN: &str = "admin-t0ken-value";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00fake-jpeg-body\xff\xd9";

async fn start(config: Config) -> app::Bridge {
    let bridge = app::start(config).await.unwrap();
    bridge.health().wait_connected().await;
    bridge
}

fn get(addr: std::net::SocketAddr, path: &str) -> impl std::future::Future<Output = Answer> {
    let path = path.to_owned();
    async move { request(addr, "GET", &path, &[], Vec::new()).await }
}

fn assert_no_secret(a: &Answer) {
    for s in [SECRET, ADMIN] {
        assert!(!a.body.contains(s), "secret leaked: {}", a.body);
    }
}

fn multipart(printer: &str, jpeg: &[u8]) -> (String, Vec<u8>) {
    let boundary = "b0undary";
    let mut body = Vec::new();
    for (name, value) in [
        ("deviceIdentifier", printer),
        ("apiSecret", SECRET),
        ("topic", "Print Progress"),
        ("message", "Your print is 40% complete."),
        ("progress", r#"{"completion": 40.2, "printTimeLeft": 900}"#),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"snapshot.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(jpeg);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn printers_events_bridge_and_setup() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();

    let progress = format!(
        r#"{{"PrinterId":"Ender-3","PrinterName":"Ender 3","SecretKey":"{SECRET}","EventType":6,
            "Progress":21,"FileName":"benchy.gcode","TimeRemainingSec":605,"DurationSec":50,
            "CurrentLayer":12,"TotalLayers":180,"ZOffsetMM":0.3,
            "SnapshotUrl":"https://snap.example/1.jpg"}}"#
    );
    let ok = post_json(addr, "/webhook", progress).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let wrong = post_json(
        addr,
        "/webhook/octoeverywhere",
        r#"{"PrinterId":"Ender-3","SecretKey":"nope","EventType":6}"#,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(post_json(addr, "/webhook", "{not json").await.status, 400);

    let list = get(addr, "/api/printers").await;
    assert_eq!(list.status, 200);
    assert_no_secret(&list);
    let p = &list.json()[0];
    assert_eq!(p["printer"], "ender-3");
    assert_eq!(p["printer_id"], "Ender-3");
    assert_eq!(p["name"], "Ender 3");
    assert_eq!(p["source"], "octoeverywhere");
    assert_eq!(p["state"], "printing");
    assert_eq!(p["progress"], 21);
    assert_eq!(p["time_remaining"], 605);
    assert_eq!(p["print_duration"], 50);
    assert_eq!(p["file"], "benchy.gcode");
    assert_eq!(p["layer"], 12);
    assert_eq!(p["total_layers"], 180);
    assert_eq!(p["z"], 0.3);
    assert_eq!(p["snapshot_url"], "https://snap.example/1.jpg");
    assert_eq!(p["snapshot"], serde_json::Value::Null);
    assert_eq!(p["last_event"]["event"], "progress");
    let received = p["last_event"]["received_at"].as_str().unwrap();
    assert!(p["eta"].as_str().unwrap() > received);

    let one = get(addr, "/api/printers/ender-3").await;
    assert_eq!((one.status, &one.json()), (200, p));
    assert_eq!(get(addr, "/api/printers/ENDER-3").await.json(), *p, "by id");
    let missing = get(addr, "/api/printers/nope").await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].as_str().unwrap().contains("nope"));

    let events = get(addr, "/api/events").await;
    assert_no_secret(&events);
    let events = events.json();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 3);
    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e["status"].as_u64().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["dialect"].as_str(),
                e["printer"].as_str(),
                e["event"].as_str(),
                e["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                400,
                "rejected",
                None,
                None,
                None,
                Some("body is not valid JSON: key must be a string at line 1 column 2")
            ),
            (
                401,
                "rejected",
                Some("octoeverywhere"),
                Some("ender-3"),
                Some("progress"),
                Some("wrong secret")
            ),
            (
                200,
                "accepted",
                Some("octoeverywhere"),
                Some("ender-3"),
                Some("progress"),
                None
            ),
        ],
        "newest first"
    );
    assert_eq!(events[2]["id"], ok.json()["id"]);
    assert_eq!(events[2]["sender"], "127.0.0.1");

    let health = get(addr, "/api/bridge").await.json();
    assert_eq!(health["broker"], "connected");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["printers"], 1);
    assert!(health["uptime_secs"].is_u64() && health["started_at"].is_string());

    let setup = request(
        addr,
        "GET",
        "/api/setup",
        &[
            ("x-forwarded-host", "prints.example.org"),
            ("x-forwarded-proto", "https"),
        ],
        Vec::new(),
    )
    .await;
    assert_no_secret(&setup);
    let setup = setup.json();
    assert_eq!(
        setup["octoeverywhere"]["url"],
        "https://prints.example.org/webhook/octoeverywhere"
    );
    assert_eq!(
        setup["octoprint"]["url"],
        "https://prints.example.org/webhook/octoprint"
    );
    assert_eq!(setup["secret_configured"], true);
    assert!(
        setup["octoprint"]["template"]
            .as_str()
            .unwrap()
            .contains("\"apiSecret\": \"@apiSecret\"")
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn snapshot_from_a_multipart_webhook() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let (ct, body) = multipart("Prusa MK4", JPEG);
    let a = request(
        addr,
        "POST",
        "/webhook/octoprint",
        &[("content-type", ct.as_str())],
        body,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let p = get(addr, "/api/printers/prusa_mk4").await.json();
    assert_eq!(p["progress"], 40);
    let url = p["snapshot"].as_str().unwrap();
    assert!(
        url.starts_with("api/printers/prusa_mk4/snapshot?rev="),
        "relative: {url}"
    );
    let img = request(addr, "GET", &format!("/{url}"), &[], Vec::new()).await;
    assert_eq!(img.status, 200);
    assert_eq!(img.headers["content-type"], "image/jpeg");
    assert_eq!(img.headers["cache-control"], "no-store");
    assert_eq!(img.body.len(), String::from_utf8_lossy(JPEG).len());
    let none = get(addr, "/api/printers/nobody/snapshot").await;
    assert_eq!(none.status, 404);
    bridge.shutdown().await;
}

#[tokio::test]
async fn test_button_goes_through_the_broker() {
    let mut broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let mut live = Subscriber::new(broker.port, "print2mqtt/+/event").await;
    let json = [("content-type", "application/json")];

    let a = request(addr, "POST", "/api/test", &json, "{}").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let answer = a.json();
    assert_eq!(answer["status"], "delivered");
    assert_eq!(answer["delivered"], true);
    assert_eq!(answer["printer"], "print2mqtt-test");
    assert_eq!(answer["event"], "test");
    let got = live
        .until_topic("print2mqtt/print2mqtt-test/event")
        .await
        .json();
    assert_eq!(got["event"], "test");
    assert_eq!(got["code"], 16);
    assert_eq!(got["id"], answer["id"]);

    // A chosen printer, by slug; an OctoPrint printer gets its own dialect.
    let (ct, body) = multipart("Prusa MK4", JPEG);
    request(
        addr,
        "POST",
        "/webhook",
        &[("content-type", ct.as_str())],
        body,
    )
    .await;
    let a = request(
        addr,
        "POST",
        "/api/test",
        &json,
        r#"{"printer":"prusa_mk4"}"#,
    )
    .await;
    assert_eq!(
        (a.status, a.json()["printer"].as_str()),
        (200, Some("prusa_mk4"))
    );
    let got = live.until_topic("print2mqtt/prusa_mk4/event").await;
    let got = if got.json()["event"] == "progress" {
        live.until_topic("print2mqtt/prusa_mk4/event").await
    } else {
        got
    };
    assert_eq!(
        (got.json()["event"].as_str(), got.json()["source"].as_str()),
        (Some("test"), Some("octoprint"))
    );
    let p = get(addr, "/api/printers/prusa_mk4").await.json();
    assert_eq!(
        (p["state"].as_str(), p["progress"].as_u64()),
        (Some("printing"), Some(40)),
        "a test changes no state"
    );

    let unknown = request(addr, "POST", "/api/test", &json, r#"{"printer":"ghost"}"#).await;
    assert_eq!(unknown.status, 404);
    let form = request(
        addr,
        "POST",
        "/api/test",
        &[("content-type", "application/x-www-form-urlencoded")],
        "printer=x",
    )
    .await;
    assert_eq!(
        form.status, 415,
        "a cross-site form cannot press the button"
    );
    let bad = request(addr, "POST", "/api/test", &json, r#"{"printer":7}"#).await;
    assert_eq!(bad.status, 400);
    assert_eq!(get(addr, "/api/test").await.status, 405);

    // Broker down: accepted into the outbox, not delivered in time.
    broker.stop();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while bridge.health().is_connected() {
        assert!(std::time::Instant::now() < deadline, "disconnect noticed");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let a = request(addr, "POST", "/api/test", &json, "").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.json()["status"].as_str(), a.json()["delivered"].as_bool()),
        (Some("queued"), Some(false))
    );
    bridge.shutdown().await;
}

#[tokio::test]
async fn live_stream_sends_the_table_then_changes() {
    let broker = Mosquitto::start();
    let bridge = start(config(&broker.url(), SECRET)).await;
    let addr = bridge.http_addr();
    let body = |p: u8| {
        format!(r#"{{"PrinterId":"voron","SecretKey":"{SECRET}","EventType":6,"Progress":{p}}}"#)
    };
    post_json(addr, "/webhook", body(10)).await;

    let mut sse = Sse::open(addr, "/api/stream", &[]).await;
    let first = sse.next().await.unwrap();
    assert_eq!(first.name, "printers");
    assert_eq!(first.data[0]["progress"], 10);
    let log = sse.next().await.unwrap();
    assert_eq!(
        (log.name.as_str(), log.data.as_array().unwrap().len()),
        ("events", 1)
    );

    post_json(addr, "/webhook", body(55)).await;
    // The table changes on commit, before the handler logs its answer.
    let p = sse.until("printer", |_| true).await;
    assert_eq!(
        (p["printer"].as_str(), p["progress"].as_u64()),
        (Some("voron"), Some(55))
    );
    let entry = sse.until("webhook", |_| true).await;
    assert_eq!(
        (entry["status"].as_u64(), entry["printer"].as_str()),
        (Some(200), Some("voron"))
    );
    let health = sse.until("bridge", |_| true).await;
    assert_eq!(health["broker"], "connected");

    let removed = request(addr, "DELETE", "/api/printers/voron", &[], Vec::new()).await;
    assert_eq!(removed.status, 200);
    let r = sse.until("removed", |_| true).await;
    assert_eq!(r["printer"], "voron");

    // Shutdown ends the stream instead of holding the drain.
    let stop = tokio::spawn(bridge.shutdown());
    sse.until_end().await;
    tokio::time::timeout(TIMEOUT, stop).await.unwrap().unwrap();
}
