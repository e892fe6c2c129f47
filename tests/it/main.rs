//! The integration tests, one crate: each former `tests/<name>.rs` is a
//! module here (run one with `cargo test --test it <name>::`), and the
//! shared helpers in `common/` are compiled once. The long fault-injection
//! run (`tests/faults.rs`) and the tmpfs delivery test (`tests/delivery.rs`,
//! root) stay crates of their own, selected with `--test faults` and
//! `--test delivery`, and so do the NATS topology tests (`tests/topology.rs`,
//! `--test topology`), which must run alone.

mod common;
#[path = "../octoprint/expected.rs"]
mod expected;
#[path = "../octoprint/recording.rs"]
mod recording;

mod addon;
mod appconnection;
mod appconnection_cli;
mod appconnection_schedule;
mod availability;
mod browser;
mod browser_cross_site;
mod cli;
mod docs;
mod examples;
mod failover;
mod golden;
mod homeassistant;
mod hostile;
mod http_answers;
mod lifecycle;
mod limits;
mod metrics;
mod mqtt_writes;
mod octoeverywhere;
mod octoprint;
mod octoprint_hostile;
mod outbox;
mod packaging;
mod safe_by_default;
mod simulate;
mod status_access;
mod status_api;
mod supervisor;
mod tls;
