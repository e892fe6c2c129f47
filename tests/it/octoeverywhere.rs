//! Every OctoEverywhere sample through the real bridge into a real Mosquitto:
//! exact topics, payloads and retain flags.

use crate::common;

use common::*;
use print2mqtt::app;

const FILE: &str = "CE3V2_benchy_0.2mm_PLA.gcode";
const SNAP: &str = "https://snapshots.octoeverywhere.com/n/HY1NSBS09ILRK28JQWO5QXTPUZZTPCQP.jpg";
const ETA: &str = "<eta>";

/// (sample, event name, expected retained values published, in order).
/// `<eta>` stands for received_at + time_remaining, checked separately.
/// Retained values a webhook publishes: (leaf, payload).
type Values = Vec<(&'static str, &'static str)>;

fn expectations() -> Vec<(&'static str, &'static str, Values)> {
    let t = |v: &[(&'static str, &'static str)]| v.to_vec();
    vec![
        (
            "01-print-started.json",
            "started",
            t(&[
                ("state", "printing"),
                ("problem", "OFF"),
                ("progress", "0"),
                ("print_duration", "0"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "02-print-complete.json",
            "complete",
            t(&[
                ("state", "complete"),
                ("progress", "100"),
                ("time_remaining", "0"),
                ("eta", ""),
                ("print_duration", "5371"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "03-print-failed-cancelled.json",
            "cancelled",
            t(&[
                ("state", "cancelled"),
                ("progress", "22"),
                ("time_remaining", "0"),
                ("eta", ""),
                ("print_duration", "1204"),
                ("file", FILE),
                ("error", "cancelled"),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "04-print-paused.json",
            "paused",
            t(&[
                ("state", "paused"),
                ("progress", "38"),
                ("time_remaining", "3377"),
                ("eta", ETA),
                ("print_duration", "2113"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "05-print-resumed.json",
            "resumed",
            t(&[
                ("state", "printing"),
                ("problem", "OFF"),
                ("progress", "38"),
                ("time_remaining", "3350"),
                ("eta", ETA),
                ("print_duration", "2301"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "06-print-progress-hourly.json",
            "progress",
            t(&[
                ("state", "printing"),
                ("progress", "63"),
                ("time_remaining", "2112"),
                ("eta", ETA),
                ("print_duration", "3600"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "06-print-progress.json",
            "progress",
            t(&[
                ("state", "printing"),
                ("progress", "50"),
                ("time_remaining", "2990"),
                ("eta", ETA),
                ("print_duration", "3021"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "07-gadget-possible-failure-warning.json",
            "failure_warning",
            t(&[
                ("problem", "ON"),
                ("progress", "31"),
                ("time_remaining", "4010"),
                ("eta", ETA),
                ("print_duration", "1807"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "08-gadget-paused-print.json",
            "failure_paused",
            t(&[
                ("state", "paused"),
                ("problem", "ON"),
                ("progress", "33"),
                ("time_remaining", "3950"),
                ("eta", ETA),
                ("print_duration", "1930"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "09-error.json",
            "error",
            t(&[
                ("state", "error"),
                ("problem", "ON"),
                ("progress", "44"),
                ("time_remaining", "0"),
                ("eta", ""),
                ("print_duration", "2410"),
                ("file", FILE),
                (
                    "error",
                    "Thermal Runaway, system stopped! Heater_ID: bed - Printer halted. kill() called!",
                ),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "10-first-layer-complete.json",
            "first_layer_complete",
            t(&[
                ("state", "printing"),
                ("progress", "3"),
                ("time_remaining", "5301"),
                ("eta", ETA),
                ("print_duration", "212"),
                ("file", FILE),
                ("z", "0.2"),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "11-filament-change-required.json",
            "filament_change",
            t(&[
                ("state", "needs_attention"),
                ("progress", "47"),
                ("time_remaining", "2900"),
                ("eta", ETA),
                ("print_duration", "2650"),
                ("file", FILE),
                ("error", "M600"),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "12-user-interaction-required.json",
            "user_interaction",
            t(&[
                ("state", "needs_attention"),
                ("progress", "48"),
                ("time_remaining", "2860"),
                ("eta", ETA),
                ("print_duration", "2700"),
                ("file", FILE),
                ("error", "echo:busy: paused for user"),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "13-non-supporter-notification-limit.json",
            "notification_limit",
            t(&[
                ("progress", "48"),
                ("time_remaining", "2850"),
                ("eta", ETA),
                ("print_duration", "2710"),
                ("file", FILE),
            ]),
        ),
        (
            "14-third-layer-complete.json",
            "third_layer_complete",
            t(&[
                ("state", "printing"),
                ("progress", "7"),
                ("time_remaining", "5020"),
                ("eta", ETA),
                ("print_duration", "540"),
                ("file", FILE),
                ("z", "0.6"),
                ("snapshot_url", SNAP),
            ]),
        ),
        (
            "15-bed-cooldown-complete.json",
            "bed_cooldown_complete",
            t(&[
                ("state", "idle"),
                ("progress", "100"),
                ("time_remaining", "0"),
                ("eta", ""),
                ("print_duration", "6012"),
                ("file", FILE),
                ("snapshot_url", SNAP),
            ]),
        ),
        ("16-test-notification.json", "test", t(&[])),
    ]
}

fn rfc3339(s: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_publishes_exactly_the_topics_it_changes() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), OE_SECRET)).await.unwrap();
    let mut live = Subscriber::new(broker.port, "print2mqtt/#").await;
    bridge.health().wait_connected().await;
    let prefix = format!("print2mqtt/{OE_SLUG}/");
    let mut ids = std::collections::HashSet::new();
    let mut published = std::collections::HashMap::new();

    for (sample, event, expected) in expectations() {
        let answer = post_json(
            bridge.http_addr(),
            "/webhook",
            fixture(&format!("octoeverywhere/{sample}")),
        )
        .await;
        assert_eq!(answer.status, 200, "{sample}: {}", answer.body);
        assert_eq!(answer.json()["printer"], OE_SLUG);

        let got = printer_only(live.until_leaf("event").await);
        for m in &got {
            assert!(
                m.topic.starts_with(&prefix),
                "{sample}: stray topic {}",
                m.topic
            );
        }
        let (last_event, stream) = (&got[got.len() - 2], &got[got.len() - 1]);
        assert_eq!(last_event.leaf(), "last_event", "{sample}");
        assert_eq!(
            last_event.payload, stream.payload,
            "{sample}: same JSON on both"
        );
        let json = stream.json();
        assert_eq!(json["event"], event, "{sample}");
        assert_eq!(json["source"], "octoeverywhere");
        assert_eq!(json["printer_name"], "Ender 3 V2");
        assert!(
            !stream.text().contains(OE_SECRET),
            "{sample}: secret leaked"
        );
        assert!(
            ids.insert(json["id"].as_str().unwrap().to_owned()),
            "ids are unique"
        );

        let values: Vec<(&str, String)> = got[..got.len() - 2]
            .iter()
            .map(|m| (m.leaf(), m.text()))
            .collect();
        let want: Vec<(&str, String)> = expected
            .iter()
            .map(|(leaf, v)| {
                let v = if *v == ETA {
                    let received = rfc3339(json["received_at"].as_str().unwrap());
                    let remaining = json["time_remaining"].as_i64().unwrap();
                    let eta = received + time::Duration::seconds(remaining);
                    assert_eq!(
                        json["eta"],
                        eta.format(&time::format_description::well_known::Rfc3339)
                            .unwrap()
                    );
                    eta.format(&time::format_description::well_known::Rfc3339)
                        .unwrap()
                } else {
                    v.to_string()
                };
                (*leaf, v)
            })
            .collect();
        // Only what differs from the value last published goes out.
        let want: Vec<(&str, String)> = want
            .into_iter()
            .filter(|(leaf, v)| published.insert(*leaf, v.clone()).as_ref() != Some(v))
            .collect();
        assert_eq!(values, want, "{sample}");
    }

    // A fresh subscriber sees the retained state of the last webhooks.
    let snapshot = retained(broker.port, "print2mqtt/#").await;
    let get = |leaf: &str| snapshot.get(&format!("{prefix}{leaf}"));
    for m in snapshot.values() {
        assert!(m.retain, "{} must be retained", m.topic);
    }
    assert!(get("event").is_none(), "the event stream is not retained");
    assert!(get("eta").is_none(), "an empty retained eta clears it");
    let expect = [
        ("state", "idle"),
        ("problem", "ON"),
        ("progress", "100"),
        ("time_remaining", "0"),
        ("print_duration", "6012"),
        ("file", FILE),
        ("z", "0.6"),
        ("error", "echo:busy: paused for user"),
        ("snapshot_url", SNAP),
    ];
    for (leaf, value) in expect {
        assert_eq!(get(leaf).map(Msg::text).as_deref(), Some(value), "{leaf}");
    }
    assert_eq!(get("last_event").unwrap().json()["event"], "test");
    assert_eq!(snapshot["print2mqtt/bridge/state"].text(), "online");
    let printer_topics = snapshot.keys().filter(|t| t.starts_with(&prefix)).count();
    assert_eq!(printer_topics, expect.len() + 1, "{:?}", snapshot.keys());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_type_is_accepted_and_changes_nothing() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), "s")).await.unwrap();
    // Only the printer's topics: the bridge's retained `online` may arrive
    // live after the subscription.
    let mut live = Subscriber::new(broker.port, "print2mqtt/ender3/+").await;
    let body = r#"{"PrinterId":"ender3","SecretKey":"s","EventType":99,"Progress":50,"FileName":"x.gcode","NewThing":{"a":[1]}}"#;
    let answer = post_json(bridge.http_addr(), "/webhook/octoeverywhere", body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got = printer_only(live.until_leaf("event").await);
    let topics: Vec<&str> = got.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["print2mqtt/ender3/last_event", "print2mqtt/ender3/event"]
    );
    let json = got.last().unwrap().json();
    assert_eq!(
        (json["event"].as_str(), json["code"].as_i64()),
        (Some("unknown"), Some(99))
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_in_any_shape_nulls_and_unicode_names() {
    let broker = Mosquitto::start();
    let bridge = app::start(config(&broker.url(), "s")).await.unwrap();
    let mut live = Subscriber::new(broker.port, "print2mqtt/#").await;
    let body = r#"{"PrinterId":"Prusa-MK4","SecretKey":"s","EventType":"6","PrinterName":"Prüsa 🖨️ «MK4» 打印机",
        "Progress":21.7,"DurationSec":"50","TimeRemainingSec":"605","ZOffsetMM":"0.30","CurrentLayer":12.0,
        "TotalLayers":"180","FileName":null,"PrintId":null,"PlatformErrorCode":null,"SnapshotUrl":null}"#;
    let answer = post_json(bridge.http_addr(), "/webhook", body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let got = live.until_leaf("event").await;
    let values: Vec<(String, String)> = got
        .iter()
        .filter(|m| m.topic.starts_with("print2mqtt/prusa-mk4/") && !m.topic.ends_with("event"))
        .map(|m| (m.leaf().to_owned(), m.text()))
        .filter(|(leaf, _)| leaf != "eta")
        .collect();
    let want: Vec<(String, String)> = [
        ("state", "printing"),
        ("progress", "21"),
        ("time_remaining", "605"),
        ("print_duration", "50"),
        ("z", "0.3"),
        ("layer", "12"),
        ("total_layers", "180"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(values, want);
    let json = got.last().unwrap().json();
    assert_eq!(json["printer_name"], "Prüsa 🖨️ «MK4» 打印机");
    assert_eq!(json["layer"], 12);
    assert!(json.get("file").is_none() && json.get("print_id").is_none());
    bridge.shutdown().await;
}
