//! Modify at Binance Spot: `POST /api/v3/order/cancelReplace` with
//! `cancelReplaceMode=STOP_ON_FAILURE`, cancelling the live order by `cancelOrderId` and placing
//! its replacement under a `newClientOrderId` derived from alertgate's id and the new prices.
//!
//! Idempotency, as for new orders: the replacement's id is looked up first, and a replacement
//! that is there (open or filled) is the answer, never sent again; after an answer that was lost
//! (timeout, 5xx) it is looked up once more, and if Binance does not have it the call is
//! transient and the retry looks again before it sends.

use reqwest::Method;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::rest::{api_error, ApiError, Classified};
use super::{BinanceBroker, BinanceOrder, CLIENT_ORDER_ID_MAX};
use crate::broker::http::{send, venue_client_id, SendFailure};
use crate::broker::{BrokerError, OrderStatus, Placement};
use crate::order::OrderRequest;

/// The `newClientOrderId` of the order replacing `client_order_id` at these prices: the same
/// for every retry of one modify.
pub fn replacement_id(
    client_order_id: &str,
    limit: Option<Decimal>,
    stop: Option<Decimal>,
) -> String {
    let price = |p: Option<Decimal>| p.map(|p| p.normalize().to_string()).unwrap_or_default();
    venue_client_id(
        &format!("{client_order_id}~replace~{}~{}", price(limit), price(stop)),
        CLIENT_ORDER_ID_MAX,
    )
}

/// A successful cancel-replace answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelReplaced {
    new_order_response: BinanceOrder,
}

impl BinanceBroker {
    /// Moves the resting order `order` (alertgate's record, with its new prices; venue id
    /// `venue_order_id` when known) by cancel-replace.
    pub(super) async fn modify_inner(
        &self,
        order: &OrderRequest,
        venue_order_id: Option<&str>,
    ) -> Result<Placement, BrokerError> {
        let symbol = order.symbol.as_str();
        let new_id = replacement_id(
            &order.client_order_id,
            order.limit_price.map(|p| p.get()),
            order.stop_price.map(|p| p.get()),
        );
        let done = |p: &Placement| p.status != OrderStatus::Cancelled;
        // A replacement placed by an earlier attempt (a cancelled one under the same id, from an
        // older modify to these prices, does not count: Binance takes the id again).
        if let Some(existing) = self.query(symbol, &new_id).await?.filter(done) {
            return Ok(existing);
        }
        let live = match venue_order_id {
            Some(id) => self.query_by(symbol, ("orderId", id.to_owned())).await?,
            None => {
                let cid = venue_client_id(&order.client_order_id, CLIENT_ORDER_ID_MAX);
                self.query(symbol, &cid).await?
            }
        };
        let Some(live) = live else {
            return Err(BrokerError::Rejected {
                message: format!("Binance has no order {} to modify", order.client_order_id),
            });
        };
        if !matches!(
            live.status,
            OrderStatus::Placed | OrderStatus::PartiallyFilled
        ) {
            // Filled or cancelled first: what it is now is the answer.
            return Ok(live);
        }
        let Some(live_id) = live.venue_order_id.clone() else {
            return Err(BrokerError::Transient {
                message: "Binance answered an order without its orderId".into(),
                retry_after: None,
            });
        };
        let rules = self.rules(symbol).await?;
        let mut params = rules.order_params(order, &new_id)?;
        params.push(("cancelReplaceMode", "STOP_ON_FAILURE".to_owned()));
        params.push(("cancelOrderId", live_id));
        let request = self
            .rest
            .request(Method::POST, "/api/v3/order/cancelReplace", params);
        let why = match send(request).await {
            Ok(answer) if answer.status.is_success() => {
                return serde_json::from_slice::<CancelReplaced>(&answer.body)
                    .map(|r| r.new_order_response.placement())
                    .map_err(|e| BrokerError::Transient {
                        message: format!("Binance cancelReplace answer is unreadable ({e})"),
                        retry_after: None,
                    });
            }
            Ok(answer) => match api_error(&answer.body) {
                // The cancel failed (filled or cancelled meanwhile); nothing new was placed.
                Some(ApiError { code: -2022, .. }) => {
                    let now = self
                        .query_by(symbol, ("orderId", live.venue_order_id.unwrap_or_default()))
                        .await?;
                    return match now {
                        Some(now)
                            if !matches!(
                                now.status,
                                OrderStatus::Placed | OrderStatus::PartiallyFilled
                            ) =>
                        {
                            Ok(now)
                        }
                        _ => Err(BrokerError::Transient {
                            message: "Binance could not cancel the order to replace it".into(),
                            retry_after: None,
                        }),
                    };
                }
                Some(ApiError { code: -2021, msg }) => {
                    return Err(BrokerError::Rejected {
                        message: format!(
                            "Binance cancelled the order but refused its replacement ({msg}): \
                             nothing rests for it now"
                        ),
                    })
                }
                _ => match self.rest.classify(&answer) {
                    Classified::Final(e) => return Err(e),
                    Classified::Unknown(why) | Classified::Duplicate(why) => why,
                },
            },
            Err(SendFailure::NotSent(why)) => {
                return Err(BrokerError::Transient {
                    message: format!("Binance cancelReplace: {why}"),
                    retry_after: None,
                })
            }
            Err(SendFailure::Unknown(why)) => why,
        };
        match self.query(symbol, &new_id).await {
            Ok(Some(existing)) if done(&existing) => Ok(existing),
            Ok(_) => Err(BrokerError::Transient {
                message: format!(
                    "Binance cancelReplace: {why}; the replacement is not there, it will be looked up again before any resend"
                ),
                retry_after: None,
            }),
            Err(e) => Err(BrokerError::Transient {
                message: format!("Binance cancelReplace: {why}; looking the replacement up failed too ({e})"),
                retry_after: None,
            }),
        }
    }
}
