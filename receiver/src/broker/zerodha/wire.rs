//! What Kite Connect v3 reads and writes, as pure functions: the `POST /orders/regular` form, the
//! `tag` derived from the client order id, the day's order book entries and the error body
//! `{"status":"error","message":...,"error_type":...}`.

use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::broker::{BrokerError, OrderStatus, Placement};
use crate::order::{OrderRequest, OrderType, Product, Side, TimeInForce};

/// The exchanges Kite takes orders for (its `exchange` values).
pub const EXCHANGES: [&str; 6] = ["NSE", "BSE", "NFO", "MCX", "CDS", "BFO"];

/// Kite's limit on `tag`: at most 20 characters, alphanumeric.
pub const TAG_MAX: usize = 20;

/// The `tag` an order carries: `ag` + the first 18 hex digits of the SHA-256 of the client
/// order id (72 bits; a collision within one day's orders is not a practical concern).
/// Deterministic, so every retry and every restart looks for the same tag.
pub fn tag_for(client_order_id: &str) -> String {
    let digest = hex::encode(Sha256::digest(client_order_id.as_bytes()));
    let mut tag = format!("ag{digest}");
    tag.truncate(TAG_MAX);
    tag
}

fn invalid(message: String) -> BrokerError {
    BrokerError::Invalid { message }
}

/// `NSE:RELIANCE` → (`NSE`, `RELIANCE`); the exchange must be one of [`EXCHANGES`].
pub fn split_symbol(symbol: &str) -> Result<(&str, &str), BrokerError> {
    let Some((exchange, tradingsymbol)) = symbol.split_once(':') else {
        return Err(invalid(format!(
            "symbol `{symbol}` has no exchange; Zerodha needs EXCHANGE:TRADINGSYMBOL (NSE:RELIANCE)"
        )));
    };
    if !EXCHANGES.contains(&exchange) {
        return Err(invalid(format!(
            "symbol `{symbol}`: Zerodha takes orders on {} only, not `{exchange}`",
            EXCHANGES.join(", ")
        )));
    }
    if tradingsymbol.is_empty() {
        return Err(invalid(format!("symbol `{symbol}` has no tradingsymbol")));
    }
    Ok((exchange, tradingsymbol))
}

/// Kite's `product` for the order: the alert's, else `CNC` (equity delivery) on the cash
/// exchanges (NSE, BSE) and `NRML` (carried overnight) on the derivatives ones.
pub fn product(order_product: Option<Product>, exchange: &str) -> &'static str {
    match order_product {
        Some(Product::Cnc) => "CNC",
        Some(Product::Mis) => "MIS",
        Some(Product::Nrml) => "NRML",
        None if matches!(exchange, "NSE" | "BSE") => "CNC",
        None => "NRML",
    }
}

/// The `POST /orders/regular` fields, in the order they are sent.
pub fn order_fields(
    order: &OrderRequest,
    tag: &str,
) -> Result<Vec<(&'static str, String)>, BrokerError> {
    let (exchange, tradingsymbol) = split_symbol(&order.symbol)?;
    let quantity = order.quantity.get();
    if quantity.fract() != Decimal::ZERO {
        return Err(invalid(format!(
            "quantity {quantity}: Zerodha takes whole shares (or whole contract units for \
             futures and options); a fractional quantity cannot be placed"
        )));
    }
    let (order_type, price, trigger) = match order.order_type {
        OrderType::Market => ("MARKET", None, None),
        OrderType::Limit => ("LIMIT", order.limit_price, None),
        OrderType::StopLimit => ("SL", order.limit_price, order.stop_price),
        OrderType::Stop => ("SL-M", None, order.stop_price),
    };
    let validity = match order.tif {
        TimeInForce::Ioc => "IOC",
        // A regular Kite order lives for the day at most; `gtc` is also what an alert without a
        // time in force gets.
        TimeInForce::Day | TimeInForce::Gtc => "DAY",
        TimeInForce::Fok => {
            return Err(invalid(
                "tif fok: Zerodha has no fill-or-kill; use ioc or day".into(),
            ))
        }
    };
    let side = match order.side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    };
    let mut fields = vec![
        ("tradingsymbol", tradingsymbol.to_owned()),
        ("exchange", exchange.to_owned()),
        ("transaction_type", side.to_owned()),
        ("order_type", order_type.to_owned()),
        ("quantity", quantity.normalize().to_string()),
        ("product", product(order.product, exchange).to_owned()),
        ("validity", validity.to_owned()),
    ];
    if let Some(p) = price {
        fields.push(("price", p.to_string()));
    }
    if let Some(t) = trigger {
        fields.push(("trigger_price", t.to_string()));
    }
    fields.push(("tag", tag.to_owned()));
    Ok(fields)
}

/// `application/x-www-form-urlencoded`: unreserved characters as they are, space as `+`,
/// everything else `%XX` (a tradingsymbol like `M&M` must not split the form).
pub fn form_encode(fields: &[(&str, String)]) -> String {
    fn encode(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    out.push(char::from(b))
                }
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(k, &mut out);
        out.push('=');
        encode(v, &mut out);
    }
    out
}

/// Kite's error body.
#[derive(Debug, Default, Deserialize)]
pub struct KiteError {
    /// What went wrong, for the user.
    #[serde(default)]
    pub message: String,
    /// `InputException`, `TokenException`, ...
    #[serde(default)]
    pub error_type: String,
}

impl KiteError {
    /// The error in `body`, or the body's excerpt as the message when it is not Kite's JSON.
    pub fn parse(body: &[u8]) -> Self {
        serde_json::from_slice::<KiteError>(body)
            .ok()
            .filter(|e| !e.message.is_empty() || !e.error_type.is_empty())
            .unwrap_or_else(|| KiteError {
                message: crate::broker::http::excerpt(body),
                error_type: String::new(),
            })
    }
}

/// `{"status":"success","data":{"order_id":"..."}}`.
#[derive(Debug, Deserialize)]
pub struct Placed {
    /// The payload.
    pub data: PlacedData,
}

/// The payload of a placement.
#[derive(Debug, Deserialize)]
pub struct PlacedData {
    /// Kite's order id.
    pub order_id: String,
}

/// `GET /orders`: `{"status":"success","data":[...]}`.
#[derive(Debug, Deserialize)]
pub struct OrderBook {
    /// The day's orders.
    pub data: Vec<KiteOrder>,
}

/// The fields of one order book entry that matter here.
#[derive(Debug, Deserialize)]
pub struct KiteOrder {
    /// Kite's order id.
    pub order_id: String,
    /// `OPEN`, `COMPLETE`, `CANCELLED`, `REJECTED`, or an interim status.
    pub status: String,
    /// Why, for rejected and cancelled orders.
    #[serde(default)]
    pub status_message: Option<String>,
    /// The tag it was placed with.
    #[serde(default)]
    pub tag: Option<String>,
    /// Kite also lists tags as an array.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Filled so far.
    #[serde(default)]
    pub filled_quantity: Option<serde_json::Value>,
    /// Average fill price.
    #[serde(default)]
    pub average_price: Option<serde_json::Value>,
}

/// A JSON number or string as an exact decimal.
fn decimal(v: Option<&serde_json::Value>) -> Option<Decimal> {
    match v? {
        serde_json::Value::Number(n) => Decimal::from_str_exact(&n.to_string()).ok(),
        serde_json::Value::String(s) => Decimal::from_str_exact(s).ok(),
        _ => None,
    }
}

impl KiteOrder {
    /// Whether this entry carries `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tag.as_deref() == Some(tag)
            || self
                .tags
                .as_ref()
                .is_some_and(|t| t.iter().any(|x| x == tag))
    }

    /// The order as a placement; `REJECTED` and `CANCELLED` are failures with Kite's reason.
    pub fn placement(self) -> Result<Placement, BrokerError> {
        let filled = decimal(self.filled_quantity.as_ref()).unwrap_or(Decimal::ZERO);
        let average = decimal(self.average_price.as_ref()).filter(|p| !p.is_zero());
        let status = match self.status.as_str() {
            "COMPLETE" => OrderStatus::Filled,
            "REJECTED" | "CANCELLED" => {
                let why = self
                    .status_message
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| "no reason given".into());
                return Err(BrokerError::Rejected {
                    message: format!(
                        "Zerodha {} order {}: {why}",
                        self.status.to_ascii_lowercase(),
                        self.order_id
                    ),
                });
            }
            // OPEN, TRIGGER PENDING, PUT ORDER REQ RECEIVED, VALIDATION PENDING, OPEN PENDING,
            // MODIFY (VALIDATION) PENDING, CANCEL PENDING, AMO REQ RECEIVED.
            _ if filled > Decimal::ZERO => OrderStatus::PartiallyFilled,
            _ => OrderStatus::Placed,
        };
        Ok(Placement {
            venue_order_id: Some(self.order_id),
            status,
            filled_quantity: filled,
            average_price: average,
            fee: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(symbol: &str, quantity: &str, order_type: OrderType) -> OrderRequest {
        OrderRequest {
            client_order_id: "msg_1-0".into(),
            account: "main".into(),
            symbol: symbol.into(),
            side: Side::Sell,
            quantity: quantity.parse().unwrap(),
            order_type,
            limit_price: Some("2820.25".parse().unwrap()),
            stop_price: Some("2800".parse().unwrap()),
            tif: TimeInForce::Gtc,
            reference_price: None,
            product: None,
            exits: Default::default(),
            reduce_only: false,
        }
    }

    #[test]
    fn tags_are_twenty_alphanumerics_and_stable() {
        let tag = tag_for("msg_2fVq8-0");
        assert_eq!(tag.len(), TAG_MAX);
        assert!(tag.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(tag, tag_for("msg_2fVq8-0"));
        assert_ne!(tag, tag_for("msg_2fVq8-1"));
    }

    #[test]
    fn the_form_escapes_what_would_split_it_and_orders_the_fields() {
        let fields = order_fields(&order("NSE:M&M", "3", OrderType::StopLimit), "agx").unwrap();
        assert_eq!(
            form_encode(&fields),
            "tradingsymbol=M%26M&exchange=NSE&transaction_type=SELL&order_type=SL&quantity=3\
             &product=CNC&validity=DAY&price=2820.25&trigger_price=2800&tag=agx"
        );
    }

    #[test]
    fn derivatives_default_to_nrml_and_bad_exchanges_or_fractions_are_invalid() {
        let fields =
            order_fields(&order("NFO:NIFTY26JANFUT", "50", OrderType::Market), "t").unwrap();
        assert!(fields.contains(&("product", "NRML".into())));
        assert!(!fields.iter().any(|(k, _)| *k == "price"));
        for (symbol, quantity) in [
            ("NASDAQ:AAPL", "1"),
            ("RELIANCE", "1"),
            ("NSE:RELIANCE", "1.5"),
        ] {
            let e = order_fields(&order(symbol, quantity, OrderType::Market), "t").unwrap_err();
            assert!(
                matches!(e, BrokerError::Invalid { .. }),
                "{symbol} {quantity}: {e:?}"
            );
        }
    }

    #[test]
    fn kite_statuses_map_onto_placements_and_failures() {
        let entry = |status: &str, filled: i64| KiteOrder {
            order_id: "1".into(),
            status: status.into(),
            status_message: Some("RMS: margin exceeds".into()),
            tag: Some("t".into()),
            tags: None,
            filled_quantity: Some(filled.into()),
            average_price: Some(serde_json::json!(2820.25)),
        };
        let done = entry("COMPLETE", 10).placement().unwrap();
        assert_eq!(done.status, OrderStatus::Filled);
        assert_eq!(done.average_price, Some("2820.25".parse().unwrap()));
        assert_eq!(
            entry("OPEN", 0).placement().unwrap().status,
            OrderStatus::Placed
        );
        assert_eq!(
            entry("OPEN", 4).placement().unwrap().status,
            OrderStatus::PartiallyFilled
        );
        assert_eq!(
            entry("TRIGGER PENDING", 0).placement().unwrap().status,
            OrderStatus::Placed
        );
        let rejected = entry("REJECTED", 0).placement().unwrap_err();
        assert!(
            rejected.to_string().contains("RMS: margin exceeds"),
            "{rejected}"
        );
        assert!(entry("CANCELLED", 0).placement().is_err());
    }
}
