//! Seeded webhook sequences for the fault suite: OctoEverywhere JSON and
//! OctoPrint-Webhooks multipart bodies (with snapshots of any size), each
//! carrying a marker, unique and increasing in sending order, as its print
//! duration (`DurationSec`, `progress.printTime`), so every published event
//! and the retained `print_duration` show which webhook they came from.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rand::RngExt;
use rand::rngs::StdRng;

use super::{SECRET, TIMEOUT};

/// The largest packet the suite's brokers take (`max_packet_size`).
pub const MAX_PACKET: usize = 1 << 20;

/// How big a webhook's snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snap {
    None,
    /// A few KiB, as a webcam sends.
    Small,
    /// 256 KiB: fills a small disk fast.
    Large,
    /// Over [`MAX_PACKET`]: the broker refuses it.
    Oversize,
}

/// One webhook of a sequence.
#[derive(Debug, Clone)]
pub struct Hook {
    pub marker: u64,
    /// Printer id, which is also its slug (only `[a-z0-9-]`).
    pub printer: String,
    pub content_type: String,
    pub body: Bytes,
    /// The JPEG it carries, if any.
    pub snapshot: Option<Bytes>,
}

impl Hook {
    pub fn oversize(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.len() > MAX_PACKET)
    }
}

/// Makes webhooks for `oe` OctoEverywhere and `op` OctoPrint printers.
pub struct Generator {
    next_marker: u64,
    oe: Vec<String>,
    op: Vec<String>,
    jobs: u64,
}

/// OctoEverywhere event types with their weights: mostly progress, every
/// state change now and then (16, the test, and 13 change nothing).
const OE_EVENTS: [(u8, u32); 14] = [
    (6, 40),
    (1, 8),
    (2, 6),
    (3, 3),
    (4, 4),
    (5, 4),
    (7, 3),
    (8, 2),
    (9, 2),
    (10, 3),
    (11, 2),
    (12, 2),
    (14, 2),
    (15, 3),
];

/// OctoPrint-Webhooks topics with their weights.
const OP_TOPICS: [(&str, u32); 9] = [
    ("Print Progress", 40),
    ("Print Started", 8),
    ("Print Done", 6),
    ("Print Failed", 3),
    ("Print Paused", 4),
    ("Print Resumed", 4),
    ("User Action Needed", 2),
    ("Error", 2),
    ("Print Cancelled", 2),
];

fn weighted<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    for (v, w) in table {
        if pick < *w {
            return *v;
        }
        pick -= w;
    }
    unreachable!("pick < total")
}

impl Generator {
    pub fn new(oe: usize, op: usize) -> Generator {
        Generator {
            next_marker: 1,
            oe: (0..oe).map(|i| format!("fault-oe-{i}")).collect(),
            op: (0..op).map(|i| format!("fault-op-{i}")).collect(),
            jobs: 0,
        }
    }

    /// Every printer id, OctoEverywhere first.
    pub fn printers(&self) -> Vec<String> {
        self.oe.iter().chain(&self.op).cloned().collect()
    }

    /// True for a printer that sends OctoPrint multipart bodies.
    pub fn is_op(&self, printer: &str) -> bool {
        self.op.iter().any(|p| p == printer)
    }

    pub fn op_printers(&self) -> &[String] {
        &self.op
    }

    /// The next webhook, for `printer`; `snap` is ignored for
    /// OctoEverywhere printers.
    pub fn next(&mut self, rng: &mut StdRng, printer: &str, snap: Snap) -> Hook {
        let marker = self.next_marker;
        self.next_marker += 1;
        if rng.random_ratio(1, 10) {
            self.jobs += 1;
        }
        if self.is_op(printer) {
            self.octoprint(rng, marker, printer, snap)
        } else {
            self.octoeverywhere(rng, marker, printer)
        }
    }

    fn octoeverywhere(&self, rng: &mut StdRng, marker: u64, printer: &str) -> Hook {
        let code = weighted(rng, &OE_EVENTS);
        let body = serde_json::json!({
            "PrinterId": printer,
            "SecretKey": SECRET,
            "PrintId": format!("job-{}", self.jobs),
            "EventType": code,
            "PrinterName": format!("Fault {printer}"),
            "FileName": format!("part-{}.gcode", self.jobs),
            "DurationSec": marker,
            "Progress": rng.random_range(0..=100u8),
            "TimeRemainingSec": rng.random_range(-1..5000i64),
            "ZOffsetMM": f64::from(rng.random_range(0..400u16)) / 10.0,
            "CurrentLayer": rng.random_range(0..300u16),
            "TotalLayers": 300,
        });
        Hook {
            marker,
            printer: printer.to_owned(),
            content_type: "application/json".into(),
            body: body.to_string().into(),
            snapshot: None,
        }
    }

    fn octoprint(&self, rng: &mut StdRng, marker: u64, printer: &str, snap: Snap) -> Hook {
        let topic = weighted(rng, &OP_TOPICS);
        let (topic, extra) = match topic {
            "Print Cancelled" => ("Print Failed", r#"{"reason": "cancelled"}"#),
            t => (t, "{}"),
        };
        let job = serde_json::json!({"file": {"name": format!("part {}.gcode", self.jobs)}});
        let progress = serde_json::json!({
            "completion": f64::from(rng.random_range(0..1000u16)) / 10.0,
            "printTime": marker,
            "printTimeLeft": rng.random_range(0..5000u32),
        });
        let z = format!("{}", f64::from(rng.random_range(0..400u16)) / 10.0);
        let fields: [(&str, String); 8] = [
            ("deviceIdentifier", printer.to_owned()),
            ("apiSecret", SECRET.to_owned()),
            ("topic", topic.to_owned()),
            ("message", format!("{topic} ({marker})")),
            ("extra", extra.to_owned()),
            ("job", job.to_string()),
            ("progress", progress.to_string()),
            ("currentZ", z),
        ];
        let size = match snap {
            Snap::None => None,
            Snap::Small => Some(rng.random_range(1024..16 * 1024)),
            Snap::Large => Some(256 * 1024),
            Snap::Oversize => Some(rng.random_range(MAX_PACKET + 64 * 1024..2 * MAX_PACKET)),
        };
        let snapshot = size.map(|n| jpeg(marker, n));
        let boundary = format!("fault{marker:016x}");
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        if let Some(jpeg) = &snapshot {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"snapshot.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(jpeg);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Hook {
            marker,
            printer: printer.to_owned(),
            content_type: format!("multipart/form-data; boundary={boundary}"),
            body: body.into(),
            snapshot,
        }
    }
}

/// `n` bytes that pass for a JPEG (SOI, a comment naming the marker, filler,
/// EOI), different for every marker.
fn jpeg(marker: u64, n: usize) -> Bytes {
    let comment = format!("print2mqtt fault suite, webhook {marker}");
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xFE, 0x00, (comment.len() + 2) as u8];
    out.extend_from_slice(comment.as_bytes());
    let fill = (marker % 251) as u8;
    out.resize(n.max(out.len() + 2) - 2, fill);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out.into()
}

/// How the bridge answered a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200.
    Accepted,
    /// Any other status, with the body.
    Status(u16, String),
    /// No answer: the connection failed or timed out.
    None(String),
}

/// POSTs `hook` to `/webhook`; never panics (a bridge killed mid-request
/// gives [`Answer::None`]).
pub async fn post(addr: SocketAddr, hook: &Hook) -> Answer {
    match tokio::time::timeout(TIMEOUT, try_post(addr, hook)).await {
        Ok(Ok((200, _))) => Answer::Accepted,
        Ok(Ok((status, body))) => Answer::Status(status, body),
        Ok(Err(e)) => Answer::None(e),
        Err(_) => Answer::None(format!("no answer within {TIMEOUT:?}")),
    }
}

async fn try_post(addr: SocketAddr, hook: &Hook) -> Result<(u16, String), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::post("/webhook")
        .header("host", addr.to_string())
        .header("content-type", &hook.content_type)
        .body(Full::new(hook.body.clone()))
        // Every part is a valid header value.
        .unwrap();
    let res = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = res.status().as_u16();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("answer body: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
