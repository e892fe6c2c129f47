//! Several bridges serving the same printers: Home Assistant's availability
//! rule evaluated from retained topics, and the scale-out topology (three
//! nats-server nodes with JetStream and MQTT listeners, HAProxy, three
//! bridge processes; docs/scale-out.md) on free loopback ports.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{Msg, free_port, wait_until};

/// Held by each test that runs a NATS cluster: one such topology at a time
/// (three nats-server nodes and several bridges each load two cores enough
/// that a second one beside it misses its start-up deadlines).
static TOPOLOGY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits until no other NATS topology test runs; hold the guard for the
/// whole test.
pub async fn one_topology_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    TOPOLOGY.lock().await
}

/// Home Assistant's availability rule for one entity config: with
/// `availability` (a list) and `availability_mode: any`, available while
/// any listed topic's retained value is its `payload_available`; with
/// `all`, while every one is; with `availability_topic`, while that one is.
/// Topics without a retained value count as not available.
pub fn ha_available(entity: &Value, retained: &BTreeMap<String, Msg>) -> bool {
    let says = |topic: &str, online: &str| retained.get(topic).is_some_and(|m| m.text() == online);
    if let Some(topic) = entity["availability_topic"].as_str() {
        let online = entity["payload_available"].as_str().unwrap_or("online");
        return says(topic, online);
    }
    let list = entity["availability"]
        .as_array()
        .expect("an entity config with availability");
    let up = list.iter().map(|a| {
        let topic = a["topic"].as_str().expect("availability topic");
        says(topic, a["payload_available"].as_str().unwrap_or("online"))
    });
    match entity["availability_mode"].as_str().unwrap_or("latest") {
        "any" => up.into_iter().any(|u| u),
        "all" => up.into_iter().all(|u| u),
        other => panic!("availability_mode {other} is not evaluated here"),
    }
}

/// The state topics an entity's availability follows.
pub fn availability_topics(entity: &Value) -> Vec<String> {
    if let Some(topic) = entity["availability_topic"].as_str() {
        return vec![topic.to_owned()];
    }
    entity["availability"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|a| a["topic"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The programs the topology needs, and where they are.
const NATS_SERVER: &str = "nats-server";
const HAPROXY: &str = "haproxy";

fn find(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(program))
        .find(|p| p.exists())
}

/// True when nats-server and haproxy are installed. Otherwise says so
/// loudly and fails the test under `CI=true`; elsewhere the caller returns
/// (a skip that shows in the output).
pub fn topology_available() -> bool {
    let missing: Vec<&str> = [NATS_SERVER, HAPROXY]
        .into_iter()
        .filter(|p| find(p).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "\n!!!!!!!! scale-out topology NOT RUN: {} missing; install with \
         `apt-get install -y nats-server haproxy` (scripts/test.sh does) !!!!!!!!\n",
        missing.join(" and ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("{msg}");
    false
}

/// A child process killed on drop.
struct Child(Option<std::process::Child>);

impl Child {
    fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Child {
    let bin = find(program).unwrap_or_else(|| program.into());
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Child(Some(child))
}

fn wait_listening(what: &str, port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_until(what, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
    });
}

/// One nats-server node: client and MQTT ports (its route port is in its
/// config only).
pub struct NatsNode {
    pub name: String,
    pub client: u16,
    pub mqtt: u16,
    child: Child,
}

/// Three (or more) nats-server nodes in one cluster, each with JetStream
/// (store in a tempdir) and an MQTT listener.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    pub fn start(size: usize) -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let mut nodes = Vec::new();
        for (i, &(client, route, mqtt)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r, _))| format!("nats-route://127.0.0.1:{r}"))
                .collect();
            let store = dir.path().join(&name);
            let conf = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{client}\n\
                 jetstream {{\n  store_dir: \"{}\"\n}}\n\
                 cluster {{\n  name: print2mqtt\n  listen: 127.0.0.1:{route}\n  routes: [{}]\n}}\n\
                 mqtt {{\n  host: 127.0.0.1\n  port: {mqtt}\n  stream_replicas: 3\n}}\n",
                store.display(),
                routes.join(", ")
            );
            let path = dir.path().join(format!("{name}.conf"));
            std::fs::write(&path, conf).unwrap();
            let log = dir.path().join(format!("{name}.log"));
            let child = spawn(NATS_SERVER, &["-c", path.to_str().unwrap()], &log);
            nodes.push(NatsNode {
                name,
                client,
                mqtt,
                child,
            });
        }
        for n in &nodes {
            wait_listening("nats-server's MQTT listener", n.mqtt);
        }
        NatsCluster { nodes, dir }
    }

    /// `nats://…` of every node, comma-separated.
    pub fn nats_urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client))
            .collect();
        urls.join(",")
    }

    /// `mqtt://…` of every node, comma-separated, starting with node
    /// `first` (bridges spread over the nodes, so losing one node never
    /// drops every bridge's connection at once).
    pub fn mqtt_urls(&self, first: usize) -> String {
        let n = self.nodes.len();
        let urls: Vec<String> = (0..n)
            .map(|i| format!("mqtt://127.0.0.1:{}", self.nodes[(first + i) % n].mqtt))
            .collect();
        urls.join(",")
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].child.kill();
    }

    /// What node `i` logged.
    pub fn log(&self, i: usize) -> String {
        let path = self.dir.path().join(format!("{}.log", self.nodes[i].name));
        std::fs::read_to_string(path).unwrap_or_default()
    }
}

/// HAProxy in front of bridges: round robin, `GET /readyz` as the check.
pub struct Haproxy {
    pub port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    pub fn start(backends: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "  server b{} 127.0.0.1:{p} check inter 200ms fall 2 rise 2\n",
                    i + 1
                )
            })
            .collect();
        let conf = format!(
            "global\n  maxconn 4096\n\
             defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n  retries 2\n  option redispatch\n\
             frontend webhooks\n  bind 127.0.0.1:{port}\n  default_backend bridges\n\
             backend bridges\n  balance roundrobin\n  option httpchk GET /readyz\n  http-check expect status 200\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, conf).unwrap();
        let log = dir.path().join("haproxy.log");
        let child = spawn(HAPROXY, &["-db", "-f", path.to_str().unwrap()], &log);
        wait_listening("haproxy", port);
        Haproxy {
            port,
            _child: child,
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

/// A subscriber to `filter` on `port`, with the retained messages it got.
pub async fn subscribe_with_retained(port: u16, filter: &str) -> (super::Subscriber, Vec<Msg>) {
    let mut s = super::Subscriber::new_raw(port, filter).await;
    let held = s.sync().await;
    (s, held)
}

/// Every retained message under `filter` on `port`, read at QoS 0 (NATS
/// creates no JetStream consumer for it, which a loaded cluster may be
/// slow to do). A marker published on the same connection after the
/// subscription ends the read; `None` when the broker does not answer in
/// time.
pub async fn retained_qos0(port: u16, filter: &str) -> Option<BTreeMap<String, Msg>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let id = format!("q0-{}", ulid::Ulid::generate());
    let marker = format!("test-marker/{id}");
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new(&id, "127.0.0.1", port), 100);
    let read = async {
        let mut out = BTreeMap::new();
        loop {
            match eventloop.poll().await.ok()? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let both = [filter, marker.as_str()]
                        .map(|f| rumqttc::SubscribeFilter::new(f.to_owned(), QoS::AtMostOnce));
                    client.subscribe_many(both).await.ok()?;
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    // Both subscriptions are active: the marker comes back
                    // after the retained messages queued for the filter.
                    let _ = client.try_publish(&marker, QoS::AtMostOnce, false, "sync");
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == marker => return Some(out),
                Event::Incoming(Packet::Publish(p)) => {
                    let m = Msg {
                        topic: p.topic.clone(),
                        payload: p.payload,
                        retain: p.retain,
                    };
                    out.insert(p.topic, m);
                }
                _ => {}
            }
        }
    };
    let got = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten();
    let _ = client.try_disconnect();
    got
}
