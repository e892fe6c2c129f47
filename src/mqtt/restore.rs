//! Reads the bridge's own retained topics back at start (DESIGN.md §8), so a
//! restart restores per-printer state instead of resetting it.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tracing::debug;
use ulid::Ulid;

use super::topics::Topics;

/// Every retained `(topic, payload)` under `<base>/+/+`.
///
/// Subscribes, then publishes a marker on a topic of its own: the broker
/// sends the retained messages before the marker comes back, so the marker
/// says "that was all" without any guessing delay. Fails after `timeout`.
pub async fn read_retained(
    options: MqttOptions,
    topics: &Topics,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Bytes)>> {
    let marker = format!("{}/bridge/restore/{}", topics.base(), Ulid::generate());
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut found = Vec::new();
    let collect = async {
        loop {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let filters = [topics.all_printers(), marker.clone()]
                        .map(|path| SubscribeFilter::new(path, QoS::AtMostOnce));
                    client.subscribe_many(filters).await?;
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish(&marker, QoS::AtMostOnce, false, Bytes::new())
                        .await?;
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == marker => break,
                Event::Incoming(Packet::Publish(p)) if p.retain && !p.payload.is_empty() => {
                    found.push((p.topic, p.payload));
                }
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    let result = tokio::time::timeout(timeout, collect).await;
    let _ = client.try_disconnect();
    match result {
        Ok(Ok(())) => {
            debug!(count = found.len(), "Read retained state");
            Ok(found)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("no answer from the broker within {}s", timeout.as_secs()),
    }
}
