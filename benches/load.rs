//! Load benchmark (run by scripts/bench.sh): a real Mosquitto, the release
//! bridge with its durable outbox, and a realistic webhook mix for N
//! printers. Measures saturation throughput, latency at a fixed rate, CPU
//! per webhook, RSS, messages delivered vs expected (computed independently
//! through the library's own pure functions), and the broker-bound ceiling:
//! the same messages sent by a bare rumqttc publisher in the same run. With
//! `--bare <binary>` (`cargo build --release --example bare_bridge`) it also
//! drives the bare hyper + rumqttc program through the same phases.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use print2mqtt::config::Config;
use print2mqtt::event::Reception;
use print2mqtt::ingest::{self, Webhook};
use print2mqtt::mqtt::messages::Message;
use print2mqtt::mqtt::topics::Topics;
use print2mqtt::pipeline::Printers;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{Mutex, mpsc};

const SECRET: &str = "bench-secret";

struct Args {
    bridge: PathBuf,
    bare: Option<PathBuf>,
    printers: usize,
    seconds: u64,
    rate: u64,
    connections: usize,
    scale: usize,
}

fn args() -> Args {
    let mut a = Args {
        bridge: PathBuf::from("target/release/print2mqtt"),
        bare: None,
        printers: 1000,
        seconds: 10,
        rate: 1000,
        connections: 64,
        scale: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            // Absolute: the bridge runs with its data dir as working directory.
            "--bridge" => {
                a.bridge = std::fs::canonicalize(value()).expect("--bridge: built binary")
            }
            "--bare" => {
                a.bare = Some(std::fs::canonicalize(value()).expect("--bare: built binary"))
            }
            "--printers" => a.printers = value().parse().expect("--printers N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--connections" => a.connections = value().parse().expect("--connections N"),
            "--scale" => a.scale = value().parse().expect("--scale N"),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

// ---------------------------------------------------------------- workload

/// The steps of one print, as OctoEverywhere event types, repeated forever:
/// mostly progress, with the rest of a print's life around it.
const PRINT: [u32; 16] = [1, 10, 14, 6, 6, 6, 6, 7, 6, 4, 5, 6, 6, 6, 2, 15];

/// Webhook `k` of the run: printer `k % printers`, step `k / printers`.
fn body(k: usize, printers: usize) -> String {
    let printer = k % printers;
    let step = k / printers;
    let code = PRINT[step % PRINT.len()];
    let progress = (step % PRINT.len()) * 100 / (PRINT.len() - 1);
    format!(
        r#"{{"PrinterId":"BENCH{printer:05}","SecretKey":"{SECRET}","PrintId":"P{printer}-{print}","EventType":{code},"PrinterName":"Bench printer {printer}","SnapshotUrl":"https://snapshots.example/{printer}.jpg","QuickViewUrl":"https://octoeverywhere.com/quickview?id={printer}","FileName":"part_{printer}.gcode","DurationSec":{duration},"Progress":{progress},"TimeRemainingSec":{remaining},"ZOffsetMM":0.2,"CurrentLayer":{step},"TotalLayers":200}}"#,
        print = step / PRINT.len(),
        duration = step * 60,
        // Never 0 within a run: the ETA then moves with every step, so the
        // messages expected do not depend on when a webhook was received.
        remaining = 360_000usize.saturating_sub(step * 60),
    )
}

/// The messages the bridge must publish for webhooks `range`, computed with
/// the library's own ingest → state → render, as the bridge does.
struct Mirror {
    printers: Printers,
    topics: Topics,
}

impl Mirror {
    fn new() -> Mirror {
        Mirror {
            printers: Printers::from_config(&Config::default()),
            topics: Topics::new("print2mqtt"),
        }
    }

    fn messages(&mut self, k: usize, printers: usize) -> Vec<Message> {
        let body = body(k, printers);
        let hook = Webhook {
            body: body.as_bytes(),
            content_type: Some("application/json"),
            query: &[],
            dialect: None,
            limits: ingest::Limits::default(),
        };
        let event = ingest::parse(&hook, Reception::now())
            .expect("bench body parses")
            .event;
        self.printers.accept(&self.topics, &event).1
    }
}

// ------------------------------------------------------------- processes

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto(dir: &Path) -> (Killed, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nmax_inflight_messages 0\n"
        ),
    )
    .unwrap();
    let bin = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mosquitto");
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    wait_listening(port);
    (Killed(child), port)
}

/// The bridge, its HTTP port and its log (INFO of the pipeline, else WARN).
fn bridge(bin: &Path, broker: u16, data: &Path) -> (Killed, u16, PathBuf) {
    let http = free_port();
    let log = data.join(format!("bridge-{http}.log"));
    let child = Command::new(bin)
        .env("PRINT2MQTT_HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("PRINT2MQTT_MQTT__URL", format!("mqtt://127.0.0.1:{broker}"))
        .env("PRINT2MQTT_AUTH__SECRET", SECRET)
        .env("PRINT2MQTT_STORAGE__DATA_DIR", data)
        // The scale run knows 10,000 printers, beyond the default bound.
        .env("PRINT2MQTT_STORAGE__MAX_PRINTERS", "1000000")
        .env("RUST_LOG", "warn,print2mqtt::pipeline=info")
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("bridge log"))
        .spawn()
        .expect("bridge binary (cargo build --release)");
    wait_listening(http);
    (Killed(child), http, log)
}

/// (CPU seconds used, resident KiB, peak resident KiB) of a process.
/// The bridge's resident size once it is idle: the lowest seen over
/// [`SETTLE`] (its upkeep gives freed memory back once a second).
/// Returns (resident KiB, of which anonymous KiB).
async fn settled_rss(pid: u32) -> (u64, u64) {
    let until = Instant::now() + SETTLE;
    let mut lowest = (u64::MAX, 0);
    while Instant::now() < until {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let now = (
            status_kib(&status, "VmRSS:"),
            status_kib(&status, "RssAnon:"),
        );
        lowest = lowest.min(now);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lowest
}

/// One `kB` line of `/proc/<pid>/status`.
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// How long [`settled_rss`] watches an idle bridge.
const SETTLE: Duration = Duration::from_secs(3);

fn usage(pid: u32) -> (f64, u64, u64) {
    let (user, system, rss, peak) = usage_split(pid);
    (user + system, rss, peak)
}

/// (user CPU s, system CPU s, resident KiB, peak resident KiB).
fn usage_split(pid: u32) -> (f64, f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|t| t.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (
        ticks(11),
        ticks(12),
        status_kib(&status, "VmRSS:"),
        status_kib(&status, "VmHWM:"),
    )
}

// ---------------------------------------------------------------- clients

/// `bridge/webhooks` and `bridge/last_webhook` messages seen.
static BRIDGE_COUNTERS: AtomicU64 = AtomicU64::new(0);

/// Counts messages on `filter` (QoS 1) as they arrive.
async fn counter(port: u16, filter: &str) -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new(format!("bench-sub-{}", free_port()), "127.0.0.1", port);
    o.set_max_packet_size(64 << 20, 64 << 20);
    o.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    let (ready_tx, mut ready) = mpsc::channel(1);
    let seen = count.clone();
    let filter = filter.to_owned();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe(&filter, QoS::AtLeastOnce).await.unwrap();
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(()).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    // The bridge's counters go out at most once a second:
                    // how many depends on timing, so they count apart.
                    if p.topic.starts_with("print2mqtt/bridge/webhooks")
                        || p.topic.starts_with("print2mqtt/bridge/last_webhook")
                    {
                        BRIDGE_COUNTERS.fetch_add(1, Ordering::Relaxed);
                    } else if !p.topic.starts_with("print2mqtt/bridge/state")
                        && !p.topic.starts_with("bare/")
                    {
                        seen.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    ready.recv().await;
    count
}

async fn wait_count(count: &AtomicU64, want: u64, limit: Duration) -> Duration {
    let start = Instant::now();
    while count.load(Ordering::Relaxed) < want && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Sender {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

async fn post(send: &mut Sender, port: u16, body: String) -> u16 {
    let req = http::Request::post("/webhook")
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    send.ready()
        .await
        .expect("connection ready for the next request");
    let res = send.send_request(req).await.expect("answer");
    let status = res.status().as_u16();
    let _ = res.into_body().collect().await;
    status
}

/// Sends webhooks `from..` for `seconds` over `connections` keep-alive
/// connections, each as fast as answers come back. Returns how many were
/// sent and the wall time.
async fn saturate(
    port: u16,
    printers: usize,
    from: usize,
    seconds: u64,
    connections: usize,
) -> (usize, Duration) {
    let next = Arc::new(AtomicUsize::new(from));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (next, failed) = (next.clone(), failed.clone());
            tokio::spawn(async move {
                let mut send = connect(port).await;
                while Instant::now() < stop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if post(&mut send, port, body(k, printers)).await != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "non-200 answers under load"
    );
    (next.load(Ordering::Relaxed) - from, start.elapsed())
}

/// Open loop: webhook `i` is due at `i / rate` s; latency counts from when
/// it was due (no coordinated omission).
async fn fixed_rate(
    port: u16,
    printers: usize,
    from: usize,
    rate: u64,
    seconds: u64,
) -> (usize, Histogram<u64>) {
    let total = (rate * seconds) as usize;
    let (tx, rx) = mpsc::channel::<(usize, Instant)>(total.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let workers: Vec<_> = (0..64)
        .map(|_| {
            let (rx, hist) = (rx.clone(), hist.clone());
            tokio::spawn(async move {
                let mut send = connect(port).await;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some((k, due)) = job else { return };
                    assert_eq!(post(&mut send, port, body(k, printers)).await, 200);
                    let us = due.elapsed().as_micros() as u64;
                    hist.lock().unwrap().record(us.max(1)).unwrap();
                }
            })
        })
        .collect();
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        tx.send((from + i, due)).await.unwrap();
    }
    drop(tx);
    for w in workers {
        w.await.unwrap();
    }
    let h = hist.lock().unwrap().clone();
    (total, h)
}

/// Publishes `messages` with a bare rumqttc client at QoS 1, as fast as the
/// broker acknowledges them; returns the wall time until the last PUBACK.
async fn bare_publisher(port: u16, messages: Vec<Message>) -> Duration {
    let mut o = MqttOptions::new(format!("bench-bare-{}", free_port()), "127.0.0.1", port);
    o.set_max_packet_size(64 << 20, 64 << 20);
    o.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(o, 2000);
    let want = messages.len() as u64;
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        for m in messages {
            client
                .publish(m.topic, QoS::AtLeastOnce, m.retain, m.payload)
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0u64;
    while acked < want {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = eventloop.poll().await {
            acked += 1;
        }
    }
    let elapsed = start.elapsed();
    drop(sender.await);
    elapsed
}

// ------------------------------------------------------------------ runs

fn row(name: &str, value: String) {
    println!("| {name} | {value} |");
}

/// What one phase cost a process: webhooks sent, wall time, CPU ms per
/// webhook (user, system), MQTT messages per webhook.
struct Phase {
    webhooks: usize,
    wall: Duration,
    user_ms: f64,
    sys_ms: f64,
    messages: f64,
}

impl Phase {
    fn cpu_ms(&self) -> f64 {
        self.user_ms + self.sys_ms
    }

    fn cpu(&self) -> String {
        format!(
            "{:.3} ms ({:.3} user + {:.3} system)",
            self.cpu_ms(),
            self.user_ms,
            self.sys_ms
        )
    }
}

/// CPU of `pid` over `run`, per webhook it reports.
async fn measured<F: std::future::Future<Output = (usize, Duration)>>(pid: u32, run: F) -> Phase {
    let (u0, s0, _, _) = usage_split(pid);
    let (webhooks, wall) = run.await;
    let (u1, s1, _, _) = usage_split(pid);
    let per = |t: f64| t * 1000.0 / webhooks.max(1) as f64;
    Phase {
        webhooks,
        wall,
        user_ms: per(u1 - u0),
        sys_ms: per(s1 - s0),
        messages: 0.0,
    }
}

/// The phases every program runs: 100 webhooks/s, `--rate`, saturation.
fn rates(a: &Args) -> [u64; 2] {
    [100, a.rate]
}

async fn main_run(a: &Args) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let (bridge_proc, http, _) = bridge(&a.bridge, port, dir.path());
    let pid = bridge_proc.0.id();
    let all = counter(port, "#").await;
    let mut mirror = Mirror::new();
    tokio::time::sleep(Duration::from_millis(500)).await; // settle before the idle reading
    let (_, idle_rss, _) = usage(pid);
    let sent_messages = || all.load(Ordering::Relaxed) + BRIDGE_COUNTERS.load(Ordering::Relaxed);

    // Warm-up: one webhook per printer (discovery for each).
    let mut expected: u64 = 0;
    for k in 0..a.printers {
        expected += mirror.messages(k, a.printers).len() as u64;
    }
    let base = all.load(Ordering::Relaxed);
    let mut send = connect(http).await;
    for k in 0..a.printers {
        assert_eq!(post(&mut send, http, body(k, a.printers)).await, 200);
    }
    wait_count(&all, base + expected, Duration::from_secs(120)).await;

    // Fixed rates first: moderate loads on a settled bridge. Each phase
    // ends once its messages are delivered and its counters are out.
    let mut from = a.printers;
    let mut fixed = Vec::new();
    for rate in rates(a) {
        let m0 = sent_messages();
        let mut hist = None;
        let mut phase = measured(pid, async {
            let (n, h) = fixed_rate(http, a.printers, from, rate, a.seconds).await;
            for k in from..from + n {
                expected += mirror.messages(k, a.printers).len() as u64;
            }
            wait_count(&all, base + expected, Duration::from_secs(120)).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            hist = Some(h);
            (n, Duration::from_secs(a.seconds))
        })
        .await;
        phase.messages = (sent_messages() - m0) as f64 / phase.webhooks as f64;
        from += phase.webhooks;
        fixed.push((rate, phase, hist.unwrap()));
    }

    // Saturation: as many webhooks as 64 connections get answered.
    let m0 = sent_messages();
    let mut phase_messages: Vec<Message> = Vec::new();
    let mut drain = Duration::ZERO;
    let mut sat = measured(pid, async {
        let (sent, wall) = saturate(http, a.printers, from, a.seconds, a.connections).await;
        for k in from..from + sent {
            phase_messages.extend(mirror.messages(k, a.printers));
        }
        expected += phase_messages.len() as u64;
        drain = wait_count(&all, base + expected, Duration::from_secs(300)).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        (sent, wall)
    })
    .await;
    sat.messages = (sent_messages() - m0) as f64 / sat.webhooks as f64;
    let (_, _, peak) = usage(pid);
    // End to end: accepted and delivered. The outbox answers faster than the
    // broker takes messages, so answers alone would flatter the bridge.
    let accepted = sat.webhooks as f64 / sat.wall.as_secs_f64();
    let throughput = sat.webhooks as f64 / (sat.wall + drain).as_secs_f64();
    let delivered = all.load(Ordering::Relaxed) - base;

    // The broker-bound ceiling: the saturation phase's exact messages.
    let per_webhook = phase_messages.len() as f64 / sat.webhooks as f64;
    let msgs = phase_messages.len();
    let bare = bare_publisher(port, phase_messages).await;
    let ceiling = msgs as f64 / bare.as_secs_f64() / per_webhook;

    println!(
        "\n| measure ({} printers, {} s phases) | value |",
        a.printers, a.seconds
    );
    println!("|---|---|");
    row(
        "webhooks/s at saturation, accepted (HTTP 200)",
        format!("{accepted:.0} ({} connections)", a.connections),
    );
    row(
        "webhooks/s at saturation, delivered end to end",
        format!(
            "{throughput:.0} (last message {:.1} s after the last answer)",
            drain.as_secs_f64()
        ),
    );
    row(
        "broker-bound ceiling (bare rumqttc, same messages)",
        format!("{ceiling:.0} webhooks/s"),
    );
    row(
        "bridge / ceiling",
        format!("{:.0} %", throughput / ceiling * 100.0),
    );
    for (rate, phase, hist) in &fixed {
        row(
            &format!("latency at {rate} webhooks/s, p50 / p99 / max"),
            format!(
                "{:.2} / {:.2} / {:.2} ms",
                hist.value_at_quantile(0.5) as f64 / 1000.0,
                hist.value_at_quantile(0.99) as f64 / 1000.0,
                hist.max() as f64 / 1000.0
            ),
        );
        row(&format!("CPU per webhook, {rate} webhooks/s"), phase.cpu());
        row(
            &format!("MQTT messages per webhook, {rate} webhooks/s"),
            format!("{:.2}", phase.messages),
        );
    }
    row("CPU per accepted webhook, saturation", sat.cpu());
    row(
        "MQTT messages per webhook, saturation",
        format!("{:.2}", sat.messages),
    );
    row(
        "RSS idle / peak",
        format!(
            "{:.1} MiB / {:.1} MiB",
            idle_rss as f64 / 1024.0,
            peak as f64 / 1024.0
        ),
    );
    row(
        "MQTT messages delivered / expected (without the bridge's counters)",
        format!(
            "{delivered} / {} ({} lost)",
            expected,
            expected.saturating_sub(delivered)
        ),
    );
    assert_eq!(delivered, expected, "messages lost");
    drop(bridge_proc);

    if let Some(bin) = &a.bare {
        let (bare_fixed, bare_sat, bare_peak) = bare_run(a, bin, port, dir.path()).await;
        println!("\n| same run | print2mqtt | bare hyper + rumqttc (4 publishes) | ratio |");
        println!("|---|---|---|---|");
        for ((rate, ours, _), theirs) in fixed.iter().zip(&bare_fixed) {
            println!(
                "| CPU per webhook, {rate} webhooks/s | {:.3} ms | {:.3} ms | {:.2}x |",
                ours.cpu_ms(),
                theirs.cpu_ms(),
                ours.cpu_ms() / theirs.cpu_ms()
            );
        }
        println!(
            "| CPU per accepted webhook, saturation | {:.3} ms | {:.3} ms | {:.2}x |",
            sat.cpu_ms(),
            bare_sat.cpu_ms(),
            sat.cpu_ms() / bare_sat.cpu_ms()
        );
        let bare_accepted = bare_sat.webhooks as f64 / bare_sat.wall.as_secs_f64();
        println!(
            "| webhooks/s accepted at saturation | {accepted:.0} | {bare_accepted:.0} | {:.2}x |",
            accepted / bare_accepted
        );
        println!(
            "| peak RSS | {:.1} MiB | {:.1} MiB | |",
            peak as f64 / 1024.0,
            bare_peak as f64 / 1024.0
        );
    }
}

/// The bare program through the same phases: fixed rates, then saturation;
/// returns their figures and its peak RSS (KiB).
async fn bare_run(a: &Args, bin: &Path, broker: u16, dir: &Path) -> (Vec<Phase>, Phase, u64) {
    let http = free_port();
    let child = Command::new(bin)
        .args([http.to_string(), broker.to_string()])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bare binary (cargo build --release --example bare_bridge)");
    let bare = Killed(child);
    wait_listening(http);
    let pid = bare.0.id();
    let mut fixed = Vec::new();
    let mut from = 0;
    for rate in rates(a) {
        let phase = measured(pid, async {
            let (n, _) = fixed_rate(http, a.printers, from, rate, a.seconds).await;
            tokio::time::sleep(Duration::from_millis(1200)).await;
            (n, Duration::from_secs(a.seconds))
        })
        .await;
        from += phase.webhooks;
        fixed.push(phase);
    }
    let sat = measured(pid, async {
        let run = saturate(http, a.printers, from, a.seconds, a.connections).await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        run
    })
    .await;
    let (_, _, peak) = usage(pid);
    (fixed, sat, peak)
}

async fn scale_run(a: &Args) {
    let n = a.scale;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = mosquitto(dir.path());
    let (bridge_proc, http, _) = bridge(&a.bridge, port, dir.path());
    let configs = counter(port, "homeassistant/#").await;
    let base = configs.load(Ordering::Relaxed);
    let per_printer = {
        let mut m = Mirror::new();
        m.messages(0, 1)
            .iter()
            .filter(|m| m.topic.starts_with("homeassistant/"))
            .count() as u64
    };
    let start = Instant::now();
    let (tx, rx) = mpsc::channel::<usize>(n);
    let rx = Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..32)
        .map(|_| {
            let rx = rx.clone();
            tokio::spawn(async move {
                let mut send = connect(http).await;
                loop {
                    let job = rx.lock().await.recv().await;
                    let Some(k) = job else { break };
                    assert_eq!(post(&mut send, http, body(k, n)).await, 200);
                }
            })
        })
        .collect();
    for k in 0..n {
        tx.send(k).await.unwrap();
    }
    drop(tx);
    for w in workers {
        w.await.unwrap();
    }
    let answered = start.elapsed();
    wait_count(
        &configs,
        base + per_printer * n as u64,
        Duration::from_secs(600),
    )
    .await;
    let published = start.elapsed();
    let got = configs.load(Ordering::Relaxed) - base;
    let (_, rss, _) = usage(bridge_proc.0.id());
    let rss_settled = settled_rss(bridge_proc.0.id()).await;

    // Restart: time until the bridge listens again with state restored.
    drop(bridge_proc);
    let restart = Instant::now();
    let (again, http2, log) = bridge(&a.bridge, port, dir.path());
    let restored = restart.elapsed();
    let checked = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("Discovery configs compared"))
        {
            break (
                restart.elapsed(),
                line.rsplit("publishing=").next().unwrap_or("?").to_owned(),
            );
        }
        assert!(
            restart.elapsed() < Duration::from_secs(120),
            "no start-up check in {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let printers: serde_json::Value = {
        let mut send = connect(http2).await;
        let req = http::Request::get("/api/printers")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send.ready().await.unwrap();
        let res = send.send_request(req).await.unwrap();
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
    };
    let (_, rss_after, _) = usage(again.0.id());
    let rss_after_settled = settled_rss(again.0.id()).await;

    println!("\n| scale run ({n} printers) | value |");
    println!("|---|---|");
    row(
        "first webhook of every printer answered",
        format!("{:.2} s", answered.as_secs_f64()),
    );
    row(
        "all discovery configs published",
        format!(
            "{:.2} s ({got} configs, {per_printer} per printer)",
            published.as_secs_f64()
        ),
    );
    row(
        "RSS with every printer known, at once / settled",
        format!(
            "{:.1} MB / {:.1} MB ({:.1} MB anonymous)",
            rss as f64 / 1024.0,
            rss_settled.0 as f64 / 1024.0,
            rss_settled.1 as f64 / 1024.0
        ),
    );
    row(
        "restart until listening with state restored",
        format!(
            "{:.2} s ({} printers restored)",
            restored.as_secs_f64(),
            printers.as_array().map_or(0, Vec::len)
        ),
    );
    row(
        "restart until the discovery check is done (background)",
        format!(
            "{:.2} s ({} configs republished)",
            checked.0.as_secs_f64(),
            checked.1.trim()
        ),
    );
    row(
        "RSS after restart, at once / settled",
        format!(
            "{:.1} MB / {:.1} MB ({:.1} MB anonymous)",
            rss_after as f64 / 1024.0,
            rss_after_settled.0 as f64 / 1024.0,
            rss_after_settled.1 as f64 / 1024.0
        ),
    );
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if a.scale > 0 {
            scale_run(&a).await;
        } else {
            main_run(&a).await;
        }
    });
}
