//! The scale-out topology of docs/scale-out.md on free loopback ports:
//! three nats-server nodes (JetStream, MQTT listeners), HAProxy round robin
//! over three bridge processes. 900 webhooks for 60 printers go through
//! HAProxy; one bridge is SIGKILLed after 300, one NATS node after 600.
//! Then every webhook answered 200 must be its printer's retained
//! `last_event`, or be superseded by a later accepted one, in order, and
//! Home Assistant's availability (`any` over the peers' state topics) must
//! never have said offline while a bridge was up.
//!
//! `SCALE_OUT_BACKEND=redb` runs the same topology with each
//! bridge's local outbox instead of JetStream (it shows the failures
//! docs/scale-out.md's JetStream backend exists to prevent).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::cluster::*;
use crate::common::*;
use tokio::sync::watch;

const BRIDGES: usize = 3;
const PRINTERS: usize = 60;
const PER_PRINTER: u32 = 15;
const KILL_BRIDGE_AFTER: usize = 300;
const KILL_NODE_AFTER: usize = 600;
/// The node killed; availability and values are read on another.
const KILLED_NODE: usize = 0;
const WATCH_NODE: usize = 2;

fn backend() -> String {
    std::env::var("SCALE_OUT_BACKEND").unwrap_or_else(|_| "jetstream".into())
}

/// The environment of bridge `i` (interface of docs/scale-out.md).
fn bridge_env(nats: &NatsCluster, i: usize) -> Vec<(String, String)> {
    let peers: Vec<String> = (1..=BRIDGES).map(|i| format!("b{i}")).collect();
    let env = [
        ("PRINT2MQTT_STORAGE__BACKEND", backend()),
        ("PRINT2MQTT_NATS__URLS", nats.nats_urls()),
        ("PRINT2MQTT_BRIDGE__INSTANCE", format!("b{i}")),
        ("PRINT2MQTT_BRIDGE__PEERS", peers.join(",")),
        ("RUST_LOG", "info".into()),
    ];
    let redb = backend() == "redb";
    env.into_iter()
        .filter(|(k, _)| !redb || !k.contains("BACKEND") && !k.contains("NATS"))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// Fails at once, with the bridge's own words, when it does not take the
/// configuration (before the JetStream backend is merged:
/// `storage.backend`).
fn check_config(nats: &NatsCluster) {
    let out = bin()
        .envs(bridge_env(nats, 1))
        .env("PRINT2MQTT_MQTT__URL", nats.mqtt_urls(0))
        .env("PRINT2MQTT_AUTH__SECRET", SECRET)
        .arg("check-config")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the bridge refuses the scale-out configuration (backend {}):\n{}",
        backend(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_bridge(nats: &NatsCluster, i: usize) -> Process {
    let env = bridge_env(nats, i);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // b1 (killed first) starts on n3, b2 on n1 (killed later), b3 on n2.
    let first = (i + BRIDGES - 2) % BRIDGES;
    Process::start_with(&nats.mqtt_urls(first), &data_dir(), free_port(), &env)
}

async fn wait_ready(addr: std::net::SocketAddr, what: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
        if ready.status == 200 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never ready: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn webhook(printer: usize, progress: u32) -> String {
    format!(
        r#"{{"PrinterId":"p{printer:02}","SecretKey":"{SECRET}","EventType":6,"Progress":{progress}}}"#
    )
}

/// Sends every printer's webhooks in order (one in flight per printer, all
/// printers at once); returns the progress values answered 200 per printer,
/// in acceptance order. `answered` counts answers.
async fn load(proxy: std::net::SocketAddr, answered: watch::Sender<usize>) -> Vec<Vec<u32>> {
    let answered = Arc::new(answered);
    let lanes: Vec<_> = (0..PRINTERS)
        .map(|p| {
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for k in 1..=PER_PRINTER {
                    // A connection cut by a dying bridge is not an answer.
                    let sent = tokio::spawn(post_json(proxy, "/webhook", webhook(p, k)));
                    if sent.await.is_ok_and(|a| a.status == 200) {
                        accepted.push(k);
                    }
                    answered.send_modify(|n| *n += 1);
                }
                accepted
            })
        })
        .collect();
    let mut out = Vec::new();
    for lane in lanes {
        out.push(lane.await.unwrap());
    }
    out
}

/// Records every state message and counts the moments Home Assistant's
/// `any` rule over the peers said offline.
async fn watch_availability(port: u16, mut stop: watch::Receiver<bool>) -> (usize, Vec<String>) {
    let (mut sub, held) = subscribe_with_retained(port, "print2mqtt/bridge/+/state").await;
    let mut states: BTreeMap<String, Msg> =
        held.into_iter().map(|m| (m.topic.clone(), m)).collect();
    let rule = any_rule();
    let mut offline = Vec::new();
    let mut seen = 0;
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return (seen, offline),
            m = sub.try_next(Duration::from_secs(1)) => {
                let Some(m) = m else { continue };
                seen += 1;
                states.insert(m.topic.clone(), m.clone());
                if !ha_available(&rule, &states) {
                    offline.push(format!("{} {}", m.topic, m.text()));
                }
            }
        }
    }
}

/// The availability block every entity carries among the peers.
fn any_rule() -> serde_json::Value {
    let list: Vec<serde_json::Value> = (1..=BRIDGES)
        .map(|i| serde_json::json!({"topic": format!("print2mqtt/bridge/b{i}/state")}))
        .collect();
    serde_json::json!({"availability": list, "availability_mode": "any"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_bridges_on_a_nats_cluster_lose_nothing_accepted_and_stay_available() {
    let _one = one_topology_at_a_time().await;
    if !topology_available() {
        return;
    }
    let started = Instant::now();
    let mut nats = NatsCluster::start(3);
    check_config(&nats);
    let mut bridges: Vec<Option<Process>> = (1..=BRIDGES)
        .map(|i| Some(start_bridge(&nats, i)))
        .collect();
    for (i, b) in bridges.iter().flatten().enumerate() {
        wait_ready(b.addr(), &format!("bridge b{}", i + 1)).await;
    }
    let ports: Vec<u16> = bridges.iter().flatten().map(|b| b.http).collect();
    let proxy = Haproxy::start(&ports);
    wait_ready(proxy.addr(), "haproxy").await;
    let watch_port = nats.nodes[WATCH_NODE].mqtt;
    for i in 1..=BRIDGES {
        wait_retained(
            watch_port,
            &format!("print2mqtt/bridge/b{i}/state"),
            "online",
        )
        .await;
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let availability = tokio::spawn(watch_availability(watch_port, stop_rx));
    let (events, _) = subscribe_with_retained(watch_port, "print2mqtt/+/last_event").await;

    let (answered_tx, mut answered) = watch::channel(0usize);
    let load_started = Instant::now();
    let loading = tokio::spawn(load(proxy.addr(), answered_tx));
    answered
        .wait_for(|n| *n >= KILL_BRIDGE_AFTER)
        .await
        .unwrap();
    if let Some(b) = bridges[0].take() {
        b.signal("-KILL");
    }
    answered.wait_for(|n| *n >= KILL_NODE_AFTER).await.unwrap();
    nats.kill(KILLED_NODE);
    let accepted = loading.await.unwrap();
    let sent_secs = load_started.elapsed().as_secs_f64();

    let total: usize = accepted.iter().map(Vec::len).sum();
    let last: BTreeMap<String, u32> = accepted
        .iter()
        .enumerate()
        .filter_map(|(p, ks)| ks.last().map(|k| (format!("p{p:02}"), *k)))
        .collect();
    // Wait (bounded) until every printer's retained value is its last
    // accepted webhook; what is still wrong then is reported.
    let deadline = Instant::now() + TIMEOUT * 2;
    let wrong = loop {
        // A NATS node refuses MQTT clients for a moment while JetStream
        // elects new leaders after the kill: read again then.
        let Some(held) = retained_qos0(watch_port, "print2mqtt/+/last_event").await else {
            if Instant::now() > deadline {
                let log = nats.log(WATCH_NODE);
                let tail: Vec<&str> = log
                    .lines()
                    .filter(|l| !l.contains("route"))
                    .rev()
                    .take(15)
                    .collect();
                panic!(
                    "no retained values readable; {}:\n{}",
                    nats.nodes[WATCH_NODE].name,
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let wrong: Vec<String> = last
            .iter()
            .filter_map(|(printer, k)| {
                let topic = format!("print2mqtt/{printer}/last_event");
                let got = held.get(&topic).map(|m| m.json()["progress"].clone());
                (got != Some((*k).into())).then(|| format!("{printer}: want {k}, retained {got:?}"))
            })
            .collect();
        if wrong.is_empty() || Instant::now() > deadline {
            break wrong;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The rule is the one tests/it/availability.rs reads from the discovery
    // configs on Mosquitto.
    let regressions = regressions(events).await;
    stop_tx.send_replace(true);
    let (state_messages, offline) = availability.await.unwrap();
    eprintln!(
        "scale-out ({}): {total} of {} webhooks answered 200 in {sent_secs:.1} s ({:.0}/s); \
         {} of {PRINTERS} printers' retained last_event is not the last accepted webhook; \
         {} times a last_event went backwards; {} availability offline moments in {state_messages} state messages {offline:?}",
        backend(),
        PRINTERS * PER_PRINTER as usize,
        total as f64 / sent_secs,
        wrong.len(),
        regressions.len(),
        offline.len(),
    );
    eprintln!("scale-out: {:.1} s in all", started.elapsed().as_secs_f64());
    assert!(
        wrong.is_empty(),
        "retained last_event is not the last accepted:\n{}",
        wrong.join("\n")
    );
    assert!(
        regressions.is_empty(),
        "last_event went backwards:\n{}",
        regressions.join("\n")
    );
    assert!(
        offline.is_empty(),
        "availability said offline while bridges were up: {offline:?}"
    );
    assert!(
        total >= PRINTERS * PER_PRINTER as usize * 9 / 10,
        "only {total} webhooks accepted"
    );
}

/// Printers whose `last_event` went to an earlier webhook after a later
/// one (a resend of the same one is no regression).
async fn regressions(mut events: Subscriber) -> Vec<String> {
    let mut newest: BTreeMap<String, u64> = BTreeMap::new();
    let mut out = Vec::new();
    while let Some(m) = events.try_next(Duration::from_millis(500)).await {
        let k = m.json()["progress"].as_u64().unwrap_or(0);
        let seen = newest.entry(m.topic.clone()).or_insert(0);
        if k < *seen {
            out.push(format!("{}: {k} after {seen}", m.topic));
        }
        *seen = (*seen).max(k);
    }
    out
}
