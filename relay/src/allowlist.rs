//! Step 2 of the pipeline: only listed networks may post alerts (TradingView's four addresses by
//! default). Checked before the body is read, so an unlisted sender costs almost nothing.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks allowed to post alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    /// Listed networks; a handful, so a linear scan beats anything clever.
    nets: Vec<IpNet>,
}

impl Allowlist {
    /// An allowlist of these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// Whether `ip` may post.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_addresses_pass_and_others_do_not() {
        let list = Allowlist::new(vec![
            "52.89.214.238/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]);
        assert!(list.allows("52.89.214.238".parse().unwrap()));
        assert!(list.allows("10.200.1.1".parse().unwrap()));
        assert!(!list.allows("52.89.214.239".parse().unwrap()));
        assert!(list.allows("::ffff:52.89.214.238".parse().unwrap()));
    }

    #[test]
    fn an_empty_allowlist_refuses_everyone() {
        assert!(!Allowlist::new(vec![]).allows("127.0.0.1".parse().unwrap()));
    }
}
