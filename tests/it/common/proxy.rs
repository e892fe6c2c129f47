//! A TCP proxy between the bridge and its broker that breaks connections on
//! request: it cuts (FIN), resets (RST) or stalls a link after a given number
//! of further bytes in one direction, so a fault lands at any point of the
//! MQTT stream, mid-packet included. Faults are armed by the test (from its
//! seeded schedule) and fire on whichever link carries the bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which way the bytes counted towards a fault flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Bridge to broker (PUBLISH, CONNECT, PINGREQ).
    ToBroker,
    /// Broker to bridge (CONNACK, PUBACK, SUBACK).
    ToClient,
}

/// What happens to a link when its fault fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Both sockets closed normally (FIN).
    Cut,
    /// Both sockets closed with RST (SO_LINGER 0).
    Reset,
    /// Nothing forwarded either way for `ms`, then the link goes on.
    Stall { ms: u64 },
    /// Nothing forwarded for `ms`, then the link is reset: a path that died.
    StallThenReset { ms: u64 },
}

/// A fault waiting for its byte count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Armed {
    pub fault: Fault,
    pub direction: Direction,
    /// Bytes forwarded in `direction` after arming before the fault fires
    /// (the fault splits the chunk that crosses this count).
    pub after_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Open,
    Stalled,
    Dead,
}

#[derive(Default)]
struct Shared {
    /// Armed faults, first to fire first, with the bytes counted towards
    /// the first so far.
    armed: Mutex<(VecDeque<Armed>, u64)>,
    connections: AtomicU64,
    fired: AtomicU64,
}

/// The proxy; its accept loop ends when it is dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to
    /// `upstream` (a connection fails with its client when `upstream`
    /// refuses, as while the broker restarts).
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let upstream: SocketAddr = ([127, 0, 0, 1], upstream).into();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(link(client, upstream, s.clone()));
            }
        });
        Proxy {
            port,
            shared,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Arms `fault`; it fires after those armed before it.
    pub fn arm(&self, fault: Armed) {
        self.shared.armed.lock().unwrap().0.push_back(fault);
    }

    /// Drops the faults that have not fired yet.
    pub fn disarm(&self) {
        *self.shared.armed.lock().unwrap() = (VecDeque::new(), 0);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> u64 {
        self.shared.fired.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Shared {
    /// Counts `n` bytes about to go `dir`; returns how many of them to
    /// forward before the armed fault fires, and that fault.
    fn take(&self, dir: Direction, n: usize) -> (usize, Option<Fault>) {
        let mut armed = self.armed.lock().unwrap();
        let (queue, counted) = &mut *armed;
        let Some(a) = queue.front() else {
            return (n, None);
        };
        if a.direction != dir {
            return (n, None);
        }
        let left = a.after_bytes - *counted;
        if (n as u64) <= left {
            *counted += n as u64;
            return (n, None);
        }
        let fault = a.fault;
        queue.pop_front();
        *counted = 0;
        self.fired.fetch_add(1, Ordering::Relaxed);
        // `left < n`, so it fits in usize.
        (left as usize, Some(fault))
    }
}

/// Forwards one connection both ways until either side closes or a fault
/// ends it.
async fn link(client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (state, _) = watch::channel(Link::Open);
    let state = Arc::new(state);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = pump(cr, sw, Direction::ToBroker, shared.clone(), state.clone());
    let down = pump(sr, cw, Direction::ToClient, shared, state.clone());
    let ((cr, sw), (sr, cw)) = tokio::join!(up, down);
    // Whole sockets again, so closing them sends no FIN of a write half's
    // shutdown first: with SO_LINGER 0 (a reset) the close is a bare RST.
    let client = cr.reunite(cw);
    let server = sr.reunite(sw);
    drop((client, server));
}

/// Copies `from` to `to`; returns the halves so they are closed together.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    dir: Direction,
    shared: Arc<Shared>,
    state: Arc<watch::Sender<Link>>,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let mut rx = state.subscribe();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Wait out a stall; stop when the link died.
        match *rx.wait_for(|s| *s != Link::Stalled).await.unwrap() {
            Link::Dead => break,
            Link::Open | Link::Stalled => {}
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    state.send_replace(Link::Dead);
                    break;
                }
                Ok(n) => n,
            },
            _ = rx.wait_for(|s| *s == Link::Dead) => break,
        };
        // A stall the other direction started holds these bytes too.
        if *rx.wait_for(|s| *s != Link::Stalled).await.unwrap() == Link::Dead {
            break;
        }
        let (forward, fault) = shared.take(dir, n);
        if to.write_all(&buf[..forward]).await.is_err() {
            state.send_replace(Link::Dead);
            break;
        }
        let Some(fault) = fault else { continue };
        match fault {
            Fault::Cut => {}
            Fault::Reset => reset(&from, &to),
            Fault::Stall { ms } | Fault::StallThenReset { ms } => {
                state.send_replace(Link::Stalled);
                // The deliberate fault schedule: the link carries nothing
                // for this long.
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if let Fault::StallThenReset { .. } = fault {
                    reset(&from, &to);
                } else {
                    // The rest of the chunk that crossed the count.
                    state.send_replace(Link::Open);
                    if to.write_all(&buf[forward..n]).await.is_err() {
                        state.send_replace(Link::Dead);
                        break;
                    }
                    continue;
                }
            }
        }
        state.send_replace(Link::Dead);
        break;
    }
    (from, to)
}

/// Makes the close of both sockets of the link an RST: `from` and `to`
/// belong to different sockets, and both halves of a socket share its
/// SO_LINGER.
fn reset(from: &OwnedReadHalf, to: &OwnedWriteHalf) {
    let _ = from.as_ref().set_zero_linger();
    let _ = to.as_ref().set_zero_linger();
}
