//! The accept loop both services use: a warp filter served through hyper-util by hand, over plain
//! TCP or tokio-rustls (warp 0.4's own server has neither TLS nor header limits).
//!
//! What it guarantees, whatever the filter does:
//! - header count and size limits (431 beyond them) and a header read deadline;
//! - a connection must start its first request within that deadline (protocol detection has no
//!   deadline of its own, so a silent connection would otherwise be held forever), and one idle in
//!   both directions for that long is closed (an HTTP/2 connection after one request, say);
//! - a bounded TLS handshake and an optional bound on concurrent connections;
//! - every request carries [`PeerAddr`] (and [`PeerCerts`] over TLS) in its extensions, since
//!   `warp::addr::remote()` is unavailable when serving by hand;
//! - an optional [`Gate`] answers a request before the warp filter runs (the relay refuses
//!   unlisted addresses there: a flood costs the least possible);
//! - on shutdown: stop accepting, let in-flight requests finish within a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::Either;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower_service::Service as _;
use warp::Filter;

/// The TCP peer of a request, inserted into its extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// The client certificate chain presented on a TLS connection (end-entity first), inserted into
/// each request's extensions when there is one.
#[derive(Debug, Clone)]
pub struct PeerCerts(pub Arc<Vec<CertificateDer<'static>>>);

/// A check run on every request before the warp filter; `Some(response)` answers at once (the
/// body is never read). It must be cheap: it runs on the accept loop's hot path.
#[derive(Clone)]
pub struct Gate(
    #[allow(clippy::type_complexity)]
    pub  Arc<
        dyn Fn(
                &hyper::Request<hyper::body::Incoming>,
                SocketAddr,
                Option<&PeerCerts>,
            ) -> Option<warp::reply::Response>
            + Send
            + Sync,
    >,
);

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// Bound on a TLS handshake, so a silent client cannot hold a connection.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the accept loop treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A request head must arrive within this; a new connection must start a request within it;
    /// a connection idle in both directions this long is closed.
    pub header_read_timeout: Duration,
    /// Most request headers (431 beyond).
    pub max_headers: usize,
    /// Largest request head in bytes (at least 8192; 431 beyond).
    pub max_header_bytes: usize,
    /// Most connections served at once; `None`: unbounded.
    pub max_connections: Option<usize>,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// How long in-flight requests get after shutdown starts.
    pub shutdown_grace: Duration,
    /// Answers some requests before the filter runs.
    pub gate: Option<Gate>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_headers: 64,
            max_header_bytes: 64 * 1024,
            max_connections: None,
            max_concurrent_streams: 100,
            shutdown_grace: Duration::from_secs(10),
            gate: None,
        }
    }
}

/// A connection's stream that records when it last moved a byte.
#[derive(Debug)]
struct Tracked<I> {
    inner: I,
    activity: Activity,
}

/// When a [`Tracked`] stream last read or wrote (milliseconds after `since`), and how many of
/// its requests are being answered (a handler that takes its time is not an idle connection).
#[derive(Debug, Clone)]
struct Activity {
    since: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
    in_flight: Arc<AtomicUsize>,
}

/// Counts a request in flight on its connection's [`Activity`] until dropped.
struct InFlight(Activity);

impl InFlight {
    fn new(activity: &Activity) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        // The answer's bytes come next: idleness counts from here.
        self.0.touch();
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `limit` while no request was being answered.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let idle = self.since.elapsed().saturating_sub(last);
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(limit).await;
                continue;
            }
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

impl<I> Tracked<I> {
    fn new(inner: I) -> Self {
        let activity = Activity {
            since: tokio::time::Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        Self { inner, activity }
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

/// Serves one accepted connection (after the TLS handshake, if any) to completion.
#[allow(clippy::too_many_arguments)] // all per-connection state, passed once
async fn serve_connection<I, F>(
    io: I,
    builder: Builder<TokioExecutor>,
    filter: F,
    peer: SocketAddr,
    certs: Option<PeerCerts>,
    gate: Option<Gate>,
    watcher: hyper_util::server::graceful::Watcher,
    head_timeout: Duration,
    activity: Activity,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Filter<Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let first_request = Arc::new(Notify::new());
    let first = Arc::clone(&first_request);
    let warp_svc = warp::service(filter);
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        first.notify_one();
        if let Some(Gate(gate)) = &gate {
            if let Some(response) = gate(&req, peer, certs.as_ref()) {
                return Either::Left(std::future::ready(Ok(response)));
            }
        }
        req.extensions_mut().insert(PeerAddr(peer));
        if let Some(c) = &certs {
            req.extensions_mut().insert(c.clone());
        }
        let answering = InFlight::new(&activity);
        let call = warp_svc.clone().call(req);
        Either::Right(async move {
            let response = call.await;
            drop(answering);
            response
        })
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    let conn = watcher.watch(conn.into_owned());
    match until_first_request(conn, &first_request, head_timeout).await {
        Some(Ok(())) => {}
        Some(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
        None => tracing::debug!(%peer, "no request within the header deadline"),
    }
}

/// Serves `filter` on `listener` until `shutdown` completes, then waits up to
/// `options.shutdown_grace` for in-flight requests.
pub async fn serve<F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: &ServeOptions,
    filter: F,
    shutdown: impl Future<Output = ()> + Send,
) where
    F: Filter<Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let head_timeout = options.header_read_timeout;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_headers(options.max_headers)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(options.max_concurrent_streams);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(
        options.max_connections.unwrap_or(Semaphore::MAX_PERMITS),
    ));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => {
                let Ok(permit) = permit else { break };
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
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
        let activity = tcp.activity.clone();
        let activity_inside = activity.clone();
        let builder = builder.clone();
        let filter = filter.clone();
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let gate = options.gate.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let serve = async move {
                let Some(acceptor) = acceptor else {
                    return serve_connection(
                        tcp,
                        builder,
                        filter,
                        peer,
                        None,
                        gate,
                        watcher,
                        head_timeout,
                        activity_inside,
                    )
                    .await;
                };
                let stream =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
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
                serve_connection(
                    stream,
                    builder,
                    filter,
                    peer,
                    certs,
                    gate,
                    watcher,
                    head_timeout,
                    activity_inside,
                )
                .await;
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
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; dropping remaining connections");
    }
}
