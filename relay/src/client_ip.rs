//! Step 1 of the pipeline: which address is the client? The TCP peer, unless the peer is a trusted
//! proxy, in which case the right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
//! Taking the right-most untrusted entry means a client cannot spoof its address by sending its
//! own `X-Forwarded-For`: proxies append, so everything left of the last untrusted hop is hearsay.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// Resolves the client address from the TCP peer and the `X-Forwarded-For` header values
/// (in the order they appeared).
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted_proxies: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted_proxies) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            // Garbage where a hop should be: the client cannot be known; fall back to the proxy
            // itself, which the allowlist refuses unless it is listed on purpose.
            return peer;
        };
        client = ip;
        if !is_trusted(ip, trusted_proxies) {
            return ip;
        }
    }
    client
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One hop: `1.2.3.4`, `2001:db8::1`, `1.2.3.4:5678` or `[2001:db8::1]:5678`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let got = resolve(
            ip("203.0.113.9"),
            ["52.89.214.238"],
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let got = resolve(
            ip("127.0.0.1"),
            ["6.6.6.6, 52.89.214.238, 10.1.2.3"],
            &trusted,
        );
        assert_eq!(got, ip("52.89.214.238"));
    }

    #[test]
    fn several_header_lines_are_read_as_one_list() {
        let trusted = nets(&["127.0.0.1/32"]);
        let got = resolve(ip("127.0.0.1"), ["6.6.6.6", "52.89.214.238"], &trusted);
        assert_eq!(got, ip("52.89.214.238"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_is_the_client() {
        let got = resolve(ip("127.0.0.1"), [], &nets(&["127.0.0.1/32"]));
        assert_eq!(got, ip("127.0.0.1"));
    }

    #[test]
    fn a_garbage_hop_falls_back_to_the_proxy_address() {
        let got = resolve(
            ip("127.0.0.1"),
            ["52.89.214.238, nonsense"],
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(got, ip("127.0.0.1"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let trusted = nets(&["127.0.0.1/32"]);
        assert_eq!(
            resolve(ip("::ffff:127.0.0.1"), ["52.89.214.238:443"], &trusted),
            ip("52.89.214.238")
        );
        assert_eq!(
            resolve(ip("127.0.0.1"), ["[2001:db8::1]:80"], &trusted),
            ip("2001:db8::1")
        );
    }
}
