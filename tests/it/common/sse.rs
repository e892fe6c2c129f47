//! A Server-Sent Events reader for `/api/stream` over a real connection.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;

use super::TIMEOUT;

/// One event: its name and its JSON data.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub name: String,
    pub data: serde_json::Value,
}

/// An open event stream.
pub struct Sse {
    body: Incoming,
    buf: String,
}

impl Sse {
    /// Opens `path` with `headers`; panics unless the answer is a 200 stream.
    pub async fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Sse {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let mut req = http::Request::builder()
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = tokio::time::timeout(
            TIMEOUT,
            send.send_request(req.body(Empty::<Bytes>::new()).unwrap()),
        )
        .await
        .expect("stream answered in time")
        .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Sse {
            body: res.into_body(),
            buf: String::new(),
        }
    }

    /// The next event; `None` once the server ended the stream.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                let data = serde_json::from_str(&data).expect("JSON data");
                return Some(SseEvent { name, data });
            }
            let frame = tokio::time::timeout(TIMEOUT, self.body.frame())
                .await
                .expect("an event in time")?;
            if let Ok(data) = frame.expect("stream frame").into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Skips events until one named `name` for which `pred` holds.
    pub async fn until(
        &mut self,
        name: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let e = self.next().await.expect("stream still open");
            if e.name == name && pred(&e.data) {
                return e.data;
            }
            seen.push(e.name);
            assert!(
                std::time::Instant::now() < deadline,
                "no `{name}` event in time; got {seen:?}"
            );
        }
    }

    /// Reads until the server ends the stream; fails after [`TIMEOUT`].
    pub async fn until_end(&mut self) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while self.next().await.is_some() {
            assert!(std::time::Instant::now() < deadline, "stream never ended");
        }
    }
}
