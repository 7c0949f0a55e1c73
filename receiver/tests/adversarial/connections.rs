//! Silent connections: a connection that never sends a byte is closed at
//! `server.header_read_timeout_ms` (hyper's own header timeout starts only after protocol
//! detection, which waits forever; `serve::until_first_request` bounds it).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::{Receiver, Settings};
use alertgate_shared::ManualClock;
use tokio::io::AsyncReadExt;

use crate::helpers::*;

#[tokio::test]
async fn connections_that_never_send_a_byte_are_closed_at_the_header_read_timeout() {
    let options = Options::default();
    let work = Workdir::new(&options);
    let text = work.config(&options, "127.0.0.1:0").replace(
        "max_body_bytes = 4096",
        "max_body_bytes = 4096\nheader_read_timeout_ms = 500",
    );
    let settings = Settings::parse(&text, Path::new("test.toml")).unwrap();
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
