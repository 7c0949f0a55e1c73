//! The accept loop: serves the warp filter through hyper-util by hand (warp 0.4's own server has
//! no TLS and no header limits), over plain TCP or tokio-rustls. Sets header count/size limits
//! (431 beyond them), the header read timeout, a connection limit, and drains in-flight requests
//! on shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower_service::Service as _;
use warp::Filter;

use crate::config::ServerSettings;
use crate::tls::PeerCerts;

/// The TCP peer of a request, inserted into its extensions (warp's own `remote()` is unavailable
/// when serving by hand).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Bound on a TLS handshake, so a silent client cannot hold a connection slot.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection's stream that records when it last moved a byte, so that a connection idle in
/// both directions for the header deadline can be closed: hyper closes idle HTTP/1 keep-alive
/// connections itself, but an HTTP/2 connection (h2c or ALPN `h2`) that made one request, say to
/// `/healthz`, would otherwise hold its slot forever.
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
/// a connection that never sends a byte would hold its slot forever, and `max_connections` such
/// connections would lock every alert out.
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

/// Serves `filter` on `listener` until `shutdown` completes, then waits up to
/// `settings.shutdown_grace_ms` for in-flight requests.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    settings: &ServerSettings,
    filter: F,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(settings.header_read_timeout_ms))
        .max_headers(settings.max_headers)
        .max_buf_size(settings.max_header_bytes)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(100);
    let head_timeout = Duration::from_millis(settings.header_read_timeout_ms);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => {
                let Ok(permit) = permit else { break };
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    res = listener.accept() => res.map(|(tcp, peer)| (tcp, peer, permit)),
                }
            }
        };
        let (tcp, peer, permit) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let tcp = Tracked::new(tcp);
        let activity = tcp.activity();
        let builder = builder.clone();
        let filter = filter.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let first_request = Arc::new(Notify::new());
            let warp_svc = warp::service(filter);
            let serve = async move {
                match acceptor {
                    None => {
                        let first = Arc::clone(&first_request);
                        let svc = hyper::service::service_fn(
                            move |mut req: hyper::Request<hyper::body::Incoming>| {
                                first.notify_one();
                                req.extensions_mut().insert(PeerAddr(peer));
                                warp_svc.clone().call(req)
                            },
                        );
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), svc);
                        let conn = watcher.watch(conn.into_owned());
                        match until_first_request(conn, &first_request, head_timeout).await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                            None => tracing::debug!(%peer, "no request within the header deadline"),
                        }
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                                .await
                            {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                        let certs = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .map(|c| PeerCerts(Arc::new(c.to_vec())));
                        let first = Arc::clone(&first_request);
                        let svc = hyper::service::service_fn(
                            move |mut req: hyper::Request<hyper::body::Incoming>| {
                                first.notify_one();
                                req.extensions_mut().insert(PeerAddr(peer));
                                if let Some(c) = &certs {
                                    req.extensions_mut().insert(c.clone());
                                }
                                warp_svc.clone().call(req)
                            },
                        );
                        let conn =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                        let conn = watcher.watch(conn.into_owned());
                        match until_first_request(conn, &first_request, head_timeout).await {
                            Some(Ok(())) => {}
                            Some(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "connection ended with an error");
                            }
                            None => tracing::debug!(%peer, "no request within the header deadline"),
                        }
                    }
                }
            };
            tokio::select! {
                () = serve => {}
                () = activity.idle_for(head_timeout) => {
                    tracing::debug!(%peer, "connection idle past the header deadline; closed");
                }
            }
        });
    }
    drop(listener);
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
}
