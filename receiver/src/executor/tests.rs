//! The executor as a whole: ordering, retries, positions.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex as StdMutex;

use alertgate_shared::SystemClock;
use bytes::Bytes;
use rust_decimal::Decimal;

use super::*;
use crate::broker::{BrokerError, BrokerFuture, OrderStatus, Placement};
use crate::config::RiskConfig;
use crate::journal::{Admission, NewMessage, OrderState, SqliteJournal};
use crate::normalize::Action;
use crate::order::{OrderRequest, OrderType, Positive, TimeInForce};

#[test]
fn client_order_ids_are_deterministic_and_fit_every_venue() {
    let id = "msg_01JD1W8M6ZQ4S5V7X9Y2A3B4C5";
    assert_eq!(client_order_id(id, 0), format!("{id}-0"));
    assert_eq!(client_order_id(id, 1), client_order_id(id, 1));
    let long = client_order_id(&"x".repeat(100), 3);
    assert!(long.len() <= 36, "{long}");
    assert_eq!(long, client_order_id(&"x".repeat(100), 3));
    let longest = client_order_id(&"y".repeat(32), crate::normalize::MAX_LEGS as u32 - 1);
    for venue_max in [
        crate::broker::binance::CLIENT_ORDER_ID_MAX,
        crate::broker::alpaca::CLIENT_ORDER_ID_MAX,
    ] {
        assert!(longest.len() <= venue_max, "{longest}");
    }
}

/// Answers after a delay that shrinks with each call (so later orders would overtake earlier
/// ones if nothing kept them in line), failing transiently first when asked.
#[derive(Debug, Default)]
struct Recorder {
    seen: StdMutex<Vec<String>>,
    calls: AtomicU64,
    transient_failures: StdMutex<u32>,
    /// A link taken down at the last transient failure.
    down_at_last_failure: StdMutex<Option<Arc<alertgate_testkit::proxy::Proxy>>>,
}

impl Broker for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }

    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        Box::pin(async move {
            {
                let mut failures = self.transient_failures.lock().unwrap();
                if *failures > 0 {
                    *failures -= 1;
                    if *failures == 0 {
                        if let Some(link) = self.down_at_last_failure.lock().unwrap().take() {
                            link.down();
                        }
                    }
                    self.seen
                        .lock()
                        .unwrap()
                        .push(format!("retry {}", order.client_order_id));
                    return Err(BrokerError::Transient {
                        message: "busy".into(),
                        retry_after: Some(Duration::from_millis(5)),
                    });
                }
            }
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(40u64.saturating_sub(n * 10))).await;
            self.seen
                .lock()
                .unwrap()
                .push(order.client_order_id.clone());
            Ok(Placement {
                venue_order_id: Some(format!("v-{}", order.client_order_id)),
                status: OrderStatus::Filled,
                filled_quantity: order.quantity.get(),
                average_price: order.reference_price.map(Positive::get),
                fee: None,
            })
        })
    }
}

fn leg(symbol: &str) -> Leg {
    Leg {
        tv_symbol: format!("X:{symbol}"),
        symbol: symbol.into(),
        action: Action::Buy,
        quantity: Some("1".parse().unwrap()),
        sizing: crate::normalize::Sizing::Quantity,
        target_position: None,
        order_type: OrderType::Market,
        limit_price: None,
        stop_price: None,
        tif: TimeInForce::Gtc,
        reference_price: Some("10".parse().unwrap()),
        product: None,
        exits: Default::default(),
    }
}

async fn setup(broker: Arc<Recorder>) -> (tempfile::TempDir, Arc<SqliteJournal>, Executor) {
    let dir = tempfile::tempdir().unwrap();
    let journal =
        Arc::new(SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(1)).unwrap());
    let executor = executor_on(journal.clone(), broker);
    (dir, journal, executor)
}

fn executor_on(journal: Arc<dyn Journal>, broker: Arc<Recorder>) -> Executor {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = ExecutorConfig {
        retry_base_ms: 1,
        ..ExecutorConfig::default()
    };
    Executor::new(
        journal,
        crate::routing::Venues::of(vec![("recorder".into(), broker)]),
        RiskGates::new(RiskConfig::default(), clock.clone()),
        clock,
        config,
        Metrics::new(),
    )
}

async fn admit(journal: &(impl Journal + ?Sized), id: &str) {
    let m = NewMessage {
        id: id.into(),
        account: Some("main".into()),
        idempotency_key: None,
        received_at_ms: Some(0),
        envelope: Bytes::from_static(b"{}"),
        outcome: Outcome::Pending,
        reason: None,
        now_ms: 0,
        dedupe_since_ms: 0,
        keys: Vec::new(),
        lease_until_ms: 0,
    };
    assert!(matches!(journal.admit(m).await.unwrap(), Admission::New(_)));
}

#[tokio::test]
async fn jobs_for_one_symbol_reach_the_broker_in_submission_order() {
    let broker = Arc::new(Recorder::default());
    let (_dir, journal, executor) = setup(broker.clone()).await;
    let mut completions = Vec::new();
    for i in 0..4 {
        let id = format!("msg_{i}");
        admit(&*journal, &id).await;
        let job = job(&id, "AAA");
        completions.push(executor.submit(job));
    }
    for c in completions {
        assert_eq!(c.await.unwrap().unwrap().outcome, Outcome::Filled);
    }
    let seen = broker.seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["msg_0-0", "msg_1-0", "msg_2-0", "msg_3-0"]);
    assert_eq!(
        journal.position("main", "recorder", "AAA").await.unwrap(),
        Decimal::from(4)
    );
}

#[tokio::test]
async fn a_transient_error_is_retried_with_the_same_client_order_id() {
    let broker = Arc::new(Recorder::default());
    *broker.transient_failures.lock().unwrap() = 2;
    let (_dir, journal, executor) = setup(broker.clone()).await;
    admit(&*journal, "msg_r").await;
    let job = job("msg_r", "AAA");
    let done = executor.submit(job).await.unwrap().unwrap();
    assert_eq!(done.outcome, Outcome::Filled);
    let seen = broker.seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["retry msg_r-0", "retry msg_r-0", "msg_r-0"]);
}

fn job(id: &str, symbol: &str) -> Job {
    Job {
        message_id: id.into(),
        account: "main".into(),
        strategy: None,
        venue: "recorder".into(),
        scale: None,
        work: Work::Legs(vec![leg(symbol)]),
        resumed: false,
    }
}

/// Chaos `--postgres` seed 2003: the venue never confirmed an order (`unknown`), and the write
/// of that outcome was lost with the database. The order is still `new` in the journal, so it
/// is sent again when the message resumes: it must be sent before the next message of its
/// (account, symbol), which waits for the key's turn meanwhile.
#[tokio::test]
async fn an_unknown_order_whose_outcome_write_is_lost_goes_to_the_venue_before_the_next_message() {
    let schema = alertgate_testkit::postgres::TestSchema::create()
        .await
        .unwrap();
    let database = Arc::new(
        alertgate_testkit::proxy::Proxy::start(schema.server_addr().unwrap())
            .await
            .unwrap(),
    );
    let journal = Arc::new(
        crate::journal::PostgresJournal::open(&schema.url_via(database.addr), 2)
            .await
            .unwrap(),
    );
    let broker = Arc::new(Recorder::default());
    let attempts = ExecutorConfig::default().max_attempts;
    *broker.transient_failures.lock().unwrap() = attempts;
    *broker.down_at_last_failure.lock().unwrap() = Some(database.clone());
    let executor = executor_on(journal.clone(), broker.clone());
    admit(&*journal, "msg_lost").await;
    admit(&*journal, "msg_next").await;

    let lost = executor.submit(job("msg_lost", "AAA"));
    let next = executor.submit(job("msg_next", "AAA"));
    // The database is down from the last failed attempt on; it comes back a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    database.up();

    let lost = lost
        .await
        .unwrap()
        .expect("retried once the journal answered");
    let next = next.await.unwrap().unwrap();
    assert_eq!(
        (lost.outcome, next.outcome),
        (Outcome::Filled, Outcome::Filled)
    );
    let placed: Vec<String> = broker
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| !s.starts_with("retry"))
        .cloned()
        .collect();
    assert_eq!(placed, ["msg_lost-0", "msg_next-0"], "in the key's order");
}

#[tokio::test]
async fn a_venue_that_stays_unavailable_leaves_the_message_unknown_after_the_last_attempt() {
    let broker = Arc::new(Recorder::default());
    *broker.transient_failures.lock().unwrap() = 100;
    let (_dir, journal, executor) = setup(broker.clone()).await;
    admit(&*journal, "msg_f").await;
    let job = job("msg_f", "AAA");
    let done = executor.submit(job).await.unwrap().unwrap();
    assert_eq!(
        done.outcome,
        Outcome::Unknown,
        "never confirmed: not failed"
    );
    assert!(done.reason.unwrap().contains("after 5 attempts"));
    assert_eq!(broker.seen.lock().unwrap().len(), 5);
    let stored = journal.message("msg_f").await.unwrap().unwrap();
    assert_eq!(
        (stored.outcome, stored.orders[0].status),
        (Outcome::Unknown, OrderState::Unknown)
    );
}

fn sign(d: Decimal) -> Decimal {
    if d > Decimal::ZERO {
        Decimal::ONE
    } else if d < Decimal::ZERO {
        -Decimal::ONE
    } else {
        Decimal::ZERO
    }
}

fn action_leg(action: Action, quantity: Option<u32>) -> Leg {
    if action == Action::Target {
        return Leg {
            action,
            quantity: None,
            target_position: Some(Decimal::from(quantity.unwrap_or(0))),
            ..leg("AAA")
        };
    }
    Leg {
        action,
        quantity: quantity.map(|q| Positive::new(Decimal::from(q)).unwrap()),
        ..leg("AAA")
    }
}

fn arb_step() -> impl proptest::strategy::Strategy<Value = (Action, Option<u32>)> {
    use proptest::prelude::*;
    prop_oneof![
        (1u32..5).prop_map(|q| (Action::Buy, Some(q))),
        (1u32..5).prop_map(|q| (Action::Sell, Some(q))),
        Just((Action::Close, None)),
        (0u32..5).prop_map(|t| (Action::Target, Some(t))),
        (1u32..5).prop_map(|q| (Action::Close, Some(q))),
        Just((Action::CloseLong, None)),
        Just((Action::CloseShort, None)),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]
    #[test]
    fn the_journaled_position_is_the_sum_of_fills_and_closes_never_flip_it(
        steps in proptest::collection::vec(arb_step(), 1..12)
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let journal = Arc::new(SqliteJournal::open(&dir.path().join("j.db"), Duration::from_secs(1)).unwrap());
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let paper = Arc::new(crate::broker::paper::PaperBroker::new(journal.clone(), clock.clone(), Duration::ZERO));
            let executor = Executor::new(
                journal.clone(),
                crate::routing::Venues::of(vec![("paper".into(), paper)]),
                RiskGates::new(RiskConfig::default(), clock.clone()),
                clock,
                ExecutorConfig::default(),
                Metrics::new(),
            );
            let mut model = Decimal::ZERO;
            for (i, (action, quantity)) in steps.iter().enumerate() {
                let id = format!("msg_{i}");
                admit(&*journal, &id).await;
                let job = Job { message_id: id, account: "main".into(), strategy: None, venue: "paper".into(), scale: None, work: Work::Legs(vec![action_leg(*action, *quantity)]), resumed: false };
                let done = executor.submit(job).await.unwrap().unwrap();
                assert_eq!(done.outcome, Outcome::Filled);
                let q = quantity.map(Decimal::from);
                let before = model;
                model = match action {
                    Action::Buy => model + q.unwrap(),
                    Action::Sell => model - q.unwrap(),
                    Action::Close => {
                        let take = q.map_or(model.abs(), |q| q.min(model.abs()));
                        model - sign(model) * take
                    }
                    Action::CloseLong if model > Decimal::ZERO => Decimal::ZERO,
                    Action::CloseShort if model < Decimal::ZERO => Decimal::ZERO,
                    Action::CloseLong | Action::CloseShort => model,
                    Action::Target => q.unwrap_or(Decimal::ZERO),
                    Action::Cancel | Action::Modify => unreachable!("the strategy generates no cancels or modifies"),
                };
                if action.is_close() {
                    assert!(model.is_zero() || sign(model) == sign(before), "a close never flips the position");
                }
                assert_eq!(journal.position("main", "paper", "AAA").await.unwrap(), model, "after step {i}: {action:?} {quantity:?}");
            }
        });
    }
}
