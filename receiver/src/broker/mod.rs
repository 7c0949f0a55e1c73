//! Brokers: where normalized orders go. Every implementation makes `place` idempotent on the
//! order's `client_order_id`: calling it again with the same id (after a timeout, a crash, a retry)
//! returns the first order, never a second one.
//!
//! - [`paper`]: the embedded default; fills market orders at the reference price.
//! - [`binance`], [`alpaca`], [`http`]: real venues (see their modules), built from `[broker]`
//!   by [`build_venue`].
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
use serde::{Deserialize, Serialize};

use crate::order::OrderRequest;

pub mod alpaca;
pub mod binance;
pub mod config;
pub mod http;
pub mod paper;

use self::config::{BrokerConfig, BrokerKind};

/// The future a broker call returns.
pub type BrokerFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where an order stands at the venue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Accepted and working (a resting limit order, say).
    Placed,
    /// Partly filled and still working.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled, expired or rejected by the venue after acceptance.
    Cancelled,
}

impl OrderStatus {
    /// `placed`, `partially_filled`, `filled`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::PartiallyFilled => "partially_filled",
            Self::Filled => "filled",
            Self::Cancelled => "cancelled",
        }
    }
}

/// What the venue says about an order it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// The venue's own id for the order.
    pub venue_order_id: Option<String>,
    /// Status at the time of the answer.
    pub status: OrderStatus,
    /// Quantity filled so far (zero for a resting order).
    pub filled_quantity: Decimal,
    /// Average fill price, when anything filled.
    pub average_price: Option<Decimal>,
}

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

/// A venue that takes orders.
pub trait Broker: Send + Sync + Debug {
    /// The venue's name in records and metrics (`paper`, `binance`, ...).
    fn name(&self) -> &'static str;

    /// Places `order` idempotently on `order.client_order_id`. When the outcome of an earlier
    /// attempt is unknown, implementations look the order up before sending it again.
    fn place<'a>(
        &'a self,
        order: &'a OrderRequest,
    ) -> BrokerFuture<'a, Result<Placement, BrokerError>>;

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
    /// `kind = "paper"`: the paper broker lives in the receiver (it needs the journal).
    #[error("broker.kind = \"paper\" is built by the receiver itself, not by build_venue")]
    Paper,
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

/// Builds the real venue `[broker]` names (`binance`, `alpaca` or `http`), resolving its
/// credentials now so a missing secret stops startup rather than the first order.
/// `paper` is refused: the receiver builds it around its journal.
pub fn build_venue(
    config: &BrokerConfig,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn Broker>, BrokerBuildError> {
    match config.kind {
        BrokerKind::Paper => Err(BrokerBuildError::Paper),
        BrokerKind::Binance => {
            let section = config
                .binance
                .as_ref()
                .ok_or(BrokerBuildError::MissingSection { kind: "binance" })?;
            Ok(Arc::new(binance::BinanceBroker::from_config(
                section, clock,
            )?))
        }
        BrokerKind::Alpaca => {
            let section = config
                .alpaca
                .as_ref()
                .ok_or(BrokerBuildError::MissingSection { kind: "alpaca" })?;
            Ok(Arc::new(alpaca::AlpacaBroker::from_config(section)?))
        }
        BrokerKind::Http => {
            let section = config
                .http
                .as_ref()
                .ok_or(BrokerBuildError::MissingSection { kind: "http" })?;
            Ok(Arc::new(http::HttpBroker::from_config(section, clock)?))
        }
    }
}
