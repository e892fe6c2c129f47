//! Delivery from the stream: each bridge pulls every partition's durable
//! consumer (one message in flight per partition across all bridges),
//! applies the event to the printer's shared state from the key-value
//! bucket exactly as a single bridge applies it to its table, publishes the
//! same messages, waits for every PUBACK, stores the new state (compare and
//! set) and only then acknowledges the message.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::kv::Store;
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use super::publish::Sender;
use super::wire::{self, Shared};
use crate::event::Event;
use crate::mqtt::delivery::packet_size;
use crate::mqtt::messages::Message;
use crate::mqtt::topics::Topics;
use crate::pipeline::Printers;
use crate::state::Field;

/// How long one pull waits for a message before asking again.
const PULL_WAIT: Duration = Duration::from_secs(5);
/// Pause before another try after a failure (NATS or broker away).
const RETRY: Duration = Duration::from_millis(500);

/// One partition's delivery loop on this bridge.
pub struct Worker {
    pub consumer: PullConsumer,
    pub kv: Store,
    pub sender: Sender,
    /// This bridge's table: slugs and what discovery it has published.
    pub table: Arc<Mutex<Printers>>,
    pub topics: Topics,
    pub max_packet: usize,
    pub ack_wait: Duration,
    pub stop: CancellationToken,
}

impl Worker {
    /// Pulls and delivers until `stop`.
    pub async fn run(self) {
        while !self.stop.is_cancelled() {
            let fetch = self
                .consumer
                .fetch()
                .max_messages(1)
                .expires(PULL_WAIT)
                .messages();
            let batch = tokio::select! {
                batch = fetch => batch,
                () = self.stop.cancelled() => return,
            };
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    warn!(error = %e, "Could not pull from the stream");
                    self.pause().await;
                    continue;
                }
            };
            while let Some(message) = batch.next().await {
                match message {
                    Ok(message) => self.handle(message).await,
                    Err(e) => warn!(error = %e, "Pull from the stream failed"),
                }
            }
        }
    }

    async fn pause(&self) {
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Delivers one message, retrying until it is done or the bridge stops
    /// (then it goes back to the stream for another bridge at once).
    async fn handle(&self, message: async_nats::jetstream::Message) {
        let Ok(seq) = message.info().map(|i| i.stream_sequence) else {
            return;
        };
        let event = match wire::decode_event(&message.payload) {
            Ok(event) => event,
            Err(e) => {
                error!(seq, error = %e, "Unreadable message on the stream: dropped");
                let _ = message.ack_with(AckKind::Term).await;
                return;
            }
        };
        let mut progress = tokio::time::interval(self.ack_wait / 3);
        progress.tick().await;
        let mut delivery = pin!(self.deliver_retrying(seq, &event));
        loop {
            tokio::select! {
                () = &mut delivery => break,
                _ = progress.tick() => {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                () = self.stop.cancelled() => {
                    let _ = message.ack_with(AckKind::Nak(None)).await;
                    return;
                }
            }
        }
        if let Err(e) = message.double_ack().await {
            // Delivered already: whoever gets it again skips it by its sequence.
            warn!(seq, error = %e, "Could not acknowledge a delivered message");
        }
    }

    async fn deliver_retrying(&self, seq: u64, event: &Event) {
        while let Err(e) = self.deliver(seq, event).await {
            warn!(seq, printer_id = %event.printer_id, error = %e, "Delivery failed; trying again");
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Applies, publishes and stores one event, unless the shared state
    /// says it was applied already.
    async fn deliver(&self, seq: u64, event: &Event) -> Result<(), String> {
        let slug = self.lock().slugs.resolve(&event.printer_id);
        let entry = self
            .kv
            .entry(slug.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let revision = entry.as_ref().map(|e| e.revision);
        // An entry this version cannot read must not hold up the partition:
        // the event is applied to an empty state, as for a new printer.
        let shared = match entry.filter(|e| !e.value.is_empty()) {
            Some(e) => Shared::decode(&e.value).unwrap_or_else(|why| {
                error!(printer = %slug, error = %why, "Unreadable shared state: starting it afresh");
                Shared::default()
            }),
            None => Shared::default(),
        };
        if shared.last_seq >= seq {
            return Ok(());
        }
        let messages = self.messages(&slug, &shared, seq, event);
        self.sender.publish(messages.clone()).await?;
        let mut next = shared;
        next.last_seq = seq;
        next.merge(self.printer_values(&slug, &messages));
        let stored = match revision {
            Some(r) => self
                .kv
                .update(slug.as_str(), next.encode(), r)
                .await
                .map_err(|e| e.to_string()),
            None => self
                .kv
                .create(slug.as_str(), next.encode())
                .await
                .map_err(|e| e.to_string()),
        };
        match stored {
            Ok(_) => Ok(()),
            // Another bridge stored it meanwhile (this one was too slow).
            Err(e) => match self.kv.entry(slug.as_str()).await {
                Ok(Some(now)) if Shared::decode(&now.value).is_ok_and(|s| s.last_seq >= seq) => {
                    Ok(())
                }
                _ => Err(e),
            },
        }
    }

    /// The event's messages, as a single bridge renders them from the
    /// printer's state (none too large for the broker).
    fn messages(&self, slug: &str, shared: &Shared, seq: u64, event: &Event) -> Vec<Message> {
        let mut table = self.lock();
        let retained = shared.retained.iter().map(|(t, p)| (t.as_str(), &p[..]));
        table.replace(&self.topics, slug, retained);
        // The bridge's webhook counter counts the stream's webhooks.
        table.set_webhooks(seq.saturating_sub(1));
        let (_, messages) = table.accept(&self.topics, event);
        drop(table);
        messages
            .into_iter()
            .filter(|m| {
                let fits = packet_size(m) <= self.max_packet;
                if !fits {
                    warn!(topic = %m.topic, max_packet_bytes = self.max_packet, "Message larger than the broker takes: left out");
                }
                fits
            })
            .collect()
    }

    /// The retained values among `messages` that belong to this printer.
    fn printer_values<'m>(
        &self,
        slug: &str,
        messages: &'m [Message],
    ) -> Vec<(&'m str, &'m [u8], bool)> {
        let snapshot = Field::Snapshot.leaf();
        messages
            .iter()
            .filter(|m| m.retain)
            .filter_map(|m| {
                let (s, leaf) = self.topics.parse_printer(&m.topic)?;
                (s == slug).then_some((m.topic.as_str(), &m.payload[..], leaf == snapshot))
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Printers> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}
