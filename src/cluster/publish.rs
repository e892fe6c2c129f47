//! The clustered mode's MQTT connection: publishes one event's messages at
//! QoS 1 and answers once the broker has acknowledged every one of them;
//! moves on to the next `mqtt.url` when a broker goes away.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use ulid::Ulid;

use crate::config::Config;
use crate::mqtt::messages::Message;
use crate::mqtt::{self, BrokerUrl, Role};

/// Requests rumqttc queues before the event loop takes them: more than the
/// messages of one event of every partition at once.
const CAPACITY: usize = 8192;
/// Waits between two connection attempts: from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

type Done = oneshot::Sender<Result<(), String>>;

struct Batch {
    messages: Vec<Message>,
    done: Done,
}

/// Hands batches of messages to the connection task.
#[derive(Debug, Clone)]
pub struct Sender {
    tx: mpsc::Sender<Batch>,
}

impl Sender {
    /// Starts the connection task over `urls` (tried in turn); it ends at `stop`.
    pub fn start(config: Arc<Config>, urls: Vec<BrokerUrl>, stop: CancellationToken) -> Sender {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(run(config, urls, rx, stop));
        Sender { tx }
    }

    /// Publishes `messages` in order; `Ok` once the broker acknowledged
    /// every one, `Err` if the connection was lost first (publish them all
    /// again: they are retained values, so a repeat changes nothing).
    pub async fn publish(&self, messages: Vec<Message>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        let batch = Batch { messages, done };
        self.tx
            .send(batch)
            .await
            .map_err(|_| "the MQTT connection has stopped".to_owned())?;
        wait.await
            .unwrap_or_else(|_| Err("the MQTT connection has stopped".into()))
    }
}

async fn run(
    config: Arc<Config>,
    urls: Vec<BrokerUrl>,
    mut rx: mpsc::Receiver<Batch>,
    stop: CancellationToken,
) {
    let mut attempt: usize = 0;
    let mut wait = BACKOFF.0;
    while !urls.is_empty() {
        let url = &urls[attempt % urls.len()];
        let id = format!("{}-cluster-{}", config.mqtt.client_id, Ulid::generate());
        let lost = match mqtt::options(&config, url, &id, Role::Reader) {
            Ok(options) => {
                let (client, events) = AsyncClient::new(options, CAPACITY);
                match connected(client, events, &mut rx, &stop).await {
                    Ok(()) => return,
                    Err((e, was_up)) => {
                        if was_up {
                            wait = BACKOFF.0;
                        }
                        e
                    }
                }
            }
            Err(e) => e.to_string(),
        };
        warn!(broker = %format!("{}:{}", url.host, url.port), error = %lost, "MQTT connection lost; trying the next broker");
        attempt += 1;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
        wait = (wait * 2).min(BACKOFF.1);
    }
}

/// Batches in flight on one connection, by the order of their publishes.
#[derive(Default)]
struct InFlight {
    /// The batch of each publish rumqttc has yet to send, in order.
    queued: VecDeque<u64>,
    /// The batch of each sent publish, by packet id.
    sent: HashMap<u16, u64>,
    /// Each batch's unacknowledged publishes and its answer.
    batches: HashMap<u64, (usize, Done)>,
    next: u64,
}

impl InFlight {
    fn add(&mut self, client: &AsyncClient, batch: Batch) {
        let id = self.next;
        self.next += 1;
        let count = batch.messages.len();
        if count == 0 {
            let _ = batch.done.send(Ok(()));
            return;
        }
        for m in batch.messages {
            let queued = client.try_publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload);
            if let Err(e) = queued {
                // Publishes of it already queued still count down harmlessly.
                let _ = batch.done.send(Err(e.to_string()));
                return;
            }
            self.queued.push_back(id);
        }
        self.batches.insert(id, (count, batch.done));
    }

    fn acked(&mut self, pkid: u16) {
        let Some(id) = self.sent.remove(&pkid) else {
            return;
        };
        if let Some((left, _)) = self.batches.get_mut(&id) {
            *left -= 1;
            if *left == 0
                && let Some((_, done)) = self.batches.remove(&id)
            {
                let _ = done.send(Ok(()));
            }
        }
    }

    fn fail(self, why: &str) {
        for (_, (_, done)) in self.batches {
            let _ = done.send(Err(why.to_owned()));
        }
    }
}

/// Serves batches on one connection until it is lost (`Err` with whether
/// it had been up) or `stop` (`Ok`).
async fn connected(
    client: AsyncClient,
    mut events: EventLoop,
    rx: &mut mpsc::Receiver<Batch>,
    stop: &CancellationToken,
) -> Result<(), (String, bool)> {
    let mut flight = InFlight::default();
    let mut up = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => {
                flight.fail("the bridge is shutting down");
                return Ok(());
            }
            batch = rx.recv(), if up => match batch {
                Some(batch) => flight.add(&client, batch),
                None => return Ok(()),
            },
            event = events.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!("Cluster MQTT connection up");
                    up = true;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(id) = flight.queued.pop_front() {
                        flight.sent.insert(pkid, id);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => flight.acked(ack.pkid),
                Ok(_) => {}
                Err(e) => {
                    let why = e.to_string();
                    flight.fail(&why);
                    return Err((why, up));
                }
            },
        }
    }
}
