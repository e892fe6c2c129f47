//! Every recorded OctoPrint-Webhooks request replayed byte for byte (method,
//! query string, headers, body) through the real bridge into a real
//! Mosquitto, on `/webhook` and on `/webhook/octoprint`: each answer is 200
//! and after each request the retained topics are exactly the print's state.

use crate::common;
use crate::expected;
use crate::recording;

use std::collections::BTreeMap;

use common::*;
use expected::*;
use print2mqtt::app;
use recording::recording;

fn eta_of(event: &serde_json::Value) -> String {
    use time::format_description::well_known::Rfc3339;
    let received = time::OffsetDateTime::parse(event["received_at"].as_str().unwrap(), &Rfc3339);
    let remaining = event["time_remaining"].as_i64().expect("time_remaining");
    let eta = (received.unwrap() + time::Duration::seconds(remaining))
        .format(&Rfc3339)
        .unwrap();
    assert_eq!(event["eta"], eta.as_str());
    eta
}

/// Retained values for display: text, or the size of binary ones.
fn show(map: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, String> {
    map.iter()
        .map(|(k, v)| match std::str::from_utf8(v) {
            Ok(s) if k != "snapshot" => (k.as_str(), s.to_owned()),
            _ => (k.as_str(), format!("<{} bytes>", v.len())),
        })
        .collect()
}

async fn replay(file: &str, path: &str, slug: &str, steps: &[Step]) {
    let records = recording(file);
    assert_eq!(records.len(), steps.len(), "{file}: one step per request");
    assert_eq!(records[0].api_secret(), API_SECRET);
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), &records[0].api_secret()))
        .await
        .unwrap();
    bridge.health().wait_connected().await;
    let event_topic = format!("print2mqtt/{slug}/event");
    let mut live = Subscriber::new(broker.port, &event_topic).await;
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();

    for (rec, (seq, event, changes)) in records.iter().zip(steps) {
        let what = format!("{file} {path} seq {seq}");
        assert_eq!(rec.seq, *seq, "{what}");
        let target = match rec.query.as_str() {
            "" => path.to_owned(),
            q => format!("{path}?{q}"),
        };
        let headers: Vec<(&str, &str)> = rec
            .headers
            .iter()
            .filter(|(k, _)| !["host", "content-length"].contains(&k.to_ascii_lowercase().as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answer = request(
            bridge.http_addr(),
            &rec.method,
            &target,
            &headers,
            rec.body.clone(),
        )
        .await;
        assert_eq!(answer.status, 200, "{what}: {}", answer.body);
        assert_eq!(answer.json()["printer"], slug, "{what}");

        let stream = live.until_topic(&event_topic).await;
        assert!(!stream.retain, "{what}: the event stream is not retained");
        let json = stream.json();
        assert_eq!(json["event"], *event, "{what}: {json}");
        assert_eq!(json["source"], "octoprint", "{what}");
        assert_eq!(json["printer_name"], DEVICE, "{what}");
        assert!(!stream.text().contains(API_SECRET), "{what}: secret leaked");

        for (leaf, value) in changes.iter() {
            let payload = match *value {
                "" => {
                    want.remove(*leaf);
                    continue;
                }
                ETA => eta_of(&json).into_bytes(),
                JPEG => rec.jpeg(),
                v => v.as_bytes().to_vec(),
            };
            want.insert(leaf.to_string(), payload);
        }

        let prefix = format!("print2mqtt/{slug}/");
        let snapshot = retained(broker.port, &format!("{prefix}+")).await;
        let last_event = &snapshot[&format!("{prefix}last_event")];
        assert_eq!(last_event.payload, stream.payload, "{what}: last_event");
        let got: BTreeMap<String, Vec<u8>> = snapshot
            .values()
            .inspect(|m| assert!(m.retain, "{what}: {} not retained", m.topic))
            .filter(|m| m.leaf() != "last_event")
            .map(|m| (m.leaf().to_owned(), m.payload.to_vec()))
            .collect();
        assert_eq!(show(&got), show(&want), "{what}: retained state");
        assert!(got == want, "{what}: retained bytes differ");
    }
    bridge.shutdown().await;
}

macro_rules! replay_tests {
    ($($name:ident: $file:literal on $path:literal as $slug:expr, $steps:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            replay($file, $path, $slug, $steps).await;
        }
    )*};
}

replay_tests! {
    simple_json_auto: "simple-json.jsonl" on "/webhook" as SIMPLE_SLUG, SIMPLE;
    simple_json_forced: "simple-json.jsonl" on "/webhook/octoprint" as SIMPLE_SLUG, SIMPLE;
    json_fulldata_auto: "json-fulldata.jsonl" on "/webhook" as SLUG, JSON_FULL;
    json_fulldata_forced: "json-fulldata.jsonl" on "/webhook/octoprint" as SLUG, JSON_FULL;
    form_fulldata_auto: "form-fulldata.jsonl" on "/webhook" as SLUG, FORM_FULL;
    form_fulldata_forced: "form-fulldata.jsonl" on "/webhook/octoprint" as SLUG, FORM_FULL;
    multipart_snapshot_auto: "multipart-fulldata-snapshot.jsonl" on "/webhook" as SLUG, MULTIPART;
    multipart_snapshot_forced: "multipart-fulldata-snapshot.jsonl" on "/webhook/octoprint" as SLUG, MULTIPART;
}
