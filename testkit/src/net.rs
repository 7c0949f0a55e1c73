//! Loopback addresses for services that bind what their config says.

use std::net::{Ipv4Addr, SocketAddr};

/// An unused loopback port. The binaries bind what their config says, so the port is chosen here
/// and released just before the service starts.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// `127.0.0.1:` an unused port (see [`free_port`]).
pub fn free_addr() -> std::io::Result<SocketAddr> {
    free_port().map(loopback)
}
