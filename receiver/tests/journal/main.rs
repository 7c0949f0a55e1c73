//! The journal suite: every test runs against both stores, SQLite (a file of its own) and
//! PostgreSQL (a schema of its own, so tests run in parallel). A test that needs "another
//! receiver" opens a second journal on the same file or schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use alertgate_receiver::journal::{
    Admission, Journal, NewMessage, OrderRecord, OrderState, Outcome, PlacementStore,
    PostgresJournal, Reprice, Settlement, SqliteJournal, StrategySwitch, VenuePosition,
};
use alertgate_receiver::order::{Exits, OrderStatus, OrderType, Placement, Side, TimeInForce};
use alertgate_testkit::postgres::TestSchema;
use rust_decimal::Decimal;

/// One store under test.
struct Subject {
    /// `sqlite` or `postgres`, for assertion messages.
    name: &'static str,
    journal: Arc<dyn Journal>,
    book: Arc<dyn PlacementStore>,
    /// Where the data lives; kept alive for the test.
    place: Place,
}

enum Place {
    File(tempfile::TempDir),
    Schema(TestSchema),
}

impl Subject {
    /// A second journal on the same data, as another receiver (or a restart) opens it.
    async fn reopen(&self) -> Arc<dyn Journal> {
        match &self.place {
            Place::File(dir) => Arc::new(
                SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(2)).unwrap(),
            ),
            Place::Schema(schema) => Arc::new(PostgresJournal::open(&schema.url, 4).await.unwrap()),
        }
    }

    /// `true` for a store several receivers share (it keeps leases).
    fn shared(&self) -> bool {
        matches!(self.place, Place::Schema(_))
    }
}

/// Both stores, empty.
async fn stores() -> Vec<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite =
        Arc::new(SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(2)).unwrap());
    let schema = TestSchema::create()
        .await
        .expect("PostgreSQL at ALERTGATE_TEST_DATABASE_URL (see .ci/run)");
    let pg = Arc::new(PostgresJournal::open(&schema.url, 4).await.unwrap());
    vec![
        Subject {
            name: "sqlite",
            journal: sqlite.clone(),
            book: sqlite,
            place: Place::File(dir),
        },
        Subject {
            name: "postgres",
            journal: pg.clone(),
            book: pg,
            place: Place::Schema(schema),
        },
    ]
}

fn message(id: &str, key: Option<&str>, now_ms: i64) -> NewMessage {
    NewMessage {
        id: id.into(),
        account: Some("main".into()),
        idempotency_key: key.map(Into::into),
        received_at_ms: Some(now_ms),
        envelope: bytes::Bytes::from_static(b"{\"alert\":1}"),
        outcome: Outcome::Pending,
        reason: None,
        now_ms,
        dedupe_since_ms: now_ms - 300_000,
        keys: Vec::new(),
        lease_until_ms: now_ms,
    }
}

fn order(message_id: &str, leg: u32, symbol: &str, side: Side, qty: &str) -> OrderRecord {
    OrderRecord {
        client_order_id: format!("{message_id}-{leg}"),
        message_id: message_id.into(),
        leg,
        account: "main".into(),
        symbol: symbol.into(),
        side,
        quantity: qty.parse().unwrap(),
        order_type: OrderType::Limit,
        limit_price: Some("50000.10".parse().unwrap()),
        stop_price: None,
        tif: TimeInForce::Gtc,
        reference_price: Some("49999.5".parse().unwrap()),
        product: None,
        status: OrderState::New,
        venue: "paper".into(),
        venue_order_id: None,
        filled_quantity: Decimal::ZERO,
        average_price: None,
        error: None,
        sizing: Some("{\"method\":\"notional\"}".into()),
        waits_for_fill: leg > 0,
        exits: Exits {
            take_profit: leg.eq(&0).then(|| "60000".parse().unwrap()),
            stop_loss: None,
        },
        parent: (leg > 0).then(|| format!("{message_id}-0")),
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
    }
}

fn fill(cid: &str, qty: &str, delta: &str, now_ms: i64) -> Settlement {
    Settlement {
        client_order_id: cid.into(),
        status: OrderState::Filled,
        venue_order_id: Some(format!("v-{cid}")),
        filled_quantity: qty.parse().unwrap(),
        average_price: Some("50000.1".parse().unwrap()),
        error: None,
        position_delta: delta.parse().unwrap(),
        now_ms,
        fee: None,
    }
}

#[tokio::test]
async fn a_message_id_is_admitted_once_even_when_two_receivers_admit_it_at_once() {
    for s in stores().await {
        let other = s.reopen().await;
        for i in 0..20 {
            let id = format!("msg_{i}");
            let (a, b) = tokio::join!(
                s.journal.admit(message(&id, None, 1)),
                other.admit(message(&id, None, 1))
            );
            let answers = [a.unwrap(), b.unwrap()];
            let news = answers
                .iter()
                .filter(|x| matches!(x, Admission::New(_)))
                .count();
            assert_eq!(news, 1, "{}: {id} admitted {news} times", s.name);
            let Some(Admission::Seen(seen)) =
                answers.iter().find(|x| matches!(x, Admission::Seen(_)))
            else {
                panic!("{}: no Seen answer", s.name)
            };
            assert_eq!(seen.outcome, Outcome::Pending, "{}", s.name);
            assert_eq!(seen.envelope, b"{\"alert\":1}", "{}", s.name);
        }
    }
}

#[tokio::test]
async fn an_idempotency_key_inside_the_window_is_a_duplicate_and_outside_is_not() {
    for s in stores().await {
        s.journal
            .admit(message("msg_1", Some("k"), 1_000_000))
            .await
            .unwrap();
        let Admission::New(dup) = s
            .journal
            .admit(message("msg_2", Some("k"), 1_100_000))
            .await
            .unwrap()
        else {
            panic!("{}", s.name)
        };
        assert_eq!(dup.outcome, Outcome::Duplicate, "{}", s.name);
        assert_eq!(
            dup.reason.as_deref(),
            Some("idempotency key already used by msg_1"),
            "{}",
            s.name
        );
        let Admission::New(fresh) = s
            .journal
            .admit(message("msg_3", Some("k"), 1_400_001))
            .await
            .unwrap()
        else {
            panic!("{}", s.name)
        };
        assert_eq!(fresh.outcome, Outcome::Pending, "{}", s.name);
    }
}

#[tokio::test]
async fn one_idempotency_key_sent_to_two_receivers_at_once_is_executed_once() {
    for s in stores().await {
        let other = s.reopen().await;
        for i in 0..20 {
            let key = format!("key_{i}");
            let (a, b) = tokio::join!(
                s.journal
                    .admit(message(&format!("a_{i}"), Some(&key), 5_000)),
                other.admit(message(&format!("b_{i}"), Some(&key), 5_000))
            );
            let outcomes: Vec<Outcome> = [a.unwrap(), b.unwrap()]
                .into_iter()
                .map(|x| match x {
                    Admission::New(r) => r.outcome,
                    Admission::Seen(r) => panic!("{}: {} was seen", s.name, r.id),
                })
                .collect();
            let pending = outcomes.iter().filter(|o| **o == Outcome::Pending).count();
            assert_eq!(pending, 1, "{}: {key} gave {outcomes:?}", s.name);
        }
    }
}

#[tokio::test]
async fn the_schema_survives_reopening_and_is_not_migrated_twice() {
    for s in stores().await {
        s.journal.admit(message("msg_1", None, 1)).await.unwrap();
        let again = s.reopen().await;
        assert!(
            matches!(
                again.admit(message("msg_1", None, 2)).await.unwrap(),
                Admission::Seen(_)
            ),
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn planned_orders_read_back_exactly_and_a_fill_moves_the_position_once() {
    for s in stores().await {
        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        let planned = vec![
            order("m1", 0, "BTCUSDT", Side::Buy, "0.00100000"),
            order("m1", 1, "BTCUSDT", Side::Buy, "0.5"),
        ];
        s.journal.plan(planned.clone()).await.unwrap();
        // Planning again keeps what is there.
        s.journal.plan(planned.clone()).await.unwrap();
        let record = s.journal.message("m1").await.unwrap().unwrap();
        assert_eq!(record.orders, planned, "{}", s.name);

        s.journal
            .complete(
                vec![fill("m1-0", "0.001", "0.001", 2_000)],
                "m1",
                Outcome::Filled,
                None,
                2_000,
            )
            .await
            .unwrap();
        // The same answer recorded again (a resumed execution) does not move it twice.
        s.journal
            .complete(
                vec![fill("m1-0", "0.001", "0.001", 3_000)],
                "m1",
                Outcome::Filled,
                None,
                3_000,
            )
            .await
            .unwrap();
        assert_eq!(
            s.journal
                .position("main", "paper", "BTCUSDT")
                .await
                .unwrap(),
            "0.001".parse::<Decimal>().unwrap(),
            "{}",
            s.name
        );
        let record = s.journal.message("m1").await.unwrap().unwrap();
        assert_eq!(record.outcome, Outcome::Filled, "{}", s.name);
        assert_eq!(record.orders[0].status, OrderState::Filled, "{}", s.name);
        assert_eq!(record.orders[0].venue_order_id.as_deref(), Some("v-m1-0"));
        assert_eq!(
            record.orders[1].status,
            OrderState::Skipped,
            "{}: a leg still new when the message finished is skipped",
            s.name
        );
        let positions = s.journal.positions().await.unwrap();
        assert_eq!(positions.len(), 1, "{}", s.name);
        let fills = s.journal.fills("main").await.unwrap();
        assert_eq!(fills.len(), 1, "{}", s.name);
        assert_eq!(fills[0].price, "50000.1".parse::<Decimal>().unwrap());
        assert_eq!(
            s.journal.orders_since("main", 0).await.unwrap(),
            1,
            "{}",
            s.name
        );
        let recent = s.journal.recent_orders(10).await.unwrap();
        assert_eq!(
            recent[0].client_order_id, "m1-1",
            "{}: newest first",
            s.name
        );
    }
}

#[tokio::test]
async fn fills_from_two_receivers_at_once_add_up() {
    for s in stores().await {
        let other = s.reopen().await;
        let mut ids = Vec::new();
        for i in 0..10 {
            let id = format!("m{i}");
            s.journal.admit(message(&id, None, 1_000)).await.unwrap();
            s.journal
                .plan(vec![order(&id, 0, "ETHUSDT", Side::Buy, "1")])
                .await
                .unwrap();
            ids.push(id);
        }
        let mut tasks = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let j = if i % 2 == 0 {
                s.journal.clone()
            } else {
                other.clone()
            };
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                j.complete(
                    vec![fill(&format!("{id}-0"), "1", "1", 2_000)],
                    &id,
                    Outcome::Filled,
                    None,
                    2_000,
                )
                .await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(
            s.journal
                .position("main", "paper", "ETHUSDT")
                .await
                .unwrap(),
            Decimal::from(10),
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn pending_messages_are_unfinished_oldest_first_until_they_finish() {
    for s in stores().await {
        s.journal.admit(message("late", None, 2_000)).await.unwrap();
        s.journal
            .admit(message("early", None, 1_000))
            .await
            .unwrap();
        let mut done = message("done", None, 500);
        done.outcome = Outcome::Invalid;
        done.reason = Some("missing field side".into());
        s.journal.admit(done).await.unwrap();
        let ids: Vec<String> = s
            .journal
            .unfinished()
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(ids, ["early", "late"], "{}", s.name);
        s.journal
            .finish(
                "early",
                Outcome::Rejected,
                Some("max_position".into()),
                3_000,
            )
            .await
            .unwrap();
        let left = s.journal.unfinished().await.unwrap();
        assert_eq!(left.len(), 1, "{}", s.name);
        let early = s.journal.message("early").await.unwrap().unwrap();
        assert_eq!(early.reason.as_deref(), Some("max_position"), "{}", s.name);
        assert_eq!(early.updated_at_ms, 3_000, "{}", s.name);
    }
}

#[tokio::test]
async fn the_paper_book_keeps_the_first_placement_per_client_order_id() {
    for s in stores().await {
        let first = Placement {
            venue_order_id: Some("paper-1".into()),
            status: OrderStatus::Filled,
            filled_quantity: "2.5".parse().unwrap(),
            average_price: Some("101.25".parse().unwrap()),
            fee: None,
        };
        let second = Placement {
            venue_order_id: Some("paper-2".into()),
            ..first.clone()
        };
        assert_eq!(
            s.book.record_once("c1", first.clone(), 1).await.unwrap(),
            first
        );
        assert_eq!(
            s.book.record_once("c1", second, 2).await.unwrap(),
            first,
            "{}",
            s.name
        );
        assert_eq!(
            s.book.lookup("c1").await.unwrap(),
            Some(first),
            "{}",
            s.name
        );
        assert_eq!(s.book.lookup("c2").await.unwrap(), None, "{}", s.name);
    }
}

#[tokio::test]
async fn strategy_switches_and_venue_readings_replace_earlier_ones() {
    for s in stores().await {
        for (enabled, at) in [(false, 1), (true, 2)] {
            s.journal
                .set_strategy(StrategySwitch {
                    name: "trend".into(),
                    enabled,
                    changed_at_ms: at,
                })
                .await
                .unwrap();
        }
        let switches = s.journal.strategies().await.unwrap();
        assert_eq!(
            switches,
            [StrategySwitch {
                name: "trend".into(),
                enabled: true,
                changed_at_ms: 2
            }],
            "{}",
            s.name
        );
        for (position, at) in [(Some("1.50"), 10), (None, 20)] {
            s.journal
                .record_venue_positions(vec![VenuePosition {
                    account: "main".into(),
                    venue: "binance".into(),
                    symbol: "BTCUSDT".into(),
                    position: position.map(|p| p.parse().unwrap()),
                    reconciled_at_ms: at,
                }])
                .await
                .unwrap();
        }
        let readings = s.journal.venue_positions().await.unwrap();
        assert_eq!(readings.len(), 1, "{}", s.name);
        assert_eq!(readings[0].position, None, "{}", s.name);
        assert_eq!(readings[0].reconciled_at_ms, 20, "{}", s.name);
        let unknown = s
            .journal
            .orders_with_status(OrderState::Unknown)
            .await
            .unwrap();
        assert!(unknown.is_empty(), "{}", s.name);
    }
}

#[tokio::test]
async fn a_lease_is_held_by_one_receiver_until_it_expires_or_the_message_finishes() {
    for s in stores().await {
        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        let other = s.reopen().await;
        assert!(s.journal.lease("m1", "a", 1_000, 31_000).await.unwrap());
        if !s.shared() {
            // One receiver per file: the embedded store always grants.
            assert!(other.lease("m1", "b", 1_000, 31_000).await.unwrap());
            continue;
        }
        assert!(
            !other.lease("m1", "b", 30_999, 60_999).await.unwrap(),
            "held by a"
        );
        assert!(
            s.journal.lease("m1", "a", 20_000, 50_000).await.unwrap(),
            "a renews"
        );
        assert!(
            !other.lease("m1", "b", 49_999, 79_999).await.unwrap(),
            "renewed"
        );
        assert!(
            other.lease("m1", "b", 50_000, 80_000).await.unwrap(),
            "expired: b takes over"
        );
        assert!(
            !s.journal.lease("m1", "a", 50_001, 80_001).await.unwrap(),
            "a lost it"
        );
        other
            .finish("m1", Outcome::Filled, None, 60_000)
            .await
            .unwrap();
        assert!(
            s.journal.lease("m1", "a", 60_001, 90_001).await.unwrap(),
            "finishing released it"
        );
    }
}

fn keyed(id: &str, keys: &[&str], now_ms: i64) -> NewMessage {
    NewMessage {
        keys: keys
            .iter()
            .map(|symbol| ("main".to_owned(), (*symbol).to_owned()))
            .collect(),
        lease_until_ms: now_ms + 30_000,
        ..message(id, None, now_ms)
    }
}

#[tokio::test]
async fn a_pending_message_goes_before_later_ones_of_its_keys_until_it_finishes() {
    let key = |symbol: &str| vec![("main".to_owned(), symbol.to_owned())];
    for s in stores().await {
        s.journal.admit(keyed("m1", &["A"], 1_000)).await.unwrap();
        s.journal
            .admit(keyed("m2", &["A", "B"], 2_000))
            .await
            .unwrap();
        s.journal.admit(keyed("m3", &["B"], 3_000)).await.unwrap();
        s.journal.admit(keyed("m4", &["C"], 4_000)).await.unwrap();
        let both = [key("A"), key("B")].concat();
        let first = |id: &'static str, keys: Vec<(String, String)>| {
            let journal = s.journal.clone();
            async move {
                journal
                    .earliest_pending(id, keys)
                    .await
                    .unwrap()
                    .map(|e| e.message_id)
            }
        };
        if !s.shared() {
            // One receiver per file: its queue keeps arrival order, nothing is kept.
            assert_eq!(first("m3", key("B")).await, None, "{}", s.name);
            continue;
        }
        let earlier = s
            .journal
            .earliest_pending("m2", both.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(earlier.message_id, "m1");
        assert_eq!(
            earlier.lease,
            Some((s.journal.writer().to_owned(), 31_000)),
            "leased to the admitting receiver"
        );
        assert_eq!(first("m3", key("B")).await.as_deref(), Some("m2"));
        assert_eq!(
            first("m1", key("A")).await,
            None,
            "nothing before the first"
        );
        assert_eq!(first("m4", key("C")).await, None, "another key");
        // Asked with more keys than its own, a message still finds only earlier ones.
        assert_eq!(first("m1", both.clone()).await, None);

        s.journal
            .finish("m1", Outcome::Filled, None, 5_000)
            .await
            .unwrap();
        assert_eq!(first("m2", both.clone()).await, None, "m1 finished");
        assert_eq!(first("m3", key("B")).await.as_deref(), Some("m2"));
        s.journal
            .finish("m2", Outcome::Pending, Some("still running".into()), 5_000)
            .await
            .unwrap();
        assert_eq!(
            first("m3", key("B")).await.as_deref(),
            Some("m2"),
            "still pending"
        );
        s.journal
            .finish("m2", Outcome::Failed, None, 6_000)
            .await
            .unwrap();
        assert_eq!(first("m3", key("B")).await, None, "every outcome releases");

        // A duplicate is final at admission and holds nothing back.
        let mut dup = keyed("m5", &["C"], 7_000);
        dup.outcome = Outcome::Duplicate;
        s.journal.admit(dup).await.unwrap();
        s.journal.admit(keyed("m6", &["C"], 8_000)).await.unwrap();
        assert_eq!(first("m6", key("C")).await.as_deref(), Some("m4"));
    }
}

#[tokio::test]
async fn working_orders_are_the_placed_ones_oldest_first_and_a_reprice_moves_them() {
    for s in stores().await {
        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        s.journal
            .plan(vec![
                order("m1", 0, "BTCUSDT", Side::Buy, "1"),
                order("m1", 1, "BTCUSDT", Side::Sell, "1"),
                order("m1", 2, "ETHUSDT", Side::Buy, "1"),
            ])
            .await
            .unwrap();
        let placed = |cid: &str| Settlement {
            status: OrderState::Placed,
            filled_quantity: Decimal::ZERO,
            average_price: None,
            position_delta: Decimal::ZERO,
            ..fill(cid, "0", "0", 2_000)
        };
        s.journal
            .complete(
                vec![placed("m1-1"), placed("m1-0"), placed("m1-2")],
                "m1",
                Outcome::Placed,
                None,
                2_000,
            )
            .await
            .unwrap();
        let working = s.journal.working_orders("main", "BTCUSDT").await.unwrap();
        let ids: Vec<&str> = working.iter().map(|o| o.client_order_id.as_str()).collect();
        assert_eq!(ids, ["m1-0", "m1-1"], "{}", s.name);
        assert_eq!(
            working[0].exits.take_profit,
            Some("60000".parse().unwrap()),
            "{}",
            s.name
        );
        assert_eq!(working[1].parent.as_deref(), Some("m1-0"), "{}", s.name);
        s.journal
            .reprice(Reprice {
                client_order_id: "m1-0".into(),
                limit_price: Some("49000".parse().unwrap()),
                stop_price: None,
                exits: Exits {
                    take_profit: Some("61000".parse().unwrap()),
                    stop_loss: None,
                },
                venue_order_id: Some("v-new".into()),
                now_ms: 3_000,
            })
            .await
            .unwrap();
        let moved = &s.journal.working_orders("main", "BTCUSDT").await.unwrap()[0];
        assert_eq!(
            moved.limit_price,
            Some("49000".parse().unwrap()),
            "{}",
            s.name
        );
        assert_eq!(moved.venue_order_id.as_deref(), Some("v-new"), "{}", s.name);
        assert_eq!(
            moved.exits.take_profit,
            Some("61000".parse().unwrap()),
            "attached exits move with the order: {}",
            s.name
        );
        // A working order that fills later moves the position by its fill, once.
        let filled = fill("m1-0", "1", "1", 4_000);
        s.journal
            .complete(vec![filled.clone()], "m1", Outcome::Placed, None, 4_000)
            .await
            .unwrap();
        s.journal
            .complete(vec![filled], "m1", Outcome::Placed, None, 4_001)
            .await
            .unwrap();
        assert_eq!(
            s.journal
                .position("main", "paper", "BTCUSDT")
                .await
                .unwrap(),
            Decimal::ONE,
            "{}",
            s.name
        );
        let recent: Vec<String> = s
            .journal
            .recent_messages(5)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(recent, ["m1"], "{}", s.name);
    }
}

#[tokio::test]
async fn the_paper_book_takes_a_resting_orders_later_answer() {
    for s in stores().await {
        let resting = Placement {
            venue_order_id: Some("paper-1".into()),
            status: OrderStatus::Placed,
            filled_quantity: Decimal::ZERO,
            average_price: None,
            fee: None,
        };
        s.book.record_once("c1", resting.clone(), 1).await.unwrap();
        let cancelled = Placement {
            status: OrderStatus::Cancelled,
            ..resting
        };
        s.book.update("c1", cancelled.clone()).await.unwrap();
        assert_eq!(
            s.book.lookup("c1").await.unwrap(),
            Some(cancelled),
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn outcome_events_are_written_with_the_outcome_and_each_destination_reads_past_them_once() {
    use alertgate_receiver::journal::{DeliveryRecord, EventKind, NotifyEvent};
    for s in stores().await {
        // A destination seen first starts after the newest event: it gets no history.
        s.journal
            .enqueue_event(NotifyEvent::standalone(EventKind::KillSwitch, 1, "on"))
            .await
            .unwrap();
        let start = s.journal.outbox_cursor("chat", 1).await.unwrap();
        assert!(
            s.journal.outbox_after(start, 10).await.unwrap().is_empty(),
            "{}",
            s.name
        );

        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        s.journal
            .finish("m1", Outcome::Rejected, Some("kill_switch".into()), 2_000)
            .await
            .unwrap();
        // Recording the same outcome again is not news.
        s.journal
            .finish("m1", Outcome::Rejected, Some("kill_switch".into()), 2_001)
            .await
            .unwrap();
        let pending = s.journal.outbox_after(start, 10).await.unwrap();
        assert_eq!(pending.len(), 1, "{}", s.name);
        assert_eq!(pending[0].event.kind, EventKind::Rejected, "{}", s.name);
        assert_eq!(
            pending[0].event.message_id.as_deref(),
            Some("m1"),
            "{}",
            s.name
        );
        let delivered = DeliveryRecord {
            outcome: "sent".into(),
            attempts: 1,
            error: None,
        };
        s.journal
            .outbox_advance("chat", pending[0].seq, Some(delivered), 3_000)
            .await
            .unwrap();
        let cursor = s.journal.outbox_cursor("chat", 3_000).await.unwrap();
        assert_eq!(cursor, pending[0].seq, "{}", s.name);
        assert!(
            s.journal.outbox_after(cursor, 10).await.unwrap().is_empty(),
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn the_same_symbol_at_two_venues_is_two_positions() {
    for s in stores().await {
        s.journal.admit(message("s1", None, 1_000)).await.unwrap();
        s.journal.admit(message("f1", None, 1_000)).await.unwrap();
        let spot = OrderRecord {
            venue: "spot".into(),
            ..order("s1", 0, "BTCUSDT", Side::Buy, "0.002")
        };
        let futures = OrderRecord {
            venue: "futures".into(),
            ..order("f1", 0, "BTCUSDT", Side::Sell, "0.5")
        };
        s.journal.plan(vec![spot]).await.unwrap();
        s.journal.plan(vec![futures]).await.unwrap();
        for (message, cid, qty, delta) in [
            ("s1", "s1-0", "0.002", "0.002"),
            ("f1", "f1-0", "0.5", "-0.5"),
        ] {
            s.journal
                .complete(
                    vec![fill(cid, qty, delta, 2_000)],
                    message,
                    Outcome::Filled,
                    None,
                    2_000,
                )
                .await
                .unwrap();
        }

        let at = |venue: &'static str| s.journal.position("main", venue, "BTCUSDT");
        assert_eq!(at("spot").await.unwrap(), dec("0.002"), "{}", s.name);
        assert_eq!(at("futures").await.unwrap(), dec("-0.5"), "{}", s.name);
        assert_eq!(at("other").await.unwrap(), Decimal::ZERO, "{}", s.name);
        let all: Vec<(String, String, Decimal)> = s
            .journal
            .positions()
            .await
            .unwrap()
            .into_iter()
            .map(|p| (p.venue, p.symbol, p.position))
            .collect();
        assert_eq!(
            all,
            [
                ("futures".into(), "BTCUSDT".into(), dec("-0.5")),
                ("spot".into(), "BTCUSDT".into(), dec("0.002")),
            ],
            "{}",
            s.name
        );
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_journal_that_takes_a_message_out_of_pending_is_recorded_as_its_finisher() {
    for s in stores().await {
        let other = s.reopen().await;
        assert_ne!(s.journal.writer(), other.writer(), "{}", s.name);
        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        let pending = s.journal.message("m1").await.unwrap().unwrap();
        assert_eq!(pending.finished_by, None, "{}", s.name);

        other
            .finish("m1", Outcome::Unknown, None, 2_000)
            .await
            .unwrap();
        s.journal
            .finish("m1", Outcome::Filled, None, 3_000)
            .await
            .unwrap();
        let done = s.journal.message("m1").await.unwrap().unwrap();
        assert_eq!(done.outcome, Outcome::Filled, "{}", s.name);
        assert_eq!(
            done.finished_by.as_deref(),
            Some(other.writer()),
            "{}: the write out of pending, not a later one",
            s.name
        );

        let mut invalid = message("m2", None, 1_000);
        invalid.outcome = Outcome::Invalid;
        invalid.reason = Some("quantity: missing".into());
        let Admission::New(admitted) = s.journal.admit(invalid).await.unwrap() else {
            panic!("{}: m2 is new", s.name);
        };
        assert_eq!(
            admitted.finished_by.as_deref(),
            Some(s.journal.writer()),
            "{}",
            s.name
        );
        let stored = s.journal.message("m2").await.unwrap().unwrap();
        assert_eq!(stored.finished_by, admitted.finished_by, "{}", s.name);
    }
}

/// PostgreSQL only (TLS is the network's): a server of the test's own with a certificate from
/// `alertgate-receiver certs`' private CA for 127.0.0.1.
#[tokio::test]
async fn postgres_over_tls_verifies_the_servers_certificate_and_its_name() {
    let dir = tempfile::tempdir().unwrap();
    alertgate_receiver::certs::generate(dir.path(), "127.0.0.1").unwrap();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    let server = alertgate_testkit::postgres::PrivateServer::start_tls(
        &read("receiver.pem"),
        &read("receiver.key"),
    )
    .unwrap();
    let ca = dir.path().join("ca.pem");
    let tls_url = format!("{}?sslmode=require", server.url());

    let journal = PostgresJournal::open_with(&tls_url, 2, Some(&ca))
        .await
        .unwrap();
    journal.admit(message("m1", None, 1_000)).await.unwrap();
    assert_eq!(
        journal.message("m1").await.unwrap().unwrap().outcome,
        Outcome::Pending
    );
    // The server's view: every connection the journal made is encrypted.
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE s.ssl), COUNT(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid \
             WHERE a.application_name = 'alertgate-receiver'",
            &[],
        )
        .await
        .unwrap();
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(encrypted >= 1, "{encrypted} encrypted connections");
    assert_eq!(plain, 0, "no plain-text connection");

    // Not signed by a trusted CA (the public roots): refused, saying why.
    let e = PostgresJournal::open_with(&tls_url, 2, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    // Signed, but for another name than the URL's host.
    let by_name = tls_url.replace("127.0.0.1", "localhost");
    let e = PostgresJournal::open_with(&by_name, 2, Some(&ca))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("certificate"), "{e}");
    // A CA file without sslmode=require would be ignored: refused instead.
    let e = PostgresJournal::open_with(&server.url(), 2, Some(&ca))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("sslmode=require"), "{e}");
}

#[tokio::test]
async fn a_reported_fee_is_read_back_with_its_fill_and_kept_when_a_later_answer_has_none() {
    for s in stores().await {
        s.journal.admit(message("m1", None, 1_000)).await.unwrap();
        s.journal
            .plan(vec![
                order("m1", 0, "BTCUSDT", Side::Buy, "0.01"),
                order("m1", 1, "ETHUSDT", Side::Buy, "1"),
            ])
            .await
            .unwrap();
        let with_fee = Settlement {
            fee: Some("0.42".parse().unwrap()),
            ..fill("m1-0", "0.01", "0.01", 2_000)
        };
        s.journal
            .complete(
                vec![with_fee, fill("m1-1", "1", "1", 2_000)],
                "m1",
                Outcome::Filled,
                None,
                2_000,
            )
            .await
            .unwrap();
        let fees = |fills: Vec<alertgate_receiver::journal::Fill>| -> Vec<(String, String)> {
            fills
                .into_iter()
                .map(|f| (f.symbol, f.fee.to_string()))
                .collect()
        };
        let mut got = fees(s.journal.fills("main").await.unwrap());
        got.sort();
        assert_eq!(
            got,
            [
                ("BTCUSDT".to_owned(), "0.42".to_owned()),
                ("ETHUSDT".to_owned(), "0".to_owned())
            ],
            "{}",
            s.name
        );
        // A later answer without a fee (a lookup) keeps the one reported.
        s.journal
            .complete(
                vec![fill("m1-0", "0.01", "0", 3_000)],
                "m1",
                Outcome::Filled,
                None,
                3_000,
            )
            .await
            .unwrap();
        let got = fees(s.journal.fills("main").await.unwrap());
        assert!(
            got.contains(&("BTCUSDT".to_owned(), "0.42".to_owned())),
            "{}: {got:?}",
            s.name
        );
    }
}
