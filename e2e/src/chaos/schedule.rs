//! The fault schedule of one seed: what goes wrong, when, and for how long.

use std::fmt;

use super::rng::Rng;

/// Which link of the stack a network fault hits (each runs through a [`Proxy`]).
///
/// [`Proxy`]: alertgate_testkit::proxy::Proxy
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// The relay's deliveries to the receiver.
    RelayReceiver,
    /// The receiver's requests to the venue.
    ReceiverVenue,
    /// The receiver's PostgreSQL connections (with `--postgres`).
    ReceiverDatabase,
}

/// The receiver in a network namespace of its own (`--netns`, root): its links to the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Veth {
    /// What the relay's deliveries cross (behind the relay → receiver proxy).
    RelayReceiver,
}

/// A process of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proc {
    /// `alertgate-relay`.
    Relay,
    /// `alertgate-receiver`.
    Receiver,
}

/// Where a full disk strikes (a small tmpfs, root only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disk {
    /// The relay's `spool.dir`.
    Spool,
    /// The receiver's SQLite journal.
    Journal,
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, started again after the pause.
    Kill(Proc),
    /// SIGSTOP for the duration, then SIGCONT.
    Stop(Proc),
    /// The venue places the next `n` orders and answers 5xx.
    VenueAcceptThen5xx(usize),
    /// The venue places the next `n` orders and never answers.
    VenueAcceptThenHang(usize),
    /// The venue answers the next `n` orders 429 (`Retry-After: 1`) without acting.
    Venue429Storm(usize),
    /// The venue answers the next `n` orders 503 without acting.
    Venue5xx(usize),
    /// The venue places the next order, answers 503 and is unreachable for the duration.
    VenueAcceptThenUnreachable,
    /// Every chunk on the link waits this many ms, for the duration.
    Latency(Link, u64),
    /// No byte flows on the link for the duration.
    Stall(Link),
    /// The next `n` connections on the link are reset mid-request.
    Reset(Link, usize),
    /// The next `n` connections on the link lose their answer.
    DropAnswer(Link, usize),
    /// The link is cut (connections closed, new ones refused) for the duration.
    Cut(Link),
    /// The venue's clock is this many ms off (within Binance's `recvWindow`), for the duration.
    ClockSkew(i64),
    /// The disk under the spool or the journal is full for the duration.
    DiskFull(Disk),
    /// PostgreSQL restarts: the seed's own server crashes (no checkpoint, every connection
    /// cut), is unreachable for the duration and recovers from its WAL.
    DatabaseRestart,
    /// The veth pair is down at the receiver's namespace for the duration: a partition below
    /// TCP (packets dropped, connections stall, nothing is refused).
    Partition(Veth),
}

impl Fault {
    /// The fault's kind, for the campaign's summary.
    pub fn kind(&self) -> String {
        match self {
            Self::Kill(p) => format!("sigkill_{}", proc_name(*p)),
            Self::Stop(p) => format!("sigstop_{}", proc_name(*p)),
            Self::VenueAcceptThen5xx(_) => "venue_accept_then_5xx".into(),
            Self::VenueAcceptThenHang(_) => "venue_accept_then_hang".into(),
            Self::Venue429Storm(_) => "venue_429_storm".into(),
            Self::Venue5xx(_) => "venue_5xx".into(),
            Self::VenueAcceptThenUnreachable => "venue_accept_then_unreachable".into(),
            Self::Latency(l, _) => format!("latency_{}", link_name(*l)),
            Self::Stall(l) => format!("stall_{}", link_name(*l)),
            Self::Reset(l, _) => format!("reset_{}", link_name(*l)),
            Self::DropAnswer(l, _) => format!("drop_answer_{}", link_name(*l)),
            Self::Cut(l) => format!("cut_{}", link_name(*l)),
            Self::ClockSkew(_) => "clock_skew_venue".into(),
            Self::DiskFull(Disk::Spool) => "disk_full_spool".into(),
            Self::DiskFull(Disk::Journal) => "disk_full_journal".into(),
            Self::DatabaseRestart => "postgres_restart".into(),
            Self::Partition(Veth::RelayReceiver) => "partition_relay_receiver".into(),
        }
    }
}

fn proc_name(p: Proc) -> &'static str {
    match p {
        Proc::Relay => "relay",
        Proc::Receiver => "receiver",
    }
}

fn link_name(l: Link) -> &'static str {
    match l {
        Link::RelayReceiver => "relay_receiver",
        Link::ReceiverVenue => "receiver_venue",
        Link::ReceiverDatabase => "receiver_postgres",
    }
}

/// A fault at a time, for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Milliseconds after the traffic starts.
    pub at_ms: u64,
    /// How long it lasts (process pauses, link toxics, skews, full disks), in ms.
    pub for_ms: u64,
    /// What.
    pub fault: Fault,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t+{:>5} ms  {:<32} for {:>5} ms  {:?}",
            self.at_ms,
            self.fault.kind(),
            self.for_ms,
            self.fault
        )
    }
}

/// Which faults a campaign may draw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    /// Full disks (needs root for `mount -t tmpfs`).
    pub disk: bool,
    /// The receiver is on PostgreSQL: its link and restarts.
    pub postgres: bool,
    /// The receiver is in a network namespace: partitions of its veth link.
    pub netns: bool,
}

/// The faults of one seed: 2 to 6 of them, within the first `traffic_ms`.
pub fn draw(rng: &mut Rng, traffic_ms: u64, allowed: Allowed) -> Vec<Event> {
    let count = rng.range(2, 6);
    let mut links = vec![Link::RelayReceiver, Link::ReceiverVenue];
    // Kinds beyond the fourteen every campaign draws, so a seed keeps its schedule when they
    // are off.
    let mut extra = Vec::new();
    if allowed.disk {
        extra.push(Fault::DiskFull(Disk::Spool));
    }
    if allowed.postgres {
        links.push(Link::ReceiverDatabase);
        extra.push(Fault::DatabaseRestart);
    }
    if allowed.netns {
        extra.push(Fault::Partition(Veth::RelayReceiver));
    }
    let procs = [Proc::Relay, Proc::Receiver];
    let mut events: Vec<Event> = (0..count)
        .map(|_| {
            let at_ms = rng.range(0, traffic_ms);
            let for_ms = rng.range(200, 2_500);
            let link = *rng.pick(&links);
            let kinds = 14 + extra.len() as u64;
            let fault = match rng.range(0, kinds - 1) {
                0 => Fault::Kill(*rng.pick(&procs)),
                1 => Fault::Stop(*rng.pick(&procs)),
                2 => Fault::VenueAcceptThen5xx(rng.range(1, 3) as usize),
                3 => Fault::VenueAcceptThenHang(rng.range(1, 2) as usize),
                4 => Fault::Venue429Storm(rng.range(3, 12) as usize),
                5 => Fault::Venue5xx(rng.range(1, 4) as usize),
                6 => Fault::VenueAcceptThenUnreachable,
                7 => Fault::Latency(link, rng.range(50, 1_500)),
                8 => Fault::Stall(link),
                9 => Fault::Reset(link, rng.range(1, 4) as usize),
                10 => Fault::DropAnswer(link, rng.range(1, 3) as usize),
                11 => Fault::Cut(link),
                12 => {
                    // Binance takes a timestamp up to 1 s ahead of its clock and recvWindow
                    // (5 s here) behind it.
                    let skew = rng.range(0, 3_500) as i64 - 800;
                    Fault::ClockSkew(skew)
                }
                13 => Fault::Kill(*rng.pick(&procs)),
                i => match &extra[(i - 14) as usize] {
                    Fault::DiskFull(_) => Fault::DiskFull(*rng.pick(&[Disk::Spool, Disk::Journal])),
                    other => other.clone(),
                },
            };
            Event {
                at_ms,
                for_ms,
                fault,
            }
        })
        .collect();
    events.sort_by_key(|e| e.at_ms);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_schedule_and_disk_faults_and_partitions_only_when_allowed() {
        let a = draw(&mut Rng::new(42), 4_000, Allowed::default());
        let b = draw(&mut Rng::new(42), 4_000, Allowed::default());
        assert_eq!(a, b);
        assert!((2..=6).contains(&a.len()));
        assert!(a.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
        let no_disk = (0..300).flat_map(|s| draw(&mut Rng::new(s), 4_000, Allowed::default()));
        assert!(no_disk
            .into_iter()
            .all(|e| !matches!(e.fault, Fault::DiskFull(_))));
        let disk = (0..300).flat_map(|s| {
            draw(
                &mut Rng::new(s),
                4_000,
                Allowed {
                    disk: true,
                    ..Allowed::default()
                },
            )
        });
        assert!(disk
            .into_iter()
            .any(|e| matches!(e.fault, Fault::DiskFull(_))));
        let partition = |allowed| {
            (0..300)
                .flat_map(|s| draw(&mut Rng::new(s), 4_000, allowed))
                .any(|e| matches!(e.fault, Fault::Partition(_)))
        };
        assert!(!partition(Allowed::default()));
        assert!(partition(Allowed {
            netns: true,
            ..Allowed::default()
        }));
    }
}
