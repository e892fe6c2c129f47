//! Reads the bridge's own retained topics back (docs/reliability.md): at start, so a
//! restart restores per-printer state and knows which discovery configs the
//! broker already holds; and for `remove-printer`.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tracing::debug;
use ulid::Ulid;

use super::topics::Topics;

/// Every retained, non-empty `(topic, payload)` matching one of `filters`.
pub async fn read_retained(
    options: MqttOptions,
    topics: &Topics,
    filters: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut found = Vec::new();
    for_each_retained(options, topics, filters, timeout, |topic, payload| {
        found.push((topic, payload));
    })
    .await?;
    Ok(found)
}

/// Hands every retained, non-empty message matching one of `filters` to
/// `found` as it arrives (nothing is collected: a restart with 10,000
/// printers reads half a million of them).
///
/// Subscribes, then publishes a marker on a topic of its own: the broker
/// sends the retained messages before the marker comes back, so the marker
/// says "that was all" without any guessing delay. Fails after `timeout`.
pub async fn for_each_retained(
    options: MqttOptions,
    topics: &Topics,
    filters: &[String],
    timeout: Duration,
    mut found: impl FnMut(String, Bytes),
) -> anyhow::Result<()> {
    let marker = format!("{}/bridge/restore/{}", topics.base(), Ulid::generate());
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut count = 0usize;
    let collect = async {
        loop {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => {
                    let filters = filters
                        .iter()
                        .chain([&marker])
                        .map(|path| SubscribeFilter::new(path.clone(), QoS::AtMostOnce));
                    client.subscribe_many(filters).await?;
                }
                Event::Incoming(Packet::SubAck(_)) => {
                    client
                        .publish(&marker, QoS::AtMostOnce, false, Bytes::new())
                        .await?;
                }
                Event::Incoming(Packet::Publish(p)) if p.topic == marker => break,
                Event::Incoming(Packet::Publish(p)) if p.retain && !p.payload.is_empty() => {
                    count += 1;
                    found(p.topic, p.payload);
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
            debug!(count, "Read retained messages");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("no answer from the broker within {}s", timeout.as_secs()),
    }
}
