//! Routing (DESIGN section 14): which venue an alert goes to, and the registry of built venues.
//!
//! - [`Route`]: what routing and normalization need to know about one venue (its name, the
//!   accounts and TradingView exchanges it serves, its symbols, how it reads alerts). Pure data,
//!   so the interpreter, the dashboard and `replay` route without any broker.
//! - [`pick`]: the rule. An alert's `venue` field names the venue (which must serve the
//!   account); otherwise the first venue, in config order, serving the account and every leg's
//!   exchange. No venue → `invalid` naming `venue`.
//! - [`Venues`]: the built brokers by name, with their routes; the executor places through the
//!   venue a job was routed to, reconciliation asks each venue about its own orders.
//!
//! The single `[broker]` table is one venue named after its kind, serving everything
//! ([`crate::Settings::venue_configs`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use alertgate_shared::Clock;

use crate::broker::{self, Broker, BrokerBuildError};
use crate::config::{RiskLimits, Settings, VenueConfig};
use crate::journal::PlacementStore;
use crate::normalize::{symbol, NormalizeContext, Perpetuals};
use crate::order::ExitSupport;

/// One venue as routing and normalization see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The venue's name.
    pub name: String,
    /// TradingView exchange prefixes it serves; empty: any.
    pub exchanges: Vec<String>,
    /// Accounts it serves; empty: any.
    pub accounts: Vec<String>,
    /// The venue's `symbols` over the global `[symbols]` (the venue's entry wins).
    pub symbols: BTreeMap<String, String>,
    /// What the venue does with perpetual tickers ([`Broker::perpetuals`]).
    pub perpetuals: Perpetuals,
    /// Venue symbols carry the exchange ([`Broker::exchange_in_symbol`]).
    pub exchange_in_symbol: bool,
    /// Shorts allowed ([`Broker::allows_short`]).
    pub allow_short: bool,
    /// How protective exits attach ([`Broker::exits`]).
    pub exits: ExitSupport,
}

impl Route {
    /// The route of the venue `config` built as `broker`, with the global `[symbols]`.
    pub fn new(
        config: &VenueConfig,
        broker: &dyn Broker,
        global: &BTreeMap<String, String>,
    ) -> Self {
        let mut symbols = global.clone();
        symbols.extend(config.symbols.clone());
        Self {
            name: config.name.clone(),
            exchanges: config.exchanges.clone(),
            accounts: config.accounts.clone(),
            symbols,
            perpetuals: broker.perpetuals(),
            exchange_in_symbol: broker.exchange_in_symbol(),
            allow_short: broker.allows_short(),
            exits: broker.exits(),
        }
    }

    /// How alerts routed here are normalized.
    pub fn context(&self) -> NormalizeContext<'_> {
        NormalizeContext {
            symbols: &self.symbols,
            perpetuals: self.perpetuals,
            exchange_in_symbol: self.exchange_in_symbol,
            allow_short: self.allow_short,
            exits: self.exits,
        }
    }

    fn serves_account(&self, account: &str) -> bool {
        self.accounts.is_empty() || self.accounts.iter().any(|a| a == account)
    }

    fn serves_exchange(&self, exchange: Option<&str>) -> bool {
        self.exchanges.is_empty()
            || exchange.is_some_and(|x| self.exchanges.iter().any(|e| e.eq_ignore_ascii_case(x)))
    }

    /// `true` when this venue takes `tv_symbol`: its exchange, and, for a perpetual contract
    /// (`BTCUSDT.P`), not a spot-only venue unless its symbols table maps it.
    fn serves_symbol(&self, tv_symbol: &str) -> bool {
        let ticker = tv_symbol.split_once(':').map_or(tv_symbol, |(_, t)| t);
        self.serves_exchange(exchange_of(tv_symbol))
            && !(self.perpetuals == Perpetuals::Refused
                && symbol::is_perpetual(ticker)
                && !self.symbols.contains_key(tv_symbol))
    }
}

/// The TradingView exchange prefix of `tv_symbol` (`BINANCE` of `BINANCE:BTCUSDT` and of
/// `BINANCE_DLY:BTCUSDT`), if any.
pub fn exchange_of(tv_symbol: &str) -> Option<&str> {
    tv_symbol
        .split_once(':')
        .map(|(exchange, _)| symbol::strip_delayed(exchange.trim()))
        .filter(|e| !e.is_empty())
}

/// The route for an alert of `account` whose legs trade `tv_symbols` (one per leg, as the
/// alert wrote them), or `requested` by its `venue` field. The error is the reason of an
/// `invalid` outcome and names `venue`.
pub fn pick<'a>(
    routes: &'a [Route],
    account: &str,
    tv_symbols: &[&str],
    requested: Option<&str>,
) -> Result<&'a Route, String> {
    let names = || {
        routes
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = requested {
        let route = routes
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| format!("venue: no venue named {name:?} (venues: {})", names()))?;
        if !route.serves_account(account) {
            return Err(format!(
                "venue: {name:?} does not serve account {account:?} (its accounts: {})",
                route.accounts.join(", ")
            ));
        }
        return Ok(route);
    }
    let mut chosen: Option<&Route> = None;
    for tv_symbol in tv_symbols {
        // A perpetual only a spot venue serves goes there anyway: normalization then says
        // why it is refused.
        let route = routes
            .iter()
            .find(|r| r.serves_account(account) && r.serves_symbol(tv_symbol))
            .or_else(|| {
                routes.iter().find(|r| {
                    r.serves_account(account) && r.serves_exchange(exchange_of(tv_symbol))
                })
            })
            .ok_or_else(|| {
                format!(
                    "venue: no venue serves account {account:?} on exchange {} for {tv_symbol:?} \
                     (venues: {}); set their exchanges and accounts, or name one in the alert's \
                     venue field",
                    exchange_of(tv_symbol)
                        .map_or_else(|| "(none given)".to_owned(), |e| format!("{e:?}")),
                    names()
                )
            })?;
        match chosen {
            Some(c) if c.name != route.name => {
                return Err(format!(
                    "venue: the legs route to different venues ({:?} and {:?}); send them as \
                     separate alerts",
                    c.name, route.name
                ))
            }
            _ => chosen = Some(route),
        }
    }
    chosen.ok_or_else(|| "venue: the alert has no leg to route".to_owned())
}

/// Why a venue could not be built: which venue, and the broker's reason.
#[derive(Debug, thiserror::Error)]
#[error("{context}{source}")]
pub struct VenueBuildError {
    /// `venues "NAME": ` for a `[[venues]]` table; empty for `[broker]` (its messages name it).
    context: String,
    /// The broker's reason (names the key and the reference, never a secret).
    source: BrokerBuildError,
}

/// One built venue.
#[derive(Debug)]
pub struct Venue {
    /// How alerts reach it.
    pub route: Route,
    /// The broker.
    pub broker: Arc<dyn Broker>,
    /// Its `risk` overrides.
    pub risk: Option<RiskLimits>,
}

/// Every configured venue, built, in routing order; cheap to clone.
#[derive(Debug, Clone)]
pub struct Venues {
    list: Arc<Vec<Venue>>,
}

impl Venues {
    /// Builds every venue of `settings` (credentials resolved now, no network call); paper
    /// venues keep their book in `book`.
    pub fn build(
        settings: &Settings,
        book: Arc<dyn PlacementStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, crate::BuildError> {
        let configs = settings.venue_configs()?;
        let from_table = !settings.venues.is_empty();
        let mut list = Vec::with_capacity(configs.len());
        for config in &configs {
            let broker = broker::build_venue(&config.broker, book.clone(), clock.clone()).map_err(
                |source| VenueBuildError {
                    context: if from_table {
                        format!("venues {:?}: ", config.name)
                    } else {
                        String::new()
                    },
                    source,
                },
            )?;
            list.push(Venue {
                route: Route::new(config, broker.as_ref(), &settings.symbols),
                broker,
                risk: config.risk.clone(),
            });
        }
        Ok(Self {
            list: Arc::new(list),
        })
    }

    /// Venues from already-built brokers, each serving everything (tests).
    pub fn of(brokers: Vec<(String, Arc<dyn Broker>)>) -> Self {
        let list = brokers
            .into_iter()
            .map(|(name, broker)| Venue {
                route: Route {
                    name,
                    exchanges: Vec::new(),
                    accounts: Vec::new(),
                    symbols: BTreeMap::new(),
                    perpetuals: broker.perpetuals(),
                    exchange_in_symbol: broker.exchange_in_symbol(),
                    allow_short: broker.allows_short(),
                    exits: broker.exits(),
                },
                broker,
                risk: None,
            })
            .collect();
        Self {
            list: Arc::new(list),
        }
    }

    /// The venue named `name`.
    pub fn get(&self, name: &str) -> Option<&Venue> {
        self.list.iter().find(|v| v.route.name == name)
    }

    /// Every venue, in routing order.
    pub fn iter(&self) -> impl Iterator<Item = &Venue> {
        self.list.iter()
    }

    /// The routes, in routing order.
    pub fn routes(&self) -> Vec<Route> {
        self.list.iter().map(|v| v.route.clone()).collect()
    }

    /// Each venue's `risk` overrides, by name.
    pub fn risk_limits(&self) -> HashMap<String, RiskLimits> {
        self.list
            .iter()
            .filter_map(|v| Some((v.route.name.clone(), v.risk.clone()?)))
            .collect()
    }

    /// The names, for logs.
    pub fn names(&self) -> Vec<&str> {
        self.list.iter().map(|v| v.route.name.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, exchanges: &[&str], accounts: &[&str]) -> Route {
        Route {
            name: name.into(),
            exchanges: exchanges.iter().map(|s| s.to_string()).collect(),
            accounts: accounts.iter().map(|s| s.to_string()).collect(),
            symbols: BTreeMap::new(),
            perpetuals: Perpetuals::AsSent,
            exchange_in_symbol: false,
            allow_short: true,
            exits: ExitSupport::Orders,
        }
    }

    #[test]
    fn the_first_venue_serving_the_account_and_the_exchange_wins() {
        let routes = [
            route("crypto", &["BINANCE"], &[]),
            route("stocks", &["NASDAQ", "NYSE"], &["main"]),
            route("rest", &[], &[]),
        ];
        let pick =
            |account, symbol: &str| pick(&routes, account, &[symbol], None).map(|r| r.name.clone());
        assert_eq!(pick("main", "binance:BTCUSDT").unwrap(), "crypto");
        assert_eq!(pick("main", "BINANCE_DLY:BTCUSDT").unwrap(), "crypto");
        assert_eq!(pick("main", "NASDAQ:AAPL").unwrap(), "stocks");
        assert_eq!(
            pick("other", "NASDAQ:AAPL").unwrap(),
            "rest",
            "stocks serves main only"
        );
        assert_eq!(pick("main", "AAPL").unwrap(), "rest");
    }

    #[test]
    fn no_venue_or_an_unknown_name_is_an_error_naming_venue() {
        let routes = [route("crypto", &["BINANCE"], &[]), route("b", &[], &["b"])];
        let err = pick(&routes, "main", &["NYSE:IBM"], None).unwrap_err();
        assert!(
            err.starts_with("venue: no venue serves account \"main\""),
            "{err}"
        );
        let err = pick(&routes, "main", &["BINANCE:BTCUSDT"], Some("nope")).unwrap_err();
        assert!(err.starts_with("venue: no venue named \"nope\""), "{err}");
        let err = pick(&routes, "main", &["BINANCE:BTCUSDT"], Some("b")).unwrap_err();
        assert!(err.contains("does not serve account \"main\""), "{err}");
        let by_name = pick(&routes, "b", &["BINANCE:BTCUSDT"], Some("b")).unwrap();
        assert_eq!(by_name.name, "b", "the venue field overrides the exchange");
    }

    #[test]
    fn legs_on_two_venues_are_refused() {
        let routes = [route("crypto", &["BINANCE"], &[]), route("rest", &[], &[])];
        let err = pick(&routes, "main", &["BINANCE:BTCUSDT", "NYSE:IBM"], None).unwrap_err();
        assert!(err.contains("different venues"), "{err}");
    }

    #[test]
    fn perpetuals_skip_spot_only_venues_serving_the_same_exchange() {
        let mut spot = route("spot", &["BINANCE"], &[]);
        spot.perpetuals = Perpetuals::Refused;
        let routes = [spot, route("futures", &["BINANCE"], &[])];
        let picked = |s: &str| pick(&routes, "main", &[s], None).unwrap().name.clone();
        assert_eq!(picked("BINANCE:BTCUSDT"), "spot");
        assert_eq!(picked("BINANCE:BTCUSDT.P"), "futures");
        let only_spot = pick(&routes[..1], "main", &["BINANCE:BTCUSDT.P"], None).unwrap();
        assert_eq!(
            only_spot.name, "spot",
            "normalization says why spot refuses it"
        );
    }
}
