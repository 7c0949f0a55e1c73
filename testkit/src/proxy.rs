//! A fault-injecting TCP proxy on a loopback port, in the manner of Toxiproxy (this machine's
//! kernel has no `netem` qdisc): put it between two processes and make the link between them go
//! wrong without touching either of them or a server other tests share.
//!
//! - [`Proxy::down`]/[`Proxy::up`]: the link is cut (connections in flight are closed, new ones
//!   closed at once) and restored: "the database is down".
//! - [`Proxy::set_latency`]: every chunk of bytes, each way, is held this long.
//! - [`Proxy::stall`]/[`Proxy::unstall`]: bytes stop flowing on every connection (they stay
//!   open), and flow again.
//! - [`Proxy::reset_next`]: the next N connections are reset (RST) mid-request, after part of
//!   the client's first bytes reached the server.
//! - [`Proxy::drop_answer_next`]: the next N connections carry the request, then are closed
//!   before any answer comes back: the server acted, the client never hears of it.
//! - [`Proxy::drop_answer_after`]: the same, later on in a connection: the first connection
//!   whose client sends a marker loses the answer to the next request matching a pattern
//!   (`INSERT INTO messages`, then `COMMIT`: a transaction committed that its client takes for
//!   a failure).
//!
//! ```text
//! let proxy = Proxy::start(receiver_addr).await?;   // point the relay at proxy.addr
//! proxy.set_latency(Duration::from_millis(300));
//! proxy.reset_next(2);
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to the connections it carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toxics {
    /// `false`: new connections are closed at once (and [`Proxy::down`] closed the open ones).
    pub down: bool,
    /// Each chunk forwarded, either way, waits this long first.
    pub latency: Duration,
    /// No byte flows while set; connections stay open.
    pub stalled: bool,
    /// The next this many connections are reset mid-request.
    pub reset_next: usize,
    /// The next this many connections lose the server's answer.
    pub drop_answer_next: usize,
    /// `(marker, request)`: the first connection to send `marker` loses the answer to its next
    /// request containing `request` ([`Proxy::drop_answer_after`]); taken by that connection.
    pub drop_answer_after: Option<(Vec<u8>, Vec<u8>)>,
}

/// What one new connection meets, decided when it is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Forwarded (subject to latency and stalls).
    Carry,
    /// Part of the request forwarded, then both sides reset.
    ResetMidRequest,
    /// The request forwarded, the answer never returned; closed after the server answered.
    DropAnswer,
}

#[derive(Debug)]
struct State {
    toxics: Mutex<Toxics>,
    /// Signalled on every change of the toxics (a stall lifted, latency changed).
    changed: watch::Sender<()>,
    /// Bumped on every `down`, which ends the connections in flight.
    generation: watch::Sender<u64>,
}

impl State {
    fn toxics(&self) -> MutexGuard<'_, Toxics> {
        self.toxics.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Toxics)) {
        change(&mut self.toxics());
        self.changed.send_replace(());
    }

    /// The fate of a connection accepted now (taking one reset or drop off the counts);
    /// `None` while down.
    fn fate(&self) -> Option<Fate> {
        let mut t = self.toxics();
        if t.down {
            None
        } else if t.reset_next > 0 {
            t.reset_next -= 1;
            Some(Fate::ResetMidRequest)
        } else if t.drop_answer_next > 0 {
            t.drop_answer_next -= 1;
            Some(Fate::DropAnswer)
        } else {
            Some(Fate::Carry)
        }
    }

    /// Waits until bytes may flow, then for the latency.
    async fn gate(&self) {
        let mut changed = self.changed.subscribe();
        loop {
            let (stalled, latency) = {
                let t = self.toxics();
                (t.stalled, t.latency)
            };
            if !stalled {
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Forwards connections to `target`, with the [`Toxics`] in force; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `target` on a free loopback port, with no toxics.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target).await
    }

    /// Starts a proxy to `target` listening on `listen` (port 0: a free one), with no toxics:
    /// on a veth's address, for a process in a network namespace ([`crate::netns`]).
    pub async fn start_on(listen: SocketAddr, target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            toxics: Mutex::new(Toxics::default()),
            changed: watch::channel(()).0,
            generation: watch::channel(0u64).0,
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Some(fate) = shared.fate() else {
                    drop(client);
                    continue;
                };
                let mut cut = shared.generation.subscribe();
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        () = carry(client, server, fate, &state) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// Closes every connection and refuses new ones.
    pub fn down(&self) {
        self.state.update(|t| t.down = true);
        self.state.generation.send_modify(|g| *g += 1);
    }

    /// Accepts connections again.
    pub fn up(&self) {
        self.state.update(|t| t.down = false);
    }

    /// Holds every chunk, either way, `latency` before forwarding it (zero: none).
    pub fn set_latency(&self, latency: Duration) {
        self.state.update(|t| t.latency = latency);
    }

    /// Stops every byte from flowing (connections stay open) until [`unstall`](Self::unstall).
    pub fn stall(&self) {
        self.state.update(|t| t.stalled = true);
    }

    /// Lets bytes flow again.
    pub fn unstall(&self) {
        self.state.update(|t| t.stalled = false);
    }

    /// Resets the next `n` connections mid-request.
    pub fn reset_next(&self, n: usize) {
        self.state.update(|t| t.reset_next += n);
    }

    /// Drops the server's answer on the next `n` connections.
    pub fn drop_answer_next(&self, n: usize) {
        self.state.update(|t| t.drop_answer_next += n);
    }

    /// On the first connection (open or new) whose client sends `marker`, the next chunk the
    /// client sends containing `request` (the marker's own chunk included, after the marker)
    /// reaches the server, and the connection is closed once the server answers, without
    /// the answer: the server acted, the client never hears of it. Once per call.
    pub fn drop_answer_after(&self, marker: &[u8], request: &[u8]) {
        self.state
            .update(|t| t.drop_answer_after = Some((marker.to_vec(), request.to_vec())));
    }

    /// Removes every toxic and brings the link up.
    pub fn heal(&self) {
        self.state.update(|t| *t = Toxics::default());
    }

    /// The toxics in force.
    pub fn toxics(&self) -> Toxics {
        self.state.toxics().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Carries one connection according to its fate.
async fn carry(client: TcpStream, server: TcpStream, fate: Fate, state: &State) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    match fate {
        Fate::ResetMidRequest => {
            let mut client = client;
            let mut server = server;
            let mut buf = vec![0u8; 16 * 1024];
            if let Ok(n) = client.read(&mut buf).await {
                // Half of the first chunk: the server sees a request cut short.
                let _ = server.write_all(&buf[..n / 2]).await;
            }
            reset(client);
            reset(server);
        }
        Fate::Carry | Fate::DropAnswer => {
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            // Set: the server's next bytes end the connection, unsent.
            let drop_answer = AtomicBool::new(fate == Fate::DropAnswer);
            let upstream = pump(
                client_read,
                server_write,
                state,
                Watch::Client(&drop_answer),
            );
            let downstream = pump(
                server_read,
                client_write,
                state,
                Watch::Server(&drop_answer),
            );
            tokio::pin!(upstream, downstream);
            tokio::select! {
                // An answer dropped ends the connection, every half dropped with it.
                () = &mut downstream => {
                    if !drop_answer.load(Ordering::SeqCst) {
                        upstream.await;
                    }
                }
                () = &mut upstream => downstream.await,
            }
        }
    }
}

/// Closes `stream` with a TCP reset (zero linger) rather than an orderly FIN.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

/// Which way a pump carries, with the connection's drop-the-answer flag.
#[derive(Clone, Copy)]
enum Watch<'a> {
    /// Client to server: sets the flag before carrying the request that matches
    /// [`Toxics::drop_answer_after`].
    Client(&'a AtomicBool),
    /// Server to client: stops, sending nothing, at the first bytes read while the flag is set.
    Server(&'a AtomicBool),
}

/// Where one connection stands with [`Toxics::drop_answer_after`].
enum Armed {
    /// Its client has not sent the marker (or another connection took the toxic).
    No,
    /// It took the toxic: the next chunk with this request loses its answer.
    Waiting(Vec<u8>),
    /// Done.
    Spent,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Copies `from` to `to` chunk by chunk through the gate, watching for an answer to drop.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, state: &State, watch: Watch<'_>) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut armed = Armed::No;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        match watch {
            Watch::Server(drop_answer) if drop_answer.load(Ordering::SeqCst) => {
                // The server answered: the client loses the connection without the answer.
                return;
            }
            Watch::Server(_) => {}
            Watch::Client(drop_answer) => {
                let chunk = &buf[..n];
                let mut from_at = 0;
                if matches!(armed, Armed::No) {
                    let mut t = state.toxics();
                    let hit = t
                        .drop_answer_after
                        .as_ref()
                        .and_then(|(marker, _)| find(chunk, marker).map(|i| i + marker.len()));
                    if let Some(at) = hit {
                        if let Some((_, request)) = t.drop_answer_after.take() {
                            from_at = at;
                            armed = Armed::Waiting(request);
                        }
                    }
                }
                if let Armed::Waiting(request) = &armed {
                    if find(&chunk[from_at..], request).is_some() {
                        drop_answer.store(true, Ordering::SeqCst);
                        armed = Armed::Spent;
                    }
                }
            }
        }
        state.gate().await;
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::sync::mpsc;

    /// A server that records each chunk a connection sends and answers it with `ok:` + the chunk.
    async fn server() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        let _ = tx.send(buf[..n].to_vec());
                        let _ = s.write_all(&[b"ok:", &buf[..n]].concat()).await;
                    }
                });
            }
        });
        (addr, rx)
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut c = TcpStream::connect(addr).await?;
        c.write_all(request).await?;
        c.shutdown().await?;
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).await?;
        Ok(answer)
    }

    #[tokio::test]
    async fn each_toxic_does_what_it_says_and_heal_removes_them() {
        let (target, mut seen) = server().await;
        let proxy = Proxy::start(target).await.unwrap();
        assert_eq!(exchange(proxy.addr, b"one").await.unwrap(), b"ok:one");
        assert_eq!(seen.recv().await.unwrap(), b"one");

        // Reset mid-request: the server sees half of it, the client no answer.
        proxy.reset_next(1);
        let answer = exchange(proxy.addr, b"abcdef").await;
        assert!(
            answer.map_or(true, |a| a.is_empty()),
            "no answer after a reset"
        );
        assert_eq!(seen.recv().await.unwrap(), b"abc");

        // Dropped answer: the server sees all of it and answers; the client gets nothing.
        proxy.drop_answer_next(1);
        let answer = exchange(proxy.addr, b"acted").await;
        assert!(
            answer.map_or(true, |a| a.is_empty()),
            "the answer was dropped"
        );
        assert_eq!(seen.recv().await.unwrap(), b"acted");

        // An answer dropped later on: the connection that sends the marker carries requests
        // until one matches, which reaches the server and loses its answer.
        proxy.drop_answer_after(b"BEGIN", b"COMMIT");
        assert_eq!(exchange(proxy.addr, b"plain").await.unwrap(), b"ok:plain");
        assert_eq!(seen.recv().await.unwrap(), b"plain");
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        let mut answer = vec![0u8; 64];
        c.write_all(b"BEGIN; INSERT").await.unwrap();
        let n = c.read(&mut answer).await.unwrap();
        assert_eq!(&answer[..n], b"ok:BEGIN; INSERT");
        assert_eq!(seen.recv().await.unwrap(), b"BEGIN; INSERT");
        let mut c2 = TcpStream::connect(proxy.addr).await.unwrap();
        c2.write_all(b"COMMIT elsewhere").await.unwrap();
        let n = c2.read(&mut answer).await.unwrap();
        assert_eq!(&answer[..n], b"ok:COMMIT elsewhere", "another connection");
        assert_eq!(seen.recv().await.unwrap(), b"COMMIT elsewhere");
        c.write_all(b"COMMIT").await.unwrap();
        assert_eq!(seen.recv().await.unwrap(), b"COMMIT", "the server acted");
        assert_eq!(c.read(&mut answer).await.unwrap_or(0), 0, "no answer");
        assert_eq!(proxy.toxics().drop_answer_after, None, "once");

        // A stalled link carries nothing until it is unstalled; then the bytes flow.
        proxy.stall();
        let pending = tokio::spawn(exchange(proxy.addr, b"later"));
        tokio::task::yield_now().await;
        assert!(seen.try_recv().is_err(), "nothing passed a stalled link");
        proxy.unstall();
        assert_eq!(pending.await.unwrap().unwrap(), b"ok:later");

        // Down: refused (closed at once); up again after heal, with no toxic left.
        proxy.down();
        assert!(exchange(proxy.addr, b"x")
            .await
            .map_or(true, |a| a.is_empty()));
        proxy.set_latency(Duration::from_millis(1));
        proxy.heal();
        assert_eq!(proxy.toxics(), Toxics::default());
        assert_eq!(exchange(proxy.addr, b"two").await.unwrap(), b"ok:two");
    }
}
