//! `[server.tls]`: the rustls server configuration ([`alertgate_shared::tls`]), requiring client
//! certificates signed by `client_ca_file` when it is set (mTLS between relay and receiver).

use std::sync::Arc;

use alertgate_shared::tls::{self, ClientAuth, ServerTls};

pub use alertgate_shared::tls::TlsError;

use crate::config::TlsConfig;

/// Builds the server configuration (HTTP/2 and HTTP/1.1 by ALPN).
pub fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let client_auth = match &config.client_ca_file {
        Some(ca) => ClientAuth::Required {
            ca_file: ca.clone(),
        },
        None => ClientAuth::None,
    };
    tls::server_config(&ServerTls {
        cert_file: &config.cert_file,
        key_file: &config.key_file,
        client_auth,
    })
}
