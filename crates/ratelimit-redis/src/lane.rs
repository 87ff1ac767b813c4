//! Coalescing: the acquires of one process on one budget share a call while another is in flight.
//!
//! Each budget key has a lane. A caller that finds its lane free sends its acquire at once, alone,
//! exactly as before (no timer, no added latency). Acquires that arrive while a call is in flight
//! queue in the lane, in arrival order; when the call returns, they go out together in one call
//! of the `acquires` operation, which applies them one after another in that order, each exactly
//! as a call of its own would have been, and replies to each. So there is at most one call per
//! budget in flight from this process, and under load each call carries many decisions: the
//! server runs the function, reads the clock and the state and writes the state once per call,
//! not once per decision.
//!
//! A caller dropped while its acquire is in flight (a timeout, `select!`, an aborted task) cannot
//! stop the server from granting it: the reply is still read (a lone call is finished in a task of
//! its own, a coalesced one is sent from one), and what it granted is given back.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ratelimit_core::MAX_LIMITS;
use ratelimit_limiter::BackendError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::layout::{Packed, Plan};
use crate::limiter::RedisLimiter;

/// The most acquires one call carries: a call blocks the server while it runs (about a
/// millisecond for this many), and a longer queue goes out in several calls, one after another.
const MAX_BATCH: usize = 128;

/// One acquire, as the function's `acquire` operation takes it.
pub(crate) struct Acquire {
    pub(crate) plan: Arc<Plan>,
    /// 0 try now, 1 reserve, 2 reserve unless later than the deadline.
    pub(crate) mode: u8,
    /// The caller's deadline (mode 2), sent as the time left when the call is made.
    pub(crate) deadline: Option<Instant>,
    /// Concurrency slots.
    pub(crate) slots: u64,
    /// Each limit's amount (the first `plan.limits()`).
    pub(crate) amounts: [u64; MAX_LIMITS],
    /// Names its concurrency leases (empty without a concurrency limit).
    pub(crate) permit_id: String,
}

impl Acquire {
    /// Appends its numbers: mode, microseconds to the deadline as of now, slots, amounts.
    fn pack_into(&self, nums: &mut Packed) {
        let left = self.deadline.map_or(0, |d| {
            u64::try_from(d.saturating_duration_since(Instant::now()).as_micros())
                .unwrap_or(u64::MAX)
        });
        nums.u(u64::from(self.mode)).u(left).u(self.slots);
        for a in &self.amounts[..self.plan.limits()] {
            nums.u(*a);
        }
    }

    /// Its numbers alone.
    pub(crate) fn packed(&self) -> Packed {
        let mut nums = Packed::with_capacity(3 + self.plan.limits());
        self.pack_into(&mut nums);
        nums
    }
}

/// The reply to one acquire: the function's numbers, or why the call failed.
type Reply = Result<Vec<i64>, BackendError>;

/// An acquire waiting in its lane.
struct Queued {
    acquire: Acquire,
    reply: oneshot::Sender<Reply>,
}

/// The lanes of one limiter: a budget key is present while a call of its lane is in flight, with
/// the acquires that arrived since.
#[derive(Default)]
pub(crate) struct Lanes {
    busy: parking_lot::Mutex<HashMap<String, VecDeque<Queued>>>,
}

/// The lane's turn to call: when dropped (the call done, or its caller gone), the lane goes to
/// the acquires queued meanwhile, or is freed.
struct Turn {
    limiter: RedisLimiter,
    key: String,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.limiter.hand_on(&self.key);
    }
}

/// What a lone acquire's call gives: the lane's turn (held until the call is done), the acquire,
/// the reply.
type LoneOutput = (Turn, Acquire, Reply);

/// A lone acquire's call, driven by its caller's future. Dropped before the reply came (a timeout,
/// `select!`, an aborted task), it is finished in a task of its own: the server runs the call all
/// the same, so its reply is read and what it granted given back.
struct LoneCall {
    call: Option<Pin<Box<dyn Future<Output = LoneOutput> + Send>>>,
}

impl Future for LoneCall {
    type Output = Reply;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply> {
        let Some(call) = self.call.as_mut() else {
            return Poll::Ready(Err(BackendError::new("polled after completion", None)));
        };
        let (turn, _, reply) = ready!(call.as_mut().poll(cx));
        self.call = None;
        drop(turn);
        Poll::Ready(reply)
    }
}

impl Drop for LoneCall {
    fn drop(&mut self) {
        let Some(call) = self.call.take() else {
            return;
        };
        // Without a runtime the call cannot go on; its grant, if any, is left to expire.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let (turn, acquire, reply) = call.await;
                if let Ok(r) = reply {
                    turn.limiter.give_back_unclaimed(&turn.key, &acquire, &r);
                }
            });
        }
    }
}

impl RedisLimiter {
    /// Sends `acquire` on `key`'s budget, or queues it behind the call in flight there; returns
    /// the function's reply to it.
    pub(crate) async fn acquire_call(&self, key: &str, acquire: Acquire) -> Reply {
        let queued = {
            let mut busy = self.lanes().busy.lock();
            if let Some(queue) = busy.get_mut(key) {
                let (tx, rx) = oneshot::channel();
                queue.push_back(Queued { acquire, reply: tx });
                Err(rx)
            } else {
                busy.insert(key.to_owned(), VecDeque::new());
                Ok(acquire)
            }
        };
        match queued {
            Ok(acquire) => {
                // Alone: sent at once, driven by this future; if it is dropped before the reply,
                // the call is finished in a task of its own (see `LoneCall`).
                let turn = Turn {
                    limiter: self.clone(),
                    key: key.to_owned(),
                };
                LoneCall {
                    call: Some(Box::pin(async move {
                        let reply = turn.limiter.call_acquire(&turn.key, &acquire).await;
                        // The lane goes on once the reply is taken (when `turn` is dropped).
                        (turn, acquire, reply)
                    })),
                }
                .await
            }
            Err(rx) => rx.await.unwrap_or_else(|_| {
                Err(BackendError::new(
                    "the call carrying this acquire was abandoned (runtime shutting down)",
                    None,
                ))
            }),
        }
    }

    /// Hands `reply` to its caller; if the caller is gone, gives back what it was granted.
    fn deliver(&self, key: &str, q: Queued, reply: Reply) {
        if let Err(Ok(r)) = q.reply.send(reply) {
            self.give_back_unclaimed(key, &q.acquire, &r);
        }
    }

    /// One acquire, alone.
    async fn call_acquire(&self, key: &str, acquire: &Acquire) -> Reply {
        self.call(
            &acquire.plan,
            key,
            "acquire",
            &acquire.packed(),
            &acquire.permit_id,
        )
        .await
    }

    /// Gives `key`'s lane to the acquires queued in it (a task of their own sends them), or frees
    /// it.
    fn hand_on(&self, key: &str) {
        let batch: Vec<Queued> = {
            let mut busy = self.lanes().busy.lock();
            let Some(queue) = busy.get_mut(key) else {
                return;
            };
            // Callers that are gone (their futures dropped) are not sent.
            queue.retain(|q| !q.reply.is_closed());
            if queue.is_empty() {
                busy.remove(key);
                return;
            }
            let n = queue.len().min(MAX_BATCH);
            queue.drain(..n).collect()
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            // No runtime to send them from: free the lane; the queued callers see it abandoned.
            self.lanes().busy.lock().remove(key);
            return;
        };
        let turn = Turn {
            limiter: self.clone(),
            key: key.to_owned(),
        };
        rt.spawn(async move {
            turn.limiter.send_batch(&turn.key, batch).await;
            drop(turn);
        });
    }

    /// Sends queued acquires, in order: those of one plan together (a policy change splits them).
    async fn send_batch(&self, key: &str, mut batch: Vec<Queued>) {
        while !batch.is_empty() {
            let plan = Arc::clone(&batch[0].acquire.plan);
            let n = batch
                .iter()
                .take_while(|q| Arc::ptr_eq(&q.acquire.plan, &plan))
                .count();
            let run: Vec<Queued> = batch.drain(..n).collect();
            self.send_run(key, &plan, run).await;
        }
    }

    /// Sends acquires under one plan in one call and replies to each.
    async fn send_run(&self, key: &str, plan: &Plan, mut run: Vec<Queued>) {
        if run.len() == 1 {
            let q = run.swap_remove(0);
            let reply = self.call_acquire(key, &q.acquire).await;
            self.deliver(key, q, reply);
            return;
        }
        let mut nums = Packed::with_capacity(1 + run.len() * (3 + plan.limits()));
        nums.u(run.len() as u64);
        for q in &run {
            q.acquire.pack_into(&mut nums);
        }
        let ids: Vec<&[u8]> = if plan.concurrency.is_some() {
            run.iter().map(|q| q.acquire.permit_id.as_bytes()).collect()
        } else {
            Vec::new()
        };
        match self.call_with(plan, key, "acquires", &nums, &ids).await {
            Ok(all) => {
                let mut replies = split(&all, run.len()).into_iter();
                for q in run {
                    let reply = replies.next().unwrap_or_else(|| {
                        Err(BackendError::new(
                            format!("unexpected reply to a coalesced acquire: {all:?}"),
                            None,
                        ))
                    });
                    self.deliver(key, q, reply);
                }
            }
            Err(e) => {
                for q in run {
                    let _ = q.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The replies of `n` coalesced acquires: each is the count of its numbers, then its numbers.
fn split(all: &[i64], n: usize) -> Vec<Reply> {
    let mut replies = Vec::with_capacity(n);
    let mut at = 0;
    for _ in 0..n {
        let part = all.get(at).and_then(|&len| {
            let len = usize::try_from(len).ok()?;
            all.get(at + 1..at + 1 + len).map(|p| (len, p))
        });
        match part {
            Some((len, p)) => {
                replies.push(Ok(p.to_vec()));
                at += 1 + len;
            }
            None => break,
        }
    }
    if at != all.len() || replies.len() != n {
        return vec![
            Err(BackendError::new(
                format!("unexpected reply to {n} coalesced acquires: {all:?}"),
                None,
            ));
            n
        ];
    }
    replies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_split_by_their_counts() {
        let r = split(&[2, 0, 7, 3, 2, 7, 9], 2);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].as_ref().unwrap(), &vec![0, 7]);
        assert_eq!(r[1].as_ref().unwrap(), &vec![2, 7, 9]);
    }

    #[test]
    fn a_short_or_long_reply_is_an_error_for_each() {
        for (all, n) in [(&[2, 0, 7][..], 2), (&[1, 0, 5][..], 1), (&[3, 0][..], 1)] {
            let r = split(all, n);
            assert_eq!(r.len(), n);
            assert!(r.iter().all(Result::is_err), "{all:?}");
        }
    }
}
