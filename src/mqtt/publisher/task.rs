//! The publisher task: one rumqttc client per connection (a lost connection
//! takes its client, its packet ids and its replay queue with it), records
//! taken from the pipeline or read back from the outbox in slices, and
//! delivered records deleted in batches, each with the messages it set
//! aside. It holds at most [`MEMORY_MESSAGES`] messages and
//! [`MEMORY_BYTES`] bytes beyond the record in hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{ConnectionError, Event, Outgoing, Packet, Publish};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::link::{Client, Events, Link, Rumqtt};
use super::rotation::Rotation;
use super::{GOODBYE, Republish, Setup, Stats};
use crate::mqtt::delivery::Delivery;
use crate::mqtt::topics::{BRIDGE_STATE, Topics};
use crate::outbox::{Outbox, OutboxError, Parked, Record};

/// Publish requests in flight at once (our window; rumqttc's own inflight
/// limit paces the wire below it).
const WINDOW: usize = 1000;
/// Messages held in memory at most (at least twice the window). Beyond it
/// (a long broker outage, a burst faster than the broker) records stay only
/// in the outbox and are read back in slices of half this size as delivery
/// catches up, so memory does not grow with the backlog.
const MEMORY_MESSAGES: usize = 4096;
/// Topic and payload bytes held in memory at most, the same way (a record
/// larger than this is still taken whole, alone).
const MEMORY_BYTES: usize = 16 << 20;
/// Delivered records deleted per store transaction at most.
const DELETE_BATCH: usize = 512;
/// Delivered records wait this long for more to share their delete
/// transaction (unless a full batch is ready): one store commit (and
/// fsync) per webhook would cost as much as the webhook's own commit.
const DELETE_DELAY: Duration = Duration::from_millis(250);
/// Pause before reading the outbox again after a failed read.
const RETRY_READ: Duration = Duration::from_millis(250);
/// A connection with requests outstanding and nothing heard from the broker
/// for this long is taken for dead (a half-open TCP connection, a stalled
/// path) and replaced, long before the keep-alive would notice.
const SILENCE: Duration = Duration::from_secs(10);
/// Home Assistant's birth message: `online` on its status topic.
const BIRTH_PAYLOAD: &[u8] = b"online";

type Polled = (Box<dyn Events>, super::link::Polled);
type Polling = Pin<Box<dyn Future<Output = Polled> + Send>>;

/// One `poll()` that owns the event loop, so the future can be kept across
/// `select!` turns instead of being dropped half-way.
fn poll(mut eventloop: Box<dyn Events>, delay: Duration) -> Polling {
    Box::pin(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let event = eventloop.poll().await;
        (eventloop, event)
    })
}

/// Records from `from` on are in the outbox, not in memory.
#[derive(Debug, Clone, Copy)]
struct Spill {
    from: u64,
    /// The newest record passed over while spilled: a slice read that
    /// started before it was committed must not end the spill.
    newest: u64,
}

type Loading = JoinHandle<Result<Vec<Record>, OutboxError>>;

/// What to do with the event loop after an event.
enum Flow {
    /// Poll it again.
    Poll,
    /// Drop it (and its client) and connect afresh after this delay.
    Reconnect(Duration),
    /// The publisher is done.
    Stop,
}

/// What the task reports through watch channels.
pub(super) struct Watches {
    pub connected: watch::Sender<bool>,
    /// The broker of the current (or last) connection, fit to print.
    pub broker: watch::Sender<String>,
    pub delivered: watch::Sender<u64>,
}

pub(super) struct Task {
    rotation: Rotation,
    link: Box<dyn Link>,
    client: Box<dyn Client>,
    topics: Topics,
    outbox: Outbox,
    status_topic: Option<String>,
    births: mpsc::UnboundedSender<Republish>,
    delivery: Delivery,
    failures: u32,
    ever_connected: bool,
    /// Records below this sequence number were taken (or delivered).
    next_seq: u64,
    /// Set while newer records are only in the outbox.
    spill: Option<Spill>,
    connected: watch::Sender<bool>,
    broker: watch::Sender<String>,
    delivered: watch::Sender<u64>,
    stats: Arc<Stats>,
    to_delete: Vec<u64>,
    to_park: Vec<Parked>,
    /// When the oldest record in `to_delete` was delivered.
    delete_since: Option<tokio::time::Instant>,
    deleting: Option<JoinHandle<()>>,
    saying_goodbye: bool,
    /// When the broker was last heard from on this connection.
    heard: tokio::time::Instant,
}

impl Task {
    pub(super) fn new(
        setup: Setup,
        births: mpsc::UnboundedSender<Republish>,
        watches: Watches,
        stats: Arc<Stats>,
    ) -> Task {
        let rotation = Rotation::new(setup.brokers);
        // The client's channel holds more than the window (see fill_window).
        let link: Box<dyn Link> = Box::new(Rumqtt {
            capacity: WINDOW + 64,
        });
        // The first client is replaced in `run` before it is used.
        let (client, _) = link.open(&rotation.current().options);
        let spill = match (setup.pending.first, setup.pending.last) {
            (Some(from), Some(newest)) => Some(Spill { from, newest }),
            _ => None,
        };
        Task {
            rotation,
            link,
            client,
            topics: setup.topics,
            outbox: setup.outbox,
            status_topic: setup.status_topic,
            births,
            delivery: Delivery::new(setup.max_packet),
            failures: 0,
            ever_connected: false,
            next_seq: 0,
            spill,
            connected: watches.connected,
            broker: watches.broker,
            delivered: watches.delivered,
            stats,
            to_delete: Vec::new(),
            to_park: Vec::new(),
            delete_since: None,
            deleting: None,
            saying_goodbye: false,
            heard: tokio::time::Instant::now(),
        }
    }

    pub(super) async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Vec<Record>>,
        give_up: CancellationToken,
    ) {
        let mut polling = self.connect(Duration::ZERO);
        let mut closing = false;
        let mut goodbye_deadline = None;
        let mut loading: Option<Loading> = None;
        loop {
            if loading.is_none() {
                loading = self.load_slice();
            }
            self.fill_window();
            self.update_oldest();
            self.flush_deletes(false);
            let done = closing && self.delivery.is_idle() && self.spill.is_none();
            if (done || goodbye_deadline.is_some()) && !self.saying_goodbye {
                self.say_goodbye();
            }
            // Nothing to wait for without a broker: what is left stays in
            // the outbox for the next start (a container stop must not
            // run into its kill timeout).
            if closing && !self.is_connected() {
                if !self.delivery.is_idle() || self.spill.is_some() {
                    warn!(
                        held = self.delivery.held(),
                        "MQTT broker unreachable at shutdown; the undelivered webhooks stay in the outbox for the next start"
                    );
                }
                break;
            }
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let deadline = goodbye_deadline.unwrap_or(far);
            let delete_at = self.delete_at();
            let silent_at = (self.is_connected() && self.delivery.outstanding() > 0)
                .then(|| self.heard + SILENCE);
            tokio::select! {
                (eventloop, event) = &mut polling => match self.on_event(event) {
                    Flow::Poll => polling = poll(eventloop, Duration::ZERO),
                    Flow::Reconnect(delay) => {
                        drop(eventloop);
                        polling = self.connect(delay);
                    }
                    Flow::Stop => break,
                },
                records = rx.recv(), if !closing => match records {
                    Some(records) => self.take(records),
                    None => closing = true,
                },
                loaded = async { loading.as_mut().expect("guarded").await }, if loading.is_some() => {
                    loading = None;
                    self.loaded(loaded);
                }
                () = give_up.cancelled(), if goodbye_deadline.is_none() => {
                    goodbye_deadline = Some(tokio::time::Instant::now() + GOODBYE);
                    if !self.is_connected() {
                        break;
                    }
                }
                () = tokio::time::sleep_until(delete_at.unwrap_or(far)), if delete_at.is_some() => {}
                () = tokio::time::sleep_until(silent_at.unwrap_or(far)), if silent_at.is_some() => {
                    warn!(silent_secs = SILENCE.as_secs(), broker = %self.rotation.current().shown, "MQTT broker silent with messages outstanding; reconnecting");
                    self.connected.send_replace(false);
                    let done = self.delivery.connection_lost();
                    self.completed(done);
                    let delay = self.rotation.failed();
                    polling = self.connect(delay);
                }
                () = tokio::time::sleep_until(deadline), if goodbye_deadline.is_some() => break,
            }
        }
        self.connected.send_replace(false);
        // The last delete is durable, which also persists the earlier ones.
        if let Some(deleting) = self.deleting.take() {
            let _ = deleting.await;
        }
        self.flush_deletes(true);
        if let Some(deleting) = self.deleting.take() {
            let _ = deleting.await;
        }
    }

    /// A fresh client for the next connection; the old one's queue and
    /// packet ids are gone with it.
    fn connect(&mut self, delay: Duration) -> Polling {
        let (client, eventloop) = self.link.open(&self.rotation.current().options);
        self.client = client;
        poll(eventloop, delay)
    }

    fn on_event(&mut self, event: Result<Event, ConnectionError>) -> Flow {
        let event = match event {
            Ok(event) => event,
            Err(e) => return self.on_connection_lost(&e),
        };
        if matches!(event, Event::Incoming(_)) {
            self.heard = tokio::time::Instant::now();
        }
        let mapped = match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                let broker = &self.rotation.current().shown;
                info!(
                    %broker,
                    session_resumed = ack.session_present,
                    "Connected to MQTT broker"
                );
                self.broker.send_replace(broker.clone());
                if self.ever_connected {
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    // Our session is persistent: a broker without it has
                    // restarted without persistence, retained messages gone.
                    if !ack.session_present {
                        warn!(
                            "MQTT broker lost our session (restarted without persistence?); publishing every retained value and config again"
                        );
                        let _ = self.births.send(Republish::Lost);
                    } else {
                        let _ = self.births.send(Republish::Reconnected);
                    }
                }
                self.ever_connected = true;
                self.failures = 0;
                self.rotation.connected();
                self.connected.send_replace(true);
                self.on_connect();
                Ok(())
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => self.delivery.sent(pkid),
            Event::Incoming(Packet::PubAck(ack)) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                self.delivery
                    .acked(ack.pkid)
                    .map(|done| self.completed(done))
            }
            Event::Incoming(Packet::Publish(p)) => {
                self.on_message(&p);
                Ok(())
            }
            Event::Incoming(Packet::SubAck(_)) => {
                self.stats.subscribed.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Event::Outgoing(Outgoing::Disconnect) => {
                debug!("Disconnected from MQTT broker");
                self.connected.send_replace(false);
                return Flow::Stop;
            }
            _ => Ok(()),
        };
        match mapped {
            Ok(()) => Flow::Poll,
            Err(anomaly) => {
                warn!(%anomaly, "MQTT client reported what delivery cannot map; reconnecting and sending everything unacknowledged again");
                self.stats.anomalies.fetch_add(1, Ordering::Relaxed);
                self.connected.send_replace(false);
                let done = self.delivery.connection_lost();
                self.completed(done);
                Flow::Reconnect(self.rotation.failed())
            }
        }
    }

    fn on_connection_lost(&mut self, e: &ConnectionError) -> Flow {
        self.connected.send_replace(false);
        if self.saying_goodbye {
            return Flow::Stop;
        }
        let done = self.delivery.connection_lost();
        self.completed(done);
        self.failures += 1;
        let broker = self.rotation.current().shown.clone();
        let delay = self.rotation.failed();
        let next = &self.rotation.current().shown;
        if self.failures == 1 {
            warn!(error = %e, %broker, %next, "MQTT broker unreachable; retrying with backoff, webhooks are still accepted into the outbox");
        } else {
            debug!(error = %e, %broker, %next, retry_in_ms = delay.as_millis() as u64, "MQTT reconnect failed");
        }
        Flow::Reconnect(delay)
    }

    fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Hands messages to the client while connected and the window has room.
    fn fill_window(&mut self) {
        if self.is_connected() && !self.saying_goodbye {
            for _ in 0..self.delivery.room(WINDOW) {
                let Some(m) = self.delivery.next_message() else {
                    break;
                };
                // The client's channel holds more than the window, so this
                // cannot be full; a closed channel means the loop is ending.
                if !self.client.publish(m.topic, m.retain, m.payload) {
                    break;
                }
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Records whose every message was too large complete here.
        let done = self.delivery.take_complete();
        self.completed(done);
    }

    fn on_connect(&mut self) {
        self.publish_control(self.topics.bridge_state(), "online");
        if self.topics.clustered() {
            // The bridge device's connection state among peers: `online`
            // here, unavailable once every peer's own topic says offline.
            self.publish_control(self.topics.bridge(BRIDGE_STATE), "online");
        }
        // Every connection: a clean session or a restarted broker has
        // forgotten the subscription.
        if let Some(status) = &self.status_topic {
            let _ = self.client.subscribe(status.clone());
        }
    }

    fn on_message(&self, p: &Publish) {
        if self.status_topic.as_deref() == Some(p.topic.as_str())
            && p.payload.trim_ascii() == BIRTH_PAYLOAD
        {
            info!("Home Assistant is online; publishing discovery again");
            let _ = self.births.send(Republish::Birth);
        }
    }

    fn say_goodbye(&mut self) {
        self.saying_goodbye = true;
        if self.is_connected() {
            self.publish_control(self.topics.bridge_state(), "offline");
            let _ = self.client.disconnect();
        }
    }

    fn publish_control(&mut self, topic: String, state: &'static str) {
        if self
            .client
            .publish(topic, true, Bytes::from_static(state.as_bytes()))
        {
            self.delivery.control();
        }
    }
}

mod deletes;
mod spill;
#[cfg(test)]
mod tests;
