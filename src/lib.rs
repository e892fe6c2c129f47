//! print2mqtt turns 3D-printer notification webhooks (OctoEverywhere,
//! OctoPrint-Webhooks) into retained MQTT topics per printer, an event
//! stream, and Home Assistant discovery.
//!
//! # Layout
//! - [`config`]: the typed configuration and its figment layering.
//! - [`http`]: the hyper listener, routes, limits, the webhook handler.
//! - [`auth`]: secrets and the local-network rule.
//! - [`ingest`]: webhook bodies to [`event::Event`], one file per dialect.
//! - [`event`]: the normalized event, free of vendor types.
//! - [`slug`]: printer ids to safe topic levels.
//! - [`state`]: per-printer state; `apply(event) -> changes`, pure.
//! - [`pipeline`]: the single writer from accepted events to the outbox.
//! - [`homeassistant`]: discovery configs, one file per platform; pure.
//! - [`cluster`]: the clustered mode: accepted webhooks in a NATS
//!   JetStream stream, delivered by any bridge.
//! - [`outbox`]: the durable store of accepted, undelivered messages (redb).
//! - [`mqtt`]: topic names, message rendering, delivery bookkeeping,
//!   publisher, restore, printer removal, embedded broker.
//! - [`octoeverywhere`]: App Connection registration of the bridge's own
//!   callback URL with OctoEverywhere.
//! - [`supervisor`]: the Home Assistant Supervisor's MQTT service (add-on).
//! - [`tls`]: PEM files to rustls configurations (HTTPS, mqtts://).
//! - [`monitor`]: what the status page and `/metrics` watch:
//!   [`webhook_log`] (the last webhooks) and [`metrics`] (Prometheus).
//! - [`memory`]: allocator settings; freed memory given back when idle.
//! - [`app`]: wiring and shutdown order.
//! - [`healthcheck`], [`simulate`]: the `healthcheck` and `simulate`
//!   commands, clients of a running bridge.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod event;
pub mod healthcheck;
pub mod homeassistant;
pub mod http;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod monitor;
pub mod mqtt;
pub mod octoeverywhere;
pub mod outbox;
pub mod pipeline;
pub mod simulate;
pub mod slug;
pub mod snapshots;
pub mod state;
pub mod supervisor;
pub mod tls;
pub mod webhook_log;
