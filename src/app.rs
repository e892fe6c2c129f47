//! Wiring: opens the outbox, starts the broker connection (or the embedded
//! broker), restores state, starts the pipeline, the HTTP listener and the
//! App Connection registrars, and owns the shutdown order — stop accepting
//! and registering, drain, publish `offline`, disconnect.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use ulid::Ulid;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::config::cluster::Backend;
use crate::http::{self, Shared, Surface};
use crate::monitor::Monitor;
use crate::mqtt::publisher::{Broker, Brokers, Health, Publisher, Setup};
use crate::mqtt::topics::Topics;
use crate::mqtt::{self, BrokerUrl, Role, embedded, restore};
use crate::octoeverywhere::{self, Registrations};
use crate::outbox::Outbox;
use crate::pipeline::{self, ConfigCheck, Pipeline, Printers, Start, retained_of};
use crate::snapshots::Snapshots;
use crate::state::Field;
use crate::supervisor;

/// How long start-up waits for the broker's retained state.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reading the retained discovery configs back (in the background when
/// there are many).
const CONFIG_CHECK_TIMEOUT: Duration = Duration::from_secs(60);
/// Up to this many restored printers (35 configs each) the start-up config
/// check runs before the bridge listens, so their configs precede any
/// webhook's messages; beyond it, in the background.
const INLINE_CHECK_PRINTERS: usize = 100;
/// How long shutdown waits for the broker to take what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running bridge.
#[derive(Debug)]
pub struct Bridge {
    http_addr: SocketAddr,
    ingress_addr: Option<SocketAddr>,
    health: Health,
    registrations: Registrations,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Bridge {
    /// The address the webhook listener is bound to.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address the ingress listener is bound to, if configured.
    pub fn ingress_addr(&self) -> Option<SocketAddr> {
        self.ingress_addr
    }

    /// The broker connection's state.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The App Connection registration state of every printer with an
    /// `app_token`.
    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// Stops the bridge in order and waits until it has.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts every part of the bridge; returns once the listener is bound.
pub async fn start(config: Config) -> anyhow::Result<Bridge> {
    let started = Instant::now();
    let config = Arc::new(config);
    let topics = mqtt::topics_of(&config);
    let clustered = config.storage.backend == Backend::Jetstream;
    let outbox_dir = outbox_dir(&config)?;
    let limits = config.storage.limits();
    let (outbox, pending) =
        tokio::task::spawn_blocking(move || Outbox::open(&outbox_dir, limits)).await??;
    if pending.records > 0 {
        info!(
            records = pending.records,
            "Outbox holds webhooks from the last run; delivering them first"
        );
    }
    let next_seq = pending.last.map_or(0, |seq| seq + 1);

    let (urls, embedded_broker) = broker(&config).await?;
    let max_packet = mqtt::max_packet(&config, embedded_broker);

    let reader_of = |url: &BrokerUrl| {
        let id = format!("{}-restore-{}", config.mqtt.client_id, Ulid::generate());
        mqtt::options(&config, url, &id, Role::Reader)
    };
    let snapshots = Snapshots::new(&config.storage.data_dir);
    let (mut printers, reachable) =
        restore_printers(&config, &topics, &urls, &reader_of, &outbox, &snapshots).await?;
    // `urls` is never empty (see `broker`).
    let reader = || reader_of(reachable.map_or(&urls[0], |i| &urls[i]));
    info!(printers = printers.len(), "Restored printer state");
    // Ahead of any webhook: the version and the configs the broker does not
    // hold as they are. With many printers (10,000: 350,000 configs) the
    // comparison runs in the background, so the bridge listens as soon as
    // its state is back.
    let mut startup = vec![pipeline::version(&printers)];
    let filters = printers.discovery_filters();
    let check_reader = (reachable.is_some() && !filters.is_empty())
        .then(reader)
        .transpose()?
        .map(|options| (options, filters));
    let check = ConfigCheck::new(&printers);
    let mut background = None;
    if printers.len() <= INLINE_CHECK_PRINTERS {
        let table = RwLock::new(printers);
        let check = read_configs(check, check_reader, &topics, &table).await;
        printers = table.into_inner().unwrap_or_else(|e| e.into_inner());
        startup.extend(check.finish(&mut printers));
    } else {
        check.defer_discovery(&mut printers);
        background = Some((check, check_reader));
    }

    let client_id = mqtt::client_id(&config);
    let broker = |url: &BrokerUrl| {
        mqtt::options(&config, url, &client_id, Role::Bridge).map(|options| Broker {
            shown: url.shown(),
            options,
        })
    };
    let mut brokers = urls
        .iter()
        .map(broker)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = brokers.remove(0); // one per url: never empty
    let brokers = Brokers::new(first, brokers);
    let status_topic = config
        .homeassistant
        .discovery
        .then(|| config.homeassistant.status_topic.clone());
    let (publisher, running, births) = Publisher::start(Setup {
        brokers,
        topics: topics.clone(),
        outbox: outbox.clone(),
        pending,
        status_topic,
        max_packet,
    });
    let health = publisher.health();
    let (cluster, delivering) = if clustered {
        let (cluster, workers) = Cluster::start(config.clone(), urls.clone(), max_packet).await?;
        (Some(cluster), workers)
    } else {
        (None, Vec::new())
    };
    let topics_for_check = topics.clone();
    let pipeline = Pipeline::start(Start {
        printers,
        topics,
        outbox: outbox.clone(),
        next_seq,
        publisher,
        births,
        startup,
        max_packet,
        snapshots,
    });

    let (listener, ingress) = listen(&config).await?;
    let http_addr = listener.local_addr()?;
    let ingress_addr = ingress.as_ref().map(|l| l.local_addr()).transpose()?;
    let shown: Vec<String> = urls.iter().map(BrokerUrl::shown).collect();
    info!(%http_addr, brokers = %shown.join(","), "Listening for webhooks");

    let shutdown = CancellationToken::new();
    let checking = background.map(|(check, reader)| {
        tokio::spawn(check_configs(
            check,
            reader,
            topics_for_check,
            pipeline.clone(),
            shutdown.clone(),
        ))
    });
    // Registered once the listener is up, so the callback already answers.
    let registrations = Registrations::new();
    let registrars =
        octoeverywhere::start(&config, &registrations, Some(pipeline.clone()), &shutdown);
    let shared = Arc::new(Shared {
        guard: http::guard::Guard::new(&config.http),
        config,
        pipeline,
        health: health.clone(),
        outbox,
        started,
        registrations: registrations.clone(),
        monitor: Monitor::new(shutdown.clone()),
        cluster: cluster.clone(),
    });
    let upkeep = tokio::spawn(maintain(shared.outbox.clone(), shutdown.clone()));
    let stop = shutdown.clone();
    let task = tokio::spawn(async move {
        let ingress = ingress.map(|l| {
            let serve = http::serve(l, shared.clone(), stop.clone(), Surface::Ingress);
            tokio::spawn(serve)
        });
        http::serve(listener, shared, stop, Surface::Main).await;
        if let Some(ingress) = ingress {
            let _ = ingress.await;
        }
        // They hold pipeline handles: the writer ends after they do.
        if let Some(checking) = checking {
            let _ = checking.await;
        }
        for registrar in registrars {
            let _ = registrar.await;
        }
        // A message being delivered goes back to the stream for another bridge.
        if let Some(cluster) = cluster {
            cluster.stop();
        }
        for worker in delivering {
            let _ = worker.await;
        }
        running.finish(SHUTDOWN_GRACE).await;
        let _ = upkeep.await;
        info!("Stopped");
    });
    Ok(Bridge {
        http_addr,
        ingress_addr,
        health,
        registrations,
        shutdown,
        task,
    })
}

/// The brokers to publish to, tried in turn (never empty): `mqtt.url`,
/// else (as a Home Assistant add-on) the Supervisor's, else the embedded
/// one, started here. True when it is the embedded one.
async fn broker(config: &Config) -> anyhow::Result<(Vec<BrokerUrl>, bool)> {
    let configured = config.mqtt.broker_urls().map_err(anyhow::Error::msg)?;
    if !configured.is_empty() {
        return Ok((configured, false));
    }
    if let Some(url) = supervisor::broker(config).await {
        return Ok((vec![url], false));
    }
    embedded::start(config.broker.listen)?;
    let addr = embedded::connect_addr(config.broker.listen);
    let url = BrokerUrl {
        tls: false,
        host: addr.ip().to_string(),
        port: addr.port(),
        username: None,
        password: None,
    };
    Ok((vec![url], true))
}

/// The printer table at start: the configured printers, the retained
/// state of the first of `urls` that answers (read with `reader_of`), what
/// the undelivered records will set, and every printer with an
/// `app_token`. Also which broker answered.
async fn restore_printers(
    config: &Config,
    topics: &Topics,
    urls: &[BrokerUrl],
    reader_of: &impl Fn(&BrokerUrl) -> anyhow::Result<rumqttc::MqttOptions>,
    outbox: &Outbox,
    snapshots: &Snapshots,
) -> anyhow::Result<(Printers, Option<usize>)> {
    let mut printers = Printers::from_config(config);
    let state_filter = [topics.all_printers()];
    // The first broker that answers; later reads use it too.
    let mut reachable = None;
    for (i, url) in urls.iter().enumerate() {
        let state = restore::for_each_retained(
            reader_of(url)?,
            topics,
            &state_filter,
            RESTORE_TIMEOUT,
            |topic, payload| {
                keep_snapshot(snapshots, topics, &topic, &payload);
                printers.restore_one(topics, &topic, &payload);
            },
        );
        match state.await {
            Ok(()) => {
                reachable = Some(i);
                break;
            }
            Err(e) => {
                warn!(error = %e, broker = %url.shown(), "Could not read retained state from the broker")
            }
        }
    }
    match reachable {
        Some(_) => printers.restored(),
        None => warn!("No broker answered; starting without the retained state"),
    }
    // Undelivered records are what the broker will hold once delivered.
    {
        let outbox = outbox.clone();
        let mut table = printers;
        let topics = topics.clone();
        let snapshots = snapshots.clone();
        printers = tokio::task::spawn_blocking(move || {
            outbox.for_each_pending(|record| {
                for (topic, payload) in retained_of(record) {
                    keep_snapshot(&snapshots, &topics, topic, payload);
                    table.restore_one(&topics, topic, payload);
                }
            })?;
            table.restored();
            anyhow::Ok(table)
        })
        .await??;
    }
    // A printer with an app_token is a device before its first webhook.
    for (id, _) in config
        .printers
        .iter()
        .filter(|(_, p)| !p.app_token.is_empty())
    {
        printers.ensure(id);
    }
    Ok((printers, reachable))
}

/// Binds the webhook listener and, when configured, the ingress one.
async fn listen(config: &Config) -> anyhow::Result<(http::Listener, Option<http::Listener>)> {
    let listener = http::bind(&config.http)
        .await
        .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
    let ingress = match config.http.ingress_addr()? {
        Some(addr) => Some(
            http::bind_plain(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (http.ingress_listen)"))?,
        ),
        None => None,
    };
    Ok((listener, ingress))
}

/// Compares the broker's retained discovery configs with the table's as
/// they arrive. Without `reader` (no broker at start) nothing is held, so
/// everything is published.
async fn read_configs(
    mut check: ConfigCheck,
    reader: Option<(rumqttc::MqttOptions, Vec<String>)>,
    topics: &Topics,
    table: &RwLock<Printers>,
) -> ConfigCheck {
    let read_table = || table.read().unwrap_or_else(|e| e.into_inner());
    let Some((options, filters)) = reader else {
        return check;
    };
    let read = restore::for_each_retained(
        options,
        topics,
        &filters,
        CONFIG_CHECK_TIMEOUT,
        |topic, payload| check.offer(&read_table(), &topic, &payload),
    )
    .await;
    if let Err(e) = read {
        warn!(error = %e, "Could not read discovery configs back; publishing them all");
        return check.forget_matches();
    }
    check
}

/// The background start-up check: hands its result to the pipeline, which
/// publishes what is missing, changed or stale.
async fn check_configs(
    check: ConfigCheck,
    reader: Option<(rumqttc::MqttOptions, Vec<String>)>,
    topics: Topics,
    pipeline: Pipeline,
    shutdown: CancellationToken,
) {
    let check = tokio::select! {
        check = read_configs(check, reader, &topics, pipeline.printers()) => check,
        () = shutdown.cancelled() => return,
    };
    let _ = pipeline.configs_checked(check).await;
}

/// Runs until SIGTERM or Ctrl-C, then shuts down in order.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let bridge = start(config).await?;
    shutdown_signal().await;
    info!("Shutting down");
    bridge.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A retained snapshot read back at start goes to disk, for the status
/// page (the bridge does not hold snapshots in memory).
fn keep_snapshot(snapshots: &Snapshots, topics: &Topics, topic: &str, payload: &[u8]) {
    let snapshot = Field::Snapshot.leaf();
    if let Some((slug, leaf)) = topics.parse_printer(topic)
        && leaf == snapshot
        && !payload.is_empty()
        && let Err(e) = snapshots.write(slug, payload)
    {
        warn!(printer = %slug, error = %e, "Could not keep the restored snapshot for the status page");
    }
}

/// Where the outbox lives. In the clustered mode accepted webhooks are in
/// the stream: the outbox holds only this run's bridge and discovery
/// messages, in a directory of its own emptied at every start, so a
/// restarted bridge never replays anything stale.
fn outbox_dir(config: &Config) -> anyhow::Result<std::path::PathBuf> {
    let data = &config.storage.data_dir;
    if config.storage.backend != Backend::Jetstream {
        return Ok(data.clone());
    }
    let dir = data.join("cluster");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// How often the outbox is looked after (reopened after a fault, compacted
/// once empty) and freed memory is given back.
const UPKEEP: Duration = Duration::from_secs(1);

/// Looks after the outbox in the background until `stop`.
async fn maintain(outbox: Outbox, stop: CancellationToken) {
    let mut commits = outbox.commits();
    loop {
        tokio::select! {
            () = tokio::time::sleep(UPKEEP) => {}
            () = stop.cancelled() => return,
        }
        let now = outbox.commits();
        let busy = now - commits > crate::memory::BUSY_COMMITS_PER_UPKEEP;
        commits = now;
        let outbox = outbox.clone();
        let _ = tokio::task::spawn_blocking(move || {
            outbox.maintain();
            crate::memory::give_back(busy);
        })
        .await;
    }
}
