//! Sleeping until an instant, to within a fraction of a millisecond.
//!
//! Tokio's timer wheel fires on whole-millisecond ticks, after its deadline:
//! a 10 ms sleep takes about 11.1 ms, and a chain of 40 such delays spends
//! some 45 ms on rounding alone. [`sleep_until`] sleeps on tokio's timer until
//! [`FINE`] before the deadline (cheap, and it follows tokio's paused clock in
//! tests), then hands the rest to one thread that parks until the earliest
//! deadline it holds (the kernel's timers are precise to tens of
//! microseconds) and wakes the task then.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How much of a sleep the fine timer takes: the end of it.
const FINE: Duration = Duration::from_micros(1500);

/// Sleeps until `deadline`, to within a fraction of a millisecond on an idle
/// machine. Cancel-safe.
pub async fn sleep_until(deadline: Instant) {
    if let Some(coarse) = deadline.checked_sub(FINE)
        && coarse > Instant::now()
    {
        tokio::time::sleep_until(tokio::time::Instant::from_std(coarse)).await;
    }
    FineSleep { deadline, id: None }.await;
}

/// Sleeps for `wait`, as [`sleep_until`] does.
pub async fn sleep(wait: Duration) {
    sleep_until(Instant::now() + wait).await;
}

/// The timer thread's state: deadlines in order, and the wakers waiting on them.
struct Timers {
    due: BinaryHeap<Reverse<(Instant, u64)>>,
    wakers: HashMap<u64, Waker>,
}

struct Fine {
    timers: Mutex<Timers>,
    thread: Thread,
    next_id: AtomicU64,
}

fn fine() -> &'static Fine {
    static FINE_TIMER: OnceLock<Fine> = OnceLock::new();
    FINE_TIMER.get_or_init(|| {
        let thread = std::thread::Builder::new()
            .name("flow-fine-timer".into())
            .spawn(run)
            .map(|handle| handle.thread().clone())
            // No thread: `FineSleep` falls back to yielding until the deadline.
            .unwrap_or_else(|_| std::thread::current());
        Fine {
            timers: Mutex::new(Timers {
                due: BinaryHeap::new(),
                wakers: HashMap::new(),
            }),
            thread,
            next_id: AtomicU64::new(1),
        }
    })
}

/// The timer thread: wakes what is due, then parks until the next deadline.
fn run() {
    let fine = fine();
    loop {
        let next = {
            let mut timers = fine.timers.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            while let Some(Reverse((at, id))) = timers.due.peek().copied() {
                if at > now {
                    break;
                }
                timers.due.pop();
                if let Some(waker) = timers.wakers.remove(&id) {
                    waker.wake();
                }
            }
            timers.due.peek().map(|Reverse((at, _))| *at)
        };
        match next {
            Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
            None => std::thread::park(),
        }
    }
}

/// The end of a sleep, on the timer thread.
struct FineSleep {
    deadline: Instant,
    id: Option<u64>,
}

impl Future for FineSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let fine = fine();
        if fine.thread.id() == std::thread::current().id() {
            // No timer thread could be started: yield until due.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut timers = fine.timers.lock().unwrap_or_else(PoisonError::into_inner);
        match self.id {
            Some(id) => {
                timers.wakers.insert(id, cx.waker().clone());
            }
            None => {
                let id = fine.next_id.fetch_add(1, Ordering::Relaxed);
                self.id = Some(id);
                let earliest = timers.due.peek().is_none_or(|Reverse((at, _))| self.deadline < *at);
                timers.due.push(Reverse((self.deadline, id)));
                timers.wakers.insert(id, cx.waker().clone());
                drop(timers);
                if earliest {
                    fine.thread.unpark();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for FineSleep {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let fine = fine();
            // Its heap entry stays until due: the thread finds no waker then.
            fine.timers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .wakers
                .remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_end_after_their_deadline() {
        for ms in [0u64, 1, 3, 12] {
            let started = Instant::now();
            sleep(Duration::from_millis(ms)).await;
            assert!(
                started.elapsed() >= Duration::from_millis(ms),
                "{ms} ms: {:?}",
                started.elapsed()
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_sleeps_at_once_all_end() {
        let started = Instant::now();
        let sleeps: Vec<_> = (0..200u64)
            .map(|i| tokio::spawn(sleep(Duration::from_micros(500 + i * 37))))
            .collect();
        for s in sleeps {
            s.await.expect("a sleep");
        }
        assert!(started.elapsed() >= Duration::from_micros(500 + 199 * 37));
    }

    #[tokio::test]
    async fn a_dropped_sleep_is_forgotten() {
        let mut sleep = Box::pin(FineSleep {
            deadline: Instant::now() + Duration::from_secs(5),
            id: None,
        });
        // Polled once: registered with the timer thread.
        assert!(futures_poll_once(sleep.as_mut()).is_pending());
        let id = sleep.id.expect("registered");
        let registered = |id| {
            fine()
                .timers
                .lock()
                .map(|t| t.wakers.contains_key(&id))
                .unwrap_or(false)
        };
        assert!(registered(id));
        drop(sleep);
        assert!(!registered(id), "a dropped sleep leaves no waker behind");
    }

    fn futures_poll_once(sleep: Pin<&mut FineSleep>) -> Poll<()> {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        sleep.poll(&mut cx)
    }
}
