//! A fake OctoEverywhere App Connection API on loopback: records every
//! request and answers from a script (then 200, echoing a registration's
//! URL and filter as OctoEverywhere does).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    /// The `AppToken` header.
    pub app_token: Option<String>,
    pub content_type: Option<String>,
    /// The JSON body (`Null` when empty).
    pub body: Value,
    /// When it arrived, on tokio's clock (paused in schedule tests).
    pub at: Instant,
}

impl Call {
    /// The registered callback URL (`CallbackUrl`).
    pub fn callback(&self) -> &str {
        self.body["CallbackUrl"].as_str().unwrap_or_default()
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status with this body.
    Status(u16, String),
    /// Close the connection without answering (a network failure).
    Drop,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    script: VecDeque<Answer>,
}

/// The running fake API; it stops with the test's runtime.
#[derive(Clone)]
pub struct FakeOe {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    arrived: Arc<Notify>,
}

impl FakeOe {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeOe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FakeOe {
            addr: listener.local_addr().unwrap(),
            inner: Arc::default(),
            arrived: Arc::default(),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                let service = service_fn(move |req| {
                    let server = server.clone();
                    async move { server.respond(req).await }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        fake
    }

    /// `octoeverywhere.api_url` for this fake.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    /// Queues one answer with an empty body.
    pub fn answer(&self, status: u16) {
        self.script([Answer::Status(status, String::new())]);
    }

    /// Every request so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// Waits (up to `within` on tokio's clock) until `n` requests arrived,
    /// and returns them all.
    pub async fn wait_calls(&self, n: usize, within: Duration) -> Vec<Call> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.arrived.notified();
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "the fake OctoEverywhere API got {} of {n} requests in time: {calls:#?}",
                calls.len()
            );
        }
    }

    async fn respond(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, std::io::Error> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let (app_token, content_type) = (header("AppToken"), header("content-type"));
        let (method, path) = (req.method().to_string(), req.uri().path().to_owned());
        let bytes = req.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let call = Call {
            method,
            path,
            app_token,
            content_type,
            body,
            at: Instant::now(),
        };
        let scripted = {
            let mut inner = self.inner.lock().unwrap();
            inner.calls.push(call.clone());
            inner.script.pop_front()
        };
        self.arrived.notify_waiters();
        let (status, body) = match scripted {
            Some(Answer::Drop) => return Err(std::io::Error::other("dropped on purpose")),
            Some(Answer::Status(status, body)) => (status, body),
            None if call.path.ends_with("/SetNotificationWebhook") => {
                let b = &call.body;
                let echo = json!({
                    "CallbackUrl": b["CallbackUrl"], "EventTypes": b["EventTypes"],
                    "WebhookUrl": b["WebhookUrl"],
                    "InclusiveEventTypesFilter": b["InclusiveEventTypesFilter"],
                });
                (200, echo.to_string())
            }
            None => (200, "{}".to_owned()),
        };
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        Ok(response)
    }
}
