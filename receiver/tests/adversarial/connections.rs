//! Silent and idle connections: a connection that never sends a byte, or an HTTP/2 connection
//! idle after one request, is closed at `server.header_read_timeout_ms` (hyper's own header
//! timeout starts only after protocol detection, which waits forever, and HTTP/2 has none).

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::Receiver;
use alertgate_shared::ManualClock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

/// A receiver with `header_read_timeout_ms = 500`; returns its address and a stopper.
async fn receiver_with_short_header_timeout() -> (
    std::net::SocketAddr,
    Arc<Workdir>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), alertgate_receiver::BuildError>>,
) {
    let options = Options::configured(|s| s.server.header_read_timeout_ms = 500);
    let work = Arc::new(Workdir::new(&options));
    let settings = work.settings(&options);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = ManualClock::new(time::OffsetDateTime::now_utc());
    let receiver = Receiver::build_with_clock(settings, listener, Arc::new(clock))
        .await
        .unwrap();
    let addr = receiver.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(receiver.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (addr, work, stop, task)
}

#[tokio::test]
async fn connections_that_never_send_a_byte_are_closed_at_the_header_read_timeout() {
    let (addr, _work, stop, task) = receiver_with_short_header_timeout().await;
    let mut silent = Vec::new();
    for _ in 0..50 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    for mut s in silent {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection stayed open: {closed:?}"
        );
    }
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_http2_connection_idle_after_one_request_is_closed_at_the_header_read_timeout() {
    let (addr, _work, stop, task) = receiver_with_short_header_timeout().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The HTTP/2 preface, an empty SETTINGS frame and one request: HEADERS on stream 1 with
    // END_STREAM | END_HEADERS, HPACK `:method GET`, `:scheme http`, `:path /healthz`.
    let mut request =
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec();
    request.extend_from_slice(b"\x00\x00\x0c\x01\x05\x00\x00\x00\x01\x82\x86\x04\x08/healthz");
    stream.write_all(&request).await.unwrap();
    let mut received = Vec::new();
    let mut buf = vec![0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answered = String::from_utf8_lossy(&received).contains(r#""status":"ok""#);
    assert!(answered, "the request was not served: {received:?}");
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A delivery whose answer takes longer than `header_read_timeout_ms` (a slow venue, within
/// `executor.inline_deadline_ms`) is answered, not cut as an idle connection: the deadline
/// counts silence while no request is being answered.
#[tokio::test]
async fn a_delivery_answered_after_the_header_read_timeout_still_gets_its_answer() {
    let app = spawn_app_with(Options::configured(|s| {
        s.server.header_read_timeout_ms = 500;
        s.executor.inline_deadline_ms = 30_000;
        s.broker.paper = Some(alertgate_receiver::broker::config::PaperConfig {
            fill_delay_ms: 1_500,
            ..Default::default()
        });
    }))
    .await;
    let started = std::time::Instant::now();
    let answer = app
        .deliver("msg_slow_answer", &app.envelope(&buy("1")))
        .await;
    assert_eq!(
        (answer.status, answer.outcome()),
        (200, "filled"),
        "{:?}",
        answer.body
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "the answer waited for the venue"
    );
    app.stop().await;
}
