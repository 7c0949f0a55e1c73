//! Several receiver processes on one PostgreSQL database (a schema of its own per test):
//! one execution per webhook-id across receivers, a dead receiver's leased execution
//! finished by another with the same client order id, and a key's later alert held back
//! behind an earlier one that a dead receiver left `pending`.

use std::net::SocketAddr;

use alertgate_receiver::broker::config::PaperConfig;
use alertgate_testkit::postgres::TestSchema;
use alertgate_testkit::{free_addr, until, Ready, Service};

use crate::helpers::{buy, envelope_at, on_postgres, Options, ProcessClient, Workdir, BIN};

/// Starts receiver `name` with its own config file.
async fn start(work: &Workdir, options: &Options, name: &str) -> (Service, SocketAddr) {
    let addr = free_addr().unwrap();
    let path = work.path().join(format!("{name}.toml"));
    alertgate_testkit::config::write(&path, &work.settings_on(options, addr)).unwrap();
    let mut service = Service::new(name, BIN, path, Ready::Http(addr));
    service.start().await.unwrap();
    (service, addr)
}

async fn count(schema: &TestSchema, sql: &str) -> i64 {
    schema.query_text(sql).await.unwrap()[0].parse().unwrap()
}

#[tokio::test]
async fn two_receivers_given_the_same_webhook_id_at_the_same_instant_execute_it_once() {
    let schema = TestSchema::create().await.unwrap();
    let work = Workdir::new(&Options::default());
    let options = on_postgres(&work, &schema, &Options::default());
    let (mut a, a_addr) = start(&work, &options, "receiver-a").await;
    let (mut b, b_addr) = start(&work, &options, "receiver-b").await;
    let (ca, cb) = (
        ProcessClient::new(&work, a_addr),
        ProcessClient::new(&work, b_addr),
    );
    for i in 0..100 {
        let id = format!("msg_same_{i}");
        let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
        let (x, y) = tokio::join!(ca.deliver(&id, &body), cb.deliver(&id, &body));
        let firsts = [&x, &y]
            .iter()
            .filter(|r| r.body["duplicate"] == false)
            .count();
        assert_eq!(firsts, 1, "{id}: {:?} / {:?}", x.body, y.body);
        for r in [&x, &y] {
            // The duplicate waits (within the inline deadline) for the receiver executing it,
            // and is told to retry after that.
            assert!(
                matches!((r.status, r.outcome()), (200, "filled") | (202, "pending"))
                    || (r.status == 503 && r.body["error"] == "executing_on_another_receiver"),
                "{id}: {} {:?}",
                r.status,
                r.body
            );
            for o in r.orders() {
                assert_eq!(o["client_order_id"], format!("{id}-0"), "{id}");
            }
        }
    }
    until("every execution to finish", || async {
        count(
            &schema,
            "SELECT COUNT(*) FROM messages WHERE outcome = 'pending'",
        )
        .await
            == 0
    })
    .await;
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM messages").await, 100);
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM orders").await,
        100,
        "one order per id"
    );
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM paper_orders").await,
        100,
        "the venue saw one order per id"
    );
    assert_eq!(
        count(&schema, "SELECT quantity FROM positions").await,
        100,
        "each fill moved the position once"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Two receivers on one schema: one whose venue takes 60 s to answer (so it dies holding an
/// execution, after its 50 ms inline deadline answered 202) and a survivor answering within
/// `survivor_inline_ms`; both with `leases` applied (lease and resume timings).
async fn dying_and_survivor(
    work: &Workdir,
    schema: &TestSchema,
    leases: fn(&mut alertgate_receiver::Settings),
    survivor_inline_ms: u64,
) -> ((Service, SocketAddr), (Service, SocketAddr)) {
    let slow = on_postgres(
        work,
        schema,
        &Options::configured(move |s| {
            leases(s);
            s.broker.paper = Some(PaperConfig {
                fill_delay_ms: 60_000,
                ..PaperConfig::default()
            });
            s.executor.inline_deadline_ms = 50;
        }),
    );
    let fast = on_postgres(
        work,
        schema,
        &Options::configured(move |s| {
            leases(s);
            s.executor.inline_deadline_ms = survivor_inline_ms;
        }),
    );
    let dying = start(work, &slow, "receiver-dying").await;
    let survivor = start(work, &fast, "receiver-survivor").await;
    (dying, survivor)
}

#[tokio::test]
async fn a_receiver_killed_while_holding_a_lease_is_finished_by_another_after_the_lease() {
    let schema = TestSchema::create().await.unwrap();
    let work = Workdir::new(&Options::default());
    let lease = |s: &mut alertgate_receiver::Settings| {
        s.executor.lease_seconds = 3;
        s.executor.resume_interval_ms = 200;
        s.executor.resume_after_seconds = 1;
    };
    // The survivor's inline deadline well within the lease: a redelivery that waits for the
    // dead receiver's execution gives up (503) before the lease runs out.
    let ((mut dying, dying_addr), (mut survivor, survivor_addr)) =
        dying_and_survivor(&work, &schema, lease, 200).await;

    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let a = ProcessClient::new(&work, dying_addr)
        .deliver("msg_leased", &body)
        .await;
    assert_eq!((a.status, a.outcome()), (202, "pending"), "{:?}", a.body);
    // The 202 comes at the inline deadline, which on a loaded machine may be before the plan
    // is written: wait for the order to be journaled, still `new` (the venue takes 60 s).
    until("the order journaled before the venue answers", || async {
        schema
            .query_text("SELECT status FROM orders WHERE client_order_id = 'msg_leased-0'")
            .await
            .unwrap()
            == ["new"]
    })
    .await;
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM leases").await, 1);
    dying.kill9().unwrap();

    // The relay's retry reaches the survivor while the dead receiver's lease runs: 503, to
    // retry, not 202 (the relay would then send the key's later alerts, which could reach the
    // venue before this one is resumed after the lease).
    let client = ProcessClient::new(&work, survivor_addr);
    let early = client.deliver("msg_leased", &body).await;
    assert_eq!(
        (
            early.status,
            &early.body["error"],
            early.retry_after.as_deref()
        ),
        (
            503,
            &serde_json::json!("executing_on_another_receiver"),
            Some("1")
        ),
        "{:?}",
        early.body
    );

    until("the survivor to finish the execution", || async {
        schema
            .query_text("SELECT outcome FROM messages WHERE id = 'msg_leased'")
            .await
            .unwrap()
            == ["filled"]
    })
    .await;
    let again = client.deliver("msg_leased", &body).await;
    assert_eq!((again.status, again.outcome()), (200, "filled"));
    assert_eq!(again.orders().len(), 1);
    assert_eq!(again.orders()[0]["client_order_id"], "msg_leased-0");
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM paper_orders").await,
        1,
        "the venue saw one order"
    );
    assert!(
        survivor.log_text().contains("resum"),
        "the survivor resumed it: {}",
        survivor.log_tail()
    );
    survivor.stop().await.unwrap();
}

#[tokio::test]
async fn a_later_alert_waits_for_an_earlier_one_a_receiver_answered_202_for_and_then_died() {
    let schema = TestSchema::create().await.unwrap();
    let work = Workdir::new(&Options::default());
    // No resume sweep within the test: the waiting job itself gets the abandoned message
    // resumed once its lease has run out.
    let lease = |s: &mut alertgate_receiver::Settings| {
        s.executor.lease_seconds = 2;
        s.executor.resume_interval_ms = 600_000;
        s.executor.resume_after_seconds = 600;
    };
    let ((mut dying, dying_addr), (mut survivor, survivor_addr)) =
        dying_and_survivor(&work, &schema, lease, 300).await;

    let first = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let a = ProcessClient::new(&work, dying_addr)
        .deliver("msg_first", &first)
        .await;
    assert_eq!((a.status, a.outcome()), (202, "pending"), "{:?}", a.body);
    until(
        "the first order journaled before the venue answers",
        || async {
            schema
                .query_text("SELECT status FROM orders WHERE client_order_id = 'msg_first-0'")
                .await
                .unwrap()
                == ["new"]
        },
    )
    .await;
    dying.kill9().unwrap();

    // The relay got its 202 for the first alert, so it sends the next one of the same
    // (account, ticker), here to the survivor. It must not reach the venue before the first.
    let second = envelope_at(&buy("2"), time::OffsetDateTime::now_utc());
    let client = ProcessClient::new(&work, survivor_addr);
    let b = client.deliver("msg_second", &second).await;
    assert_eq!(
        (b.status, b.outcome()),
        (202, "pending"),
        "the later alert waits: {:?}",
        b.body
    );
    assert_eq!(
        count(&schema, "SELECT COUNT(*) FROM paper_orders").await,
        0,
        "nothing reached the venue while the first alert's lease runs"
    );

    until("both alerts to be placed", || async {
        count(
            &schema,
            "SELECT COUNT(*) FROM messages WHERE outcome = 'filled'",
        )
        .await
            == 2
    })
    .await;
    let order = schema
        .query_text("SELECT client_order_id FROM paper_orders ORDER BY created_at, client_order_id")
        .await
        .unwrap();
    assert_eq!(order, ["msg_first-0", "msg_second-0"], "in arrival order");
    assert!(
        count(
            &schema,
            "SELECT COUNT(*) FROM paper_orders WHERE client_order_id = 'msg_first-0' AND created_at < \
             (SELECT created_at FROM paper_orders WHERE client_order_id = 'msg_second-0')"
        )
        .await
            == 1,
        "the first reached the venue strictly before the second"
    );
    assert_eq!(
        count(&schema, "SELECT quantity FROM positions").await,
        3,
        "each fill moved the position once"
    );
    let again = client.deliver("msg_second", &second).await;
    assert_eq!((again.status, again.outcome()), (200, "filled"));
    assert!(
        survivor
            .log_text()
            .contains("waiting for an earlier pending message"),
        "{}",
        survivor.log_tail()
    );
    survivor.stop().await.unwrap();
}

#[tokio::test]
async fn while_the_database_is_down_the_receiver_answers_503_and_places_the_alert_once_it_is_back()
{
    let schema = TestSchema::create().await.unwrap();
    let proxy = alertgate_testkit::proxy::Proxy::start("127.0.0.1:5432".parse().unwrap())
        .await
        .unwrap();
    let work = Workdir::new(&Options::default());
    let options = on_postgres(&work, &schema, &Options::default());
    // The receiver reaches the database only through the proxy.
    std::fs::write(work.path().join("database-url"), schema.url_via(proxy.addr)).unwrap();
    let (mut receiver, addr) = start(&work, &options, "receiver").await;
    let client = ProcessClient::new(&work, addr);
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let before = client.deliver("msg_before", &body).await;
    assert_eq!((before.status, before.outcome()), (200, "filled"));

    proxy.down();
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let refused = client.deliver("msg_outage", &body).await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);

    proxy.up();
    // The relay keeps the alert and sends it again: the same id, the same body.
    let placed = client.deliver("msg_outage", &body).await;
    assert_eq!(
        (placed.status, placed.outcome()),
        (200, "filled"),
        "{:?}\n{}",
        placed.body,
        receiver.log_tail()
    );
    assert_eq!(
        count(
            &schema,
            "SELECT COUNT(*) FROM orders WHERE message_id = 'msg_outage'"
        )
        .await,
        1,
        "placed once"
    );
    assert_eq!(count(&schema, "SELECT COUNT(*) FROM paper_orders").await, 2);
    receiver.stop().await.unwrap();
}
