//! The registrar's schedule on paused tokio time, against the fake
//! OctoEverywhere API on loopback: renewal every `renew_days`, capped
//! exponential backoff with jitter for temporary failures (network included),
//! and no call ever again after a permanent one.

use crate::common;

use std::time::Duration;

use common::fake_oe::{Answer, FakeOe};
use print2mqtt::config::{Config, Printer, Secret};
use print2mqtt::octoeverywhere::api::Connection;
use print2mqtt::octoeverywhere::client::Client;
use print2mqtt::octoeverywhere::registrar::Registrar;
use print2mqtt::octoeverywhere::schedule::{FIRST_RETRY, JITTER, MAX_RETRY};
use print2mqtt::octoeverywhere::{AppState, RegistrationStatus, Registrations};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
/// Virtual time a test waits for a call before failing.
const YEAR: Duration = Duration::from_secs(366 * 24 * 60 * 60);

struct Running {
    fake: FakeOe,
    table: Registrations,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

/// A registrar for printer `P1` against a fresh fake answering `script`,
/// renewing every `renew_days`.
async fn registrar(script: Vec<Answer>, renew_days: u32) -> Running {
    let fake = FakeOe::start().await;
    fake.script(script);
    let mut config = Config::default();
    config.auth.secret = Secret::new("secret");
    config.octoeverywhere.public_url = "https://prints.example.org".into();
    config.octoeverywhere.renew_days = renew_days;
    config.printers.insert(
        "P1".into(),
        Printer {
            app_token: Secret::new("token"),
            ..Printer::default()
        },
    );
    let connection = Connection::new(&config, "P1").unwrap();
    let table = Registrations::new();
    table.set(RegistrationStatus::pending(&connection));
    let shutdown = CancellationToken::new();
    let task = Registrar {
        client: Client::new(&fake.url()).unwrap(),
        connection,
        table: table.clone(),
        pipeline: None,
        renew: print2mqtt::octoeverywhere::renew_interval(renew_days),
        shutdown: shutdown.clone(),
    }
    .spawn();
    Running {
        fake,
        table,
        task,
        shutdown,
    }
}

fn gaps(fake: &FakeOe) -> Vec<Duration> {
    let calls = fake.calls();
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn a_registration_is_renewed_every_renew_days() {
    let r = registrar(Vec::new(), 30).await;
    r.fake.wait_calls(3, YEAR).await;
    assert_eq!(gaps(&r.fake), [30 * DAY, 30 * DAY]);
    let status = r.table.wait("P1", |s| s.attempts == 3).await;
    assert_eq!(status.state, AppState::Registered);
    assert!(status.next_attempt.is_some());
    r.shutdown.cancel();
    r.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn temporary_failures_back_off_exponentially_with_jitter_up_to_a_cap() {
    let s = |status: u16| Answer::Status(status, String::new());
    let mismatch = r#"{"CallbackUrl":"https://elsewhere.example/"}"#;
    let mut script = vec![
        s(500),
        s(600),
        s(601),
        s(602),
        s(605),
        Answer::Drop,
        Answer::Status(200, mismatch.into()),
        s(503),
        s(502),
        s(504),
    ];
    script.extend(std::iter::repeat_n(s(500), 4));
    let failures = script.len();
    let r = registrar(script, 30).await;
    r.fake.wait_calls(failures + 2, YEAR).await;
    let gaps = gaps(&r.fake);
    for (i, gap) in gaps[..failures].iter().enumerate() {
        let base = FIRST_RETRY.saturating_mul(1 << i).min(MAX_RETRY);
        let (low, high) = (base.mul_f64(1.0 - JITTER), base.mul_f64(1.0 + JITTER));
        assert!(
            (low..=high).contains(gap),
            "retry {} after {gap:?}, not within {low:?}..={high:?}",
            i + 1
        );
    }
    assert!(
        gaps[failures - 1] >= MAX_RETRY.mul_f64(1.0 - JITTER),
        "capped, not stopped"
    );
    assert_eq!(gaps[failures], 30 * DAY, "success renews on schedule");
    let status = r
        .table
        .wait("P1", |s| s.attempts == failures as u64 + 2)
        .await;
    assert_eq!((status.state, status.failures), (AppState::Registered, 0));
    r.shutdown.cancel();
}

/// Waits for the registrar's first outcome.
async fn settled(r: &Running) -> RegistrationStatus {
    r.table.wait("P1", |s| s.state != AppState::Pending).await
}

#[tokio::test(start_paused = true)]
async fn permanent_answers_stop_the_registrar_for_good() {
    for (status, state) in [
        (604, AppState::Revoked),
        (603, AppState::NotFound),
        (400, AppState::Rejected),
        (606, AppState::Rejected),
    ] {
        let r = registrar(vec![Answer::Status(status, String::new())], 30).await;
        assert_eq!(settled(&r).await.state, state, "{status}");
        r.task.await.expect("the registrar ends by itself");
        tokio::time::sleep(YEAR).await;
        assert_eq!(r.fake.calls().len(), 1, "{status}: never called again");
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_answer_after_temporary_ones_still_stops() {
    let script = vec![
        Answer::Status(601, String::new()),
        Answer::Drop,
        Answer::Status(604, String::new()),
    ];
    let r = registrar(script, 30).await;
    r.task.await.unwrap();
    assert_eq!(r.table.get("P1").unwrap().state, AppState::Revoked);
    assert_eq!(r.table.get("P1").unwrap().failures, 3);
    tokio::time::sleep(YEAR).await;
    assert_eq!(r.fake.calls().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_a_waiting_registrar() {
    let r = registrar(vec![Answer::Status(503, String::new())], 30).await;
    assert_eq!(settled(&r).await.state, AppState::Retrying);
    r.shutdown.cancel();
    r.task.await.unwrap();
    tokio::time::sleep(YEAR).await;
    assert_eq!(r.fake.calls().len(), 1);
}
