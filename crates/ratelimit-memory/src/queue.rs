//! The waiting line: FIFO per priority class, one head at a time, batch never starved.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ratelimit_core::{Cost, Reservation};
use ratelimit_limiter::{BATCH_SHARE, Priority};
use tokio::sync::Notify;

/// One waiting request.
#[derive(Debug)]
pub(crate) struct Waiter {
    pub(crate) priority: Priority,
    pub(crate) cost: Cost,
    pub(crate) notify: Arc<Notify>,
    /// Rate capacity reserved for it; only the head ever holds one.
    pub(crate) reservation: Option<Reservation>,
}

/// The waiters and which of them is at the head.
///
/// Only the head plans: it reserves capacity for its own instant, sleeps until then, starts, and
/// hands the head on. Everyone else waits to be told they are the head, so there is no polling,
/// and a request that arrives later can never overtake one that arrived earlier in its class.
/// Between classes: while both wait, at most [`BATCH_SHARE`] interactive requests are served in a
/// row before one batch request.
#[derive(Debug, Default)]
pub(crate) struct Line {
    lines: [VecDeque<u64>; 2],
    waiters: HashMap<u64, Waiter>,
    head: Option<u64>,
    interactive_streak: u32,
    next_id: u64,
}

impl Line {
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Adds a waiter at the back of its class and returns its id and wake-up handle.
    pub(crate) fn push(&mut self, priority: Priority, cost: Cost) -> (u64, Arc<Notify>) {
        let id = self.next_id;
        self.next_id += 1;
        let notify = Arc::new(Notify::new());
        self.lines[priority.index()].push_back(id);
        self.waiters.insert(
            id,
            Waiter {
                priority,
                cost,
                notify: Arc::clone(&notify),
                reservation: None,
            },
        );
        self.elect();
        (id, notify)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Waiter> {
        self.waiters.get_mut(&id)
    }

    pub(crate) fn head(&self) -> Option<u64> {
        self.head
    }

    /// Makes sure there is a head when anyone waits, and wakes a newly elected head.
    fn elect(&mut self) {
        if self.head.is_some() {
            return;
        }
        let [interactive, batch] = &self.lines;
        let batch_turn =
            !batch.is_empty() && (interactive.is_empty() || self.interactive_streak >= BATCH_SHARE);
        let next = if batch_turn {
            batch.front()
        } else {
            interactive.front()
        };
        if let Some(&id) = next {
            self.head = Some(id);
            if let Some(w) = self.waiters.get(&id) {
                w.notify.notify_one();
            }
        }
    }

    /// Removes a waiter (granted, timed out or dropped) and returns it; elects the next head.
    pub(crate) fn remove(&mut self, id: u64, granted: bool) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        let line = &mut self.lines[waiter.priority.index()];
        if let Some(pos) = line.iter().position(|&w| w == id) {
            line.remove(pos);
        }
        if granted {
            self.interactive_streak = match waiter.priority {
                Priority::Interactive if !self.lines[1].is_empty() => self.interactive_streak + 1,
                _ => 0,
            };
        }
        if self.head == Some(id) {
            self.head = None;
        }
        self.elect();
        Some(waiter)
    }

    /// Wakes the head so it re-plans (capacity was freed, limits changed, a slot was released).
    pub(crate) fn wake_head(&self) {
        if let Some(w) = self.head.and_then(|id| self.waiters.get(&id)) {
            w.notify.notify_one();
        }
    }

    /// The costs of the waiters that hold no reservation yet, in the order they will be served
    /// (interactive line first: an estimate, batch may be interleaved).
    pub(crate) fn unplanned_costs(&self) -> impl Iterator<Item = Cost> + '_ {
        self.lines
            .iter()
            .flatten()
            .filter_map(|id| self.waiters.get(id))
            .filter(|w| w.reservation.is_none())
            .map(|w| w.cost)
    }
}

/// The line of one budget, allocated only while someone waits: an idle budget (most keys of a
/// keyed limiter) costs one pointer.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    line: Option<Box<Line>>,
}

impl Queue {
    pub(crate) fn is_empty(&self) -> bool {
        self.line.as_ref().is_none_or(|l| l.is_empty())
    }

    pub(crate) fn len(&self) -> usize {
        self.line.as_ref().map_or(0, |l| l.len())
    }

    pub(crate) fn push(&mut self, priority: Priority, cost: Cost) -> (u64, Arc<Notify>) {
        self.line
            .get_or_insert_with(Box::default)
            .push(priority, cost)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Waiter> {
        self.line.as_mut()?.get_mut(id)
    }

    pub(crate) fn head(&self) -> Option<u64> {
        self.line.as_ref()?.head()
    }

    /// Takes the reservation the head holds, if any (it will plan again when woken).
    pub(crate) fn take_head_reservation(&mut self) -> Option<Reservation> {
        let id = self.head()?;
        self.get_mut(id)?.reservation.take()
    }

    pub(crate) fn remove(&mut self, id: u64, granted: bool) -> Option<Waiter> {
        let line = self.line.as_mut()?;
        let waiter = line.remove(id, granted);
        if line.is_empty() && line.interactive_streak == 0 {
            // Keep the streak (batch fairness) while it matters; otherwise free the line.
            self.line = None;
        }
        waiter
    }

    pub(crate) fn wake_head(&self) {
        if let Some(l) = &self.line {
            l.wake_head();
        }
    }

    pub(crate) fn unplanned_costs(&self) -> impl Iterator<Item = Cost> + '_ {
        self.line.iter().flat_map(|l| l.unplanned_costs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_within_a_class() {
        let mut q = Queue::default();
        let (a, _) = q.push(Priority::Interactive, Cost::ONE_REQUEST);
        let (b, _) = q.push(Priority::Interactive, Cost::ONE_REQUEST);
        assert_eq!(q.head(), Some(a));
        q.remove(a, true);
        assert_eq!(q.head(), Some(b));
    }

    #[test]
    fn interactive_first_but_batch_gets_its_share() {
        let mut q = Queue::default();
        let (batch, _) = q.push(Priority::Batch, Cost::ONE_REQUEST);
        assert_eq!(q.head(), Some(batch), "alone, batch is served");
        q.remove(batch, true);
        let (batch, _) = q.push(Priority::Batch, Cost::ONE_REQUEST);
        // batch is head; interactive arrivals queue behind the current head only.
        q.remove(batch, true);
        let mut order = Vec::new();
        let (b2, _) = q.push(Priority::Batch, Cost::ONE_REQUEST);
        let mut interactive: Vec<u64> = (0..10)
            .map(|_| q.push(Priority::Interactive, Cost::ONE_REQUEST).0)
            .collect();
        // b2 was elected head on arrival; serve it, then the rest.
        while let Some(h) = q.head() {
            order.push(h);
            q.remove(h, true);
            if order.len() == 3 {
                interactive.push(q.push(Priority::Batch, Cost::ONE_REQUEST).0);
            }
        }
        assert_eq!(order[0], b2);
        // The new batch request (arriving after the 3rd grant) waits for the head already elected
        // and then BATCH_SHARE interactive ones: position 3 + 1 + 4 = 8th, index 7.
        let batch_pos = order
            .iter()
            .position(|id| *id == *interactive.last().unwrap())
            .unwrap();
        assert_eq!(batch_pos, 7, "{order:?}");
    }
}
