//! TradingView symbols to venue symbols.
//!
//! Order of rules, first match wins:
//! 1. the whole symbol as sent (`BINANCE_DL:BTCUSDT`, `AAPL`) in the `[symbols]` table;
//! 2. with `_DL`/`_DLY` (delayed feed) stripped from the exchange, `BINANCE:BTCUSDT`, in the table;
//! 3. a perpetual (`BTCUSDT.P`, `BTC-PERP`) is refused when the venue is spot, and becomes its
//!    contract's symbol (`BTCUSDT`) on a venue that trades perpetuals under that name
//!    ([`Perpetuals`]);
//! 4. otherwise the bare ticker, unchanged.
//!
//! Case is never changed and `USD` is never turned into `USDT` (or back): those are different
//! markets, and a silent substitution would trade the wrong one.

use std::collections::BTreeMap;

/// The longest symbol accepted, as sent and as sent to the venue.
pub const MAX_SYMBOL_LEN: usize = 64;

/// Characters a symbol may contain: letters, digits and `. _ - / ! :`.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '!' | ':')
}

fn check_chars(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.chars().count() > MAX_SYMBOL_LEN {
        return Err(format!("is longer than {MAX_SYMBOL_LEN} characters"));
    }
    if let Some(c) = s.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "contains {c:?}; a symbol may only contain letters, digits and . _ - / ! :"
        ));
    }
    Ok(())
}

/// Checks the shape of a symbol as sent (`EXCHANGE:TICKER` or `TICKER`).
pub fn check_tv_symbol(tv: &str) -> Result<(), String> {
    check_chars(tv)?;
    match tv.split(':').count() {
        1 => Ok(()),
        2 if tv.split(':').all(|part| !part.is_empty()) => Ok(()),
        2 => Err(format!(
            "`{tv}` needs both an exchange and a ticker around the `:`"
        )),
        _ => Err(format!("`{tv}` has more than one `:`")),
    }
}

/// What a venue does with TradingView's perpetual-contract tickers (`BTCUSDT.P`, `BTCUSDTPERP`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Perpetuals {
    /// A spot venue: a perpetual ticker is invalid (it would trade spot instead).
    Refused,
    /// Passed on as sent (`BTCUSDT.P`): the venue (paper, the user's OMS) decides.
    #[default]
    AsSent,
    /// A perpetual-futures venue (Binance USDⓈ-M): the suffix is dropped, `BTCUSDT.P` →
    /// `BTCUSDT`, the contract's own symbol there.
    Contract,
}

/// `ticker` without its perpetual suffix (`.P`, `.PERP`, `-PERP`, `PERP`); unchanged when it
/// has none, or when nothing would be left.
pub fn perpetual_contract(ticker: &str) -> &str {
    let upper = ticker.to_ascii_uppercase();
    for suffix in [".PERP", "-PERP", "_PERP", ".P", "PERP"] {
        if upper.ends_with(suffix) && upper.len() > suffix.len() {
            return &ticker[..ticker.len() - suffix.len()];
        }
    }
    ticker
}

/// `true` for TradingView's perpetual-contract tickers: `BTCUSDT.P`, `BTCPERP`, `BTC-PERP`.
pub fn is_perpetual(ticker: &str) -> bool {
    let upper = ticker.to_ascii_uppercase();
    upper.ends_with(".P") || upper.ends_with("PERP")
}

/// The exchange without TradingView's delayed-feed suffix (`BINANCE_DLY` → `BINANCE`).
pub fn strip_delayed(exchange: &str) -> &str {
    exchange
        .strip_suffix("_DLY")
        .or_else(|| exchange.strip_suffix("_DL"))
        .unwrap_or(exchange)
}

/// The venue symbol for a TradingView symbol. `Err` carries the message for the symbol field.
pub fn resolve(
    tv: &str,
    table: &BTreeMap<String, String>,
    perpetuals: Perpetuals,
) -> Result<String, String> {
    check_tv_symbol(tv)?;
    if let Some(mapped) = table.get(tv) {
        return from_table(tv, mapped);
    }
    let ticker = match tv.split_once(':') {
        Some((exchange, ticker)) => {
            let exchange = strip_delayed(exchange);
            if let Some(mapped) = table.get(&format!("{exchange}:{ticker}")) {
                return from_table(tv, mapped);
            }
            ticker
        }
        None => tv,
    };
    if !is_perpetual(ticker) {
        return Ok(ticker.to_owned());
    }
    match perpetuals {
        Perpetuals::Refused => Err(format!(
            "`{tv}` is a perpetual contract; perpetual contracts are not supported by a spot venue"
        )),
        Perpetuals::AsSent => Ok(ticker.to_owned()),
        Perpetuals::Contract => Ok(perpetual_contract(ticker).to_owned()),
    }
}

/// The venue symbol as `EXCHANGE:TICKER`, for venues that need the exchange: `resolved` as the
/// `[symbols]` table gave it when it already names one, else prefixed with the alert's exchange
/// (without `_DL`/`_DLY`). A bare ticker with no exchange anywhere is refused: guessing one could
/// trade the same ticker on another exchange.
pub fn with_exchange(tv: &str, resolved: String) -> Result<String, String> {
    if resolved.contains(':') {
        return Ok(resolved);
    }
    match tv.split_once(':') {
        Some((exchange, _)) => Ok(format!("{}:{resolved}", strip_delayed(exchange))),
        None => Err(format!(
            "`{tv}` names no exchange, and this venue needs one: send `NSE:{tv}` (or `exchange` \
             with `symbol`), or map it in [symbols] to EXCHANGE:TRADINGSYMBOL"
        )),
    }
}

fn from_table(tv: &str, mapped: &str) -> Result<String, String> {
    check_chars(mapped)
        .map(|()| mapped.to_owned())
        .map_err(|why| {
            format!("the [symbols] table maps `{tv}` to an unusable venue symbol: it {why}")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_table_is_consulted_before_and_after_stripping_delayed_feeds() {
        let t = table(&[
            ("BINANCE:BTCUSDT", "BTCUSDT"),
            ("NASDAQ_DL:AAPL", "AAPL.US"),
        ]);
        assert_eq!(
            resolve("BINANCE_DL:BTCUSDT", &t, Perpetuals::Refused).unwrap(),
            "BTCUSDT"
        );
        assert_eq!(
            resolve("BINANCE_DLY:BTCUSDT", &t, Perpetuals::Refused).unwrap(),
            "BTCUSDT"
        );
        assert_eq!(
            resolve("NASDAQ_DL:AAPL", &t, Perpetuals::Refused).unwrap(),
            "AAPL.US"
        );
        assert_eq!(
            resolve("NASDAQ_DLY:MSFT", &t, Perpetuals::Refused).unwrap(),
            "MSFT"
        );
        assert_eq!(
            resolve("COINBASE:BTCUSD", &t, Perpetuals::Refused).unwrap(),
            "BTCUSD"
        );
        assert_eq!(
            resolve("ETHUSDT", &t, Perpetuals::Refused).unwrap(),
            "ETHUSDT"
        );
    }

    #[test]
    fn perpetuals_are_refused_only_by_spot_venues_and_the_table_overrides() {
        let t = table(&[("BYBIT:ETHUSDT.P", "ETHUSDT")]);
        assert!(resolve("BINANCE:BTCUSDT.P", &t, Perpetuals::Refused).is_err());
        assert!(resolve("FTX:BTC-PERP", &t, Perpetuals::Refused).is_err());
        assert!(resolve("BTCUSDT.P", &t, Perpetuals::Refused).is_err());
        assert_eq!(
            resolve("BINANCE:BTCUSDT.P", &t, Perpetuals::AsSent).unwrap(),
            "BTCUSDT.P"
        );
        assert_eq!(
            resolve("BYBIT:ETHUSDT.P", &t, Perpetuals::Refused).unwrap(),
            "ETHUSDT"
        );
    }

    #[test]
    fn a_perpetuals_venue_trades_the_contract_under_its_own_symbol() {
        let t = table(&[("BINANCE:ETHUSDT.P", "ETHUSDC")]);
        let contract = |tv| resolve(tv, &t, Perpetuals::Contract).unwrap();
        assert_eq!(contract("BINANCE:BTCUSDT.P"), "BTCUSDT");
        assert_eq!(contract("BINANCE:BTCUSDTPERP"), "BTCUSDT");
        assert_eq!(contract("BINANCE_DL:SOLUSDT.P"), "SOLUSDT");
        assert_eq!(contract("BTCUSDT.PERP"), "BTCUSDT");
        assert_eq!(contract("BINANCE:btcusdt.p"), "btcusdt", "case is kept");
        assert_eq!(contract("BINANCE:BTCUSDT"), "BTCUSDT");
        assert_eq!(
            contract("BINANCE:ETHUSDT.P"),
            "ETHUSDC",
            "the table still wins"
        );
        assert_eq!(
            perpetual_contract("PERP"),
            "PERP",
            "nothing left: unchanged"
        );
    }

    #[test]
    fn venues_that_need_the_exchange_get_it_from_the_alert_or_the_table_never_guessed() {
        assert_eq!(
            with_exchange("NSE:RELIANCE", "RELIANCE".into()).unwrap(),
            "NSE:RELIANCE"
        );
        assert_eq!(
            with_exchange("NSE_DL:INFY", "INFY".into()).unwrap(),
            "NSE:INFY"
        );
        assert_eq!(
            with_exchange("NSE:NIFTY1!", "NFO:NIFTY26JANFUT".into()).unwrap(),
            "NFO:NIFTY26JANFUT"
        );
        let bare = with_exchange("RELIANCE", "RELIANCE".into()).unwrap_err();
        assert!(bare.contains("names no exchange"), "{bare}");
    }

    #[test]
    fn malformed_symbols_are_refused() {
        let t = BTreeMap::new();
        for bad in [
            "",
            "BINANCE:",
            ":BTC",
            "A:B:C",
            "BTC USDT",
            "BTC$",
            &"X".repeat(65),
        ] {
            assert!(resolve(bad, &t, Perpetuals::AsSent).is_err(), "{bad}");
        }
        assert!(resolve("CME_MINI:ES1!", &t, Perpetuals::AsSent).is_ok());
    }
}
