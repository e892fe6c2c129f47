//! Unit tests of the OctoPrint-Webhooks dialect: every topic, the test
//! webhooks, the fields that change type between requests, and every
//! encoding through [`crate::ingest::parse`].

use serde_json::json;
use time::macros::datetime;
use ulid::Ulid;

use super::*;
use crate::ingest::{self, Dialect, Webhook};

fn rx() -> Reception {
    Reception {
        at: datetime!(2026-11-23 10:04:55 UTC),
        id: Ulid::nil(),
    }
}

fn event(v: Value) -> Event {
    parse(v.as_object().unwrap(), None, rx()).unwrap().event
}

fn default_template(topic: &str, extra: Value) -> Value {
    json!({"deviceIdentifier": "Ender Ä", "apiSecret": "s", "topic": topic,
           "message": "m", "extra": extra})
}

#[test]
fn every_topic_has_its_kind() {
    for (topic, kind) in TOPICS {
        assert_eq!(
            event(default_template(topic, json!({}))).event,
            kind,
            "{topic}"
        );
    }
    let lower = event(default_template(" print done ", json!({})));
    assert_eq!(
        lower.event,
        EventKind::Complete,
        "case and spaces are forgiven"
    );
}

#[test]
fn a_cancel_is_print_failed_with_reason_cancelled() {
    let e = event(default_template(
        "Print Failed",
        json!({"name": "a.gcode", "reason": "cancelled", "progress": 25, "time": 7.41}),
    ));
    assert_eq!(e.event, EventKind::Cancelled);
    assert_eq!((e.progress, e.print_duration), (Some(25), Some(7)));
    let e = event(default_template("Print Failed", json!({"reason": "error"})));
    assert_eq!(e.event, EventKind::Failed);
    let e = event(default_template(
        "Custom Event",
        json!({"reason": "cancelled"}),
    ));
    assert_eq!(
        e.event,
        EventKind::Custom,
        "only Print Failed becomes a cancel"
    );
}

#[test]
fn test_webhooks_are_tests_whatever_their_topic() {
    let sample = json!({"name": "example.gcode", "path": "example.gcode", "origin": "local",
        "size": 242038, "owner": "example_user", "time": 50.237335886, "popup": true, "hook_index": 0});
    for (topic, _) in TOPICS {
        let e = event(default_template(topic, sample.clone()));
        assert_eq!(e.event, EventKind::Test, "{topic}");
        assert_eq!(e.topic, None);
    }
    let form_style = json!({"popup": "True"});
    assert_eq!(
        event(default_template("Print Done", form_style)).event,
        EventKind::Test
    );
    let get_style = json!([
        "name",
        "path",
        "origin",
        "size",
        "owner",
        "time",
        "popup",
        "hook_index"
    ]);
    assert_eq!(
        event(default_template("Print Done", get_style)).event,
        EventKind::Test
    );
    let no_popup = json!({"name": "a.gcode", "popup": false});
    assert_eq!(
        event(default_template("Print Done", no_popup)).event,
        EventKind::Complete
    );
}

#[test]
fn custom_and_unknown_topics_keep_the_senders_words() {
    let mut body = default_template("Custom Event", json!({"name": "a.gcode"}));
    body["message"] = json!("Resumed after pause");
    let e = event(body);
    assert_eq!(e.event, EventKind::Custom);
    assert_eq!(e.topic.as_deref(), Some("Resumed after pause"));
    assert_eq!(e.file.as_deref(), Some("a.gcode"));

    let e = event(json!({"deviceIdentifier": "p", "topic": "Custom Event"}));
    assert_eq!(
        e.topic.as_deref(),
        Some("Custom Event"),
        "no message: the topic"
    );

    let e = event(default_template("Filament Runout", json!({})));
    assert_eq!(e.event, EventKind::Unknown);
    assert_eq!(e.topic.as_deref(), Some("Filament Runout"));
    let e = event(json!({"deviceIdentifier": "p"}));
    assert_eq!((e.event, e.topic), (EventKind::Unknown, None));
}

#[test]
fn full_data_template_maps_every_value() {
    let e = event(json!({
        "deviceIdentifier": "Drucker Ä/Ender-3 \"#1\" 🖨", "apiSecret": "s3cr3t-äß€",
        "topic": "Print Progress", "message": "Your print is 30 % complete.", "extra": {},
        "state": {"text": "Operational", "flags": {"printing": false}},
        "job": {"file": {"name": "Bench Würfel.gcode", "path": "sub/Bench Würfel.gcode"}},
        "progress": {"completion": 30.026905829596412, "printTime": 8, "printTimeLeft": 17},
        "currentZ": 0.4, "offsets": {}, "meta": {"hash": "x"}, "currentTime": 1795421362,
        "unknownKey": [1, {"a": null}]
    }));
    assert_eq!(
        e.event,
        EventKind::Progress,
        "the topic wins over the state flags"
    );
    assert_eq!(e.source, Source::OctoPrint);
    assert_eq!(e.printer_id, "Drucker Ä/Ender-3 \"#1\" 🖨");
    assert_eq!(
        e.printer_name.as_deref(),
        Some("Drucker Ä/Ender-3 \"#1\" 🖨")
    );
    assert_eq!(e.file.as_deref(), Some("Bench Würfel.gcode"));
    assert_eq!(e.progress, Some(30));
    assert_eq!((e.print_duration, e.time_remaining), (Some(8), Some(17)));
    assert_eq!(
        crate::event::format_time(e.eta.unwrap()),
        "2026-11-23T10:05:12Z"
    );
    assert_eq!(e.z, Some(0.4));
    assert_eq!((e.error, e.code, e.topic), (None, None, None));
}

#[test]
fn values_that_change_type_never_fail() {
    let shapes = [
        json!({"meta": "", "currentZ": null, "progress": {"completion": 100}}),
        json!({"meta": {"a": 1}, "currentZ": 1.2, "progress": {"completion": 100.0}}),
        json!({"meta": [], "currentZ": "1.2", "progress": {"completion": "100"}}),
        json!({"meta": 5, "currentZ": "", "progress": "{\"completion\": 100.0}"}),
        json!({"meta": null, "currentZ": {"z": 1}, "progress": {"completion": [100]},
               "job": "", "extra": "", "state": 3}),
    ];
    for (i, mut body) in shapes.into_iter().enumerate() {
        body["deviceIdentifier"] = json!("p");
        body["topic"] = json!("Print Progress");
        let e = parse(body.as_object().unwrap(), None, rx())
            .unwrap_or_else(|err| panic!("shape {i}: {err}"))
            .event;
        let want_progress = if i < 4 { Some(100) } else { None };
        assert_eq!(e.progress, want_progress, "shape {i}");
        let want_z = if matches!(i, 1 | 2) { Some(1.2) } else { None };
        assert_eq!(e.z, want_z, "shape {i}");
    }
}

#[test]
fn fallbacks_of_the_default_template() {
    let e = event(default_template("Print Progress", json!({})));
    assert_eq!(e.progress, None, "message `m` carries no milestone");
    let mut body = default_template("Print Progress", json!({}));
    body["message"] = json!("Your print is 40 % complete.");
    assert_eq!(event(body).progress, Some(40));
    let e = event(default_template(
        "Print Paused",
        json!({"path": "folder/x.gcode", "progress": 36, "position": {"z": 0.4, "x": null}}),
    ));
    assert_eq!(
        (e.file.as_deref(), e.progress, e.z),
        (Some("x.gcode"), Some(36), Some(0.4))
    );
    let e = event(default_template(
        "Print Started",
        json!({"name": "x.gcode"}),
    ));
    assert_eq!(
        (e.progress, e.print_duration),
        (Some(0), Some(0)),
        "a start is 0 %"
    );
    let e = event(default_template(
        "Print Done",
        json!({"time": 26.619816969999874}),
    ));
    assert_eq!(e.print_duration, Some(26));
    let e = event(default_template(
        "Error",
        json!({"error": "Thermal Runaway", "logs": ["a"]}),
    ));
    assert_eq!(
        (e.event, e.error.as_deref()),
        (EventKind::Error, Some("Thermal Runaway"))
    );
}

#[test]
fn dot_notation_templates_with_single_values() {
    let e = event(json!({"deviceIdentifier": "p", "topic": "Print Progress",
        "fileName": "dot.gcode", "progress": 42.7, "message": "x"}));
    assert_eq!(
        (e.file.as_deref(), e.progress),
        (Some("dot.gcode"), Some(42))
    );
    let e = event(json!({"deviceIdentifier": "p", "topic": "Print Progress",
        "progress": "12.5", "job": {"file": {"name": "job.gcode"}}, "fileName": "dot.gcode"}));
    assert_eq!(
        (e.file.as_deref(), e.progress),
        (Some("job.gcode"), Some(12)),
        "form text"
    );
    let e = event(json!({"deviceIdentifier": "p", "topic": "Print Progress",
        "message": "10.110612855007474 % complete - Your print is 10 % complete."}));
    assert_eq!(e.progress, Some(10), "the README's dot-notation message");
    let e = event(json!({"deviceIdentifier": "p", "topic": "Print Progress",
        "progress": ["completion", "filepos"], "message": "Your print is 20 % complete."}));
    assert_eq!(e.progress, Some(20), "a GET-flattened object is no value");
}

#[test]
fn milestones_are_read_only_from_numbers_before_a_percent_sign() {
    assert_eq!(percent_in("Your print is 30 % complete."), Some(30.0));
    assert_eq!(percent_in("Fortschritt: 12.5%"), Some(12.5));
    assert_eq!(percent_in("at None % - Your print is 7% done"), Some(7.0));
    assert_eq!(percent_in("über 100 %"), Some(100.0));
    assert_eq!(percent_in("150 %"), None);
    assert_eq!(percent_in("no percent 30"), None);
    assert_eq!(percent_in("% 30"), None);
    assert_eq!(
        milestone(EventKind::Paused, Some("30 %")),
        None,
        "only for progress"
    );
}

#[test]
fn printer_comes_from_device_identifier_or_the_query() {
    let body = json!({"topic": "Print Done", "deviceIdentifier": "  "});
    let map = body.as_object().unwrap();
    assert_eq!(parse(map, None, rx()).unwrap_err(), IngestError::NoPrinter);
    let p = parse(map, Some("from-query"), rx()).unwrap();
    assert_eq!(p.event.printer_id, "from-query");
    assert_eq!(p.event.printer_name, None);
    assert!(
        IngestError::NoPrinter
            .to_string()
            .contains("`deviceIdentifier`")
    );
}

#[test]
fn the_secret_is_kept_out_of_the_event() {
    let p = parse(
        default_template("Print Done", json!({}))
            .as_object()
            .unwrap(),
        None,
        rx(),
    )
    .unwrap();
    assert_eq!(p.secret.as_deref(), Some("s"));
    assert!(!p.event.to_json().contains("\"s\""));
}

// ---- every encoding, through ingest::parse -------------------------------

fn via(
    body: &[u8],
    ct: Option<&str>,
    query: &[(&str, &str)],
) -> Result<ingest::Parsed, IngestError> {
    let query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let hook = Webhook {
        body,
        content_type: ct,
        query: &query,
        dialect: None,
        limits: ingest::Limits::default(),
    };
    ingest::parse(&hook, rx())
}

const FORM: &[u8] = b"deviceIdentifier=Ender&apiSecret=s&topic=Print+Progress\
    &message=Your+print+is+20+%25+complete.&extra=%7B%7D&currentZ=0.2\
    &progress=%7B%22completion%22%3A+20.04%2C+%22printTime%22%3A+%226%22%7D&meta=";

#[test]
fn form_bodies() {
    let p = via(FORM, Some("application/x-www-form-urlencoded"), &[]).unwrap();
    let e = &p.event;
    assert_eq!(
        (e.event, e.progress, e.print_duration, e.z),
        (EventKind::Progress, Some(20), Some(6), Some(0.2))
    );
    assert_eq!(
        (e.printer_id.as_str(), p.secret.as_deref()),
        ("Ender", Some("s"))
    );
    let unlabelled = via(FORM, None, &[]).unwrap();
    assert_eq!(unlabelled.event.progress, Some(20));
    let mislabelled = via(FORM, Some("application/json"), &[]).unwrap();
    assert_eq!(mislabelled.event.progress, Some(20), "form sent as JSON");
    let err = via(
        b"topic=Print+Done&deviceIdentifier=p&job=%7B%22file%22%3A",
        Some("application/x-www-form-urlencoded"),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("`job`"), "{err}");
}

#[test]
fn json_bodies_and_json_sent_as_form() {
    let body = br#"{"deviceIdentifier":"p","topic":"Print Paused","extra":{"progress":36}}"#;
    for ct in [
        Some("application/json"),
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        None,
    ] {
        let e = via(body, ct, &[]).unwrap().event;
        assert_eq!(
            (e.event, e.progress),
            (EventKind::Paused, Some(36)),
            "{ct:?}"
        );
    }
}

#[test]
fn get_with_the_data_in_the_query_string() {
    let q = [
        ("token", "t"),
        ("deviceIdentifier", "Ender"),
        ("apiSecret", "s"),
        ("topic", "Print Failed"),
        ("message", "x"),
        ("extra", "name"),
        ("extra", "reason"),
        ("currentZ", "0.6"),
    ];
    // The plugin's GET still sends its Content-Type header.
    for ct in [None, Some("application/json")] {
        let p = via(b"", ct, &q).unwrap();
        assert_eq!(
            (p.event.event, p.event.z),
            (EventKind::Failed, Some(0.6)),
            "{ct:?}"
        );
        assert_eq!(p.secret.as_deref(), Some("s"));
    }
    assert_eq!(
        via(b"", None, &[("token", "t")]).unwrap_err(),
        IngestError::Empty
    );
    assert_eq!(
        via(b"", None, &[("tenantId", "x")]).unwrap_err(),
        IngestError::Empty
    );
}

#[test]
fn api_secret_in_the_query_of_a_post() {
    let p = via(
        br#"{"deviceIdentifier":"p","topic":"Print Done"}"#,
        None,
        &[("apiSecret", "q")],
    )
    .unwrap();
    assert_eq!(p.secret.as_deref(), Some("q"));
}

/// A multipart body like the plugin's, with an optional `snapshot.jpg` part.
fn multipart(file: Option<&[u8]>) -> Vec<u8> {
    let mut b =
        b"--b0\r\nContent-Disposition: form-data; name=\"deviceIdentifier\"\r\n\r\nEnder\r\n\
        --b0\r\nContent-Disposition: form-data; name=\"topic\"\r\n\r\nPrint Progress\r\n\
        --b0\r\nContent-Disposition: form-data; name=\"progress\"\r\n\r\n\
        {\"completion\": 50.19, \"printTimeLeft\": 11}\r\n"
            .to_vec();
    if let Some(file) = file {
        b.extend_from_slice(
            b"--b0\r\nContent-Disposition: form-data; name=\"snapshot\"; \
            filename=\"snapshot.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n",
        );
        b.extend_from_slice(file);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--b0--\r\n");
    b
}

#[test]
fn multipart_bodies_with_and_without_a_snapshot() {
    let ct = Some("multipart/form-data; boundary=b0");
    let jpeg = b"\xFF\xD8\xFF\xDBjpeg-bytes\xFF\xD9";
    let e = via(&multipart(Some(jpeg)), ct, &[]).unwrap().event;
    assert_eq!((e.progress, e.time_remaining), (Some(50), Some(11)));
    assert_eq!(e.snapshot.as_deref(), Some(&jpeg[..]));

    let e = via(&multipart(None), ct, &[]).unwrap().event;
    assert_eq!((e.progress, e.snapshot), (Some(50), None));

    let e = via(&multipart(Some(b"GIF89a....")), ct, &[]).unwrap().event;
    assert_eq!(
        (e.progress, e.snapshot),
        (Some(50), None),
        "a bad image is dropped"
    );

    let with = multipart(Some(jpeg));
    let err = via(&with[..with.len() / 2], ct, &[]).unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    let err = via(&with, Some("multipart/form-data; boundary=nope"), &[]).unwrap_err();
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
}

#[test]
fn octoeverywhere_stays_json_only() {
    let hook = |body: &'static [u8], ct, dialect| Webhook {
        body,
        content_type: ct,
        query: &[],
        dialect,
        limits: ingest::Limits::default(),
    };
    let form = hook(
        b"PrinterId=p&EventType=1",
        Some("application/x-www-form-urlencoded"),
        Some(Dialect::OctoEverywhere),
    );
    let err = ingest::parse(&form, rx()).unwrap_err();
    assert_eq!(err.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let detected = hook(
        b"PrinterId=p&EventType=1",
        Some("application/x-www-form-urlencoded"),
        None,
    );
    assert_eq!(
        ingest::parse(&detected, rx()).unwrap_err().status(),
        http::StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let forced = hook(br#"{"topic":"Print Done"}"#, None, Some(Dialect::OctoPrint));
    assert_eq!(
        ingest::parse(&forced, rx()).unwrap_err(),
        IngestError::NoPrinter
    );
}
