//! The publisher: drains outbox records to the broker at QoS 1 and deletes
//! a record only once the broker acknowledged every message of it (see
//! [`super::delivery`] for how acknowledgements are credited). `online` on
//! every connect, `offline` as last will and at shutdown; reconnects with
//! [`super::backoff`], moving on to the next of several brokers
//! ([`Brokers`]) whenever a connection fails or drops. It also listens for Home Assistant's birth message
//! and reports each `online`. This file is the handle the rest of the bridge
//! holds; the task itself is in `publisher/task.rs`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use rumqttc::MqttOptions;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::topics::Topics;
use crate::metrics::PublishLatency;
use crate::outbox::{Outbox, Pending, Record};

mod link;
mod rotation;
mod task;

/// Time to publish `offline` and disconnect once the grace period is over.
const GOODBYE: Duration = Duration::from_secs(2);

/// Why the bridge should publish its retained state again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Republish {
    /// Home Assistant came online: every discovery config.
    Birth,
    /// A reconnect found no session of ours on the broker: it restarted
    /// without persistence and lost its retained messages, so every config
    /// and every retained value.
    Lost,
    /// A reconnect found our session: the broker may still have lost the
    /// last values it acknowledged (a crash before it saved them), so each
    /// printer's next webhook sends all of its values, not only the
    /// changed ones.
    Reconnected,
}

/// Counters and gauges other parts of the bridge read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages handed to the client.
    pub queued: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
    /// When the oldest undelivered record was accepted (ms since the epoch; 0: none).
    pub oldest_accepted_ms: AtomicU64,
    /// SUBACKs received: the broker took the subscription to Home
    /// Assistant's status topic (once per connection).
    pub subscribed: AtomicU64,
    /// Webhook records from commit to the PUBACK of their last message.
    pub publish_latency: PublishLatency,
    /// Connections dropped because the client reported something the
    /// delivery bookkeeping could not map.
    pub anomalies: AtomicU64,
}

/// One broker the publisher may use.
#[derive(Debug, Clone)]
pub struct Broker {
    /// Its URL fit to print (logs, /readyz, /api/bridge).
    pub shown: String,
    pub options: MqttOptions,
}

/// The brokers tried in turn (`mqtt.url`); never empty.
#[derive(Debug, Clone)]
pub struct Brokers(Vec<Broker>);

impl Brokers {
    /// `first`, then `more`, in the order they are tried.
    pub fn new(first: Broker, more: Vec<Broker>) -> Brokers {
        let mut all = vec![first];
        all.extend(more);
        Brokers(all)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The broker at `index`, counted round robin.
    pub fn get(&self, index: usize) -> &Broker {
        // Never empty (built by `new`), so the index is in range.
        &self.0[index % self.0.len()]
    }
}

/// A read-only view of the connection, for readiness and status.
#[derive(Debug, Clone)]
pub struct Health {
    connected: watch::Receiver<bool>,
    /// The broker of the current connection, or of the last one.
    broker: watch::Receiver<String>,
    /// Every record below this sequence number is delivered.
    delivered: watch::Receiver<u64>,
    stats: Arc<Stats>,
}

impl Health {
    /// True while the broker connection is up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// The broker in use (its URL fit to print) while connected.
    pub fn broker(&self) -> Option<String> {
        self.is_connected().then(|| self.broker.borrow().clone())
    }

    /// Waits until the connection is up.
    pub async fn wait_connected(&self) {
        let mut rx = self.connected.clone();
        // Err only if the publisher task ended; then there is nothing to wait for.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Waits until the broker has acknowledged every message of the record
    /// `seq` (records complete in order); false if the publisher ended first.
    pub async fn wait_delivered(&self, seq: u64) -> bool {
        let mut rx = self.delivered.clone();
        rx.wait_for(|below| *below > seq).await.is_ok()
    }

    /// The publisher's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

/// The sending side, held by the pipeline: hands over committed records.
#[derive(Debug)]
pub struct Publisher {
    records: mpsc::UnboundedSender<Vec<Record>>,
    health: Health,
}

/// The running task, to be finished at shutdown.
#[derive(Debug)]
pub struct Running {
    task: JoinHandle<()>,
    give_up: CancellationToken,
}

/// What the publisher needs besides the records.
pub struct Setup {
    pub brokers: Brokers,
    pub topics: Topics,
    pub outbox: Outbox,
    /// Records left from an earlier run: read back from the outbox in
    /// slices, oldest first.
    pub pending: Pending,
    /// Home Assistant's status topic, subscribed on every connect.
    pub status_topic: Option<String>,
    /// The largest packet the broker takes (`mqtt.max_packet_bytes`).
    pub max_packet: usize,
}

impl Publisher {
    /// Starts the publisher task; it connects in the background. Each
    /// `online` on the status topic, and each reconnect to a broker that
    /// lost our session, sends a [`Republish`] on the returned channel.
    pub fn start(setup: Setup) -> (Publisher, Running, mpsc::UnboundedReceiver<Republish>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let (broker_tx, broker) = watch::channel(String::new());
        let (delivered_tx, delivered) = watch::channel(0);
        let (births_tx, births) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let give_up = CancellationToken::new();
        let watches = task::Watches {
            connected: connected_tx,
            broker: broker_tx,
            delivered: delivered_tx,
        };
        let task = task::Task::new(setup, births_tx, watches, stats.clone());
        let handle = tokio::spawn(task.run(rx, give_up.clone()));
        let publisher = Publisher {
            records: tx,
            health: Health {
                connected,
                broker,
                delivered,
                stats,
            },
        };
        let running = Running {
            task: handle,
            give_up,
        };
        (publisher, running, births)
    }

    /// Queues committed records for delivery, in order. Never blocks.
    pub fn send(&self, records: Vec<Record>) {
        // Fails only after the task ended, at shutdown; the records stay in
        // the outbox for the next start.
        let _ = self.records.send(records);
    }

    /// A view of the connection that does not keep the publisher alive.
    pub fn health(&self) -> Health {
        self.health.clone()
    }
}

impl Running {
    /// After the [`Publisher`] is dropped: delivers what the broker takes
    /// within `grace`, leaves the rest in the outbox, publishes `offline`
    /// and disconnects.
    pub async fn finish(self, grace: Duration) {
        let Running { mut task, give_up } = self;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            warn!(
                grace_secs = grace.as_secs(),
                "Broker did not take every message before shutdown; the rest stays in the outbox for the next start"
            );
            give_up.cancel();
            if tokio::time::timeout(GOODBYE * 2, &mut task).await.is_err() {
                task.abort();
            }
        }
    }
}
