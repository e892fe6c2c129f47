//! The publisher: drains outbox records to the broker at QoS 1 over one
//! rumqttc connection and deletes a record only once the broker acknowledged
//! every message of it. One task owns the event loop (its `poll()` future is
//! never dropped mid-flight) and is the only one that publishes, so packet
//! ids map to records without races. `online` on every connect, `offline` as
//! last will and at shutdown; reconnects with capped exponential backoff. It
//! also listens for Home Assistant's birth message and reports each `online`.
//! It holds at most [`MEMORY_MESSAGES`] messages; a larger backlog is read
//! back from the outbox in slices.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::delivery::Delivery;
use super::topics::Topics;
use crate::metrics::PublishLatency;
use crate::outbox::{Outbox, Pending, Record};

/// Publish requests in flight at once (our window; rumqttc's own inflight
/// limit paces the wire below it).
const WINDOW: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Messages held in memory at most (about 2 MB; at least twice the window).
/// Beyond it (a long broker outage, a burst faster than the broker) records
/// stay only in the outbox and are read back in slices of half this size as
/// delivery catches up, so memory does not grow with the backlog.
const MEMORY_MESSAGES: usize = 4096;
/// Delivered records deleted per store transaction at most.
const DELETE_BATCH: usize = 512;
/// Delivered records wait this long for more to share their delete
/// transaction (unless a full batch is ready): one store commit (and
/// fsync) per webhook would cost as much as the webhook's own commit.
const DELETE_DELAY: Duration = Duration::from_millis(250);
/// Time to publish `offline` and disconnect once the grace period is over.
const GOODBYE: Duration = Duration::from_secs(2);

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
}

/// Home Assistant's birth message: `online` on its status topic.
const BIRTH_PAYLOAD: &[u8] = b"online";

/// A read-only view of the connection, for readiness and status.
#[derive(Debug, Clone)]
pub struct Health {
    connected: watch::Receiver<bool>,
    /// Every record below this sequence number is delivered.
    delivered: watch::Receiver<u64>,
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
    pub options: MqttOptions,
    pub topics: Topics,
    pub outbox: Outbox,
    /// Records left from an earlier run: read back from the outbox in
    /// slices, oldest first.
    pub pending: Pending,
    /// Home Assistant's status topic, subscribed on every connect.
    pub status_topic: Option<String>,
}

impl Publisher {
    /// Starts the publisher task; it connects in the background. Each
    /// `online` on the status topic sends `()` on the returned channel.
    pub fn start(setup: Setup) -> (Publisher, Running, mpsc::UnboundedReceiver<()>) {
        let (client, eventloop) = AsyncClient::new(setup.options.clone(), WINDOW + 64);
        let (tx, rx) = mpsc::unbounded_channel();
        let (connected_tx, connected) = watch::channel(false);
        let (delivered_tx, delivered) = watch::channel(0);
        let (births_tx, births) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let give_up = CancellationToken::new();
        let mut task = Task {
            client,
            topics: setup.topics,
            outbox: setup.outbox,
            status_topic: setup.status_topic,
            births: births_tx,
            delivery: Delivery::default(),
            next_seq: 0,
            spill: None,
            connected: connected_tx,
            delivered: delivered_tx,
            stats: stats.clone(),
            to_delete: Vec::new(),
            delete_since: None,
            deleting: None,
            saying_goodbye: false,
        };
        if let (Some(from), Some(newest)) = (setup.pending.first, setup.pending.last) {
            task.spill = Some(Spill { from, newest });
        }
        let handle = tokio::spawn(task.run(eventloop, rx, give_up.clone()));
        let publisher = Publisher {
            records: tx,
            health: Health {
                connected,
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

type Polled = (EventLoop, Result<Event, ConnectionError>);

/// One `poll()` that owns the event loop, so the future can be kept across
/// `select!` turns instead of being dropped half-way.
fn poll(mut eventloop: EventLoop, delay: Duration) -> Pin<Box<dyn Future<Output = Polled> + Send>> {
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

type Loading = JoinHandle<Result<Vec<Record>, crate::outbox::OutboxError>>;

struct Task {
    client: AsyncClient,
    topics: Topics,
    outbox: Outbox,
    status_topic: Option<String>,
    births: mpsc::UnboundedSender<()>,
    delivery: Delivery,
    /// Records below this sequence number were taken (or delivered).
    next_seq: u64,
    /// Set while newer records are only in the outbox.
    spill: Option<Spill>,
    connected: watch::Sender<bool>,
    delivered: watch::Sender<u64>,
    stats: Arc<Stats>,
    to_delete: Vec<u64>,
    /// When the oldest record in `to_delete` was delivered.
    delete_since: Option<tokio::time::Instant>,
    deleting: Option<JoinHandle<()>>,
    saying_goodbye: bool,
}

impl Task {
    async fn run(
        mut self,
        eventloop: EventLoop,
        mut rx: mpsc::UnboundedReceiver<Vec<Record>>,
        give_up: CancellationToken,
    ) {
        let mut polling = poll(eventloop, Duration::ZERO);
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u32;
        let mut ever_connected = false;
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
            if done && !self.is_connected() {
                break;
            }
            let deadline =
                goodbye_deadline.unwrap_or_else(|| tokio::time::Instant::now() + BACKOFF_MAX * 100);
            let delete_at = self.delete_since.map(|since| {
                if self.deleting.as_ref().is_some_and(|d| !d.is_finished()) {
                    // Looked at again shortly, once the running delete is done.
                    tokio::time::Instant::now() + DELETE_DELAY / 10
                } else {
                    since + DELETE_DELAY
                }
            });
            tokio::select! {
                (eventloop, event) = &mut polling => {
                    let mut delay = Duration::ZERO;
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                            info!(session_resumed = ack.session_present, "Connected to MQTT broker");
                            if !ack.session_present {
                                self.delivery.reset();
                            }
                            if ever_connected {
                                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                            ever_connected = true;
                            backoff = BACKOFF_MIN;
                            failures = 0;
                            self.connected.send_replace(true);
                            self.on_connect();
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(pkid))) => self.delivery.sent(pkid),
                        Ok(Event::Incoming(Packet::PubAck(ack))) => {
                            self.stats.acked.fetch_add(1, Ordering::Relaxed);
                            let done = self.delivery.acked(ack.pkid);
                            if !done.is_empty() {
                                self.record_delivery(&done);
                                self.outbox.delivered(&done);
                                self.to_delete.extend(done.iter().map(|r| r.seq));
                                self.delete_since.get_or_insert_with(tokio::time::Instant::now);
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => self.on_message(&p),
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            self.stats.subscribed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                            debug!("Disconnected from MQTT broker");
                            self.connected.send_replace(false);
                            break;
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.connected.send_replace(false);
                            if self.saying_goodbye {
                                break;
                            }
                            failures += 1;
                            if failures == 1 {
                                warn!(error = %e, "MQTT broker unreachable; retrying with backoff, webhooks are still accepted into the outbox");
                            } else {
                                debug!(error = %e, retry_in_ms = backoff.as_millis() as u64, "MQTT reconnect failed");
                            }
                            delay = backoff;
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                    polling = poll(eventloop, delay);
                }
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
                () = tokio::time::sleep_until(delete_at.unwrap_or(deadline)), if delete_at.is_some() => {}
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

    fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Takes committed records in order; past [`MEMORY_MESSAGES`] they stay
    /// in the outbox until [`Task::load_slice`] reads them back.
    fn take(&mut self, records: Vec<Record>) {
        for record in records {
            if record.seq < self.next_seq {
                continue; // already read back from the outbox
            }
            if let Some(spill) = &mut self.spill {
                spill.newest = spill.newest.max(record.seq);
            } else if self.delivery.held() >= MEMORY_MESSAGES {
                self.spill = Some(Spill {
                    from: record.seq,
                    newest: record.seq,
                });
            } else {
                self.next_seq = record.seq + 1;
                self.delivery.push(record);
            }
        }
    }

    /// Starts reading the next slice of a spilled backlog once memory has
    /// room for it.
    fn load_slice(&self) -> Option<Loading> {
        let spill = self.spill?;
        if self.delivery.held() > MEMORY_MESSAGES / 2 {
            return None;
        }
        let outbox = self.outbox.clone();
        Some(tokio::task::spawn_blocking(move || {
            let slice = outbox.read_from(spill.from, MEMORY_MESSAGES / 2);
            if slice.is_err() {
                // Not a hot retry loop while the store misbehaves.
                std::thread::sleep(BACKOFF_MIN);
            }
            slice
        }))
    }

    /// A slice read back: taken in order; a short slice ends the spill
    /// unless newer records were passed over meanwhile.
    fn loaded(
        &mut self,
        loaded: Result<Result<Vec<Record>, crate::outbox::OutboxError>, tokio::task::JoinError>,
    ) {
        let slice = match loaded {
            Ok(Ok(slice)) => slice,
            Ok(Err(e)) => {
                error!(error = %e, "Could not read the backlog from the outbox; retrying");
                return;
            }
            Err(e) => {
                error!(error = %e, "Outbox read task failed; retrying");
                return;
            }
        };
        let Some(spill) = self.spill else { return };
        let short = slice.iter().map(|r| r.messages.len()).sum::<usize>() < MEMORY_MESSAGES / 2;
        for record in slice {
            if record.seq >= self.next_seq {
                self.next_seq = record.seq + 1;
                self.delivery.push(record);
            }
        }
        self.spill = if short && spill.newest < self.next_seq {
            None
        } else {
            Some(Spill {
                from: self.next_seq.max(spill.from),
                newest: spill.newest,
            })
        };
    }

    /// Hands messages to the client while connected and the window has room.
    fn fill_window(&mut self) {
        if !self.is_connected() || self.saying_goodbye {
            return;
        }
        while self.delivery.outstanding() < WINDOW {
            let Some(m) = self.delivery.next_message() else {
                break;
            };
            // The client's channel holds more than the window, so this
            // cannot be full; a closed channel means the loop is ending.
            if self
                .client
                .try_publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                .is_err()
            {
                break;
            }
            self.stats.queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_connect(&mut self) {
        self.publish_control("online");
        // Every connection: a clean session or a restarted broker has
        // forgotten the subscription.
        if let Some(status) = &self.status_topic {
            let _ = self.client.try_subscribe(status.clone(), QoS::AtLeastOnce);
        }
    }

    fn on_message(&self, p: &Publish) {
        if self.status_topic.as_deref() == Some(p.topic.as_str())
            && p.payload.trim_ascii() == BIRTH_PAYLOAD
        {
            info!("Home Assistant is online; publishing discovery again");
            let _ = self.births.send(());
        }
    }

    fn say_goodbye(&mut self) {
        self.saying_goodbye = true;
        if self.is_connected() {
            self.publish_control("offline");
            let _ = self.client.try_disconnect();
        }
    }

    fn publish_control(&mut self, state: &'static str) {
        let topic = self.topics.bridge_state();
        if self
            .client
            .try_publish(topic, QoS::AtLeastOnce, true, state)
            .is_ok()
        {
            self.delivery.control();
        }
    }

    /// Latency of each completed webhook record, and the delivered mark.
    fn record_delivery(&self, done: &[Record]) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for r in done.iter().filter(|r| r.webhook) {
            let ms = now_ms.saturating_sub(r.accepted_at_ms);
            self.stats
                .publish_latency
                .observe(Duration::from_millis(ms));
        }
        if let Some(last) = done.last() {
            self.delivered.send_replace(last.seq + 1);
        }
    }

    fn update_oldest(&self) {
        let oldest = self.delivery.oldest_accepted_ms().unwrap_or(0);
        self.stats
            .oldest_accepted_ms
            .store(oldest, Ordering::Relaxed);
    }

    /// Deletes delivered records in the background, one batch at a time,
    /// each batch durably: a crash then delivers again at most the last
    /// [`DELETE_DELAY`] of records, not everything since the last webhook.
    /// `last` (at shutdown, with no delete running) takes what is left.
    fn flush_deletes(&mut self, last: bool) {
        let busy = self.deleting.as_ref().is_some_and(|d| !d.is_finished());
        let due = self.to_delete.len() >= DELETE_BATCH
            || self
                .delete_since
                .is_some_and(|since| since.elapsed() >= DELETE_DELAY);
        if !last && (busy || !due) {
            return;
        }
        let take = if last {
            self.to_delete.len()
        } else {
            self.to_delete.len().min(DELETE_BATCH)
        };
        let seqs: Vec<u64> = self.to_delete.drain(..take).collect();
        self.delete_since = (!self.to_delete.is_empty()).then(tokio::time::Instant::now);
        if seqs.is_empty() {
            return;
        }
        let outbox = self.outbox.clone();
        self.deleting = Some(tokio::task::spawn_blocking(move || {
            if let Err(e) = outbox.remove(&seqs) {
                error!(error = %e, "Could not delete delivered records; they will be delivered again after a restart");
            }
        }));
    }
}
