//! Binance Spot's OCO order lists, as the Spot REST API documents them:
//! `POST /api/v3/orderList/oco`, `GET /api/v3/orderList`, `DELETE /api/v3/orderList`.
//!
//! Checked as Binance checks them: the mandatory `symbol`, `side`, `quantity`, `aboveType`,
//! `belowType` (`-1102`); each leg's type one of `LIMIT_MAKER`, `STOP_LOSS`, `STOP_LOSS_LIMIT`
//! (`-1116`), exactly one `LIMIT_MAKER` (`-1014`), the stop below on a SELL and above on a BUY
//! (`-1197`/`-1199`, `-1196`/`-1198`); per leg the price, stop price and time in force its
//! type needs and no other (`-1102`/`-1106`); plain decimals and client ids (`-1100`); the
//! symbol's filters (`-1013`); `abovePrice` > last price > `belowStopPrice` on a SELL and
//! `belowPrice` < last price < `aboveStopPrice` on a BUY (`-2010 The relationship of the prices
//! for the orders is not correct.`); a `listClientOrderId` of a list still executing, or a leg
//! id of an open order (`-2010 Duplicate order sent.`); the balance a SELL sells (`-2010
//! Account has insufficient balance for requested action.`).
//!
//! When one leg fills ([`BinanceEmulator::fill_order`]) the other is `EXPIRED` and the list is
//! `ALL_DONE`; cancelling the list, or one of its legs, cancels both.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::super::binance_signed::{
    bad, check_known, check_presence, decimal_param, mandatory, param, valid_client_id,
};
use super::super::{json_reply, Reply};
use super::{BinanceEmulator, BinanceState, Book, EmulatedOrder};

/// One OCO order list the emulator accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedList {
    /// Binance's `orderListId`.
    pub order_list_id: i64,
    /// `listClientOrderId`.
    pub list_client_order_id: String,
    /// `BTCUSDT`.
    pub symbol: String,
    /// The `orderId`s of its legs, below leg first.
    pub order_ids: Vec<i64>,
    /// `EXECUTING` or `ALL_DONE`.
    pub status: String,
}

impl EmulatedList {
    fn json(&self, book: &Book, now_ms: i64, reports: bool) -> Value {
        let legs: Vec<&EmulatedOrder> = self
            .order_ids
            .iter()
            .filter_map(|id| book.orders.iter().find(|o| o.order_id == *id))
            .collect();
        let executing = self.status == "EXECUTING";
        let mut body = json!({
            "orderListId": self.order_list_id, "contingencyType": "OCO",
            "listStatusType": if executing { "EXEC_STARTED" } else { "ALL_DONE" },
            "listOrderStatus": if executing { "EXECUTING" } else { "ALL_DONE" },
            "listClientOrderId": self.list_client_order_id, "transactionTime": now_ms,
            "symbol": self.symbol,
            "orders": legs.iter().map(|o| json!({"symbol": o.symbol, "orderId": o.order_id,
                "clientOrderId": o.client_order_id})).collect::<Vec<_>>(),
        });
        if reports {
            body["orderReports"] = legs.iter().map(|o| o.json(now_ms)).collect();
        }
        body
    }
}

impl Book {
    /// Ends list `order_list_id`: its legs still open become `status` (`CANCELED`, or
    /// `EXPIRED` when the other leg filled).
    pub(super) fn end_list(&mut self, order_list_id: i64, status: &str) {
        let Some(list) = self
            .lists
            .iter_mut()
            .find(|l| l.order_list_id == order_list_id)
        else {
            return;
        };
        list.status = "ALL_DONE".into();
        let ids = list.order_ids.clone();
        for order in self
            .orders
            .iter_mut()
            .filter(|o| ids.contains(&o.order_id) && o.is_open())
        {
            order.status = status.into();
        }
    }
}

/// One leg's parameters, read under its prefix (`above`, `below`).
struct Leg {
    order_type: String,
    client_order_id: Option<String>,
    price: Option<Decimal>,
    stop_price: Option<Decimal>,
    time_in_force: Option<String>,
}

fn leg(params: &HashMap<String, String>, prefix: &str) -> Result<Leg, Box<Reply>> {
    let name = |what: &str| format!("{prefix}{what}");
    let Some(order_type) = param(params, &name("Type")).cloned() else {
        return Err(Box::new(mandatory(&name("Type"))));
    };
    let (needs_price, needs_stop, needs_tif) = match order_type.as_str() {
        "LIMIT_MAKER" => (true, false, false),
        "STOP_LOSS" => (false, true, false),
        "STOP_LOSS_LIMIT" => (true, true, true),
        _ => return Err(Box::new(bad(-1116, "Invalid orderType."))),
    };
    check_presence(
        params,
        &[
            (&name("Price"), needs_price),
            (&name("StopPrice"), needs_stop),
            (&name("TimeInForce"), needs_tif),
        ],
    )?;
    let time_in_force = param(params, &name("TimeInForce")).cloned();
    if time_in_force
        .as_deref()
        .is_some_and(|t| !["GTC", "IOC", "FOK"].contains(&t))
    {
        return Err(Box::new(bad(-1115, "Invalid timeInForce.")));
    }
    let client_order_id = match param(params, &name("ClientOrderId")) {
        Some(id) if valid_client_id(id, b"-_") => Some(id.clone()),
        Some(_) => {
            return Err(Box::new(bad(
                -1100,
                &format!("Illegal characters found in parameter '{}'; legal range is '^[a-zA-Z0-9-_]{{1,36}}$'.", name("ClientOrderId")),
            )))
        }
        None => None,
    };
    Ok(Leg {
        order_type,
        client_order_id,
        price: decimal_param(params, &name("Price"))?,
        stop_price: decimal_param(params, &name("StopPrice"))?,
        time_in_force,
    })
}

impl BinanceState {
    /// `POST /api/v3/orderList/oco` (signed).
    pub(super) fn new_oco(&self, params: &HashMap<String, String>) -> Reply {
        const KNOWN: [&str; 17] = [
            "symbol",
            "listClientOrderId",
            "side",
            "quantity",
            "aboveType",
            "aboveClientOrderId",
            "abovePrice",
            "aboveStopPrice",
            "aboveTimeInForce",
            "belowType",
            "belowClientOrderId",
            "belowPrice",
            "belowStopPrice",
            "belowTimeInForce",
            "newOrderRespType",
            "recvWindow",
            "timestamp",
        ];
        if let Err(refusal) = check_known(params, &KNOWN) {
            return *refusal;
        }
        let mut book = self.book();
        let Some(symbol) = param(params, "symbol").cloned() else {
            return mandatory("symbol");
        };
        let Some(rules) = book.symbols.get(&symbol).cloned() else {
            return bad(-1121, "Invalid symbol.");
        };
        let Some(side) = param(params, "side").cloned() else {
            return mandatory("side");
        };
        if side != "BUY" && side != "SELL" {
            return bad(-1117, "Invalid side.");
        }
        let quantity = match decimal_param(params, "quantity") {
            Ok(Some(q)) => q,
            Ok(None) => return mandatory("quantity"),
            Err(refusal) => return *refusal,
        };
        let (above, below) = match (leg(params, "above"), leg(params, "below")) {
            (Ok(above), Ok(below)) => (above, below),
            (Err(refusal), _) | (_, Err(refusal)) => return *refusal,
        };
        let makers = [&above, &below]
            .iter()
            .filter(|l| l.order_type == "LIMIT_MAKER")
            .count();
        if makers != 1 {
            return bad(-1014, "Unsupported order combination.");
        }
        match (side.as_str(), above.order_type == "LIMIT_MAKER") {
            ("SELL", false) => return bad(-1197, "A stop loss order in a sell OCO must be below."),
            ("BUY", true) => return bad(-1198, "A take profit order in a buy OCO must be below."),
            _ => {}
        }
        let list_client_order_id = match param(params, "listClientOrderId") {
            Some(id) if valid_client_id(id, b"-_") => id.clone(),
            Some(_) => return bad(-1100, "Illegal characters found in parameter 'listClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'."),
            None => format!("emulist{}", book.next_id),
        };
        if rules.status != "TRADING" {
            return bad(-2010, "Market is closed.");
        }
        let prices = [above.price, above.stop_price, below.price, below.stop_price];
        if let Err(refusal) = rules.check_filters(&prices, quantity) {
            return *refusal;
        }
        for l in [&above, &below] {
            let p = l.price.or(l.stop_price).unwrap_or(rules.last_price);
            if quantity * p < rules.min_notional {
                return bad(-1013, "Filter failure: NOTIONAL");
            }
        }
        // The documented price restrictions; a LIMIT_MAKER on the wrong side of the last
        // price would take, which they rule out.
        let last = rules.last_price;
        let related = if side == "SELL" {
            above.price.is_some_and(|p| p > last) && below.stop_price.is_some_and(|s| s < last)
        } else {
            below.price.is_some_and(|p| p < last) && above.stop_price.is_some_and(|s| s > last)
        };
        if !related {
            return bad(
                -2010,
                "The relationship of the prices for the orders is not correct.",
            );
        }
        let executing = |id: &str| {
            book.lists
                .iter()
                .any(|l| l.list_client_order_id == id && l.status == "EXECUTING")
        };
        let open = |id: &Option<String>| {
            id.as_ref().is_some_and(|id| {
                book.orders
                    .iter()
                    .any(|o| &o.client_order_id == id && o.is_open())
            })
        };
        if executing(&list_client_order_id)
            || open(&above.client_order_id)
            || open(&below.client_order_id)
        {
            return bad(-2010, "Duplicate order sent.");
        }
        let (sold, needed) = if side == "SELL" {
            (rules.base_asset.clone(), quantity)
        } else {
            let highest = above
                .stop_price
                .unwrap_or_default()
                .max(above.price.unwrap_or_default());
            (rules.quote_asset.clone(), quantity * highest)
        };
        if book.insufficient_balance
            || book.balances.get(&sold).copied().unwrap_or_default() < needed
        {
            return bad(
                -2010,
                "Account has insufficient balance for requested action.",
            );
        }
        book.next_id += 1;
        let order_list_id = book.next_id;
        let mut order_ids = Vec::new();
        for l in [below, above] {
            book.next_id += 1;
            let order_id = book.next_id;
            order_ids.push(order_id);
            book.orders.push(EmulatedOrder {
                order_id,
                client_order_id: l
                    .client_order_id
                    .unwrap_or_else(|| format!("emu{order_id}")),
                symbol: symbol.clone(),
                side: side.clone(),
                order_type: l.order_type,
                time_in_force: l.time_in_force,
                quantity: quantity.normalize().to_string(),
                price: l.price.map(|p| p.normalize().to_string()),
                stop_price: l.stop_price.map(|p| p.normalize().to_string()),
                status: "NEW".into(),
                executed_qty: Decimal::ZERO,
                cummulative_quote_qty: Decimal::ZERO,
                order_list_id,
            });
        }
        let list = EmulatedList {
            order_list_id,
            list_client_order_id,
            symbol,
            order_ids,
            status: "EXECUTING".into(),
        };
        let body = list.json(&book, self.config.clock.now_unix_ms(), true);
        book.lists.push(list);
        json_reply(StatusCode::OK, &body)
    }

    /// `GET /api/v3/orderList` (signed): by `orderListId` or `origClientOrderId` (the list's
    /// client id); `-2013 Order list does not exist.`
    pub(super) fn query_list(&self, params: &HashMap<String, String>) -> Reply {
        let book = self.book();
        let by_id = params
            .get("orderListId")
            .and_then(|i| i.parse::<i64>().ok());
        let by_client = params.get("origClientOrderId");
        if by_id.is_none() && by_client.is_none() {
            return bad(
                -1102,
                "Param 'origClientOrderId' or 'orderListId' must be sent, but both were empty/null!",
            );
        }
        let found = book.lists.iter().rev().find(|l| match by_id {
            Some(id) => l.order_list_id == id,
            None => by_client.is_some_and(|c| &l.list_client_order_id == c),
        });
        match found {
            Some(list) => json_reply(
                StatusCode::OK,
                &list.json(&book, self.config.clock.now_unix_ms(), false),
            ),
            None => bad(-2013, "Order list does not exist."),
        }
    }

    /// `DELETE /api/v3/orderList` (signed): `symbol` and `orderListId` or `listClientOrderId`
    /// (`orderListId` first). An executing list's open legs become `CANCELED`; a list that is
    /// done, or none, is `-2011 Unknown order sent.`
    pub(super) fn cancel_list(&self, params: &HashMap<String, String>) -> Reply {
        let mut book = self.book();
        let Some(symbol) = params.get("symbol").cloned() else {
            return mandatory("symbol");
        };
        if !book.symbols.contains_key(&symbol) {
            return bad(-1121, "Invalid symbol.");
        }
        let by_id = params
            .get("orderListId")
            .and_then(|i| i.parse::<i64>().ok());
        let by_client = params.get("listClientOrderId");
        if by_id.is_none() && by_client.is_none() {
            return bad(
                -1102,
                "Param 'listClientOrderId' or 'orderListId' must be sent, but both were empty/null!",
            );
        }
        let found = book.lists.iter().rev().find(|l| {
            l.symbol == symbol
                && match by_id {
                    Some(id) => l.order_list_id == id,
                    None => by_client.is_some_and(|c| &l.list_client_order_id == c),
                }
        });
        let Some(list) = found.filter(|l| l.status == "EXECUTING").cloned() else {
            return bad(-2011, "Unknown order sent.");
        };
        book.end_list(list.order_list_id, "CANCELED");
        let now = self.config.clock.now_unix_ms();
        let Some(done) = book
            .lists
            .iter()
            .find(|l| l.order_list_id == list.order_list_id)
        else {
            return bad(-2011, "Unknown order sent.");
        };
        let body = done.json(&book, now, true);
        json_reply(StatusCode::OK, &body)
    }
}

impl BinanceEmulator {
    /// Every OCO order list accepted, oldest first.
    pub fn order_lists(&self) -> Vec<EmulatedList> {
        self.venue().book().lists.clone()
    }

    /// The order lists still executing.
    pub fn live_order_lists(&self) -> Vec<EmulatedList> {
        self.order_lists()
            .into_iter()
            .filter(|l| l.status == "EXECUTING")
            .collect()
    }

    /// Queues `fault` for the next `times` `POST /api/v3/orderList/oco` requests.
    pub fn fault_order_lists(&self, fault: super::super::Fault, times: usize) {
        self.venue().list_faults.push(fault, times);
    }

    /// Fills the open order `client_order_id` at its limit price (its stop price for a
    /// `STOP_LOSS`), as the market reaching it would; the other leg of its OCO then expires.
    /// `false`: no such open order.
    pub fn fill_order(&self, client_order_id: &str) -> bool {
        let mut book = self.venue().book();
        let Some(order) = book
            .orders
            .iter_mut()
            .rev()
            .find(|o| o.client_order_id == client_order_id && o.is_open())
        else {
            return false;
        };
        let qty = order.quantity.parse::<Decimal>().unwrap_or_default();
        let price = order
            .price
            .as_deref()
            .or(order.stop_price.as_deref())
            .and_then(|p| p.parse::<Decimal>().ok())
            .unwrap_or_default();
        order.status = "FILLED".into();
        order.executed_qty = qty;
        order.cummulative_quote_qty = qty * price;
        let (symbol, side, list) = (
            order.symbol.clone(),
            order.side.clone(),
            order.order_list_id,
        );
        book.settle_fill(&symbol, &side, qty, qty * price);
        if list >= 0 {
            book.end_list(list, "EXPIRED");
        }
        true
    }
}
