//! Brokers: where normalized orders go. Every implementation makes `place` idempotent on the
//! order's `client_order_id`: calling it again with the same id (after a timeout, a crash, a retry)
//! returns the first order, never a second one.
//!
//! - [`build`]: the one factory, from `[broker]` to a venue, paper included.
//! - [`Broker`]: placing, and what the executor and the app need to know about a venue
//!   ([`Broker::spot_only`], [`Broker::max_client_id_len`], ...), with defaults.
//! - [`paper`]: the embedded default; fills market orders at the reference price and keeps its
//!   book in the journal's [`PlacementStore`].
//! - [`binance`], [`binance_futures`], [`alpaca`], [`zerodha`], [`betfair`], [`http`]: real
//!   venues (see their modules).
//! - [`config`]: the `[broker]` settings.
//!
//! Loopback emulators of each venue, for tests, live in the dev-only `alertgate-testkit` crate.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use alertgate_shared::keys::KeyError;
use alertgate_shared::secret::SecretError;
use alertgate_shared::Clock;
use rust_decimal::Decimal;

use crate::journal::PlacementStore;
use crate::order::OrderRequest;
pub use crate::order::{OrderStatus, Placement};

/// A protective exit a venue holds as a leg of its entry ([`Broker::attached_legs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedLeg {
    /// `limit` (the take-profit) or `stop`/`stop_limit` (the stop-loss).
    pub order_type: crate::order::OrderType,
    /// Its limit price.
    pub limit_price: Option<Decimal>,
    /// Its stop price.
    pub stop_price: Option<Decimal>,
    /// Where it stands (with the leg's own venue id).
    pub placement: Placement,
}

pub mod alpaca;
pub mod betfair;
pub mod binance;
pub mod binance_futures;
pub mod config;
pub mod http;
pub mod paper;
pub mod zerodha;

use self::config::{BrokerConfig, VenueBroker};

/// The future a broker call returns.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a broker call did not produce a placement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The order can never succeed as written (bad symbol, below minimum, insufficient balance,
    /// wrong credentials): outcome `failed`, not retried.
    #[error("{message}")]
    Rejected {
        /// The venue's message, for the user.
        message: String,
    },
    /// The order breaks a venue rule known before sending (filters): outcome `invalid`.
    #[error("{message}")]
    Invalid {
        /// What to change.
        message: String,
    },
    /// Try again with the same client order id (429, 5xx before acceptance, connection refused).
    #[error("transient: {message}")]
    Transient {
        /// What happened.
        message: String,
        /// The venue's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
}

/// Signed positions by venue symbol, as [`Broker::positions`] reports them.
pub type Positions = Vec<(String, Decimal)>;

/// A venue's quantity rule for one symbol: quantities are multiples of `step` and at least
/// `min` (zero disables either).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LotRule {
    /// Quantity increment (Binance `LOT_SIZE.stepSize`); zero: any.
    pub step: Decimal,
    /// Smallest quantity (Binance `LOT_SIZE.minQty`); zero: none.
    pub min: Decimal,
}

impl LotRule {
    /// `quantity` rounded down to the step.
    pub fn round_down(&self, quantity: Decimal) -> Decimal {
        if self.step > Decimal::ZERO {
            ((quantity / self.step).floor() * self.step).normalize()
        } else {
            quantity.normalize()
        }
    }
}

/// A venue that takes orders.
pub trait Broker: Send + Sync + Debug {
    /// The venue's name in records and metrics (`paper`, `binance`, ...).
    fn name(&self) -> &'static str;

    /// `true` for a spot-only venue: alerts for perpetual contracts (`BTCUSDT.P`) are `invalid`
    /// rather than sent as spot orders.
    fn spot_only(&self) -> bool {
        false
    }

    /// What the venue does with TradingView perpetual tickers (`BTCUSDT.P`): a spot-only venue
    /// refuses them, others take them as sent unless they trade perpetuals under the contract's
    /// own symbol ([`crate::normalize::Perpetuals::Contract`], Binance USDⓈ-M futures).
    fn perpetuals(&self) -> crate::normalize::Perpetuals {
        if self.spot_only() {
            crate::normalize::Perpetuals::Refused
        } else {
            crate::normalize::Perpetuals::AsSent
        }
    }

    /// The longest client order id the venue takes; longer (or unusual) ids are sent as a
    /// derived id of this length ([`http::venue_client_id`]). No limit by default.
    fn max_client_id_len(&self) -> usize {
        usize::MAX
    }

    /// `true` when the venue needs the exchange with each symbol: the normalized symbol is then
    /// `EXCHANGE:TICKER` (`NSE:RELIANCE`), never a bare ticker. `false` by default.
    fn exchange_in_symbol(&self) -> bool {
        false
    }

    /// Rereads credentials that change while the receiver runs (Zerodha's daily access token, a
    /// `file:` reference) on `SIGHUP`. `Ok(true)` when something was reread; nothing by default.
    /// Errors name the config key and the reference, never a value.
    fn reload_credentials(&self) -> Result<bool, BrokerBuildError> {
        Ok(false)
    }

    /// `false` when the venue cannot hold a short position (spot crypto): a negative
    /// `target_position` is then `invalid`. Short selling is allowed by default.
    fn allows_short(&self) -> bool {
        true
    }

    /// `true` when [`Broker::positions`] answers: target-position intents then start from the
    /// venue's position, otherwise from the journal's fills.
    fn reports_positions(&self) -> bool {
        false
    }

    /// The signed positions the venue holds in `symbols` for `account` (a symbol it holds
    /// nothing in is reported as zero). `Ok(None)`: this venue cannot report positions.
    fn positions<'a>(
        &'a self,
        account: &'a str,
        symbols: &'a [String],
    ) -> BrokerFuture<'a, Result<Option<Positions>, BrokerError>> {
        let _ = (account, symbols);
        Box::pin(async { Ok(None) })
    }

    /// The account's equity in the quote currency, for `percent_of_equity` sizing.
    /// `Ok(None)`: this venue cannot report it.
    fn equity<'a>(
        &'a self,
        account: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Decimal>, BrokerError>> {
        let _ = account;
        Box::pin(async { Ok(None) })
    }

    /// The order the venue holds under `client_order_id` (alertgate's id; the adapter maps it
    /// to the venue's form), `Ok(None)` when the venue has no such order. Used to settle orders
    /// whose placement was never confirmed (`unknown`). The default cannot ask: an error.
    fn lookup<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        let _ = (symbol, client_order_id);
        let name = self.name();
        Box::pin(async move {
            Err(BrokerError::Transient {
                message: format!("the {name} venue cannot look orders up"),
                retry_after: None,
            })
        })
    }

    /// The quantity grid of `symbol`, which sized quantities (notional, percent of equity,
    /// target differences) are rounded down to. `Ok(None)`: no rounding.
    fn lot_rule<'a>(
        &'a self,
        symbol: &'a str,
    ) -> BrokerFuture<'a, Result<Option<LotRule>, BrokerError>> {
        let _ = symbol;
        Box::pin(async { Ok(None) })
    }

    /// Places `order` idempotently on `order.client_order_id`. When the outcome of an earlier
    /// attempt is unknown, implementations look the order up before sending it again.
    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>>;

    /// Cancels the working order `client_order_id` (venue id `venue_order_id` when known) and
    /// answers what became of it: `cancelled` with what filled before, or `filled` when it
    /// filled first. Idempotent: cancelling an order already cancelled answers it again. The
    /// default cannot cancel: a rejection naming the venue.
    fn cancel<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        let _ = (symbol, client_order_id, venue_order_id);
        let name = self.name();
        Box::pin(async move {
            Err(BrokerError::Rejected {
                message: format!("the {name} venue adapter cannot cancel orders yet"),
            })
        })
    }

    /// Moves the working order `order` (alertgate's record, holding the new limit/stop prices)
    /// at the venue; answers its placement (a new venue order id when the venue replaced it).
    /// The default cannot: a rejection naming the venue.
    fn modify<'a>(
        &'a self,
        order: &'a OrderRequest,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>> {
        let _ = (order, venue_order_id);
        let name = self.name();
        Box::pin(async move {
            Err(BrokerError::Rejected {
                message: format!("the {name} venue adapter cannot modify orders yet"),
            })
        })
    }

    /// How this venue attaches `take_profit`/`stop_loss` to an entry; unsupported by default.
    fn exits(&self) -> crate::order::ExitSupport {
        crate::order::ExitSupport::Unsupported
    }

    /// Places the protective exits of the filled entry `entry_client_order_id` together
    /// ([`crate::order::ExitSupport::Oco`]) and answers one placement per exit, in order.
    /// Idempotent on the exits' client ids. The default places them one by one.
    fn place_exits<'a>(
        &'a self,
        entry_client_order_id: &'a str,
        exits: &'a [OrderRequest],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        let _ = entry_client_order_id;
        Box::pin(async move {
            let mut out = Vec::with_capacity(exits.len());
            for exit in exits {
                out.push(self.place(exit).await?);
            }
            Ok(out)
        })
    }

    /// Moves the working exits of `entry_client_order_id` (each with its new prices and venue
    /// order id) together; a retry never leaves two live pairs. The default moves them one by
    /// one.
    fn modify_exits<'a>(
        &'a self,
        entry_client_order_id: &'a str,
        exits: &'a [(OrderRequest, Option<String>)],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        let _ = entry_client_order_id;
        Box::pin(async move {
            let mut out = Vec::with_capacity(exits.len());
            for (exit, venue_order_id) in exits {
                out.push(self.modify(exit, venue_order_id.as_deref()).await?);
            }
            Ok(out)
        })
    }

    /// Cancels the working exits of one entry (client order id, venue order id) together and
    /// answers each as it is then. The default cancels them one by one.
    fn cancel_exits<'a>(
        &'a self,
        symbol: &'a str,
        exits: &'a [(String, Option<String>)],
    ) -> BrokerFuture<'a, Result<Vec<Placement>, BrokerError>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(exits.len());
            for (client_order_id, venue_order_id) in exits {
                out.push(
                    self.cancel(symbol, client_order_id, venue_order_id.as_deref())
                        .await?,
                );
            }
            Ok(out)
        })
    }

    /// A working order as the venue has it now, by its venue order id when known (a modified
    /// order may rest under another client id), else as [`Broker::lookup`].
    fn lookup_working<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        let _ = venue_order_id;
        self.lookup(symbol, client_order_id)
    }

    /// The protective exits the venue holds as legs of entry `client_order_id` (venue id
    /// `venue_order_id`), as they stand: for venues whose exits are
    /// [`crate::order::ExitSupport::Attached`] (Alpaca's bracket), so that once the entry filled
    /// the journal lists them as orders of their own, to follow, cancel and move. Empty where
    /// exits are orders of their own.
    fn attached_legs<'a>(
        &'a self,
        symbol: &'a str,
        client_order_id: &'a str,
        venue_order_id: Option<&'a str>,
    ) -> BrokerFuture<'a, Result<Vec<AttachedLeg>, BrokerError>> {
        let _ = (symbol, client_order_id, venue_order_id);
        Box::pin(async { Ok(Vec::new()) })
    }

    /// `true` when [`Broker::lookup`] can ask the venue about an order by its client order id
    /// (Binance Spot and futures, Alpaca): its resting orders are followed by reconciliation
    /// and synced before a cancel or modify.
    fn looks_up_orders(&self) -> bool {
        false
    }

    /// `true` when resting orders are simulated inside the receiver (the paper broker): a later
    /// alert's reference price that crosses them fills them ([`crate::executor`], "crossing").
    fn simulates_resting(&self) -> bool {
        false
    }

    /// Fills the simulated resting order `client_order_id` completely at `price` and answers its
    /// new placement (an order no longer resting is answered as it is; `None`: no such order).
    /// Only for venues that [`Broker::simulates_resting`].
    fn fill_resting<'a>(
        &'a self,
        client_order_id: &'a str,
        quantity: Decimal,
        price: Decimal,
    ) -> BrokerFuture<'a, Result<Option<Placement>, BrokerError>> {
        let _ = (client_order_id, quantity, price);
        Box::pin(async { Ok(None) })
    }

    /// `true` when the venue keeps its orders through the receiver's own journal queue (the paper
    /// broker): a journal write queued before `place` is then durable before the venue's record,
    /// so the executor need not wait for it. Real venues keep the default, `false`.
    fn shares_journal(&self) -> bool {
        false
    }
}

/// Why a venue could not be built from `[broker]`. Messages name the config key and the
/// reference (`env:NAME`, `file:PATH`), never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum BrokerBuildError {
    /// `kind = "binance"` (say) without a `[broker.binance]` section.
    #[error("broker.kind = \"{kind}\" needs a [broker.{kind}] section")]
    MissingSection {
        /// `binance`, `alpaca` or `http`.
        kind: &'static str,
    },
    /// A secret reference that could not be read.
    #[error("broker.{key}: {source}")]
    Secret {
        /// The config key, e.g. `binance.api_key`.
        key: &'static str,
        /// Why (names the variable or file, never the value).
        source: SecretError,
    },
    /// A key or `whsec_` secret that could not be parsed.
    #[error("broker.{key}: {source}")]
    Key {
        /// The config key, e.g. `binance.private_key`.
        key: &'static str,
        /// Why (never contains key bytes).
        source: KeyError,
    },
    /// A value that is present but unusable.
    #[error("broker.{key}: {message}")]
    Invalid {
        /// The config key.
        key: &'static str,
        /// What to change.
        message: String,
    },
    /// The HTTP client could not be created (TLS initialisation).
    #[error("cannot create the HTTP client for broker.{kind}: {message}")]
    Client {
        /// The venue.
        kind: &'static str,
        /// What reqwest said.
        message: String,
    },
}

/// Builds the venue `[broker]` names ([`build_venue`]).
pub fn build(
    config: &BrokerConfig,
    book: Arc<dyn PlacementStore>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Broker>, BrokerBuildError> {
    build_venue(&config.venue_broker()?, book, clock)
}

/// Builds one venue, resolving its credentials now so a missing secret stops startup (or
/// `check-config`) rather than the first order. No network call is made. The paper broker keeps
/// its book in `book` (the journal, or [`crate::journal::MemoryPlacements`] when nothing is to
/// be placed); real venues ignore it.
pub fn build_venue(
    venue: &VenueBroker,
    book: Arc<dyn PlacementStore>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Broker>, BrokerBuildError> {
    Ok(match venue {
        VenueBroker::Paper(paper) if !(Decimal::ZERO..Decimal::ONE).contains(&paper.fee_rate) => {
            return Err(BrokerBuildError::Invalid {
                key: "paper.fee_rate",
                message: format!(
                    "{} is not a fraction of the notional from 0 (no fee) up to 1 (\"0.001\" is 0.1 %)",
                    paper.fee_rate
                ),
            })
        }
        VenueBroker::Paper(paper) => Arc::new(
            paper::PaperBroker::new(book, clock, Duration::from_millis(paper.fill_delay_ms))
                .with_equity(paper.equity)
                .with_lot_step(paper.lot_step)
                .with_fee_rate(paper.fee_rate),
        ),
        VenueBroker::Binance(section) => {
            Arc::new(binance::BinanceBroker::from_config(section, clock)?)
        }
        VenueBroker::Alpaca(section) => Arc::new(alpaca::AlpacaBroker::from_config(section)?),
        VenueBroker::Zerodha(section) => Arc::new(zerodha::ZerodhaBroker::from_config(section)?),
        VenueBroker::Betfair(section) => {
            Arc::new(betfair::BetfairBroker::from_config(section, clock)?)
        }
        VenueBroker::Http(section) => Arc::new(http::HttpBroker::from_config(section, clock)?),
        VenueBroker::BinanceFutures(section) => Arc::new(
            binance_futures::BinanceFuturesBroker::from_config(section, clock)?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paper_fee_rate_outside_zero_to_one_is_refused_naming_the_key() {
        let build = |rate: &str| {
            let paper = config::PaperConfig {
                fee_rate: rate.parse().unwrap(),
                ..config::PaperConfig::default()
            };
            build_venue(
                &VenueBroker::Paper(paper),
                Arc::new(crate::journal::MemoryPlacements::default()),
                Arc::new(alertgate_shared::SystemClock),
            )
        };
        for bad in ["-0.001", "1", "2"] {
            let e = build(bad).unwrap_err().to_string();
            assert!(e.starts_with("broker.paper.fee_rate:"), "{bad}: {e}");
        }
        for good in ["0", "0.001"] {
            assert!(build(good).is_ok(), "{good}");
        }
    }
}
