//! The HTTP client for OctoEverywhere's App Connection API: one shared
//! client per `api_url`, a bound on calls in flight, redirects not followed,
//! answers read up to a limit and handed to [`classify`].

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Semaphore;

use super::api::{Call, Connection, Outcome, TOKEN_HEADER, classify};

/// Time one call may take in all.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Time the connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls in flight at once, whatever the number of printers.
const CONCURRENT_CALLS: usize = 8;
/// Largest answer body read; more is cut off.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the HTTPS client for OctoEverywhere: {0}")]
pub struct ClientError(#[source] reqwest::Error);

/// The HTTP client for one `api_url`; cheap to clone, shared by every
/// printer, with at most [`CONCURRENT_CALLS`] calls in flight.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    api_url: String,
    limit: Arc<Semaphore>,
}

impl Client {
    /// A client for `api_url` (`octoeverywhere.api_url`).
    pub fn new(api_url: &str) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("print2mqtt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError)?;
        Ok(Client {
            http,
            api_url: api_url.trim_end_matches('/').to_owned(),
            limit: Arc::new(Semaphore::new(CONCURRENT_CALLS)),
        })
    }

    /// Makes one call for `connection` and classifies the answer. A
    /// registration without a secret is refused without calling.
    pub async fn call(&self, call: Call, connection: &Connection) -> Outcome {
        let url = format!("{}{}", self.api_url, call.path());
        let request = match call {
            Call::Register => match connection.register_body() {
                Some(body) => self.http.post(url).json(&body),
                None => return Outcome::NoSecret,
            },
            Call::Test => self.http.get(url),
            Call::Unregister => self.http.post(url).json(&json!({})),
        }
        .header(TOKEN_HEADER, connection.app_token());
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.limit.acquire().await;
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_builder() => {
                return Outcome::Rejected {
                    status: None,
                    message: connection.scrub(&chain(&e)),
                };
            }
            Err(e) => return unreachable(connection, &e),
        };
        let status = response.status().as_u16();
        match read_capped(response).await {
            Ok(body) => classify(call, status, &body, connection),
            Err(e) => unreachable(connection, &e),
        }
    }
}

fn unreachable(connection: &Connection, e: &reqwest::Error) -> Outcome {
    Outcome::Temporary {
        status: None,
        detail: connection.scrub(&format!("could not reach OctoEverywhere: {}", chain(e))),
    }
}

/// The answer body, at most [`MAX_ANSWER_BYTES`] of it.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_ANSWER_BYTES {
            break;
        }
    }
    Ok(body)
}

/// An error and its causes on one line.
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
