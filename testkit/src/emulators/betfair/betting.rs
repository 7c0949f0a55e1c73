//! The betting operations of the Betfair emulator: `placeOrders` (every check the module docs
//! of [`super`] list), `listCurrentOrders` and `listMarketCatalogue`.

use alertgate_shared::envelope::format_millis;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::{
    customer_ref_ok, fault, json_reply, num, on_ladder, BetfairState, EmulatedBet, EmulatedMarket,
    Reply,
};

impl BetfairState {
    pub(super) fn place_orders(&self, body: &Value) -> Reply {
        let report = |status: &str, code: Option<&str>, reports: Vec<Value>| {
            let mut r = json!({"status": status, "marketId": body.get("marketId"),
                               "instructionReports": reports});
            if let Some(c) = body.get("customerRef") {
                r["customerRef"] = c.clone();
            }
            if let Some(code) = code {
                r["errorCode"] = json!(code);
            }
            json_reply(StatusCode::OK, &r)
        };
        let market_id = body
            .get("marketId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let instructions = body
            .get("instructions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if instructions.is_empty() || instructions.len() > 200 {
            return fault(
                "INVALID_INPUT_DATA",
                "instructions: 1 to 200 place instructions",
            );
        }
        let customer_ref = match body.get("customerRef") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if customer_ref_ok(r) => Some(r.clone()),
            Some(_) => return fault("INVALID_INPUT_DATA", "customerRef"),
        };
        let now = self.now();
        let mut book = self.book();
        if let Some(r) = &customer_ref {
            if book.customer_refs.get(r).is_some_and(|at| now - at < 60) {
                let failed = instructions.iter().map(|i| json!({"status": "FAILURE", "errorCode": "ERROR_IN_ORDER", "instruction": i})).collect();
                return report("FAILURE", Some("DUPLICATE_TRANSACTION"), failed);
            }
        }
        let Some(market) = book
            .markets
            .iter()
            .find(|m| m.market_id == market_id)
            .cloned()
        else {
            return report("FAILURE", Some("INVALID_MARKET_ID"), Vec::new());
        };
        match market.status.as_str() {
            "OPEN" => {}
            "SUSPENDED" => return report("FAILURE", Some("MARKET_SUSPENDED"), Vec::new()),
            _ => return report("FAILURE", Some("MARKET_NOT_OPEN_FOR_BETTING"), Vec::new()),
        }
        let mut bets = Vec::new();
        let mut errors = Vec::new();
        let mut liability = Decimal::ZERO;
        for instruction in &instructions {
            match self.check_instruction(&market, instruction) {
                Ok(mut bet) => {
                    liability += if bet.side == "BACK" {
                        bet.size
                    } else {
                        bet.size * (bet.price - Decimal::ONE)
                    };
                    bet.customer_ref = customer_ref.clone();
                    bets.push(bet);
                    errors.push(None);
                }
                Err(code) => errors.push(Some(code)),
            }
        }
        if errors.iter().all(Option::is_none) && liability > book.available {
            errors = vec![Some("INSUFFICIENT_FUNDS"); instructions.len()];
        }
        if errors.iter().any(Option::is_some) {
            let reports = instructions.iter().zip(&errors).map(|(i, e)| {
                json!({"status": "FAILURE", "errorCode": e.unwrap_or("ERROR_IN_ORDER"), "instruction": i})
            }).collect();
            return report("FAILURE", Some("BET_ACTION_ERROR"), reports);
        }
        book.available -= liability;
        if let Some(r) = customer_ref {
            book.customer_refs.insert(r, now);
        }
        let mut reports = Vec::new();
        for (mut bet, instruction) in bets.into_iter().zip(&instructions) {
            bet.bet_id = format!("{}", 31_000_000_000u64 + book.bets.len() as u64 + 1);
            bet.placed_at = now;
            bet.placed_date = format_millis(self.config.clock.now());
            reports.push(json!({"status": "SUCCESS", "instruction": instruction, "betId": bet.bet_id,
                "placedDate": bet.placed_date, "averagePriceMatched": num(bet.average_price_matched.unwrap_or_default()),
                "sizeMatched": num(bet.size_matched), "orderStatus": bet.status()}));
            book.bets.push(bet);
        }
        report("SUCCESS", None, reports)
    }

    /// One instruction as a bet (matched as far as the runner allows), or its error code.
    fn check_instruction(
        &self,
        market: &EmulatedMarket,
        i: &Value,
    ) -> Result<EmulatedBet, &'static str> {
        let runner = i
            .get("selectionId")
            .and_then(Value::as_u64)
            .and_then(|id| market.runners.iter().find(|r| r.selection_id == id))
            .ok_or("INVALID_RUNNER")?;
        let side = i
            .get("side")
            .and_then(Value::as_str)
            .filter(|s| *s == "BACK" || *s == "LAY")
            .ok_or("INVALID_BID_TYPE")?;
        if i.get("orderType").and_then(Value::as_str) != Some("LIMIT") {
            return Err("INVALID_ORDER_TYPE");
        }
        let limit = i
            .get("limitOrder")
            .filter(|l| l.is_object())
            .ok_or("INVALID_ORDER_TYPE")?;
        let persistence = limit
            .get("persistenceType")
            .and_then(Value::as_str)
            .filter(|p| *p == "LAPSE" || *p == "PERSIST")
            .ok_or("INVALID_PERSISTENCE_TYPE")?;
        // A JSON number's shortest text is the double Betfair reads.
        let decimal = |k: &str| {
            limit
                .get(k)
                .and_then(Value::as_number)
                .and_then(|n| n.to_string().parse::<Decimal>().ok())
        };
        let price = decimal("price")
            .filter(|p| on_ladder(*p))
            .ok_or("INVALID_ODDS")?;
        let size = decimal("size")
            .filter(|s| *s >= self.config.min_bet_size && s.normalize().scale() <= 2)
            .ok_or("INVALID_BET_SIZE")?;
        let customer_order_ref = match i.get("customerOrderRef") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.chars().count() <= 32 => Some(r.clone()),
            Some(_) => return Err("INVALID_CUSTOMER_ORDER_REF"),
        };
        let matched_at = match side {
            "BACK" => runner.available_to_back.filter(|a| *a >= price),
            _ => runner.available_to_lay.filter(|a| *a <= price),
        };
        Ok(EmulatedBet {
            bet_id: String::new(),
            market_id: market.market_id.clone(),
            selection_id: runner.selection_id,
            side: side.into(),
            price,
            size,
            persistence_type: persistence.into(),
            customer_ref: None,
            customer_order_ref,
            size_matched: if matched_at.is_some() {
                size
            } else {
                Decimal::ZERO
            },
            average_price_matched: matched_at,
            placed_at: 0,
            placed_date: String::new(),
        })
    }

    pub(super) fn list_current_orders(&self, body: &Value) -> Reply {
        let set = |k: &str| {
            body.get(k).and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
        };
        let (refs, markets, bet_ids) = (set("customerOrderRefs"), set("marketIds"), set("betIds"));
        let projection = body
            .get("orderProjection")
            .and_then(Value::as_str)
            .unwrap_or("ALL");
        let within = |filter: &Option<Vec<String>>, v: Option<&String>| {
            filter
                .as_ref()
                .is_none_or(|f| v.is_some_and(|v| f.contains(v)))
        };
        let orders: Vec<Value> = self
            .book()
            .bets
            .iter()
            .filter(|b| {
                within(&refs, b.customer_order_ref.as_ref())
                    && within(&markets, Some(&b.market_id))
                    && within(&bet_ids, Some(&b.bet_id))
            })
            .filter(|b| projection == "ALL" || projection == b.status())
            .map(EmulatedBet::summary)
            .collect();
        json_reply(
            StatusCode::OK,
            &json!({"currentOrders": orders, "moreAvailable": false}),
        )
    }

    pub(super) fn list_market_catalogue(&self, body: &Value) -> Reply {
        let Some(max) = body
            .get("maxResults")
            .and_then(Value::as_u64)
            .filter(|m| (1..=1000).contains(m))
        else {
            return fault("INVALID_INPUT_DATA", "maxResults is required (1..1000)");
        };
        let ids: Option<Vec<&str>> = body
            .pointer("/filter/marketIds")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        let markets: Vec<Value> = self.book().markets.iter()
            .filter(|m| ids.as_ref().is_none_or(|ids| ids.contains(&m.market_id.as_str())))
            .take(usize::try_from(max).unwrap_or(usize::MAX))
            .map(|m| json!({"marketId": m.market_id, "marketName": m.name, "totalMatched": 0.0,
                "runners": m.runners.iter().enumerate().map(|(n, r)| json!({"selectionId": r.selection_id,
                    "runnerName": r.name, "handicap": 0.0, "sortPriority": n + 1})).collect::<Vec<_>>()}))
            .collect();
        json_reply(StatusCode::OK, &Value::Array(markets))
    }
}
