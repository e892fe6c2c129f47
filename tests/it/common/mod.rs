//! Test harness: a real Mosquitto per test on a free loopback port, a real
//! MQTT subscriber, an HTTP client, and the bridge started in-process.

pub mod browser;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod checker;
#[allow(dead_code)] // the topology crate (tests/topology.rs) uses the rest
pub mod cluster;
pub mod fake_oe;
pub mod pki;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod proxy;
pub mod raw;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod reference;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod schedule;
pub mod sse;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod tmpfs;
#[allow(dead_code)] // used by the faults and delivery crates
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use print2mqtt::config::{Config, Secret};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// How long any condition in a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().unwrap().port()
}

/// Polls `cond` until it holds or [`TIMEOUT`] passes.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A Mosquitto broker on 127.0.0.1, killed on drop.
pub struct Mosquitto {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    persistent: bool,
    /// Extra mosquitto.conf lines (more listeners, TLS).
    extra: String,
}

impl Mosquitto {
    pub fn start() -> Mosquitto {
        Self::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Mosquitto {
        Self::launch(port, false)
    }

    /// A broker that keeps sessions and retained messages across a
    /// [`Mosquitto::restart`].
    pub fn start_persistent() -> Mosquitto {
        Self::launch(free_port(), true)
    }

    /// [`Mosquitto::start_persistent`] with more configuration lines (e.g.
    /// `max_packet_size 1048576`).
    #[allow(dead_code)] // used by the faults and delivery crates
    pub fn start_persistent_with(extra: &str) -> Mosquitto {
        let mut m = Mosquitto {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            persistent: true,
            extra: extra.to_owned(),
        };
        m.spawn();
        m
    }

    /// A broker with more configuration after its plain listener on
    /// `port` (e.g. a TLS listener).
    pub fn start_with(extra: &str) -> Mosquitto {
        let mut m = Mosquitto {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
            persistent: false,
            extra: extra.to_owned(),
        };
        m.spawn();
        m
    }

    fn launch(port: u16, persistent: bool) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Mosquitto {
            port,
            dir,
            child: None,
            persistent,
            extra: String::new(),
        };
        m.spawn();
        m
    }

    /// Stops the broker gracefully (it saves its state when persistent)
    /// and starts it again on the same port.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
            // Without its database the broker comes back empty, and every
            // test of a restart would blame the bridge for what it lost.
            assert!(
                !self.persistent || self.dir.path().join("mosquitto.db").exists(),
                "the persistent broker did not save its database at shutdown"
            );
        }
        self.spawn();
    }

    fn spawn(&mut self) {
        // Started as root, mosquitto drops to its own user: in a 0700
        // tempdir of root's it cannot save its database at shutdown
        // ("Error saving in-memory database ... Permission denied"), so a
        // "persistent" broker came back without sessions, retained
        // messages or queued QoS 1 messages.
        if self.persistent {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o777))
                .unwrap();
        }
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "allow_anonymous true\npersistence {}\npersistence_location {}/\nmax_queued_messages 100000\nlistener {} 127.0.0.1\n{}\n",
                self.persistent,
                self.dir.path().display(),
                self.port,
                self.extra,
            ),
        )
        .unwrap();
        let child = Command::new(mosquitto_bin())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        wait_until("mosquitto to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        });
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker (its retained messages are lost: persistence is off).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

fn mosquitto_bin() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    "mosquitto".into()
}

/// One received MQTT message.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
}

impl Msg {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("JSON payload")
    }

    /// The last topic level.
    pub fn leaf(&self) -> &str {
        self.topic.rsplit('/').next().unwrap()
    }
}

/// A real MQTT client subscribed to a filter, collecting what arrives.
pub struct Subscriber {
    rx: mpsc::UnboundedReceiver<Msg>,
    client: AsyncClient,
    marker: String,
}

impl Subscriber {
    /// Connects and subscribes; returns once the subscription is active,
    /// with the retained messages it got on subscribing already consumed.
    pub async fn new(port: u16, filter: &str) -> Subscriber {
        let mut s = Subscriber::new_raw(port, filter).await;
        s.sync().await;
        s
    }

    /// Publishes a marker and returns everything received before it: all
    /// retained messages after a fresh subscribe, or all live ones so far.
    pub async fn sync(&mut self) -> Vec<Msg> {
        self.client
            .publish(&self.marker, QoS::AtLeastOnce, false, "sync")
            .await
            .unwrap();
        let mut out = Vec::new();
        loop {
            let m = self.next().await;
            if m.topic == self.marker {
                return out;
            }
            out.push(m);
        }
    }

    /// Publishes at QoS 1 from this subscriber's own connection.
    pub async fn publish(&self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }

    /// The next message, failing the test after [`TIMEOUT`].
    pub async fn next(&mut self) -> Msg {
        tokio::time::timeout(TIMEOUT, self.rx.recv())
            .await
            .expect("an MQTT message in time")
            .expect("subscriber alive")
    }

    /// The next message, or `None` when none arrives within `within`.
    #[allow(dead_code)] // used by the faults and delivery crates
    pub async fn try_next(&mut self, within: Duration) -> Option<Msg> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Collects messages up to and including the first on a topic ending in
    /// `/<leaf>`.
    pub async fn until_leaf(&mut self, leaf: &str) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self.next().await;
            let done = m.leaf() == leaf && m.topic != self.marker;
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Collects messages up to and including the first on exactly `topic`.
    pub async fn collect_until(&mut self, topic: &str) -> Vec<Msg> {
        let mut out = Vec::new();
        loop {
            let m = self.next().await;
            let done = m.topic == topic;
            out.push(m);
            if done {
                return out;
            }
        }
    }

    /// Waits for a message on exactly `topic`.
    pub async fn until_topic(&mut self, topic: &str) -> Msg {
        loop {
            let m = self.next().await;
            if m.topic == topic {
                return m;
            }
        }
    }
}

/// Every retained message under `filter`, as topic → message.
pub async fn retained(port: u16, filter: &str) -> BTreeMap<String, Msg> {
    let mut s = Subscriber::new_raw(port, filter).await;
    let msgs = s.sync().await;
    msgs.into_iter().map(|m| (m.topic.clone(), m)).collect()
}

impl Subscriber {
    /// A subscriber with a persistent session that reconnects on its own,
    /// so QoS 1 messages published while the broker restarts still arrive
    /// (with a persistent broker).
    pub async fn durable(port: u16, filter: &str, client_id: &str) -> Subscriber {
        let mut s = Subscriber::connect(port, filter, client_id, false).await;
        s.sync().await;
        s
    }

    /// Subscribes to `filter` and a marker topic of its own in one request.
    async fn new_raw(port: u16, filter: &str) -> Subscriber {
        let id = format!("snap-{}", ulid::Ulid::generate());
        Subscriber::connect(port, filter, &id, true).await
    }

    async fn connect(port: u16, filter: &str, id: &str, clean: bool) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_max_packet_size(64 << 20, 64 << 20);
        o.set_clean_session(clean);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let marker = format!("test-marker/{id}");
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let c = client.clone();
        let (filter, mk) = (filter.to_owned(), marker.clone());
        tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        c.subscribe_many([
                            rumqttc::SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce),
                            rumqttc::SubscribeFilter::new(mk.clone(), QoS::AtLeastOnce),
                        ])
                        .await
                        .unwrap();
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send(Msg {
                            topic: p.topic,
                            payload: p.payload,
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    // A clean subscriber ends with its broker; a durable one
                    // reconnects (rumqttc does on the next poll), and so
                    // does any until it has subscribed (a loaded NATS
                    // node may drop its first connection).
                    Err(_) if clean && ready.is_none() => return,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(TIMEOUT, ready_rx)
            .await
            .expect("subscribe in time")
            .unwrap();
        Subscriber { rx, client, marker }
    }
}

/// A fresh directory for one test's outbox, kept until the process ends.
pub fn data_dir() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}

/// A config for tests: HTTP on a free loopback port, the given broker, a
/// secret, an outbox of its own, no config file involved.
pub fn config(broker_url: &str, secret: &str) -> Config {
    let mut c = Config::default();
    c.storage.data_dir = data_dir();
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.mqtt.url = vec![broker_url.to_owned()];
    c.mqtt.client_id = format!("print2mqtt-test-{}", ulid::Ulid::generate());
    c.auth.secret = Secret::new(secret);
    c
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON answer: {}", self.body))
    }
}

/// Sends one HTTP/1.1 request and returns status and body; fails the test
/// after [`TIMEOUT`].
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let body = body.into();
    tokio::time::timeout(TIMEOUT, send(addr, method, path, headers, body))
        .await
        .unwrap_or_else(|_| panic!("no answer to {method} {path} in time"))
}

async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = match send
        .send_request(req.body(Full::new(body.clone())).unwrap())
        .await
    {
        Ok(res) => res,
        // The server answered early (e.g. 413) and closed while hyper was
        // still writing the body: read that answer over a plain socket.
        Err(_) => return early_answer(addr, method, path, headers, &body).await,
    };
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// POSTs a JSON body to `path`.
pub async fn post_json(addr: SocketAddr, path: &str, body: impl Into<Bytes>) -> Answer {
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// A fixture file's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The OctoEverywhere sample printer's slug.
pub const OE_SLUG: &str = "5kl9f8yylbeg1rhdsv3ucdrd4pm4hu0z7x0zd867qttidvz5ora1368tlm42";
/// The secret in every OctoEverywhere sample.
pub const OE_SECRET: &str = "my-webhook-secret";

/// Waits until the retained message on `topic` is `value`.
pub async fn wait_retained(port: u16, topic: &str, value: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let snapshot = retained(port, topic).await;
        if snapshot.get(topic).is_some_and(|m| m.text() == value) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never became {value:?}: {snapshot:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops the bridge's own messages (`online`/`offline` arrive whenever the
/// connection comes up, independent of the webhooks a test sends).
pub fn printer_only(msgs: Vec<Msg>) -> Vec<Msg> {
    msgs.into_iter()
        .filter(|m| !m.topic.starts_with("print2mqtt/bridge/"))
        .collect()
}

/// The secret a [`Process`] bridge is configured with.
pub const SECRET: &str = "tops3cret-value";

/// The `print2mqtt` binary, run in an empty directory (so no
/// config/print2mqtt.toml is picked up) and without inherited settings.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_print2mqtt"));
    let dir = tempfile::tempdir().unwrap().keep();
    c.current_dir(dir)
        .env_remove("PRINT2MQTT_CONFIG")
        .env_remove("RUST_LOG");
    c
}

/// A running bridge process, killed if the test fails. It logs to a file
/// (a pipe nobody reads would fill up and stall it).
pub struct Process {
    child: Child,
    pub http: u16,
    log: PathBuf,
}

/// How a bridge process ended.
pub struct Exited {
    pub status: std::process::ExitStatus,
    pub log: String,
}

impl Process {
    /// Starts the binary against `broker_url` with its outbox in `data`,
    /// under a fixed client id (as a restarted bridge would have), and
    /// returns once it listens.
    pub fn start(broker_url: &str, data: &Path) -> Process {
        Process::start_with(broker_url, data, free_port(), &[])
    }

    /// [`Process::start`] on a given HTTP port, with extra environment
    /// variables.
    pub fn start_with(broker_url: &str, data: &Path, http: u16, env: &[(&str, &str)]) -> Process {
        let log = tempfile::tempdir().unwrap().keep().join("bridge.log");
        let child = bin()
            .envs(env.iter().copied())
            .env("PRINT2MQTT_HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env("PRINT2MQTT_MQTT__URL", broker_url)
            .env("PRINT2MQTT_MQTT__CLIENT_ID", "print2mqtt-process")
            .env("PRINT2MQTT_AUTH__SECRET", SECRET)
            .env("PRINT2MQTT_STORAGE__DATA_DIR", data)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let addr = ([127, 0, 0, 1], http).into();
        wait_until("the bridge to listen", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        });
        Process { child, http, log }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.http).into()
    }

    /// The process id (to signal it from another task).
    #[allow(dead_code)] // used by the faults and delivery crates
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The file it logs to.
    #[allow(dead_code)] // used by the faults and delivery crates
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends a signal with `kill` (`-TERM`, `-KILL`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// What the process logged so far.
    #[allow(dead_code)] // used by the faults and delivery crates
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for the process to exit; returns its status and log.
    pub fn wait(mut self) -> Exited {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "bridge did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        Exited { status, log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `/readyz` says ready with an empty outbox (all delivered).
pub async fn wait_drained(addr: SocketAddr) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ready = request(addr, "GET", "/readyz", &[], Vec::new()).await;
        if ready.status == 200 && ready.json()["outbox_depth"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "outbox never drained: {}",
            ready.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a request over a plain socket, ignoring write errors, and reads
/// the answer the server gave (used when it answers before the body is in).
async fn early_answer(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    use tokio::io::AsyncWriteExt;
    let mut stream = raw::connect(addr).await;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
    raw::read_answer(&mut stream)
        .await
        .unwrap_or_else(|| panic!("no answer to {method} {path}"))
}
