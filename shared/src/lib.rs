//! alertgate-shared: what the relay and the receiver must agree on.
//!
//! # Layout
//! - [`secret`]: secret values that never print, and `env:`/`file:` references to them in config.
//! - [`keys`]: Ed25519 signing/verifying keys and `whsec_` HMAC secrets; key files and fingerprints.
//! - [`webhooks`]: Standard Webhooks 1.0 signing and verification (`v1` HMAC, `v1a` Ed25519).
//! - [`envelope`]: the relay → receiver body and the `webhook-id` format.
//! - [`idempotency`]: the alert's idempotency key, picked the same way by both services.
//! - [`ordering`]: which alerts of an account the relay delivers one after another (their tickers).
//! - [`retry`]: the backoff policy and `Retry-After` (seconds or HTTP-date) for every HTTP retry.
//! - [`config`]: TOML loading with errors that name the file and the key.
//! - [`clock`]: injected time, so windows and expiry can be tested without sleeping.
//! - [`telemetry`]: log initialisation (plain or JSON, `RUST_LOG`-style filters).
//! - [`server`]: the hyper-util accept loop both services serve their warp filters with (TLS,
//!   header limits and deadlines, peer address and certificates, graceful drain).
//! - [`tls`]: the rustls server configuration of `[server.tls]` (certificates, ALPN, client auth).
//! - [`notify`]: `[[notify]]` destinations (Telegram, Discord, Slack, signed webhook): requests,
//!   answers, retries and pacing, shared by the receiver's outbox and the relay's notices.
//! - [`reload`]: a value swapped whole on `SIGHUP` (secrets, keys, allowlist).
//! - [`shutdown`]: the SIGTERM/SIGINT future and the SIGHUP stream.

pub mod clock;
pub mod config;
pub mod envelope;
pub mod idempotency;
pub mod keys;
pub mod notify;
pub mod ordering;
pub mod reload;
pub mod retry;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

pub use clock::{Clock, ManualClock, SystemClock};
pub use envelope::{Envelope, MessageId};
pub use keys::{HmacSecret, SigningKey, VerifyingKey};
pub use secret::{Secret, SecretRef};
pub use webhooks::{Signer, Verifier, VerifyError};
