//! A keyed FIFO queue: work for one key runs one at a time, in arrival order; work for different
//! keys runs side by side.
//!
//! [`KeyedQueue::enqueue`] takes a place in line for every key at once, synchronously, and
//! returns a [`Ticket`]; [`Ticket::turn`] waits for everything ahead and yields the [`Turn`].
//! Dropping the turn (or a ticket that never got its turn) lets the next in line go for each
//! of its keys. Holding several keys cannot deadlock: every place is taken under one lock, so
//! two tickets are ordered the same way on every key they share.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The queue; cheap to share behind the executor's `Arc`.
#[derive(Debug)]
pub struct KeyedQueue<K> {
    /// Shared with every [`Turn`], which must reach it when dropped.
    shared: Arc<Shared<K>>,
}

#[derive(Debug)]
struct Shared<K> {
    /// Per key: the last place in line and the signal it gives when released.
    tails: Mutex<HashMap<K, Tail>>,
    /// Numbers places, so a release only clears a key's tail when it is still its own.
    next_place: AtomicU64,
}

#[derive(Debug)]
struct Tail {
    /// The place that is last in line for the key.
    place: u64,
    /// Resolves when that place is released.
    released: oneshot::Receiver<()>,
}

/// A place in line, not yet at the front.
#[derive(Debug)]
#[must_use = "dropping a ticket gives up its place"]
pub struct Ticket<K: Eq + Hash> {
    /// One per key with someone ahead: resolves when they are done.
    ahead: Vec<oneshot::Receiver<()>>,
    /// Released on drop, whether or not the turn came.
    hold: Hold<K>,
}

/// The front of the line for every key of a ticket. Dropping it lets the next in line go.
#[derive(Debug)]
#[must_use = "dropping the turn releases it at once"]
pub struct Turn<K: Eq + Hash> {
    /// Held only to be released on drop.
    _hold: Hold<K>,
}

/// What releasing a place takes: the signal for each key.
#[derive(Debug)]
struct Hold<K: Eq + Hash> {
    shared: Arc<Shared<K>>,
    place: u64,
    /// Dropping a sender wakes the next in line for that key.
    signals: Vec<(K, oneshot::Sender<()>)>,
}

impl<K: Eq + Hash + Clone> Default for KeyedQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone> KeyedQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                tails: Mutex::new(HashMap::new()),
                next_place: AtomicU64::new(0),
            }),
        }
    }

    /// Takes a place behind everything already queued for any of `keys` (duplicates count
    /// once). Synchronous: the place is held when this returns.
    pub fn enqueue(&self, keys: impl IntoIterator<Item = K>) -> Ticket<K> {
        let place = self.shared.next_place.fetch_add(1, Ordering::Relaxed);
        let mut seen = HashSet::new();
        let mut ahead = Vec::new();
        let mut signals = Vec::new();
        let mut tails = self.shared.lock();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            let (tx, rx) = oneshot::channel();
            let tail = Tail {
                place,
                released: rx,
            };
            if let Some(previous) = tails.insert(key.clone(), tail) {
                ahead.push(previous.released);
            }
            signals.push((key, tx));
        }
        drop(tails);
        Ticket {
            ahead,
            hold: Hold {
                shared: self.shared.clone(),
                place,
                signals,
            },
        }
    }

    /// Keys someone is queued for or holds (for tests).
    #[cfg(test)]
    fn busy_keys(&self) -> usize {
        self.shared.lock().len()
    }
}

impl<K> Shared<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, Tail>> {
        self.tails.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Eq + Hash> Ticket<K> {
    /// Waits until everything ahead on every key is released.
    pub async fn turn(self) -> Turn<K> {
        let Ticket { ahead, hold } = self;
        for released in ahead {
            // Resolves (with an error) when the place ahead drops its sender: done or gone.
            let _ = released.await;
        }
        Turn { _hold: hold }
    }
}

impl<K: Eq + Hash> Drop for Hold<K> {
    fn drop(&mut self) {
        let mut tails = self.shared.lock();
        for (key, signal) in self.signals.drain(..) {
            if tails.get(&key).is_some_and(|t| t.place == self.place) {
                tails.remove(&key);
            }
            drop(signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    const SOON: Duration = Duration::from_millis(20);
    const AT_ONCE: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn turns_for_one_key_come_in_arrival_order_and_dropping_a_turn_lets_the_next_go() {
        let queue = KeyedQueue::new();
        let first = queue.enqueue(["a"]);
        let mut second = Box::pin(queue.enqueue(["a"]).turn());
        assert!(
            timeout(SOON, &mut second).await.is_err(),
            "the second waits"
        );
        let first = first.turn().await;
        assert!(
            timeout(SOON, &mut second).await.is_err(),
            "while the first holds"
        );
        drop(first);
        let second = timeout(AT_ONCE, second).await.expect("goes once released");
        drop(second);
        assert_eq!(queue.busy_keys(), 0, "released keys leave the queue");
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let queue = KeyedQueue::new();
        let _a = queue.enqueue(["a"]).turn().await;
        assert!(timeout(AT_ONCE, queue.enqueue(["b"]).turn()).await.is_ok());
    }

    #[tokio::test]
    async fn a_ticket_dropped_before_its_turn_does_not_block_the_line() {
        let queue = KeyedQueue::new();
        let first = queue.enqueue(["a"]).turn().await;
        let abandoned = queue.enqueue(["a"]);
        let third = queue.enqueue(["a"]);
        drop(abandoned);
        drop(first);
        assert!(timeout(AT_ONCE, third.turn()).await.is_ok());
    }

    #[tokio::test]
    async fn several_keys_are_taken_at_once_so_crossing_tickets_cannot_deadlock() {
        let queue = KeyedQueue::new();
        let ab = queue.enqueue(["a", "b", "a"]);
        let mut ba = Box::pin(queue.enqueue(["b", "a"]).turn());
        let ab = ab.turn().await;
        assert!(timeout(SOON, &mut ba).await.is_err(), "waits for both keys");
        drop(ab);
        let ba = timeout(AT_ONCE, ba).await.expect("goes once released");
        drop(ba);
        assert_eq!(queue.busy_keys(), 0);
    }
}
