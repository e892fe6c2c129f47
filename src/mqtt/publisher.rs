//! The publisher: one rumqttc connection, its event loop polled in its own
//! task, `online`/`offline` on the bridge state topic, reconnect with backoff.
//! `publish().await` only queues; PUBACKs are counted as they arrive. It also
//! listens for Home Assistant's birth message and reports each `online`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::messages::Message;
use super::topics::Topics;

/// Requests rumqttc buffers between the publisher and its event loop.
const CLIENT_CAPACITY: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Counters other parts of the bridge read (status, readiness).
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages handed to the client.
    pub queued: AtomicU64,
    /// PUBACKs received.
    pub acked: AtomicU64,
    /// Successful connections after the first.
    pub reconnects: AtomicU64,
    /// SUBACKs received: the broker took the subscription to Home
    /// Assistant's status topic (once per connection).
    pub subscribed: AtomicU64,
}

/// The sending side: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Vec<Message>>,
    connected: watch::Receiver<bool>,
    stats: Arc<Stats>,
}

/// A read-only view of the connection, for readiness and status.
#[derive(Debug, Clone)]
pub struct Health {
    connected: watch::Receiver<bool>,
    stats: Arc<Stats>,
}

impl Health {
    /// True while the broker connection is up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until the connection is up.
    pub async fn wait_connected(&self) {
        let mut rx = self.connected.clone();
        // Err only if the event loop task ended; then there is nothing to wait for.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The publisher's counters.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

/// The running tasks, to be finished at shutdown.
#[derive(Debug)]
pub struct Running {
    sender: JoinHandle<()>,
    events: JoinHandle<()>,
    stop: CancellationToken,
}

/// Home Assistant's birth message: `online` on its status topic.
const BIRTH_PAYLOAD: &[u8] = b"online";

impl Publisher {
    /// Connects (in the background) and starts publishing. With a
    /// `status_topic`, subscribes to it on every connection and sends `()`
    /// on the returned channel for each `online` published there.
    pub fn start(
        options: MqttOptions,
        topics: Topics,
        status_topic: Option<String>,
    ) -> (Publisher, Running, mpsc::UnboundedReceiver<()>) {
        let (client, eventloop) = AsyncClient::new(options, CLIENT_CAPACITY);
        let (queue, rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let (births_tx, births) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let events = tokio::spawn(poll_events(
            eventloop,
            client.clone(),
            Listen {
                topics: topics.clone(),
                status_topic,
                births: births_tx,
            },
            connected_tx,
            stats.clone(),
            stop.clone(),
        ));
        let sender = tokio::spawn(send_queued(client, rx, topics, stats.clone()));
        let publisher = Publisher {
            queue,
            connected,
            stats,
        };
        let running = Running {
            sender,
            events,
            stop,
        };
        (publisher, running, births)
    }

    /// Queues the messages of one webhook, in order.
    pub fn send(&self, messages: Vec<Message>) {
        // Fails only after shutdown began, when nothing more is accepted.
        let _ = self.queue.send(messages);
    }

    /// A view of the connection that does not keep the publisher alive.
    pub fn health(&self) -> Health {
        Health {
            connected: self.connected.clone(),
            stats: self.stats.clone(),
        }
    }
}

impl Running {
    /// After every [`Publisher`] is dropped: sends what is queued, publishes
    /// `offline` and disconnects, giving up after `grace`.
    pub async fn finish(self, grace: Duration) {
        let Running {
            sender,
            mut events,
            stop,
        } = self;
        let drained = tokio::time::timeout(grace, async {
            let _ = sender.await;
            let _ = (&mut events).await;
        })
        .await;
        if drained.is_err() {
            warn!(
                grace_secs = grace.as_secs(),
                "Broker did not take every message before shutdown"
            );
            stop.cancel();
            let _ = events.await;
        }
    }
}

async fn send_queued(
    client: AsyncClient,
    mut rx: mpsc::UnboundedReceiver<Vec<Message>>,
    topics: Topics,
    stats: Arc<Stats>,
) {
    while let Some(batch) = rx.recv().await {
        for m in batch {
            if client
                .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                .await
                .is_err()
            {
                return;
            }
            stats.queued.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = client
        .publish(topics.bridge_state(), QoS::AtLeastOnce, true, "offline")
        .await;
    let _ = client.disconnect().await;
}

/// What the event loop announces and listens for.
struct Listen {
    topics: Topics,
    status_topic: Option<String>,
    births: mpsc::UnboundedSender<()>,
}

async fn poll_events(
    mut eventloop: EventLoop,
    client: AsyncClient,
    listen: Listen,
    connected: watch::Sender<bool>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    let mut ever_connected = false;
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            () = stop.cancelled() => return,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!("Connected to MQTT broker");
                connected.send_replace(true);
                if ever_connected {
                    stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                ever_connected = true;
                backoff = BACKOFF_MIN;
                failures = 0;
                // Queued behind whatever waits; never awaited here, where
                // awaiting a full request channel would deadlock the loop.
                let client = client.clone();
                let topic = listen.topics.bridge_state();
                let status = listen.status_topic.clone();
                tokio::spawn(async move {
                    let _ = client
                        .publish(topic, QoS::AtLeastOnce, true, "online")
                        .await;
                    // Every connection: a clean session or a restarted
                    // broker has forgotten the subscription.
                    if let Some(status) = status {
                        let _ = client.subscribe(status, QoS::AtLeastOnce).await;
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(p)))
                if listen.status_topic.as_deref() == Some(p.topic.as_str()) =>
            {
                if p.payload.trim_ascii() == BIRTH_PAYLOAD {
                    info!("Home Assistant is online; publishing discovery again");
                    let _ = listen.births.send(());
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                stats.subscribed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                stats.acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                debug!("Disconnected from MQTT broker");
                connected.send_replace(false);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                connected.send_replace(false);
                failures += 1;
                if failures == 1 {
                    warn!(error = %e, "MQTT broker unreachable; retrying with backoff, webhooks are still accepted");
                } else {
                    debug!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT reconnect failed");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
