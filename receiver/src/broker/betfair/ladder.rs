//! Betfair's price ladder for odds markets: which decimal odds a LIMIT bet may carry.
//!
//! From the API-NG "Betfair Price Increments" table: 1.01–2 in steps of 0.01, 2–3 of 0.02, 3–4 of
//! 0.05, 4–6 of 0.1, 6–10 of 0.2, 10–20 of 0.5, 20–30 of 1, 30–50 of 2, 50–100 of 5, 100–1000 of
//! 10. Betfair answers `INVALID_ODDS` to anything else; the receiver refuses it first (outcome
//! `invalid`) and names the two nearest valid prices. Asian handicap and total-goals markets
//! use a 0.01 ladder up to 1000: those markets are not supported (documented in VENUES.md).

use rust_decimal::Decimal;

/// `(from, to, step)`: within `[from, to]`, valid odds are `from + k * step`.
const BANDS: [(i64, i64, i64); 10] = [
    // In hundredths, so the table is exact integers.
    (101, 200, 1),
    (200, 300, 2),
    (300, 400, 5),
    (400, 600, 10),
    (600, 1000, 20),
    (1000, 2000, 50),
    (2000, 3000, 100),
    (3000, 5000, 200),
    (5000, 10000, 500),
    (10000, 100000, 1000),
];

fn hundredths(v: i64) -> Decimal {
    Decimal::new(v, 2).normalize()
}

/// The lowest odds Betfair takes.
pub fn min_odds() -> Decimal {
    hundredths(BANDS[0].0)
}

/// The highest odds Betfair takes.
pub fn max_odds() -> Decimal {
    hundredths(BANDS[BANDS.len() - 1].1)
}

/// The band holding `odds`, as decimals `(from, to, step)`.
fn band(odds: Decimal) -> Option<(Decimal, Decimal, Decimal)> {
    BANDS
        .iter()
        .map(|&(from, to, step)| (hundredths(from), hundredths(to), hundredths(step)))
        .find(|&(from, to, _)| odds >= from && odds <= to)
}

/// `true` when `odds` is a price on the ladder.
pub fn is_valid(odds: Decimal) -> bool {
    band(odds).is_some_and(|(from, _, step)| ((odds - from) % step).is_zero())
}

/// The nearest ladder prices below and above `odds` (either may be missing at the ends).
pub fn nearest(odds: Decimal) -> (Option<Decimal>, Option<Decimal>) {
    if odds < min_odds() {
        return (None, Some(min_odds()));
    }
    let Some((from, to, step)) = band(odds) else {
        return (Some(max_odds()), None);
    };
    let below = from + ((odds - from) / step).floor() * step;
    let above = if below == odds {
        odds
    } else {
        (below + step).min(to)
    };
    (Some(below.normalize()), Some(above.normalize()))
}

/// Why `odds` cannot be sent: the message names the odds, the step that applies and the nearest
/// valid prices, so the alert can be fixed. `None` when the odds are on the ladder.
pub fn check(odds: Decimal) -> Option<String> {
    if is_valid(odds) {
        return None;
    }
    let odds = odds.normalize();
    let rule = match band(odds) {
        Some((from, to, step)) => format!(
            "between {} and {} Betfair prices move in steps of {}",
            from.normalize(),
            to.normalize(),
            step.normalize()
        ),
        None => format!("Betfair takes odds from {} to {}", min_odds(), max_odds()),
    };
    let nearest = match nearest(odds) {
        (Some(below), Some(above)) => format!("the nearest valid prices are {below} and {above}"),
        (Some(only), None) | (None, Some(only)) => format!("the nearest valid price is {only}"),
        (None, None) => String::new(),
    };
    Some(format!(
        "odds {odds} are not on the Betfair price ladder ({rule}): {nearest}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn every_band_edge_and_step_is_on_the_ladder() {
        for ok in [
            "1.01", "1.5", "1.99", "2", "2.02", "2.5", "2.98", "3", "3.05", "3.95", "4", "4.1",
            "5.9", "6", "6.2", "9.8", "10", "10.5", "19.5", "20", "21", "30", "32", "48", "50",
            "55", "95", "100", "110", "990", "1000",
        ] {
            assert!(is_valid(d(ok)), "{ok} should be valid");
        }
        for bad in [
            "1", "1.005", "2.01", "2.51", "3.01", "3.07", "4.15", "6.1", "6.7", "10.2", "22.5",
            "31", "52", "57", "105", "995", "1010", "0",
        ] {
            assert!(!is_valid(d(bad)), "{bad} should be invalid");
        }
    }

    #[test]
    fn off_ladder_odds_name_the_nearest_valid_prices() {
        assert_eq!(nearest(d("2.51")), (Some(d("2.5")), Some(d("2.52"))));
        assert_eq!(nearest(d("4.15")), (Some(d("4.1")), Some(d("4.2"))));
        assert_eq!(nearest(d("995")), (Some(d("990")), Some(d("1000"))));
        assert_eq!(nearest(d("1")), (None, Some(d("1.01"))));
        assert_eq!(nearest(d("1500")), (Some(d("1000")), None));
        let message = check(d("2.51")).unwrap();
        assert!(
            message.contains("2.51")
                && message.contains("2.5 and 2.52")
                && message.contains("0.02"),
            "{message}"
        );
        assert!(check(d("2.52")).is_none());
        assert!(check(d("1001")).unwrap().contains("from 1.01 to 1000"));
    }
}
