//! The clustered mode (`storage.backend = "jetstream"`): accepted webhooks
//! go to a replicated NATS JetStream stream instead of the local outbox,
//! and every bridge delivers from it (`deliver.rs`) over its own MQTT
//! connection (`publish.rs`). Owns the NATS connection, the stream, its
//! consumers and the printers' shared-state bucket.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context, consumer, kv, stream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::event::Event;
use crate::mqtt::BrokerUrl;
use crate::mqtt::topics::Topics;
use crate::pipeline::{Printers, Rejected};
use crate::slug::Slugs;

mod deliver;
mod publish;
pub mod wire;

/// How long a webhook waits for the stream's acknowledgement before 503.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one publish waits for its acknowledgement before it is sent
/// again: a publish sent to a leader that just died is never answered, and
/// the new leader (elected within a second or two) answers the next one.
const ACCEPT_ATTEMPT: Duration = Duration::from_secs(1);
/// How long start-up keeps trying to create the stream (a cluster that
/// has just started is still electing its leader).
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest stream message: NATS takes 1 MiB by default; a larger
/// snapshot is left out, as one larger than the broker takes.
const MAX_MESSAGE: usize = 1000 * 1024;
/// How long `/readyz` waits for the stream's info.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The running clustered mode: accepts into the stream, delivers from it.
#[derive(Debug, Clone)]
pub struct Cluster {
    js: Context,
    client: async_nats::Client,
    stream: String,
    partitions: u64,
    max_packet: usize,
    slugs: Arc<Mutex<Slugs>>,
    stop: CancellationToken,
}

impl Cluster {
    /// Connects to `nats.urls`, creates the stream, the consumers and the
    /// bucket if they are missing (several bridges may start at once) and
    /// starts delivering to `urls` (tried in turn).
    pub async fn start(
        config: Arc<Config>,
        urls: Vec<BrokerUrl>,
        max_packet: usize,
    ) -> anyhow::Result<(Cluster, Vec<JoinHandle<()>>)> {
        let nats = &config.nats;
        let client = async_nats::ConnectOptions::new()
            .name(format!("print2mqtt {}", config.mqtt.client_id))
            .connection_timeout(Duration::from_secs(5))
            .connect(nats.urls.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot connect to NATS ({}): {e}", nats.urls.join(", "))
            })?;
        let js = jetstream::new(client.clone());
        let (kv, consumers) = setup(&js, &config).await?;
        info!(stream = %nats.stream, partitions = nats.partitions, replicas = nats.replicas, "JetStream backend ready");
        let stop = CancellationToken::new();
        let sender = publish::Sender::start(config.clone(), urls, stop.clone());
        let table = Arc::new(Mutex::new(Printers::from_config(&config)));
        let workers = consumers
            .into_iter()
            .map(|consumer| {
                let worker = deliver::Worker {
                    consumer,
                    kv: kv.clone(),
                    sender: sender.clone(),
                    table: table.clone(),
                    topics: Topics::new(&config.mqtt.base_topic),
                    max_packet,
                    ack_wait: Duration::from_secs(nats.ack_wait_secs),
                    stop: stop.clone(),
                };
                tokio::spawn(worker.run())
            })
            .collect();
        let cluster = Cluster {
            js,
            client,
            stream: nats.stream.clone(),
            partitions: nats.partitions,
            max_packet,
            slugs: Arc::new(Mutex::new(Slugs::new(config.aliases()))),
            stop,
        };
        Ok((cluster, workers))
    }

    /// Puts one event on the stream; returns the printer's slug once the
    /// cluster has stored it (its replicas acknowledged).
    pub async fn accept(&self, mut event: Event) -> Result<String, Rejected> {
        let slug = self
            .slugs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resolve(&event.printer_id);
        let mut payload = wire::encode_event(&event);
        let snapshot = event.snapshot.as_ref().map_or(0, |s| s.len());
        if snapshot > 0 && (payload.len() > MAX_MESSAGE || snapshot > self.max_packet) {
            warn!(printer = %slug, snapshot_bytes = snapshot, "Snapshot larger than the cluster or the broker takes: webhook accepted without it");
            event.snapshot = None;
            payload = wire::encode_event(&event);
        }
        let partition = wire::partition(&event.printer_id, self.partitions);
        let subject = format!("{}.in.{partition}", self.stream);
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", event.id.to_string().as_str());
        // While the cluster elects new leaders (a node died) a publish fails
        // for a few seconds: asked again within the deadline, under the same
        // message id, so a publish that did land is not stored twice.
        let deadline = tokio::time::Instant::now() + ACCEPT_TIMEOUT;
        let mut pause = Duration::from_millis(50);
        loop {
            let stored = async {
                let ack = self
                    .js
                    .publish_with_headers(subject.clone(), headers.clone(), payload.clone())
                    .await?;
                ack.await.map_err(async_nats::Error::from)
            };
            let attempt = (tokio::time::Instant::now() + ACCEPT_ATTEMPT).min(deadline);
            let problem = match tokio::time::timeout_at(attempt, stored).await {
                Ok(Ok(_)) => return Ok(slug),
                Ok(Err(e)) => e.to_string(),
                Err(_) if attempt < deadline => continue,
                Err(_) => return Err(Rejected::Cluster("no acknowledgement within 5 s".into())),
            };
            if tokio::time::Instant::now() + pause >= deadline {
                return Err(Rejected::Cluster(problem));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// `Err` with the reason while NATS is unreachable or the stream is missing.
    pub async fn ready(&self) -> Result<(), String> {
        use async_nats::connection::State;
        use async_nats::jetstream::ErrorCode;
        use async_nats::jetstream::context::GetStreamErrorKind;
        if self.client.connection_state() != State::Connected {
            return Err("NATS disconnected".into());
        }
        // Only a stream that is gone makes the bridge unready. While the
        // cluster elects new leaders (a node died) the stream's info does
        // not come, on every bridge at once; a load balancer would then
        // take them all out, while a webhook waits for the election instead.
        match tokio::time::timeout(READY_TIMEOUT, self.js.get_stream(&self.stream)).await {
            Ok(Err(e))
                if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
            {
                Err(format!("stream {}: {e}", self.stream))
            }
            Ok(Err(e)) => {
                debug!(error = %e, "Stream info unavailable (the cluster may be electing leaders)");
                Ok(())
            }
            Ok(Ok(_)) | Err(_) => Ok(()),
        }
    }

    /// Stops pulling: a message being delivered goes back to the stream.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

/// Creates (or finds) the stream, one durable consumer per partition and
/// the shared-state bucket, retrying while the cluster is not ready.
async fn setup(
    js: &Context,
    config: &Config,
) -> anyhow::Result<(kv::Store, Vec<consumer::PullConsumer>)> {
    let started = Instant::now();
    loop {
        match try_setup(js, config).await {
            Ok(done) => return Ok(done),
            Err(e) if started.elapsed() < SETUP_TIMEOUT => {
                warn!(error = %e, "JetStream not ready yet; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e.context("cannot set up the JetStream stream")),
        }
    }
}

async fn try_setup(
    js: &Context,
    config: &Config,
) -> anyhow::Result<(kv::Store, Vec<consumer::PullConsumer>)> {
    let nats = &config.nats;
    let replicas = nats.replicas as usize;
    let stream = js
        .get_or_create_stream(stream::Config {
            name: nats.stream.clone(),
            subjects: vec![format!("{}.in.*", nats.stream)],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_messages: i64::try_from(config.storage.max_events).unwrap_or(i64::MAX),
            max_bytes: i64::try_from(config.storage.max_bytes).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("stream {}: {e}", nats.stream))?;
    let mut consumers = Vec::new();
    for p in 0..nats.partitions {
        let name = format!("{}-p{p}", nats.stream);
        let consumer = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("{}.in.{p}", nats.stream),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(nats.ack_wait_secs),
                    max_ack_pending: 1,
                    deliver_policy: consumer::DeliverPolicy::All,
                    num_replicas: replicas,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
        consumers.push(consumer);
    }
    // The bucket's stream made here rather than by `create_key_value`,
    // whose account query nats-server 2.9 answers in a shape it cannot read.
    let bucket = format!("{}_printers", nats.stream);
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("bucket {bucket}: {e}"))?;
    let kv = js
        .get_key_value(&bucket)
        .await
        .map_err(|e| anyhow::anyhow!("bucket {bucket}: {e}"))?;
    Ok((kv, consumers))
}
