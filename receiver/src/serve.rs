//! Serving a warp filter on an already-bound listener through hyper-util, with an optional TLS
//! acceptor, a header read timeout and graceful shutdown (bounded). warp's own `serve` has no TLS
//! and no header limits, hence this small loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use warp::Filter;

/// How long in-flight connections get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's stream that records when it last moved a byte, so that a connection idle in
/// both directions for the header read timeout can be closed: hyper closes idle HTTP/1 keep-alive
/// connections itself, but an HTTP/2 connection that made one request would otherwise stay open
/// forever. (The relay's server has the same type.)
#[derive(Debug)]
struct Tracked<I> {
    inner: I,
    activity: Activity,
}

/// When a [`Tracked`] stream last read or wrote (milliseconds after `since`).
#[derive(Debug, Clone)]
struct Activity {
    since: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle = self.since.elapsed().saturating_sub(last);
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

impl<I> Tracked<I> {
    fn new(inner: I) -> Self {
        Self {
            inner,
            activity: Activity {
                since: tokio::time::Instant::now(),
                last_ms: Arc::new(AtomicU64::new(0)),
            },
        }
    }

    fn activity(&self) -> Activity {
        self.activity.clone()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Runs `conn` to completion, but gives up (`None`) if no request has started within
/// `head_timeout` of the connection being accepted.
///
/// hyper's `header_read_timeout` only starts once hyper-util has detected the protocol, and that
/// detection (reading up to the 24-byte HTTP/2 preface) has no deadline of its own: without this,
/// a connection that never sends a byte would be held open forever.
async fn until_first_request<F: Future>(
    conn: F,
    first_request: &Notify,
    head_timeout: Duration,
) -> Option<F::Output> {
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        result = &mut conn => Some(result),
        () = first_request.notified() => Some(conn.await),
        () = tokio::time::sleep(head_timeout) => None,
    }
}

/// Serves `filter` on `listener` until `shutdown` completes, then waits (bounded) for in-flight
/// requests.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    filter: F,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_headers(64)
        .max_buf_size(64 * 1024)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(256);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let tcp = Tracked::new(tcp);
        let activity = tcp.activity();
        let builder = builder.clone();
        let first_request = Arc::new(Notify::new());
        let inner = TowerToHyperService::new(warp::service(filter.clone()));
        let seen = Arc::clone(&first_request);
        let service = hyper::service::service_fn(move |req| {
            seen.notify_one();
            hyper::service::Service::call(&inner, req)
        });
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let serve = async move {
                match acceptor {
                    None => {
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                        let conn = watcher.watch(conn.into_owned());
                        Some(until_first_request(conn, &first_request, header_read_timeout).await)
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return None;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return None;
                                }
                            };
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        let conn = watcher.watch(conn.into_owned());
                        Some(until_first_request(conn, &first_request, header_read_timeout).await)
                    }
                }
            };
            // `None`: the TLS handshake failed (logged above).
            let Some(result) = (tokio::select! {
                result = serve => result,
                () = activity.idle_for(header_read_timeout) => {
                    tracing::debug!(%peer, "connection idle past the header read timeout; closed");
                    return;
                }
            }) else {
                return;
            };
            match result {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                None => tracing::debug!(%peer, "no request within the header read timeout"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after the drain timeout");
    }
}
