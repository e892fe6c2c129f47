//! The publisher loop on paused time against a scripted broker (a fake
//! [`Link`]): reconnect backoff, the silence timeout, careful mode after a
//! loss, and a message the broker keeps refusing set aside. The real-broker
//! behaviour is covered by the integration tests.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    ConnAck, ConnectReturnCode, ConnectionError, Event, MqttOptions, Outgoing, Packet, PubAck,
};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::link::{Client, Events, Link, Polled};
use super::super::{Setup, Stats};
use super::Task;
use crate::mqtt::backoff;
use crate::mqtt::delivery::{ParkReason, STRIKES};
use crate::mqtt::messages::Message;
use crate::mqtt::topics::Topics;
use crate::outbox::{Limits, Outbox, Record};

const STATE: &str = "print2mqtt/bridge/state";

/// How one connection attempt goes.
#[derive(Debug, Clone, Copy)]
struct Plan {
    accept: bool,
    ack: bool,
    /// The broker drops the connection when this topic is published.
    drop_on: Option<&'static str>,
}

const REFUSE: Plan = Plan {
    accept: false,
    ack: false,
    drop_on: None,
};
const ACK: Plan = Plan {
    accept: true,
    ack: true,
    drop_on: None,
};
const SILENT: Plan = Plan {
    accept: true,
    ack: false,
    drop_on: None,
};

fn dropping_on(topic: &'static str, ack: bool) -> Plan {
    Plan {
        accept: true,
        ack,
        drop_on: Some(topic),
    }
}

/// One connection, shared by its client and its event loop.
#[derive(Default)]
struct Conn {
    started: Option<Instant>,
    plan: Option<Plan>,
    requests: VecDeque<Request>,
    events: VecDeque<Polled>,
    pkid: u16,
    /// Publishes requested and not yet acknowledged to the task.
    in_flight: usize,
    /// (topic, publishes in flight when it was requested).
    published: Vec<(String, usize)>,
}

enum Request {
    Publish(String),
    Disconnect,
}

/// The scripted broker: plans in order (then [`ACK`]), every attempt kept.
#[derive(Clone, Default)]
struct Broker {
    plans: Arc<Mutex<VecDeque<Plan>>>,
    conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap()
}

impl Broker {
    fn new(plans: &[Plan]) -> Broker {
        let b = Broker::default();
        lock(&b.plans).extend(plans.iter().copied());
        b
    }

    /// (when, published) of every connection attempt.
    fn attempts(&self) -> Vec<(Instant, Vec<(String, usize)>)> {
        lock(&self.conns)
            .iter()
            .map(|c| {
                let c = lock(c);
                (c.started.unwrap(), c.published.clone())
            })
            .collect()
    }

    /// Milliseconds between consecutive attempts.
    fn gaps_ms(&self) -> Vec<u128> {
        let at: Vec<Instant> = self.attempts().iter().map(|a| a.0).collect();
        at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
    }
}

struct FakeClient {
    conn: Arc<Mutex<Conn>>,
    notify: Arc<Notify>,
}

impl FakeClient {
    fn request(&self, r: Request) -> bool {
        lock(&self.conn).requests.push_back(r);
        self.notify.notify_one();
        true
    }
}

impl Client for FakeClient {
    fn publish(&self, topic: String, _retain: bool, _payload: Bytes) -> bool {
        let mut c = lock(&self.conn);
        let in_flight = c.in_flight;
        c.published.push((topic.clone(), in_flight));
        c.in_flight += 1;
        drop(c);
        self.request(Request::Publish(topic))
    }

    fn subscribe(&self, _topic: String) -> bool {
        true
    }

    fn disconnect(&self) -> bool {
        self.request(Request::Disconnect)
    }
}

struct FakeEvents {
    broker: Broker,
    conn: Arc<Mutex<Conn>>,
    notify: Arc<Notify>,
}

fn lost(why: &str) -> ConnectionError {
    ConnectionError::Io(std::io::Error::other(why.to_owned()))
}

impl FakeEvents {
    /// The next event, if one is ready without waiting.
    fn step(&self) -> Option<Polled> {
        let mut c = lock(&self.conn);
        if c.started.is_none() {
            c.started = Some(Instant::now());
            lock(&self.broker.conns).push(self.conn.clone());
            let plan = lock(&self.broker.plans).pop_front().unwrap_or(ACK);
            c.plan = Some(plan);
            return Some(if plan.accept {
                let ack = ConnAck::new(ConnectReturnCode::Success, false);
                Ok(Event::Incoming(Packet::ConnAck(ack)))
            } else {
                Err(lost("refused"))
            });
        }
        loop {
            if let Some(event) = c.events.pop_front() {
                if let Ok(Event::Incoming(Packet::PubAck(_))) = &event {
                    c.in_flight -= 1;
                }
                return Some(event);
            }
            let plan = c.plan?;
            match c.requests.pop_front()? {
                Request::Publish(topic) => {
                    c.pkid += 1;
                    let pkid = c.pkid;
                    c.events
                        .push_back(Ok(Event::Outgoing(Outgoing::Publish(pkid))));
                    if plan.drop_on == Some(topic.as_str()) {
                        c.events.push_back(Err(lost("dropped")));
                    } else if plan.ack {
                        c.events
                            .push_back(Ok(Event::Incoming(Packet::PubAck(PubAck::new(pkid)))));
                    }
                }
                Request::Disconnect => {
                    c.events
                        .push_back(Ok(Event::Outgoing(Outgoing::Disconnect)));
                }
            }
        }
    }
}

impl Events for FakeEvents {
    fn poll(&mut self) -> Pin<Box<dyn Future<Output = Polled> + Send + '_>> {
        Box::pin(async move {
            loop {
                if let Some(event) = self.step() {
                    return event;
                }
                self.notify.notified().await;
            }
        })
    }
}

impl Link for Broker {
    fn open(&self, _: &MqttOptions) -> (Box<dyn Client>, Box<dyn Events>) {
        let conn = Arc::new(Mutex::new(Conn::default()));
        let notify = Arc::new(Notify::new());
        let client = FakeClient {
            conn: conn.clone(),
            notify: notify.clone(),
        };
        let events = FakeEvents {
            broker: self.clone(),
            conn,
            notify,
        };
        (Box::new(client), Box::new(events))
    }
}

/// A running publisher task against `broker`.
struct Harness {
    records: Option<mpsc::UnboundedSender<Vec<Record>>>,
    delivered: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
    outbox: Outbox,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn start(broker: &Broker) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_events: 1000,
            max_bytes: 1 << 20,
        };
        let (outbox, pending) = Outbox::open(dir.path(), limits).unwrap();
        let setup = Setup {
            brokers: super::super::Brokers::new(
                super::super::Broker {
                    shown: "mqtt://127.0.0.1:1".into(),
                    options: MqttOptions::new("test", "127.0.0.1", 1),
                },
                Vec::new(),
            ),
            topics: Topics::new("print2mqtt"),
            outbox: outbox.clone(),
            pending,
            status_topic: None,
            max_packet: 1 << 20,
        };
        let (births, _) = mpsc::unbounded_channel();
        let (connected, _) = watch::channel(false);
        let (broker_tx, _) = watch::channel(String::new());
        let (delivered_tx, delivered) = watch::channel(0);
        let stats = Arc::new(Stats::default());
        let watches = super::Watches {
            connected,
            broker: broker_tx,
            delivered: delivered_tx,
        };
        let mut task = Task::new(setup, births, watches, stats);
        task.link = Box::new(broker.clone());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(task.run(rx, CancellationToken::new()));
        Harness {
            records: Some(tx),
            delivered,
            task,
            outbox,
            _dir: dir,
        }
    }

    fn send(&self, records: Vec<Record>) {
        self.records.as_ref().unwrap().send(records).unwrap();
    }

    /// Waits (in paused time) until every record up to `seq` is delivered.
    async fn delivered(&mut self, seq: u64) {
        let wait = self.delivered.wait_for(|below| *below > seq);
        tokio::time::timeout(Duration::from_secs(3600), wait)
            .await
            .expect("delivered within the hour")
            .unwrap();
    }

    /// Closes the records channel and waits for the task to finish.
    async fn finish(mut self) -> Outbox {
        self.records = None;
        tokio::time::timeout(Duration::from_secs(3600), &mut self.task)
            .await
            .expect("the task ends")
            .unwrap();
        self.outbox
    }
}

fn record(seq: u64, topic: &str) -> Record {
    Record {
        seq,
        webhook: true,
        accepted_at_ms: 0,
        messages: vec![Message::retained(topic.to_owned(), "x")],
    }
}

fn topics(published: &[(String, usize)]) -> Vec<&str> {
    published.iter().map(|(t, _)| t.as_str()).collect()
}

#[tokio::test(start_paused = true)]
async fn backoff_doubles_while_refused_and_starts_over_after_a_delivery() {
    let broker = Broker::new(&[REFUSE, REFUSE, REFUSE, dropping_on("t/b", true)]);
    let mut h = Harness::start(&broker);
    h.send(vec![record(1, "t/a")]);
    h.delivered(1).await;
    h.send(vec![record(2, "t/b")]);
    h.delivered(2).await;
    let min = backoff::MIN.as_millis();
    assert_eq!(broker.gaps_ms(), vec![min, 2 * min, 4 * min, min]);
    let attempts = broker.attempts();
    assert_eq!(topics(&attempts[3].1), vec![STATE, "t/a", "t/b"]);
    assert_eq!(topics(&attempts[4].1), vec![STATE, "t/b"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_broker_is_left_after_the_silence_timeout() {
    let broker = Broker::new(&[SILENT]);
    let mut h = Harness::start(&broker);
    h.send(vec![record(1, "t/a")]);
    h.delivered(1).await;
    // Up for SILENCE (as long as backoff::STABLE): the backoff starts over.
    let want = (super::SILENCE + backoff::MIN).as_millis();
    assert_eq!(broker.gaps_ms(), vec![want]);
    let attempts = broker.attempts();
    assert_eq!(topics(&attempts[0].1), vec![STATE, "t/a"]);
    assert_eq!(topics(&attempts[1].1), vec![STATE, "t/a"]);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_loss_the_messages_outstanding_go_one_at_a_time() {
    let broker = Broker::new(&[dropping_on("t/3", false)]);
    let mut h = Harness::start(&broker);
    h.send(vec![record(1, "t/1"), record(2, "t/2"), record(3, "t/3")]);
    h.delivered(3).await;
    h.send(vec![record(4, "t/4"), record(5, "t/5"), record(6, "t/6")]);
    h.delivered(6).await;
    let attempts = broker.attempts();
    let sent = |i: usize| -> Vec<(&str, usize)> {
        attempts[i]
            .1
            .iter()
            .map(|(t, n)| (t.as_str(), *n))
            .collect()
    };
    // All at once on the first connection, ...
    assert_eq!(
        sent(0),
        vec![(STATE, 0), ("t/1", 1), ("t/2", 2), ("t/3", 3)]
    );
    // ... one at a time up to the last that was outstanding at the loss,
    // and the whole window again after it.
    assert_eq!(
        sent(1),
        vec![
            (STATE, 0),
            ("t/1", 0),
            ("t/2", 0),
            ("t/3", 0),
            ("t/4", 0),
            ("t/5", 1),
            ("t/6", 2)
        ]
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_message_the_broker_keeps_refusing_is_set_aside() {
    let plans = [dropping_on("t/bad", true); STRIKES as usize];
    let broker = Broker::new(&plans);
    let mut h = Harness::start(&broker);
    let bad = record(1, "t/bad");
    h.outbox.append(std::slice::from_ref(&bad)).unwrap();
    h.send(vec![bad]);
    h.delivered(1).await;
    h.send(vec![record(2, "t/ok")]);
    h.delivered(2).await;
    let attempts = broker.attempts();
    assert_eq!(attempts.len(), STRIKES as usize + 1);
    for a in &attempts[..STRIKES as usize] {
        assert_eq!(topics(&a.1), vec![STATE, "t/bad"]);
    }
    assert_eq!(topics(&attempts[STRIKES as usize].1), vec![STATE, "t/ok"]);
    let outbox = h.finish().await;
    let parked = outbox.parked(10).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].seq, 1);
    assert_eq!(parked[0].reason, ParkReason::Refused.name());
    assert_eq!(parked[0].message.topic, "t/bad");
}
