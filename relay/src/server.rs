//! The relay's `[server]` settings as options of the shared accept loop
//! ([`alertgate_shared::server`]): header count/size limits (431 beyond them), the header read
//! deadline, the connection limit and the shutdown grace period.

use std::time::Duration;

pub use alertgate_shared::server::{serve, Gate, PeerAddr, PeerCerts, ServeOptions};

use crate::config::ServerSettings;

/// The accept loop's options from `[server]`.
pub fn options(settings: &ServerSettings) -> ServeOptions {
    ServeOptions {
        header_read_timeout: Duration::from_millis(settings.header_read_timeout_ms),
        max_headers: settings.max_headers,
        max_header_bytes: settings.max_header_bytes,
        max_connections: Some(settings.max_connections),
        max_concurrent_streams: 100,
        shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        gate: None,
    }
}
