//! Step 8 of the pipeline: duplicate suppression on (account, idempotency key), so an alert
//! TradingView sends twice within `dedupe.window_seconds` is answered 409 the second time.
//!
//! - The key: [`alertgate_shared::idempotency`], the rule the receiver applies too (an alert
//!   whose key the receiver would refuse is answered 400 before it reaches this window); an alert
//!   without a key is never a duplicate.
//! - [`window`]: the in-memory set. A key is *reserved* while its alert is being spooled (a
//!   concurrent twin gets 409) and *committed* once the spool append is durable; a failed append
//!   releases the reservation, so TradingView's resend after a 503 is accepted. A committed key
//!   expires `window_seconds` after receipt; the relay's maintenance task purges expired keys
//!   every second.
//! - `journal`: the window on disk, so a restart does not forget it. Every spooled alert's key is
//!   appended to `keys-*.jsonl` files in the spool directory (by the spool's writer thread, in the
//!   same batch as the accept record, which carries the key too). At start the spool hands back
//!   every key it finds in both, newest receipt per key, and [`DedupeWindow::restore`] keeps those
//!   still inside the window. Segments are deleted as soon as their alerts are resolved; key files
//!   are deleted once their newest key has left the window (checked every 10 s).

pub(crate) mod journal;
pub mod window;

pub use self::window::{DedupeWindow, Duplicate, Reservation};
