//! The hyper listener: binds (with TLS when configured), accepts connections
//! within `http.max_connections` and hands each to [`conn`], and shuts down
//! gracefully — stop accepting, let in-flight requests finish.

mod access;
mod api;
mod appconnection;
mod body;
mod conn;
pub mod guard;
mod ingress;
pub mod limits;
mod origin;
mod reply;
mod routes;
mod setup;
mod sse;
mod status;
#[cfg(test)]
mod test_support;
mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::{self, Config};
use crate::monitor::Monitor;
use crate::mqtt::publisher::Health;
use crate::octoeverywhere::Registrations;
use crate::outbox::Outbox;
use crate::pipeline::Pipeline;

/// Time in-flight requests get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(10);

/// What every request handler can reach.
#[derive(Debug)]
pub struct Shared {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub health: Health,
    pub outbox: Outbox,
    pub started: Instant,
    /// App Connection registration state per printer with an `app_token`.
    pub registrations: Registrations,
    /// The webhook log, metrics and live-stream shutdown signal.
    pub monitor: Monitor,
    /// The budget of unauthenticated bodies and the login rate limit.
    pub guard: guard::Guard,
    /// The JetStream backend, when `storage.backend = "jetstream"`:
    /// webhooks go there instead of the pipeline.
    pub cluster: Option<crate::cluster::Cluster>,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Everything: webhooks, status page, API (`http.listen`).
    Main,
    /// Home Assistant ingress: status page and API only, behind the
    /// Supervisor's proxy (`http.ingress_listen`).
    Ingress,
}

/// A bound listener, with its TLS acceptor when `http.tls_cert` is set.
pub struct Listener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Listener {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves HTTP on `listener` until `shutdown`, then drains.
pub async fn serve(
    listener: Listener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    surface: Surface,
) {
    let graceful = GracefulShutdown::new();
    let limits = limits::Limits::new(&shared.config.http);
    let table = Arc::new(limits::Table::new(
        limits.max_connections,
        limits.max_connections_per_peer,
    ));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    warn!(error = %e, "Accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let Some(slot) = table.admit(peer.ip()) else {
            debug!(%peer, "Connection refused: every connection is busy");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = conn::Conn {
            shared: shared.clone(),
            table: table.clone(),
            limits,
            tls: listener.tls.clone(),
            watcher: graceful.watcher(),
            surface,
        };
        tokio::spawn(conn.run(stream, peer, slot));
    }
    drop(listener);
    drop(shared);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("In-flight HTTP requests did not finish in time");
    }
}

/// Routes a request by the listener it came in on.
pub(crate) async fn dispatch(
    surface: Surface,
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: http::Request<hyper::body::Incoming>,
) -> Result<reply::Reply, std::convert::Infallible> {
    match surface {
        Surface::Main => routes::route(shared, peer, req).await,
        Surface::Ingress => ingress::route(shared, peer, req).await,
    }
}

/// Binds the listener of `[http]` (separate from [`serve`] so start-up
/// errors surface before anything runs), with HTTPS when `tls_cert` and
/// `tls_key` are set. Raises the soft limit of open files towards the hard
/// one so that `max_connections` fit.
pub async fn bind(http: &config::Http) -> std::io::Result<Listener> {
    let tls = match (http.tls_cert.is_empty(), http.tls_key.is_empty()) {
        (false, false) => {
            let config = crate::tls::server_config(&http.tls_cert, &http.tls_key)
                .map_err(|e| std::io::Error::other(format!("http.tls_cert/http.tls_key: {e}")))?;
            Some(TlsAcceptor::from(config))
        }
        _ => None,
    };
    let wanted = http.max_connections.saturating_mul(2).saturating_add(256);
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => {
            warn!(
                open_files = got,
                max_connections = http.max_connections,
                "The open-file limit is below what http.max_connections needs; raise it (ulimit -n)"
            )
        }
        Ok(_) => {}
        Err(e) => debug!(error = %e, "Could not raise the open-file limit"),
    }
    let tcp = TcpListener::bind(http.listen).await?;
    if tls.is_some() {
        info!("HTTPS enabled (http.tls_cert)");
    }
    Ok(Listener { tcp, tls })
}

/// Binds a plain-HTTP listener on `addr` (the ingress listener).
pub async fn bind_plain(addr: SocketAddr) -> std::io::Result<Listener> {
    Ok(Listener {
        tcp: TcpListener::bind(addr).await?,
        tls: None,
    })
}
