//! `X-Forwarded-For` parsing (step 1): never panics, an untrusted peer's claims are never believed,
//! and behind a trusted proxy the result is either the proxy itself or an address that appeared
//! in the header.
#![no_main]

use std::net::IpAddr;

use alertgate_relay::client_ip::resolve;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let trusted: Vec<IpNet> = ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    let lines: Vec<&str> = text.split('\n').collect();

    let outsider: IpAddr = [203, 0, 113, 9].into();
    assert_eq!(resolve(outsider, lines.iter().copied(), &trusted), outsider);

    let proxy: IpAddr = [127, 0, 0, 1].into();
    let got = resolve(proxy, lines.iter().copied(), &trusted);
    if got != proxy {
        let canonical = got.to_canonical().to_string();
        let appears = text.contains(&canonical) || text.contains(&got.to_string()) || {
            // IPv6 can be written many ways (and IPv4-mapped); accept any hop that parses to it.
            text.split([',', '\n'])
                .map(str::trim)
                .any(|h| hop(h) == Some(got))
        };
        assert!(appears, "{got} is not in {text:?}");
    }
});

fn hop(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}
