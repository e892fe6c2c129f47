//! The Home Assistant Supervisor: when the bridge runs as an add-on
//! (`SUPERVISOR_TOKEN` set) and `mqtt.url` is empty, it asks the Supervisor's
//! services API for the MQTT broker (host, port, credentials, TLS).

use std::time::Duration;

use serde::Deserialize;
use tracing::{info, warn};

use crate::config::Config;
use crate::mqtt::BrokerUrl;

/// Set by the Supervisor in every add-on container.
pub const TOKEN_ENV: &str = "SUPERVISOR_TOKEN";
/// Overrides [`DEFAULT_URL`]; meant for tests.
pub const URL_ENV: &str = "PRINT2MQTT_SUPERVISOR_URL";
/// Where add-ons reach the Supervisor.
pub const DEFAULT_URL: &str = "http://supervisor";
/// How long the Supervisor gets to answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the Supervisor did not tell us the broker.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// No answer (not reachable, timeout, bad URL).
    #[error("cannot reach the Supervisor at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 200 `{"result":"ok"}`, e.g. no MQTT broker
    /// add-on installed ("Service not enabled").
    #[error("the Supervisor answered {status}: {message}")]
    Refused { status: u16, message: String },
    /// A 200 whose body is not the service description.
    #[error("the Supervisor's answer is not an MQTT service description: {0}")]
    Malformed(String),
}

/// The Supervisor's envelope: `{"result":"ok","data":{...}}` or
/// `{"result":"error","message":"..."}`.
#[derive(Debug, Deserialize)]
struct Envelope {
    result: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// `GET /services/mqtt` data (the Supervisor's `SCHEMA_SERVICE_MQTT`).
#[derive(Debug, Deserialize)]
struct MqttService {
    host: String,
    port: u16,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    ssl: bool,
}

/// The broker to use as an add-on: `None` unless `SUPERVISOR_TOKEN` is set
/// and `mqtt.url` is empty, or when the Supervisor cannot say (logged as a
/// warning; the caller then starts the embedded broker).
pub async fn broker(config: &Config) -> Option<BrokerUrl> {
    if !config.mqtt.url.is_empty() {
        return None;
    }
    let token = std::env::var(TOKEN_ENV).ok().filter(|t| !t.is_empty())?;
    let base = std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    match mqtt_service(&base, &token).await {
        Ok(url) => {
            info!(
                host = %url.host,
                port = url.port,
                tls = url.tls,
                "Using the MQTT broker the Home Assistant Supervisor provides"
            );
            Some(url)
        }
        Err(e) => {
            warn!(
                error = %e,
                "No MQTT broker from the Home Assistant Supervisor; starting the embedded broker. \
                 Install the Mosquitto broker add-on, or set the add-on's mqtt options by hand"
            );
            None
        }
    }
}

/// Asks `{base}/services/mqtt` with the add-on's token.
pub async fn mqtt_service(base: &str, token: &str) -> Result<BrokerUrl, SupervisorError> {
    let url = format!("{}/services/mqtt", base.trim_end_matches('/'));
    let unreachable = |source| SupervisorError::Unreachable {
        url: url.clone(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .map_err(unreachable)?;
    let answer = client
        .get(&url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(unreachable)?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await.map_err(unreachable)?;
    parse(status, &body)
}

/// Reads the Supervisor's answer.
fn parse(status: u16, body: &[u8]) -> Result<BrokerUrl, SupervisorError> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(e) => e,
        Err(_) if status != 200 => {
            return Err(SupervisorError::Refused {
                status,
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            });
        }
        Err(e) => return Err(SupervisorError::Malformed(e.to_string())),
    };
    if status != 200 || envelope.result != "ok" {
        return Err(SupervisorError::Refused {
            status,
            message: envelope.message.unwrap_or(envelope.result),
        });
    }
    let data = envelope
        .data
        .ok_or_else(|| SupervisorError::Malformed("no `data`".into()))?;
    let s: MqttService =
        serde_json::from_value(data).map_err(|e| SupervisorError::Malformed(e.to_string()))?;
    Ok(BrokerUrl {
        tls: s.ssl,
        host: s.host,
        port: s.port,
        username: s.username.filter(|u| !u.is_empty()),
        password: s.password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_service_description() {
        let body = br#"{"result":"ok","data":{"addon":"core_mosquitto","host":"core-mosquitto",
            "port":1883,"ssl":false,"protocol":"3.1.1","username":"addons","password":"pw"}}"#;
        let url = parse(200, body).unwrap();
        assert_eq!(
            url,
            BrokerUrl {
                tls: false,
                host: "core-mosquitto".into(),
                port: 1883,
                username: Some("addons".into()),
                password: Some("pw".into()),
            }
        );
        let tls = parse(
            200,
            br#"{"result":"ok","data":{"host":"b","port":8883,"ssl":true}}"#,
        );
        let tls = tls.unwrap();
        assert!(tls.tls && tls.username.is_none());
    }

    #[test]
    fn refusals_and_garbage_are_errors() {
        let e = parse(
            400,
            br#"{"result":"error","message":"Service not enabled","data":{}}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the Supervisor answered 400: Service not enabled"
        );
        let e = parse(403, b"forbidden").unwrap_err();
        assert!(matches!(e, SupervisorError::Refused { status: 403, .. }));
        let e = parse(200, br#"{"result":"ok","data":{"host":"x"}}"#).unwrap_err();
        assert!(matches!(e, SupervisorError::Malformed(_)), "{e}");
        let e = parse(200, b"<html>").unwrap_err();
        assert!(matches!(e, SupervisorError::Malformed(_)), "{e}");
    }
}
