//! One connection from accept to close: the optional TLS handshake, hyper's
//! HTTP/1.1 with the configured header size, and the deadlines hyper does
//! not keep itself — headers within `header_timeout_secs` of their first
//! byte (slowloris), no more than `idle_timeout_secs` between requests, and
//! closing when the connection table needs the room. Closing is lingering:
//! after the answer the write side is shut and what the client still sends
//! is read and discarded for a bounded time, so an answer sent before the
//! body was read (413, 431, 401) reaches the client instead of a reset.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use super::Shared;
use super::limits::{Activity, Admitted, Limits, Table};

/// Marks a request that arrived over the HTTPS listener.
#[derive(Debug, Clone, Copy)]
pub struct Https;

/// Longest time a closing connection reads and discards what its client
/// still sends.
const LINGER_TIME: Duration = Duration::from_secs(5);
/// Most bytes a closing connection reads and discards.
const LINGER_BYTES: usize = 64 * 1024 * 1024;
/// A closing connection whose client sends nothing for this long is done:
/// there is no unread data to turn the close into a reset.
const LINGER_QUIET: Duration = Duration::from_millis(500);

/// Everything a connection task needs besides its socket.
pub struct Conn {
    pub shared: Arc<Shared>,
    pub table: Arc<Table>,
    pub limits: Limits,
    pub tls: Option<TlsAcceptor>,
    pub watcher: Watcher,
    pub surface: super::Surface,
}

impl Conn {
    /// Serves one accepted connection until it closes, times out, or is
    /// closed to make room.
    pub async fn run(self, stream: TcpStream, peer: SocketAddr, slot: Admitted) {
        let Admitted {
            id,
            activity,
            evicted,
        } = slot;
        let table = self.table.clone();
        let why = match self.tls.clone() {
            None => self.serve(stream, peer, &activity, &evicted, false).await,
            Some(acceptor) => {
                let handshake =
                    tokio::time::timeout(self.limits.header_timeout, acceptor.accept(stream));
                tokio::select! {
                    done = handshake => match done {
                        Ok(Ok(tls)) => self.serve(tls, peer, &activity, &evicted, true).await,
                        Ok(Err(e)) => format!("TLS handshake failed: {e}"),
                        Err(_) => "TLS handshake timed out".to_owned(),
                    },
                    () = evicted.cancelled() => "closed to make room for a new connection".to_owned(),
                }
            }
        };
        debug!(%peer, reason = %why, "HTTP connection closed");
        table.remove(id);
    }

    async fn serve<S>(
        self,
        stream: S,
        peer: SocketAddr,
        activity: &Arc<Activity>,
        evicted: &tokio_util::sync::CancellationToken,
        https: bool,
    ) -> String
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut builder = http1::Builder::new();
        // Header and idle deadlines are kept below: hyper's own header
        // timeout would also cut idle keep-alive connections short.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_header_size(self.limits.max_header * 2)
            .max_buf_size(self.limits.max_header * 4)
            // A header line is at least a few bytes: headers up to
            // max_header bytes never hit the count limit.
            .max_headers(self.limits.max_header / 8);
        let shared = self.shared.clone();
        let surface = self.surface;
        let on_request = activity.clone();
        let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
            let busy = on_request.start_request();
            req.extensions_mut().insert(on_request.clone());
            if https {
                req.extensions_mut().insert(Https);
            }
            let shared = shared.clone();
            async move {
                let reply = super::dispatch(surface, shared, peer, req).await;
                drop(busy);
                reply
            }
        });
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
            linger: None,
        });
        let conn = self.watcher.watch(builder.serve_connection(io, service));
        tokio::pin!(conn);
        loop {
            let deadline = activity
                .deadline(&self.limits)
                .unwrap_or_else(|| std::time::Instant::now() + self.limits.header_timeout);
            tokio::select! {
                done = &mut conn => return match done {
                    Ok(()) => "closed".to_owned(),
                    Err(e) => e.to_string(),
                },
                () = evicted.cancelled() => return "closed to make room for a new connection".to_owned(),
                () = tokio::time::sleep_until(deadline.into()) => {
                    if activity.deadline(&self.limits).is_some_and(|d| d <= std::time::Instant::now()) {
                        return "timed out (header or idle timeout)".to_owned();
                    }
                }
            }
        }
    }
}

/// A socket that tells its [`Activity`] when bytes arrive, and lingers
/// when it is shut down.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    linger: Option<Linger>,
}

/// A shut-down connection draining what its client still sends.
struct Linger {
    until: Pin<Box<tokio::time::Sleep>>,
    /// Reset whenever a byte arrives.
    quiet: Pin<Box<tokio::time::Sleep>>,
    drained: usize,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Sends FIN, then reads and discards until the client closes too, is
    /// quiet for [`LINGER_QUIET`], or [`LINGER_BYTES`] or [`LINGER_TIME`]
    /// are reached: closing a socket with unread data would send a reset,
    /// and the client could lose the answer.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            this.linger = Some(Linger {
                until: Box::pin(tokio::time::sleep(LINGER_TIME)),
                quiet: Box::pin(tokio::time::sleep(LINGER_QUIET)),
                drained: 0,
            });
        }
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 8192];
        loop {
            if linger.drained >= LINGER_BYTES
                || linger.until.as_mut().poll(cx).is_ready()
                || linger.quiet.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    linger.drained += buf.filled().len();
                    let again = tokio::time::Instant::now() + LINGER_QUIET;
                    linger.quiet.as_mut().reset(again);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
