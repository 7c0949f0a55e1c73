//! The real binary: restarts on the same journal, SIGKILL in the middle of an execution, the
//! `orders` and `certs` commands.

use std::process::Command;

use alertgate_receiver::broker::config::PaperConfig;
use nix::sys::signal::Signal;

use alertgate_testkit::until;

use crate::helpers::{buy, envelope_at, start_process, Options, ProcessClient, Workdir, BIN};

#[tokio::test]
async fn after_a_restart_a_redelivery_returns_the_stored_outcome() {
    let options = Options::default();
    let work = Workdir::new(&options);
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());

    let mut first = start_process(&work, &options).await;
    let client = ProcessClient::new(&work, first.addr);
    let a = client.deliver("msg_restart", &body).await;
    assert_eq!((a.status, a.outcome()), (200, "filled"));
    assert!(
        first.service.stop().await.unwrap().success(),
        "SIGTERM stops the receiver cleanly"
    );

    let mut second = start_process(&work, &options).await;
    let client = ProcessClient::new(&work, second.addr);
    let again = client.deliver("msg_restart", &body).await;
    assert_eq!((again.status, again.outcome()), (200, "filled"));
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.orders(), a.orders());
    assert_eq!(client.orders().await.len(), 1);
    second.service.stop().await.unwrap();
}

#[tokio::test]
async fn a_process_killed_while_an_order_is_pending_resumes_it_with_the_same_client_order_id() {
    let slow = Options::configured(|s| {
        s.broker.paper = Some(PaperConfig {
            fill_delay_ms: 5000,
            ..PaperConfig::default()
        });
        s.executor.inline_deadline_ms = 50;
    });
    let work = Workdir::new(&slow);
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());

    let mut first = start_process(&work, &slow).await;
    let client = ProcessClient::new(&work, first.addr);
    let a = client.deliver("msg_killed", &body).await;
    assert_eq!((a.status, a.outcome()), (202, "pending"));
    let planned = client.orders().await;
    assert_eq!(planned.len(), 1);
    assert_eq!(
        planned[0]["status"], "new",
        "journaled before the broker was called"
    );
    first.service.kill9().unwrap();

    let fast = Options::default();
    let mut second = start_process(&work, &fast).await;
    let client = ProcessClient::new(&work, second.addr);
    until("the resumed order to fill", || async {
        client.orders().await[0]["status"] == "filled"
    })
    .await;
    let orders = client.orders().await;
    assert_eq!(orders.len(), 1, "exactly one order");
    assert_eq!(orders[0]["client_order_id"], "msg_killed-0");
    let again = client.deliver("msg_killed", &body).await;
    assert_eq!(
        (
            again.status,
            again.outcome(),
            again.body["duplicate"].clone()
        ),
        (200, "filled", serde_json::json!(true))
    );
    second.service.stop().await.unwrap();

    let venue_orders: i64 = rusqlite::Connection::open(work.db_path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM paper_orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(venue_orders, 1, "the paper venue saw one order");

    let table = Command::new(BIN)
        .args(["orders", "--config"])
        .arg(work.path().join("receiver.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success(),
        "{}",
        String::from_utf8_lossy(&table.stderr)
    );
    assert!(text.starts_with("CREATED"), "{text}");
    assert!(
        text.contains("msg_killed-0") && text.contains("filled"),
        "{text}"
    );
}

#[test]
fn certs_writes_a_ca_and_two_certificates_with_a_private_ca_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let run = || {
        Command::new(BIN)
            .args(["certs", "--out"])
            .arg(&out)
            .args(["--receiver-host", "receiver.internal"])
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    for f in alertgate_receiver::certs::FILES {
        assert!(out.join(f).is_file(), "{f}");
    }
    for key in ["ca.key", "receiver.key", "relay-client.key"] {
        let mode = std::fs::metadata(out.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let before = std::fs::read(out.join("ca.pem")).unwrap();
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("already exists"));
    assert_eq!(std::fs::read(out.join("ca.pem")).unwrap(), before);
}

#[tokio::test]
async fn sighup_reloads_the_trusted_keys_and_a_broken_key_file_keeps_the_old_ones() {
    use alertgate_shared::{Signer, SigningKey};
    let options = Options::default();
    let work = Workdir::new(&options);
    let mut process = start_process(&work, &options).await;
    let mut client = ProcessClient::new(&work, process.addr);
    let old = Signer::new(vec![work.key.clone()], vec![]).unwrap();
    let new_key = SigningKey::generate();
    let new = Signer::new(vec![new_key.clone()], vec![]).unwrap();
    let body = |n: u32| {
        envelope_at(&buy("1"), time::OffsetDateTime::now_utc())
            .into_iter()
            .chain(std::iter::repeat_n(b' ', n as usize))
            .collect::<Vec<u8>>()
    };

    client.signer = new.clone();
    assert_eq!(
        client.deliver("msg_new_0", &body(0)).await.status,
        401,
        "not trusted yet"
    );

    std::fs::write(work.path().join("relay.pub"), "garbage").unwrap();
    process.service.signal(Signal::SIGHUP).unwrap();
    client.signer = old.clone();
    assert_eq!(
        client.deliver("msg_old_1", &body(1)).await.status,
        200,
        "a broken file keeps the old key"
    );

    std::fs::write(
        work.path().join("relay.pub"),
        new_key.verifying_key().to_text(),
    )
    .unwrap();
    process.service.signal(Signal::SIGHUP).unwrap();
    client.signer = new;
    let mut n = 2;
    until("the new key to be trusted", || {
        n += 1;
        let id = format!("msg_new_{n}");
        let b = body(n);
        let c = &client;
        async move { c.deliver(&id, &b).await.status == 200 }
    })
    .await;
    client.signer = old;
    assert_eq!(
        client.deliver("msg_old_x", &body(0)).await.status,
        401,
        "the old key is no longer trusted"
    );
    process.service.stop().await.unwrap();
}

#[tokio::test]
async fn an_in_process_receiver_stopped_and_started_again_keeps_its_journal() {
    let app = crate::helpers::spawn_app().await;
    let body = app.envelope(&buy("1"));
    let first = app.deliver("msg_in_process", &body).await;
    let work = app.stop().await;
    let app = crate::helpers::spawn_in(work, &Options::default()).await;
    let again = app.deliver("msg_in_process", &body).await;
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.orders(), first.orders());
}
