//! `print2mqtt remove-printer`: finds a printer's retained topics and its
//! discovery configs on the broker and clears them with empty retained
//! messages — configs first, so Home Assistant deletes the device before its
//! entities would see the empty values.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use ulid::Ulid;

use super::restore::read_retained;
use super::topics::{LAST_EVENT, Topics};
use super::{BrokerUrl, Role, embedded};
use crate::config::Config;
use crate::homeassistant;
use crate::pipeline::REMOVAL_GRACE;
use crate::slug::slugify;

/// How long each step (read, clear) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a removal cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The removed printer's slug.
    pub slug: String,
    /// Retained `<base>/<slug>/<leaf>` topics cleared.
    pub values: usize,
    /// Discovery configs cleared.
    pub configs: usize,
}

/// Why a removal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// Nothing of that printer is on the broker.
    #[error(
        "no printer `{printer}` on the broker: nothing retained under {base}/{slug}/ and no \
         printer with that id; give the printer's slug (its topic level) or its printer id"
    )]
    NotFound {
        /// As given on the command line.
        printer: String,
        /// The base topic searched.
        base: String,
        /// The slug looked for.
        slug: String,
    },
    /// The broker could not be reached or did not answer.
    #[error(transparent)]
    Broker(#[from] anyhow::Error),
}

/// Removes the printer with this slug or printer id from the configured
/// broker.
pub async fn remove_printer(config: &Config, printer: &str) -> Result<Removed, RemoveError> {
    let topics = Topics::new(&config.mqtt.base_topic);
    let ctx = homeassistant::Context::from_config(config);
    let url = broker_url(config)?;
    let options = || {
        let id = format!("{}-remove-{}", config.mqtt.client_id, Ulid::generate());
        super::options(config, &url, &id, Role::Reader)
    };

    let state = read_retained(options()?, &topics, &[topics.all_printers()], STEP_TIMEOUT).await?;
    let slug = resolve(&topics, &state, printer);
    let values: Vec<String> = state
        .iter()
        .filter(|(t, _)| topics.parse_printer(t).is_some_and(|(s, _)| s == slug))
        .map(|(t, _)| t.clone())
        .collect();
    let node = ctx.discovery.node(&slug);
    let filters = homeassistant::node_filters(&ctx, Some(&slug));
    let configs: Vec<String> = read_retained(options()?, &topics, &filters, STEP_TIMEOUT)
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| ctx.discovery.parse_node(t) == Some(node.as_str()))
        .collect();
    if values.is_empty() && configs.is_empty() {
        return Err(RemoveError::NotFound {
            printer: printer.to_owned(),
            base: topics.base().to_owned(),
            slug,
        });
    }
    clear(options()?, &configs).await?;
    if !configs.is_empty() && !values.is_empty() {
        tokio::time::sleep(REMOVAL_GRACE).await;
    }
    clear(options()?, &values).await?;
    Ok(Removed {
        slug,
        values: values.len(),
        configs: configs.len(),
    })
}

/// The broker to connect to: the first `mqtt.url`, or the embedded
/// broker's address (which only runs inside a running bridge).
fn broker_url(config: &Config) -> anyhow::Result<BrokerUrl> {
    let urls = config.mqtt.broker_urls().map_err(anyhow::Error::msg)?;
    Ok(match urls.into_iter().next() {
        Some(url) => url,
        None => {
            let addr = embedded::connect_addr(config.broker.listen);
            BrokerUrl {
                tls: false,
                host: addr.ip().to_string(),
                port: addr.port(),
                username: None,
                password: None,
            }
        }
    })
}

/// The slug `printer` names: a slug with retained topics, else the slug of
/// the retained printer whose id it is, else what the id would slugify to.
fn resolve(topics: &Topics, retained: &[(String, Bytes)], printer: &str) -> String {
    let slugs = || retained.iter().filter_map(|(t, _)| topics.parse_printer(t));
    if slugs().any(|(slug, _)| slug == printer) {
        return printer.to_owned();
    }
    let ids: Vec<(&str, String)> = retained
        .iter()
        .filter_map(|(t, payload)| {
            let (slug, leaf) = topics.parse_printer(t)?;
            let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
            let id = json.get("printer_id")?.as_str()?.to_owned();
            (leaf == LAST_EVENT).then_some((slug, id))
        })
        .collect();
    ids.iter()
        .find(|(_, id)| id == printer)
        .or_else(|| {
            ids.iter()
                .find(|(_, id)| crate::slug::same_printer(id, printer))
        })
        .map_or_else(|| slugify(printer), |(slug, _)| (*slug).to_owned())
}

/// Publishes an empty retained message on each topic and waits until the
/// broker acknowledged every one.
async fn clear(options: MqttOptions, topics: &[String]) -> anyhow::Result<()> {
    if topics.is_empty() {
        return Ok(());
    }
    // Room for every request, so publishing never waits on the loop below.
    let (client, mut eventloop) = AsyncClient::new(options, topics.len() + 8);
    let mut sent = false;
    let mut acked = 0;
    let work = async {
        while acked < topics.len() {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) if !sent => {
                    sent = true;
                    for topic in topics {
                        client
                            .publish(topic, QoS::AtLeastOnce, true, Bytes::new())
                            .await?;
                    }
                }
                Event::Incoming(Packet::PubAck(_)) => acked += 1,
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    let result = tokio::time::timeout(STEP_TIMEOUT, work).await;
    let _ = client.try_disconnect();
    match result {
        Ok(done) => done,
        Err(_) => anyhow::bail!(
            "the broker did not acknowledge clearing {} topics within {}s",
            topics.len(),
            STEP_TIMEOUT.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printers_are_found_by_slug_or_id() {
        let t = Topics::new("print2mqtt");
        let retained = vec![
            (
                "print2mqtt/ender_3/state".to_owned(),
                Bytes::from_static(b"idle"),
            ),
            (
                "print2mqtt/ender_3/last_event".to_owned(),
                Bytes::from_static(br#"{"event":"test","printer_id":"Ender 3"}"#),
            ),
            (
                "print2mqtt/mk4/last_event".to_owned(),
                Bytes::from_static(br#"{"event":"test","printer_id":"ABC"}"#),
            ),
        ];
        assert_eq!(resolve(&t, &retained, "ender_3"), "ender_3");
        assert_eq!(resolve(&t, &retained, "Ender 3"), "ender_3");
        assert_eq!(resolve(&t, &retained, "abc"), "mk4");
        assert_eq!(resolve(&t, &retained, "Gone Printer"), "gone_printer");
    }
}
