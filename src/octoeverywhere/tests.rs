//! The pure parts of App Connection registration: the request, the answer
//! classification, the schedule and the URL rules.

use std::time::Duration;

use serde_json::json;

use super::AppState;
use super::api::{Call, Connection, Outcome, classify, event_types};
use super::schedule::{FIRST_RETRY, MAX_RETRY, next_delay, retry_delay};
use crate::config::urls::check_url;
use crate::config::{Config, EventFilter, Printer, Secret};

const CALLBACK: &str =
    "https://prints.example.org/webhook/octoeverywhere?printer=Ender+3%2Fa&token=s%26cr%C3%A9t%3D1";

fn config() -> Config {
    let mut c = Config::default();
    c.octoeverywhere.public_url = "https://prints.example.org/".into();
    c.auth.secret = Secret::new("s&crét=1");
    c.printers.insert(
        "Ender 3/a".into(),
        Printer {
            app_token: Secret::new("app-token-123"),
            events: EventFilter::from_names(["complete", "started", "cancelled"]),
            ..Printer::default()
        },
    );
    c.printers.insert("no-token".into(), Printer::default());
    c
}

fn connection() -> Connection {
    Connection::new(&config(), "Ender 3/a").unwrap()
}

fn echo(url: &str, types: serde_json::Value) -> Vec<u8> {
    json!({"CallbackUrl": url, "EventTypes": types, "WebhookUrl": url,
           "InclusiveEventTypesFilter": types})
    .to_string()
    .into_bytes()
}

#[test]
fn callback_carries_the_encoded_id_and_secret_and_is_shown_redacted() {
    let c = connection();
    assert_eq!(c.event_types, vec![1, 2, 3], "cancelled is a failure (3)");
    let ok = classify(Call::Register, 200, &echo(CALLBACK, json!([1, 2, 3])), &c);
    assert_eq!(ok, Outcome::Success, "the exact URL sent is {CALLBACK}");
    assert_eq!(
        c.callback_redacted(),
        Some(
            "https://prints.example.org/webhook/octoeverywhere?printer=Ender+3%2Fa&token=<redacted>"
        )
    );
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("s%26cr") && !shown.contains("app-token-123"),
        "{shown}"
    );
    assert_eq!(
        Connection::all(&config()).len(),
        1,
        "only printers with a token"
    );
}

#[test]
fn a_printer_without_any_secret_is_refused_before_calling() {
    let mut cfg = config();
    cfg.auth.secret = Secret::default();
    let c = Connection::new(&cfg, "Ender 3/a").unwrap();
    assert_eq!(c.callback_redacted(), None);
    let words = Outcome::NoSecret.describe("Ender 3/a");
    assert!(words.contains("auth.secret"), "{words}");
    assert!(Outcome::NoSecret.is_permanent());
    // A per-printer secret is enough.
    cfg.printers.get_mut("Ender 3/a").unwrap().secret = Secret::new("own");
    assert!(
        Connection::new(&cfg, "Ender 3/a")
            .unwrap()
            .callback_redacted()
            .is_some()
    );
}

#[test]
fn event_names_map_to_sorted_unique_codes() {
    let names = |n: &[&str]| EventFilter::from_names(n).kinds().to_vec();
    assert_eq!(event_types(&[]), Vec::<i64>::new());
    assert_eq!(
        event_types(&names(&[
            "failed",
            "cancelled",
            "custom",
            "unknown",
            "test",
            "progress"
        ])),
        vec![3, 6, 16]
    );
}

#[test]
fn answers_are_classified_as_documented() {
    let c = connection();
    let body = br#"{"Error":"CallbackUrl must be https"}"#;
    assert_eq!(
        classify(Call::Register, 400, body, &c),
        Outcome::Rejected {
            status: Some(400),
            message: "CallbackUrl must be https".into()
        }
    );
    assert_eq!(classify(Call::Register, 603, b"", &c), Outcome::NotFound);
    assert_eq!(classify(Call::Test, 604, b"", &c), Outcome::Revoked);
    for status in [600, 601, 602, 605, 500, 502, 503, 429, 301] {
        let o = classify(Call::Register, status, b"busy", &c);
        assert_eq!(o.state(), AppState::Retrying, "{status}");
        assert_eq!(o.status(), Some(status));
        assert!(!o.is_permanent());
    }
    for (status, state) in [
        (400, AppState::Rejected),
        (606, AppState::Rejected),
        (603, AppState::NotFound),
        (604, AppState::Revoked),
    ] {
        let o = classify(Call::Register, status, b"", &c);
        assert_eq!(o.state(), state);
        assert!(o.is_permanent(), "{status}");
    }
    assert_eq!(classify(Call::Test, 200, b"", &c), Outcome::Success);
    assert_eq!(classify(Call::Unregister, 204, b"", &c), Outcome::Success);
    let revoked = Outcome::Revoked.describe("Ender 3/a");
    assert!(
        revoked.contains("revoked or has expired") && revoked.contains("app_token"),
        "{revoked}"
    );
}

#[test]
fn a_registration_answer_must_echo_what_was_sent() {
    let c = connection();
    let register = |body: &[u8]| classify(Call::Register, 200, body, &c);
    assert_eq!(register(b""), Outcome::Success, "nothing echoed");
    assert_eq!(register(b"not json"), Outcome::Success);
    assert_eq!(
        register(&echo(CALLBACK, json!([3, 2, 1]))),
        Outcome::Success
    );
    let respelled = CALLBACK
        .replace("Ender+3", "Ender%203")
        .replace("%2Fa", "/a");
    assert_eq!(
        register(&echo(&respelled, json!([1, 2, 3]))),
        Outcome::Success,
        "equivalent percent-encoding"
    );
    let other_token = CALLBACK.replace("%3D1", "%3D2");
    assert_eq!(
        register(&echo(&other_token, json!([1, 2, 3]))).state(),
        AppState::Mismatch
    );
    let nested =
        json!({"Result": {"WebhookUrl": CALLBACK, "InclusiveEventTypesFilter": [1, 2, 3]}});
    assert_eq!(register(nested.to_string().as_bytes()), Outcome::Success);
    let other_url = register(&echo(
        "https://elsewhere.example/x?token=old",
        json!([1, 2, 3]),
    ));
    assert_eq!(other_url.state(), AppState::Mismatch);
    let words = other_url.describe("Ender 3/a");
    assert!(!words.contains("old") && !words.contains("s%26"), "{words}");
    assert_eq!(
        register(&echo(CALLBACK, json!([1]))).state(),
        AppState::Mismatch
    );
    assert!(!register(&echo(CALLBACK, json!(null))).is_success());

    let mut cfg = config();
    cfg.printers.get_mut("Ender 3/a").unwrap().events.clear();
    let all = Connection::new(&cfg, "Ender 3/a").unwrap();
    assert_eq!(
        classify(Call::Register, 200, &echo(CALLBACK, json!(null)), &all),
        Outcome::Success,
        "an empty filter may come back as null"
    );
}

#[test]
fn messages_are_one_short_line_without_secrets() {
    let c = connection();
    let quoted = format!("{{\"message\": \"bad URL {CALLBACK} for app-token-123\\n\\tsee docs\"}}");
    let Outcome::Rejected { message, .. } = classify(Call::Register, 400, quoted.as_bytes(), &c)
    else {
        panic!("400 is a rejection");
    };
    assert_eq!(message, "bad URL <redacted> for <redacted> see docs");
    let long = "x".repeat(5000);
    let Outcome::Temporary { detail, .. } = classify(Call::Register, 500, long.as_bytes(), &c)
    else {
        panic!("500 is temporary");
    };
    assert!(detail.starts_with("OctoEverywhere answered 500: xxx") && detail.len() < 400);
}

#[test]
fn backoff_doubles_to_a_cap_with_bounded_jitter() {
    assert_eq!(retry_delay(1, 0.0), FIRST_RETRY);
    assert_eq!(retry_delay(2, 0.0), FIRST_RETRY * 2);
    assert_eq!(retry_delay(3, 0.0), FIRST_RETRY * 4);
    assert_eq!(retry_delay(20, 0.0), MAX_RETRY);
    assert_eq!(retry_delay(u32::MAX, 0.0), MAX_RETRY);
    assert_eq!(retry_delay(1, 1.0), FIRST_RETRY.mul_f64(1.2));
    assert_eq!(retry_delay(1, -1.0), FIRST_RETRY.mul_f64(0.8));
    assert_eq!(
        retry_delay(1, 7.0),
        FIRST_RETRY.mul_f64(1.2),
        "jitter clamped"
    );
}

#[test]
fn success_renews_permanent_failures_stop_and_the_rest_retry() {
    let renew = Duration::from_secs(30 * 86_400);
    assert_eq!(next_delay(&Outcome::Success, 0, renew, 1.0), Some(renew));
    for permanent in [Outcome::Revoked, Outcome::NotFound, Outcome::NoSecret] {
        assert_eq!(next_delay(&permanent, 1, renew, 0.0), None);
    }
    let temporary = Outcome::Temporary {
        status: Some(503),
        detail: String::new(),
    };
    assert_eq!(next_delay(&temporary, 3, renew, 0.0), Some(FIRST_RETRY * 4));
    let mismatch = Outcome::Mismatch(String::new());
    assert_eq!(next_delay(&mismatch, 1, renew, 0.0), Some(FIRST_RETRY));
}

#[test]
fn urls_must_be_https_except_on_loopback() {
    for ok in [
        "https://prints.example.org",
        "https://prints.example.org/print2mqtt/",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        assert_eq!(check_url(ok), Ok(()), "{ok}");
    }
    for bad in [
        "",
        "prints.example.org",
        "http://prints.example.org",
        "http://192.168.1.5:8080",
        "ftp://x",
        "https://x.org/?a=1",
        "https://x.org/#f",
        "https://user:pw@x.org",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn state_names_are_the_published_ones() {
    let names: Vec<&str> = AppState::ALL.iter().map(|s| s.name()).collect();
    assert_eq!(
        names,
        [
            "pending",
            "registered",
            "mismatch",
            "retrying",
            "rejected",
            "not_found",
            "revoked"
        ]
    );
    for s in AppState::ALL {
        assert_eq!(serde_json::to_value(s).unwrap(), s.name());
    }
}
