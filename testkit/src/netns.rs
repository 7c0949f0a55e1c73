//! A network namespace joined to the machine's by veth pairs, for real network partitions: a
//! process started in it (`Service::in_netns`) is reached only over those links, and
//! [`Namespace::set_link`] takes the namespace's end of one down (packets are dropped, as on a
//! pulled cable: connections stall and time out, nothing is refused) and up again. All inside
//! the machine; needs root and iproute2 (`ip netns`, `ip link`). The kernel here has no
//! `netem`, and iptables is not installed: the fault proxy ([`crate::proxy`]) degrades links,
//! this cuts them below TCP.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// One veth pair between the machine's namespace and a [`Namespace`], a /30 of its own.
#[derive(Debug, Clone)]
pub struct Veth {
    /// The interface in the machine's namespace.
    pub outside: String,
    /// Its peer, in the namespace.
    pub inside: String,
    /// The address of the machine's end.
    pub outside_ip: Ipv4Addr,
    /// The address of the namespace's end.
    pub inside_ip: Ipv4Addr,
}

/// A network namespace with loopback up and the veth pairs added to it; deleted (with its
/// pairs) when dropped. Processes still running in it keep it alive until they exit.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    /// This namespace's tag in interface names and its address block.
    tag: u32,
    links: Vec<Veth>,
}

/// Namespaces made by this process.
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The prefix of every namespace (and host-side interface) this kit makes: `agns`, the owner's
/// pid modulo 100000, then a two-digit counter.
pub const PREFIX: &str = "agns";

impl Namespace {
    /// `true` when this process can make namespaces (root, with `ip netns`).
    pub fn available() -> bool {
        nix::unistd::Uid::effective().is_root()
            && Command::new("ip")
                .args(["netns", "list"])
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// Creates a namespace with loopback up and no other link.
    pub fn create() -> anyhow::Result<Self> {
        // Unique among this machine's processes: the pid (at most 2^22; or the one in
        // `ALERTGATE_NETNS_OWNER`, a script that cleans up what a killed harness left: see
        // `deploy/chaos.sh`) and a counter.
        let pid = std::env::var("ALERTGATE_NETNS_OWNER")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or_else(std::process::id);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = (pid % 100_000) * 100 + n % 100;
        let name = format!("{PREFIX}{tag}");
        ip(&["netns", "add", &name])?;
        let ns = Self {
            name,
            tag,
            links: Vec::new(),
        };
        ns.exec(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (`ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Adds a veth pair, both ends up, addressed in a /30 of its own under 10.0.0.0/8.
    pub fn add_link(&mut self) -> anyhow::Result<Veth> {
        let i = u32::try_from(self.links.len()).unwrap_or(u32::MAX);
        if i >= 4 {
            bail!("at most 4 links per namespace");
        }
        // 10.X.Y.Z/30 blocks: 2^22 of them, 4 per namespace tag.
        let block = (self.tag % (1 << 20)) * 4 + i;
        let base = (10u32 << 24) | (block << 2);
        let (outside_ip, inside_ip) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let link = Veth {
            outside: format!("{PREFIX}{}o{i}", self.tag),
            inside: format!("eth{i}"),
            outside_ip,
            inside_ip,
        };
        ip(&[
            "link",
            "add",
            &link.outside,
            "type",
            "veth",
            "peer",
            "name",
            &link.inside,
            "netns",
            &self.name,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{outside_ip}/30"),
            "dev",
            &link.outside,
        ])?;
        ip(&["link", "set", &link.outside, "up"])?;
        self.exec(&[
            "addr",
            "add",
            &format!("{inside_ip}/30"),
            "dev",
            &link.inside,
        ])?;
        self.exec(&["link", "set", &link.inside, "up"])?;
        self.links.push(link.clone());
        self.await_state(&link, true)?;
        Ok(link)
    }

    /// Takes the namespace's end of `link` down (a partition: packets on it are dropped, the
    /// machine's end keeps its route, so nothing falls back to another path) or up.
    /// Returns once the kernel has applied the change (see [`Self::await_state`]).
    pub fn set_link(&self, link: &Veth, up: bool) -> anyhow::Result<()> {
        self.exec(&["link", "set", &link.inside, if up { "up" } else { "down" }])?;
        self.await_state(link, up)
    }

    /// Waits until both ends of `link` report the operational state `up` (or the namespace's
    /// end reports down). The kernel turns a carrier change into an operational state, and
    /// starts the interface's transmit queue, from a deferred worker that runs at most once a
    /// second when links change often; until it has run, a packet sent over the pair is
    /// dropped, and a connect made in that window waits a full SYN retransmit (1 s).
    fn await_state(&self, link: &Veth, up: bool) -> anyhow::Result<()> {
        let operstate = format!("/sys/class/net/{}/operstate", link.outside);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let outside = std::fs::read_to_string(&operstate)
                .with_context(|| format!("reading {operstate}"))?;
            let shown = Command::new("ip")
                .args(["-n", &self.name, "-o", "link", "show", &link.inside])
                .output()
                .context("running ip (iproute2)")?;
            if !shown.status.success() {
                bail!(
                    "ip -n {} link show {}: {}",
                    self.name,
                    link.inside,
                    String::from_utf8_lossy(&shown.stderr).trim()
                );
            }
            let inside = String::from_utf8_lossy(&shown.stdout).into_owned();
            let settled = if up {
                outside.trim() == "up" && inside.contains("state UP")
            } else {
                outside.trim() != "up" && !inside.contains("state UP")
            };
            if settled {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "link {} did not come {} within 10 s (outside: {}, inside: {})",
                    link.outside,
                    if up { "up" } else { "down" },
                    outside.trim(),
                    inside.trim()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A listener bound to `addr` inside the namespace (from a thread that enters it and
    /// exits: the socket stays in the namespace, the caller's threads stay out).
    pub fn listen(&self, addr: SocketAddr) -> anyhow::Result<std::net::TcpListener> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| -> anyhow::Result<std::net::TcpListener> {
                let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .context("entering the namespace")?;
                Ok(std::net::TcpListener::bind(addr)?)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the thread entering the namespace panicked"))?
        })
    }

    /// `ip -n NAME ARGS`.
    fn exec(&self, args: &[&str]) -> anyhow::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the links inside it, and so their peers outside.
        let _ = ip(&["netns", "del", &self.name]);
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", &link.outside])
                .output();
        }
    }
}

/// Runs `ip ARGS`, failing with its stderr.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener in the namespace, reached over a veth pair; the link down stalls a connect
    /// (dropped, not refused, and not routed elsewhere); up again, it connects.
    #[tokio::test]
    async fn a_link_taken_down_drops_packets_and_up_again_carries_them() {
        if !Namespace::available() {
            eprintln!("skipped: needs root and ip netns (CI runs as root)");
            return;
        }
        let mut ns = Namespace::create().unwrap();
        let link = ns.add_link().unwrap();
        let listener = ns.listen(SocketAddr::from((link.inside_ip, 0))).unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = || {
            tokio::time::timeout(
                Duration::from_millis(700),
                tokio::net::TcpStream::connect(addr),
            )
        };
        // On a loaded machine a first SYN can still go unanswered for longer than the
        // timeout; a few attempts tell "slow" from "not carried".
        let reaches = || async {
            for _ in 0..10 {
                if matches!(connect().await, Ok(Ok(_))) {
                    return true;
                }
            }
            false
        };
        assert!(
            reaches().await,
            "the namespace's listener is reachable over the link"
        );
        ns.set_link(&link, false).unwrap();
        assert!(
            connect().await.is_err(),
            "a connect over a link that is down stalls (a partition), never refused nor routed"
        );
        ns.set_link(&link, true).unwrap();
        assert!(reaches().await, "up again, it connects");
        drop(listener);
    }
}
