//! Delivery order per (account, ticker): an alert goes out only once every earlier alert it shares
//! a key with has left the relay (delivered or dead-lettered), so a retried alert is never
//! overtaken by a later one of the same symbol, and alerts of one symbol never race each other to
//! the receiver. Alerts without a common key are independent and go out concurrently.
//!
//! The keys are the shared rule's ([`alertgate_shared::ordering`]). Admission is in acceptance
//! order and every key's queue is in admission order, so the earliest alert in hand is always at
//! the head of all its queues: something can always start, and nothing waits on a later alert.

use std::collections::{BTreeSet, HashMap, VecDeque};

/// One ordering key: the account and a reduced ticker.
type Key = (String, String);

/// An alert's place in the sequencer, from admission to [`Sequencer::finish`].
pub(super) type Ticket = u64;

/// The alerts in hand and the order they must leave in. Owned by the forwarder's loop alone.
#[derive(Debug)]
pub(super) struct Sequencer<T> {
    /// The next ticket, in admission (acceptance) order.
    next: Ticket,
    /// Per key, the tickets holding it, oldest first: the head may go.
    queues: HashMap<Key, VecDeque<Ticket>>,
    /// Every alert in hand: its keys, and the alert itself while it waits to start.
    entries: HashMap<Ticket, Entry<T>>,
}

#[derive(Debug)]
struct Entry<T> {
    /// The queues it is in.
    keys: Vec<Key>,
    /// `Some` until it starts.
    waiting: Option<T>,
}

impl<T> Default for Sequencer<T> {
    fn default() -> Self {
        Self {
            next: 0,
            queues: HashMap::new(),
            entries: HashMap::new(),
        }
    }
}

impl<T> Sequencer<T> {
    /// Alerts in hand: started and not finished, or waiting.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes the next alert in acceptance order. Returns it with its ticket when it may start
    /// now; otherwise it waits and comes back from a later [`Self::finish`].
    pub(super) fn admit(
        &mut self,
        account: &str,
        tickers: BTreeSet<String>,
        item: T,
    ) -> Option<(Ticket, T)> {
        let ticket = self.next;
        self.next += 1;
        let keys: Vec<Key> = tickers
            .into_iter()
            .map(|t| (account.to_owned(), t))
            .collect();
        let mut free = true;
        for key in &keys {
            let queue = self.queues.entry(key.clone()).or_default();
            free &= queue.is_empty();
            queue.push_back(ticket);
        }
        if free {
            self.entries.insert(
                ticket,
                Entry {
                    keys,
                    waiting: None,
                },
            );
            Some((ticket, item))
        } else {
            self.entries.insert(
                ticket,
                Entry {
                    keys,
                    waiting: Some(item),
                },
            );
            None
        }
    }

    /// `ticket` has left the relay; returns the alerts that may start now, oldest first.
    pub(super) fn finish(&mut self, ticket: Ticket) -> Vec<(Ticket, T)> {
        let Some(entry) = self.entries.remove(&ticket) else {
            return Vec::new();
        };
        let mut next = Vec::new();
        for key in entry.keys {
            let Some(queue) = self.queues.get_mut(&key) else {
                continue;
            };
            // Only a head starts, so a finished ticket is its queues' head.
            queue.retain(|&t| t != ticket);
            match queue.front() {
                Some(&head) => next.push(head),
                None => {
                    self.queues.remove(&key);
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        next.into_iter()
            .filter_map(|t| self.start_if_free(t).map(|item| (t, item)))
            .collect()
    }

    /// Starts `ticket` if it waits and heads every queue it is in.
    fn start_if_free(&mut self, ticket: Ticket) -> Option<T> {
        let entry = self.entries.get(&ticket)?;
        entry.waiting.as_ref()?;
        let heads_all = entry
            .keys
            .iter()
            .all(|k| self.queues.get(k).and_then(VecDeque::front) == Some(&ticket));
        if !heads_all {
            return None;
        }
        self.entries.get_mut(&ticket)?.waiting.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(tickers: &[&str]) -> BTreeSet<String> {
        tickers.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn a_later_alert_of_a_symbol_waits_for_the_earlier_one_and_others_do_not() {
        let mut s = Sequencer::default();
        let (a, _) = s.admit("main", set(&["BTCUSDT"]), "a1").unwrap();
        assert!(s.admit("main", set(&["BTCUSDT"]), "a2").is_none());
        assert_eq!(
            s.admit("main", set(&["ETHUSDT"]), "e1").map(|x| x.1),
            Some("e1")
        );
        // Another account's BTCUSDT is another key.
        assert_eq!(
            s.admit("other", set(&["BTCUSDT"]), "o1").map(|x| x.1),
            Some("o1")
        );
        assert_eq!(s.len(), 4);
        let started: Vec<_> = s.finish(a).into_iter().map(|x| x.1).collect();
        assert_eq!(started, ["a2"]);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn alerts_without_a_key_never_wait() {
        let mut s = Sequencer::default();
        assert!(s.admit("main", set(&[]), 1).is_some());
        assert!(s.admit("main", set(&[]), 2).is_some());
    }

    #[test]
    fn a_multi_leg_alert_waits_for_every_symbol_it_trades_and_holds_them_all() {
        let mut s = Sequencer::default();
        let (btc, _) = s.admit("main", set(&["BTCUSDT"]), "btc").unwrap();
        let (eth, _) = s.admit("main", set(&["ETHUSDT"]), "eth").unwrap();
        assert!(s
            .admit("main", set(&["BTCUSDT", "ETHUSDT"]), "pair")
            .is_none());
        assert!(s.admit("main", set(&["ETHUSDT"]), "eth2").is_none());
        assert!(s.finish(btc).is_empty(), "the pair still waits for ETHUSDT");
        let (pair, _) = s.finish(eth).pop().unwrap();
        // eth2 is behind the pair on ETHUSDT.
        let started: Vec<_> = s.finish(pair).into_iter().map(|x| x.1).collect();
        assert_eq!(started, ["eth2"]);
    }

    #[test]
    fn finishing_a_ticket_twice_or_an_unknown_one_changes_nothing() {
        let mut s = Sequencer::default();
        let (a, _) = s.admit("main", set(&["X"]), 1).unwrap();
        assert!(s.admit("main", set(&["X"]), 2).is_none());
        assert_eq!(s.finish(a).len(), 1);
        assert!(s.finish(a).is_empty());
        assert!(s.finish(99).is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn alerts_leave_each_key_in_admission_order_one_at_a_time_whatever_order_they_finish_in() {
        // A deterministic shuffle of finishes over three keys and pairs of them.
        let keys = [
            &["A"][..],
            &["B"],
            &["A", "B"],
            &["C"],
            &["B", "C"],
            &["A"],
            &["C"],
        ];
        let mut s = Sequencer::default();
        let mut running: Vec<(Ticket, &[&str])> = Vec::new();
        let mut started_per_key: HashMap<&str, Vec<Ticket>> = HashMap::new();
        let mut start = |running: &mut Vec<(Ticket, &'static [&'static str])>,
                         t: Ticket,
                         ks: &'static [&'static str]| {
            for (other, its) in running.iter() {
                assert!(
                    !its.iter().any(|k| ks.contains(k)),
                    "{t} started while {other} holds one of {ks:?}"
                );
            }
            for k in ks {
                started_per_key.entry(k).or_default().push(t);
            }
            running.push((t, ks));
        };
        for round in 0..60u64 {
            let ks = keys[(round as usize * 5 + 3) % keys.len()];
            if let Some((t, ks)) = s.admit("main", set(ks), ks) {
                start(&mut running, t, ks);
            }
            if round % 3 == 2 && !running.is_empty() {
                let i = (round as usize * 7) % running.len();
                let (done, _) = running.swap_remove(i);
                for (t, ks) in s.finish(done) {
                    start(&mut running, t, ks);
                }
            }
        }
        while let Some((done, _)) = running.pop() {
            for (t, ks) in s.finish(done) {
                start(&mut running, t, ks);
            }
        }
        assert_eq!(s.len(), 0, "everything admitted left");
        for (key, tickets) in started_per_key {
            let mut sorted = tickets.clone();
            sorted.sort_unstable();
            assert_eq!(tickets, sorted, "key {key} started out of admission order");
        }
    }
}
