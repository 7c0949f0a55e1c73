//! Realized profit and loss per account per UTC day, from the journal's fills, with average-cost
//! accounting: a fill that adds to a position moves its average cost; a fill that reduces it
//! realizes (fill price − average cost) × quantity closed (the other way round for a short); a fill
//! through zero closes at the average and opens the rest at the fill price.
//!
//! Fees count where the venue reported them ([`Fill::fee`], in the quote currency): each fill's
//! fee is a realized loss on the day of the fill, opening fills included. Binance Spot reports
//! commission with each fill (converted when paid in the base asset; BNB and other assets are
//! not counted, as their price is unknown here), the paper venue charges `fee_rate`; the other
//! venues' order answers carry no fee.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::executor::plan::signed;
use crate::journal::Fill;

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// The start of the UTC day holding `unix_ms`.
pub fn utc_day_start(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(DAY_MS) * DAY_MS
}

/// Position and average cost of one symbol.
#[derive(Debug, Default, Clone, Copy)]
struct Book {
    position: Decimal,
    average: Decimal,
}

impl Book {
    /// Applies a signed fill; returns what it realized.
    fn apply(&mut self, quantity: Decimal, price: Decimal) -> Decimal {
        let same_direction = self.position.is_zero()
            || (self.position > Decimal::ZERO) == (quantity > Decimal::ZERO);
        if same_direction {
            let total = self.position.abs() + quantity.abs();
            self.average = (self.position.abs() * self.average + quantity.abs() * price) / total;
            self.position += quantity;
            return Decimal::ZERO;
        }
        let closed = quantity.abs().min(self.position.abs());
        let direction = if self.position > Decimal::ZERO {
            Decimal::ONE
        } else {
            Decimal::NEGATIVE_ONE
        };
        let realized = closed * (price - self.average) * direction;
        let opened = quantity.abs() - closed;
        self.position += quantity;
        if self.position.is_zero() {
            self.average = Decimal::ZERO;
        } else if !opened.is_zero() {
            self.average = price;
        }
        realized
    }
}

/// What the fills realized at or after `since_ms` (the whole history builds the average costs).
/// `fills` must be oldest first.
pub fn realized_since(fills: &[Fill], since_ms: i64) -> Decimal {
    let mut books: HashMap<&str, Book> = HashMap::new();
    let mut realized = Decimal::ZERO;
    for fill in fills {
        let pnl = books
            .entry(fill.symbol.as_str())
            .or_default()
            .apply(signed(fill.side, fill.quantity), fill.price);
        if fill.at_ms >= since_ms {
            realized += pnl - fill.fee;
        }
    }
    realized
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::Side;

    fn fill(symbol: &str, side: Side, quantity: i64, price: i64, at_ms: i64) -> Fill {
        Fill {
            symbol: symbol.into(),
            side,
            quantity: Decimal::from(quantity),
            price: Decimal::from(price),
            fee: Decimal::ZERO,
            at_ms,
        }
    }

    #[test]
    fn fees_of_the_days_fills_are_realized_losses_opening_fills_included() {
        let day = 10 * DAY_MS;
        let with_fee = |mut f: Fill, fee: &str| {
            f.fee = fee.parse().unwrap();
            f
        };
        let fills = [
            // Yesterday's fee is yesterday's.
            with_fee(fill("A", Side::Buy, 1, 100, day - 1), "0.5"),
            // Today: sell at 110 (+10) paying 0.25, open another at 120 paying 0.75.
            with_fee(fill("A", Side::Sell, 1, 110, day + 1), "0.25"),
            with_fee(fill("A", Side::Buy, 1, 120, day + 2), "0.75"),
        ];
        assert_eq!(realized_since(&fills, day), Decimal::from(9));
        assert_eq!(realized_since(&fills, 0), "8.5".parse::<Decimal>().unwrap());
    }

    #[test]
    fn average_cost_realizes_on_the_reducing_fills_of_the_day_only() {
        let day = utc_day_start(10 * DAY_MS + 5);
        assert_eq!(day, 10 * DAY_MS);
        let fills = [
            // Yesterday: buy 1 at 100, buy 1 at 200 (average 150), sell 1 at 170 (+20).
            fill("A", Side::Buy, 1, 100, day - 3),
            fill("A", Side::Buy, 1, 200, day - 2),
            fill("A", Side::Sell, 1, 170, day - 1),
            // Today: sell the last one at 140 (−10), then short 2 at 140 and cover 1 at 150 (−10).
            fill("A", Side::Sell, 1, 140, day + 1),
            fill("A", Side::Sell, 2, 140, day + 2),
            fill("A", Side::Buy, 1, 150, day + 3),
            // Another symbol is its own book: buy 3 at 10, sell 3 at 12 (+6).
            fill("B", Side::Buy, 3, 10, day + 4),
            fill("B", Side::Sell, 3, 12, day + 5),
        ];
        assert_eq!(realized_since(&fills, day), Decimal::from(-14));
        assert_eq!(realized_since(&fills, 0), Decimal::from(6));
    }

    #[test]
    fn a_fill_through_zero_closes_at_the_average_and_opens_the_rest_at_its_price() {
        let fills = [
            fill("A", Side::Buy, 2, 100, 0),
            fill("A", Side::Sell, 3, 90, 1), // closes 2 (−20), opens short 1 at 90
            fill("A", Side::Buy, 1, 80, 2),  // covers at 80 (+10)
        ];
        assert_eq!(realized_since(&fills, 0), Decimal::from(-10));
    }
}
