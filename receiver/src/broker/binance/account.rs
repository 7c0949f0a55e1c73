//! What Binance Spot says about the account: `GET /api/v3/account` (signed, weight 20), whose
//! `balances` give the spot position in a symbol as the base asset's `free` + `locked`.

use std::collections::HashMap;

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::BinanceBroker;
use crate::broker::BrokerError;

/// The part of the account answer that matters here.
#[derive(Debug, Deserialize)]
struct Account {
    balances: Vec<Balance>,
}

/// One asset's balance, decimals as strings.
#[derive(Debug, Deserialize)]
struct Balance {
    asset: String,
    free: String,
    locked: String,
}

impl BinanceBroker {
    /// The base-asset balance (free + locked) of each of `symbols`, zero for an asset the
    /// account holds none of.
    pub(super) async fn base_balances(
        &self,
        symbols: &[String],
    ) -> Result<Vec<(String, Decimal)>, BrokerError> {
        let mut bases = Vec::with_capacity(symbols.len());
        for symbol in symbols {
            bases.push((symbol.clone(), self.rules(symbol).await?.base_asset.clone()));
        }
        let held = self.balances().await?;
        Ok(bases
            .into_iter()
            .map(|(symbol, base)| {
                let amount = held.get(&base).copied().unwrap_or(Decimal::ZERO);
                (symbol, amount)
            })
            .collect())
    }

    /// `GET /api/v3/account`: every asset's free + locked balance.
    async fn balances(&self) -> Result<HashMap<String, Decimal>, BrokerError> {
        let request = self
            .rest
            .request(Method::GET, "/api/v3/account", Vec::new());
        let account: Account = self.rest.read(request, "account").await?;
        let transient = |message: String| BrokerError::Transient {
            message,
            retry_after: None,
        };
        let mut held = HashMap::new();
        for b in account.balances {
            let parse = |s: &str| {
                s.parse::<Decimal>().map_err(|_| {
                    transient(format!("Binance balance of {} is not a decimal", b.asset))
                })
            };
            let total = parse(&b.free)? + parse(&b.locked)?;
            held.insert(b.asset.clone(), total.normalize());
        }
        Ok(held)
    }
}
