//! alertgate-receiver: the private side. It verifies each signed delivery from the relay,
//! journals it once, normalizes the alert, passes the risk gates and places orders exactly once.
//!
//! # Layout
//! - [`config`]: the TOML settings (`deploy/receiver.example.toml` shows every key).
//! - [`verify`]: Standard Webhooks verification with a reloadable key set.
//! - [`journal`]: the durable record (trait + embedded SQLite): messages, orders, positions.
//! - [`normalize`]: every accepted alert format → normalized legs.
//! - [`risk`]: the gates every order passes (kill switch, symbols, sizes, rate).
//! - [`broker`]: the `Broker` trait, the paper broker and the real venues.
//! - [`executor`]: per-(account, symbol) ordering, client order ids, retries, resumption.
//! - [`ingest`]: the `POST /v1/alerts` pipeline, free of HTTP.
//! - [`routes`]: the HTTP filters and the one place errors become status + JSON.
//! - [`tls`]: the optional (m)TLS server configuration (served by `alertgate_shared::server`).
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`certs`]: the private CA, receiver and relay-client certificates (`certs` command).
//! - [`app`]: [`Receiver::build`] / [`Receiver::run_until_stopped`].

pub mod app;
pub mod broker;
pub mod certs;
pub mod config;
pub mod executor;
pub mod ingest;
pub mod journal;
pub mod metrics;
pub mod normalize;
pub mod order;
pub mod risk;
pub mod routes;
pub mod tls;
pub mod verify;

pub use app::{BuildError, Receiver};
pub use config::Settings;
