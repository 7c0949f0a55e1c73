//! alertgate-receiver: the private side. It verifies each signed delivery from the relay,
//! journals it once, normalizes the alert, passes the risk gates and places orders exactly once.
//!
//! # Layout
//! In the order a delivery meets them:
//! - [`routes`]: the HTTP filters and the one place errors become status + JSON.
//! - [`ingest`]: the `POST /v1/alerts` pipeline, free of HTTP.
//! - [`verify`]: Standard Webhooks verification with a reloadable key set.
//! - [`journal`]: the durable record (the `Journal` trait; `journal/sqlite/`: the embedded
//!   SQLite journal, one file per table) of messages, orders, positions and the paper book.
//! - [`normalize`]: every accepted alert format → normalized legs.
//! - [`executor`]: turns legs into orders, one folder with a file per step:
//!   `queue` (per-(account, symbol) order, an RAII turn), `positions` (the cache), `plan`
//!   (pure: legs + positions → order intents; target positions), `sizing` (notional and
//!   percent of equity, lot rounding), [`risk`] (the gates), `place` (retries with the same
//!   client order id; `unknown`), `record` (outcomes into the journal), `settle` (settling an
//!   `unknown` order for reconciliation).
//! - [`risk`]: the gates every order passes (kill switch, strategy switches, sessions, daily loss,
//!   symbols, sizes, rate).
//! - [`controls`]: what those gates read beyond limits: `session` (IANA zones), `daily_loss`
//!   (average-cost realized PnL per UTC day), strategy switches (persisted in the journal).
//! - [`reconcile`]: at start and every interval, `unknown` orders looked up and settled, venue
//!   positions read and drift reported; the positions view.
//! - [`notify`]: the notification outbox's delivery to `[[notify]]` destinations (after the
//!   outcome is committed, never on an order's path).
//! - [`replay`]: `replay --since`: journaled alerts judged again under a config, placing nothing.
//! - [`routing`]: `[[venues]]`: which venue an alert goes to, and the registry of built venues.
//! - [`broker`]: the `Broker` trait, the one factory `broker::build`, the paper broker and the
//!   real venues (`binance/`, `alpaca`, `zerodha/`, `betfair/`, `http`).
//!
//! Around them:
//! - [`order`]: the domain types every step shares (sides, types, quantities, venue answers).
//! - [`config`]: the TOML settings (`deploy/receiver.example.toml` shows every key).
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`tls`]: the optional (m)TLS server configuration (served by `alertgate_shared::server`).
//! - [`certs`]: the private CA, receiver and relay-client certificates (`certs` command).
//! - [`ui`]: the dashboard at `/ui` (sessions, CSRF, live timeline, embedded assets).
//! - [`app`]: [`Receiver::build`] / [`Receiver::run_until_stopped`].
//!
//! Dependencies point one way: `order` and `normalize` are leaves; `journal` knows only the order
//! types; `broker` knows the journal only as storage for the paper book; the executor uses
//! journal, broker and risk; `ingest`, `routes` and `app` sit on top.

pub mod app;
pub mod broker;
pub mod certs;
pub mod config;
pub mod controls;
pub mod executor;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod normalize;
pub mod notify;
pub mod order;
pub mod reconcile;
pub mod replay;
pub mod risk;
pub mod routes;
pub mod routing;
pub mod tls;
pub mod ui;
pub mod verify;

pub use app::{BuildError, Receiver};
pub use config::Settings;
