//! Protective exits at Binance Spot: once the entry filled, its take-profit and stop-loss go
//! as one OCO order list (`POST /api/v3/orderList/oco`), so the venue expires one leg when the
//! other fills. For a SELL (the exits of a buy) the above leg is the `LIMIT_MAKER` take-profit
//! and the below leg the `STOP_LOSS` stop; for a BUY, the mirror. A lone take-profit or
//! stop-loss is a plain order.
//!
//! Client ids. The legs carry the exits' own client ids (derived from the entry's by the
//! planner) and the list `{entry}-oco`; a modify's new list and legs carry ids derived from
//! those and the new prices, so every retry of one modify uses the same ids. All go through
//! [`venue_client_id`] (Binance's 36 characters of `[a-zA-Z0-9-_]`).
//!
//! Exactly once, as for single orders: the list is looked up by its client id
//! (`GET /api/v3/orderList?origClientOrderId=`) before it is sent, `-2010 Duplicate order
//! sent.` and a lost answer are answered by the same lookup, and a list that is not there
//! after a lost answer is transient, looked up again before any resend. A list whose legs were
//! all cancelled (a cancel, or a modify away from these prices) does not count: Binance takes
//! its id again. A modify cancels the live list (`DELETE /api/v3/orderList`) and confirms it
//! is no longer live before the new one is sent, so two lists never work at once.

use reqwest::Method;
use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use serde::Deserialize;

use super::filters::{plain, SymbolRules};
use super::{BinanceBroker, BinanceOrder, CLIENT_ORDER_ID_MAX};
use crate::broker::http::venue_client_id;
use crate::broker::{BrokerError, OrderStatus, Placement};
use crate::order::{OrderRequest, OrderType, Side};

/// The client ids of one OCO list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListIds {
    /// `listClientOrderId`.
    pub list: String,
    /// The take-profit leg's client id.
    pub take_profit: String,
    /// The stop-loss leg's client id.
    pub stop_loss: String,
}

impl ListIds {
    /// The ids of the first list protecting `entry`: the exits' own ids, the list `{entry}-oco`.
    pub fn first(entry: &str, take_profit: &str, stop_loss: &str) -> Self {
        Self {
            list: venue_client_id(&format!("{entry}-oco"), CLIENT_ORDER_ID_MAX),
            take_profit: venue_client_id(take_profit, CLIENT_ORDER_ID_MAX),
            stop_loss: venue_client_id(stop_loss, CLIENT_ORDER_ID_MAX),
        }
    }

    /// The ids of the list replacing it at these prices: the same for every retry of one
    /// modify.
    pub fn moved(
        entry: &str,
        take_profit: &str,
        stop_loss: &str,
        tp: Decimal,
        sl: Decimal,
    ) -> Self {
        let at = format!("~{}~{}", tp.normalize(), sl.normalize());
        Self {
            list: venue_client_id(&format!("{entry}-oco{at}"), CLIENT_ORDER_ID_MAX),
            take_profit: venue_client_id(&format!("{take_profit}{at}"), CLIENT_ORDER_ID_MAX),
            stop_loss: venue_client_id(&format!("{stop_loss}{at}"), CLIENT_ORDER_ID_MAX),
        }
    }
}

/// An order list as Binance answers it (placed, looked up or cancelled).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderList {
    order_list_id: i64,
    orders: Vec<ListOrder>,
    /// The legs in full (placement and cancel answers; a lookup has none).
    #[serde(default)]
    order_reports: Vec<BinanceOrder>,
}

/// One leg as an order list names it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListOrder {
    order_id: i64,
    client_order_id: String,
}

/// The take-profit and the stop-loss of a pair of exits, in either order.
fn pair(exits: &[OrderRequest]) -> Option<(&OrderRequest, &OrderRequest)> {
    let [a, b] = exits else { return None };
    let is_tp = |o: &OrderRequest| o.order_type == OrderType::Limit;
    match (is_tp(a), is_tp(b)) {
        (true, false) => Some((a, b)),
        (false, true) => Some((b, a)),
        _ => None,
    }
}

/// The placements of `tp` and `sl` in the order `exits` has them.
fn in_order(exits: &[OrderRequest], tp: Placement, sl: Placement) -> Vec<Placement> {
    if exits[0].order_type == OrderType::Limit {
        vec![tp, sl]
    } else {
        vec![sl, tp]
    }
}

/// The `POST /api/v3/orderList/oco` parameters protecting with `tp` (a limit) and `sl` (a
/// stop, or a stop-limit) under `ids`, rounded to `rules` (without `recvWindow`, `timestamp`
/// and `signature`).
pub fn oco_params(
    rules: &SymbolRules,
    tp: &OrderRequest,
    sl: &OrderRequest,
    ids: &ListIds,
) -> Result<Vec<(&'static str, String)>, BrokerError> {
    let invalid = |message: String| BrokerError::Invalid { message };
    if rules.status != "TRADING" {
        return Err(BrokerError::Rejected {
            message: format!(
                "market closed: {} is not trading on Binance right now (status {})",
                rules.symbol, rules.status
            ),
        });
    }
    let (Some(tp_price), Some(sl_stop)) = (tp.limit_price, sl.stop_price) else {
        return Err(invalid(
            "an OCO needs the take-profit's price and the stop-loss's stop price".into(),
        ));
    };
    let sell = tp.side == Side::Sell;
    let passive = if sell {
        RoundingStrategy::ToPositiveInfinity
    } else {
        RoundingStrategy::ToNegativeInfinity
    };
    let quantity = rules.quantity(tp.quantity.get(), false)?;
    let tp_price = rules.price(tp_price.get(), passive, "take_profit")?;
    let sl_stop = rules.price(
        sl_stop.get(),
        RoundingStrategy::MidpointAwayFromZero,
        "stop_loss",
    )?;
    let sl_limit = match (sl.order_type, sl.limit_price) {
        (OrderType::StopLimit, Some(p)) => {
            Some(rules.price(p.get(), passive, "stop_loss limit")?)
        }
        _ => None,
    };
    rules.check_notional(quantity, Some(tp_price.min(sl_stop)), false)?;
    let stop_type = if sl_limit.is_some() {
        "STOP_LOSS_LIMIT"
    } else {
        "STOP_LOSS"
    };
    let mut params = vec![
        ("symbol", rules.symbol.clone()),
        ("listClientOrderId", ids.list.clone()),
        ("side", if sell { "SELL" } else { "BUY" }.to_owned()),
        ("quantity", plain(quantity)),
    ];
    let maker = |params: &mut Vec<(&'static str, String)>, at: [&'static str; 3]| {
        params.push((at[0], "LIMIT_MAKER".to_owned()));
        params.push((at[1], ids.take_profit.clone()));
        params.push((at[2], plain(tp_price)));
    };
    let stop = |params: &mut Vec<(&'static str, String)>, at: [&'static str; 5]| {
        params.push((at[0], stop_type.to_owned()));
        params.push((at[1], ids.stop_loss.clone()));
        params.push((at[2], plain(sl_stop)));
        if let Some(limit) = sl_limit {
            params.push((at[3], plain(limit)));
            params.push((at[4], "GTC".to_owned()));
        }
    };
    if sell {
        maker(
            &mut params,
            ["aboveType", "aboveClientOrderId", "abovePrice"],
        );
        stop(
            &mut params,
            [
                "belowType",
                "belowClientOrderId",
                "belowStopPrice",
                "belowPrice",
                "belowTimeInForce",
            ],
        );
    } else {
        stop(
            &mut params,
            [
                "aboveType",
                "aboveClientOrderId",
                "aboveStopPrice",
                "abovePrice",
                "aboveTimeInForce",
            ],
        );
        maker(
            &mut params,
            ["belowType", "belowClientOrderId", "belowPrice"],
        );
    }
    params.push(("newOrderRespType", "RESULT".to_owned()));
    Ok(params)
}

/// `true` while an order works at the venue.
fn working(p: &Placement) -> bool {
    matches!(p.status, OrderStatus::Placed | OrderStatus::PartiallyFilled)
}

impl BinanceBroker {
    /// Places the exits of the filled entry `entry`: a take-profit and a stop-loss as one OCO,
    /// a lone one as a plain order.
    pub(super) async fn place_exits_inner(
        &self,
        entry: &str,
        exits: &[OrderRequest],
    ) -> Result<Vec<Placement>, BrokerError> {
        let Some((tp, sl)) = pair(exits) else {
            let mut out = Vec::with_capacity(exits.len());
            for exit in exits {
                out.push(self.place_inner(exit).await?);
            }
            return Ok(out);
        };
        let ids = ListIds::first(entry, &tp.client_order_id, &sl.client_order_id);
        let (tp_at, sl_at) = self.place_list(tp, sl, &ids).await?;
        Ok(in_order(exits, tp_at, sl_at))
    }

    /// Moves the exits of `entry` (each with its new prices and Binance's order id): a pair is
    /// cancelled as a list and placed again under [`ListIds::moved`]; a lone exit is a
    /// cancel-replace.
    pub(super) async fn modify_exits_inner(
        &self,
        entry: &str,
        exits: &[(OrderRequest, Option<String>)],
    ) -> Result<Vec<Placement>, BrokerError> {
        let requests: Vec<OrderRequest> = exits.iter().map(|(o, _)| o.clone()).collect();
        let Some((tp, sl)) = pair(&requests) else {
            let mut out = Vec::with_capacity(exits.len());
            for (exit, venue_id) in exits {
                out.push(self.modify_inner(exit, venue_id.as_deref()).await?);
            }
            return Ok(out);
        };
        let (Some(tp_price), Some(sl_stop)) = (tp.limit_price, sl.stop_price) else {
            return Err(BrokerError::Invalid {
                message: "an OCO needs the take-profit's price and the stop-loss's stop price"
                    .into(),
            });
        };
        let ids = ListIds::moved(
            entry,
            &tp.client_order_id,
            &sl.client_order_id,
            tp_price.get(),
            sl_stop.get(),
        );
        let symbol = tp.symbol.as_str();
        // Placed by an earlier attempt of this modify: the answer, nothing is cancelled again.
        if let Some((tp_at, sl_at)) = self.list_legs(symbol, &ids).await? {
            return Ok(in_order(&requests, tp_at, sl_at));
        }
        let old: Vec<&str> = exits.iter().filter_map(|(_, id)| id.as_deref()).collect();
        let now = self.end_live_list(symbol, &old).await?;
        if now
            .iter()
            .any(|(p, _)| !working(p) && p.status != OrderStatus::Cancelled)
        {
            // A leg filled first: what the legs are now is the answer; nothing new is placed.
            return Ok(exits
                .iter()
                .map(|(_, id)| {
                    leg_by_id(&now, id.as_deref()).unwrap_or(Placement {
                        venue_order_id: id.clone(),
                        status: OrderStatus::Cancelled,
                        filled_quantity: Decimal::ZERO,
                        average_price: None,
                        fee: None,
                    })
                })
                .collect());
        }
        let (tp_at, sl_at) = self.place_list(tp, sl, &ids).await?;
        Ok(in_order(&requests, tp_at, sl_at))
    }

    /// Cancels the list the legs `venue_ids` (Binance order ids) belong to, with
    /// `DELETE /api/v3/orderList`, and answers each leg as it is now.
    pub(super) async fn cancel_exits_inner(
        &self,
        symbol: &str,
        exits: &[(String, Option<String>)],
    ) -> Result<Vec<Placement>, BrokerError> {
        let venue_ids: Vec<&str> = exits.iter().filter_map(|(_, id)| id.as_deref()).collect();
        if venue_ids.len() != exits.len() || exits.len() < 2 {
            let mut out = Vec::with_capacity(exits.len());
            for (client_id, venue_id) in exits {
                out.push(
                    self.cancel_inner(symbol, client_id, venue_id.as_deref())
                        .await?,
                );
            }
            return Ok(out);
        }
        let now = self.end_live_list(symbol, &venue_ids).await?;
        exits
            .iter()
            .map(|(client_id, id)| {
                leg_by_id(&now, id.as_deref()).ok_or_else(|| BrokerError::Rejected {
                    message: format!("Binance has no order {client_id} to cancel"),
                })
            })
            .collect()
    }

    /// Makes sure the list of the legs `venue_ids` no longer works: cancels it when a leg still
    /// does, and answers every leg as it is then (with its list id).
    async fn end_live_list(
        &self,
        symbol: &str,
        venue_ids: &[&str],
    ) -> Result<Vec<(Placement, i64)>, BrokerError> {
        let mut legs = Vec::with_capacity(venue_ids.len());
        for id in venue_ids {
            let Some(leg) = self.order_by(symbol, ("orderId", (*id).to_owned())).await? else {
                return Err(BrokerError::Rejected {
                    message: format!("Binance has no order {id} to cancel"),
                });
            };
            let list = leg.order_list_id.unwrap_or(-1);
            legs.push((leg.placement(), list));
        }
        let live = legs.iter().find(|(p, _)| working(p)).map(|(_, list)| *list);
        let Some(list) = live else {
            return Ok(legs);
        };
        if list < 0 {
            return Err(BrokerError::Rejected {
                message: "Binance reports the exit outside an OCO list".into(),
            });
        }
        let params = vec![
            ("symbol", symbol.to_owned()),
            ("orderListId", list.to_string()),
        ];
        if let Some(body) = self.rest.delete("/api/v3/orderList", params).await? {
            let cancelled: OrderList = self.rest.parse(&body, "an order list")?;
            return Ok(cancelled
                .order_reports
                .into_iter()
                .map(|o| (o.placement(), cancelled.order_list_id))
                .collect());
        }
        // Ended meanwhile (filled, or cancelled by an earlier attempt): as the legs are now.
        let mut now = Vec::with_capacity(venue_ids.len());
        for id in venue_ids {
            if let Some(leg) = self.order_by(symbol, ("orderId", (*id).to_owned())).await? {
                let list = leg.order_list_id.unwrap_or(-1);
                now.push((leg.placement(), list));
            }
        }
        if now.iter().any(|(p, _)| working(p)) {
            return Err(BrokerError::Transient {
                message: "Binance could not cancel the OCO list yet".into(),
                retry_after: None,
            });
        }
        Ok(now)
    }

    /// Sends the OCO `ids` for `tp` and `sl` exactly once (see the module docs).
    async fn place_list(
        &self,
        tp: &OrderRequest,
        sl: &OrderRequest,
        ids: &ListIds,
    ) -> Result<(Placement, Placement), BrokerError> {
        let symbol = tp.symbol.as_str();
        if let Some(found) = self.list_legs(symbol, ids).await? {
            return Ok(found);
        }
        let rules = self.rules(symbol).await?;
        let params = oco_params(&rules, tp, sl, ids)?;
        let request = self
            .rest
            .request(Method::POST, "/api/v3/orderList/oco", params);
        self.rest
            .place(
                request,
                &self.rules,
                symbol,
                &ids.list,
                |answer| {
                    let list: OrderList = self.rest.parse(&answer.body, "an order list")?;
                    legs_of(list.order_reports, ids)
                },
                || self.list_legs(symbol, ids),
            )
            .await
    }

    /// The legs of the list `ids.list` (`GET /api/v3/orderList?origClientOrderId=`, then each
    /// leg by its order id); `None` when Binance has no such list, or only one whose legs were
    /// all cancelled.
    async fn list_legs(
        &self,
        symbol: &str,
        ids: &ListIds,
    ) -> Result<Option<(Placement, Placement)>, BrokerError> {
        let params = vec![("origClientOrderId", ids.list.clone())];
        let Some(body) = self
            .rest
            .lookup("/api/v3/orderList", params, -2013, "order list lookup")
            .await?
        else {
            return Ok(None);
        };
        let list: OrderList = self.rest.parse(&body, "an order list")?;
        let mut legs = Vec::with_capacity(list.orders.len());
        for leg in &list.orders {
            let key = ("orderId", leg.order_id.to_string());
            let Some(mut order) = self.order_by(symbol, key).await? else {
                return Err(BrokerError::Transient {
                    message: format!(
                        "Binance lists the OCO {} but not its leg {}",
                        ids.list, leg.client_order_id
                    ),
                    retry_after: None,
                });
            };
            order.client_order_id = Some(leg.client_order_id.clone());
            legs.push(order);
        }
        let found = legs_of(legs, ids)?;
        let all_cancelled = [&found.0, &found.1]
            .iter()
            .all(|p| p.status == OrderStatus::Cancelled);
        Ok((!all_cancelled).then_some(found))
    }
}

/// The leg with Binance order id `id` among `legs`.
fn leg_by_id(legs: &[(Placement, i64)], id: Option<&str>) -> Option<Placement> {
    legs.iter()
        .find(|(p, _)| p.venue_order_id.as_deref() == id)
        .map(|(p, _)| p.clone())
}

/// The (take-profit, stop-loss) placements among `legs`, by their client ids.
fn legs_of(legs: Vec<BinanceOrder>, ids: &ListIds) -> Result<(Placement, Placement), BrokerError> {
    let mut tp = None;
    let mut sl = None;
    for leg in legs {
        match leg.client_order_id.as_deref() {
            Some(id) if id == ids.take_profit => tp = Some(leg.placement()),
            Some(id) if id == ids.stop_loss => sl = Some(leg.placement()),
            _ => {}
        }
    }
    match (tp, sl) {
        (Some(tp), Some(sl)) => Ok((tp, sl)),
        _ => Err(BrokerError::Transient {
            message: format!(
                "Binance's OCO {} does not carry the legs {} and {}",
                ids.list, ids.take_profit, ids.stop_loss
            ),
            retry_after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_ids_are_derived_from_the_entrys_and_stay_within_binances_36_characters() {
        let first = ListIds::first("msg_1-0", "msg_1-0o1", "msg_1-0o2");
        assert_eq!(first.list, "msg_1-0-oco");
        assert_eq!(
            (first.take_profit.as_str(), first.stop_loss.as_str()),
            ("msg_1-0o1", "msg_1-0o2")
        );
        let tp = Decimal::from(46000);
        let moved = ListIds::moved(
            "msg_1-0",
            "msg_1-0o1",
            "msg_1-0o2",
            tp,
            Decimal::from(40500),
        );
        assert!(moved.list.starts_with("ag-"), "{}", moved.list);
        let again = ListIds::moved(
            "msg_1-0",
            "msg_1-0o1",
            "msg_1-0o2",
            tp,
            Decimal::from(40500),
        );
        assert_eq!(moved, again, "every retry of one modify uses the same ids");
        for id in [&moved.list, &moved.take_profit, &moved.stop_loss] {
            assert!(id.len() <= CLIENT_ORDER_ID_MAX, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
        }
        assert_ne!(moved.list, first.list);
    }
}
