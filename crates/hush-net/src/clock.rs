//! The one place the live drivers read the system clock, and a timer precise enough for shaping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use hush_shape::Instant;

/// Maps the system's monotonic clock onto the engine's [`Instant`], zero at creation.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Clock {
        Clock {
            base: std::time::Instant::now(),
        }
    }

    /// Now, in engine time.
    pub fn now(&self) -> Instant {
        self.at(std::time::Instant::now())
    }

    /// A system instant in engine time (zero if before the base).
    pub fn at(&self, t: std::time::Instant) -> Instant {
        let d = t.saturating_duration_since(self.base);
        Instant::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// An engine instant as a system instant.
    pub fn to_std(&self, t: Instant) -> std::time::Instant {
        self.base + Duration::from_nanos(t.as_nanos())
    }
}

/// One tunnel's timer: a Linux `timerfd` registered with tokio's reactor, so the worker's own
/// `epoll_wait` wakes at the deadline with microsecond accuracy and no thread hop; elsewhere the
/// process-wide timer thread below.
pub(crate) struct TunnelTimer {
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<TimerFd>,
    /// The deadline the kernel timer is set to.
    #[cfg(target_os = "linux")]
    armed: Option<std::time::Instant>,
}

/// `AsRawFd` for nix's timerfd, which tokio's `AsyncFd` needs.
#[cfg(target_os = "linux")]
pub(crate) struct TimerFd(nix::sys::timerfd::TimerFd);

#[cfg(target_os = "linux")]
impl std::os::fd::AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl TunnelTimer {
    /// A timer for the current tokio runtime.
    pub(crate) fn new() -> std::io::Result<TunnelTimer> {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::timerfd::{ClockId, TimerFlags};
            let fd = nix::sys::timerfd::TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // `with_interest` is deprecated for `unsafe fn register_with_interest`, whose contract
            // (the fd stays open and unchanged while registered) holds here: the `TimerFd` owns it
            // and lives inside the `AsyncFd` until both are dropped. The workspace forbids unsafe.
            #[allow(deprecated)]
            let fd = tokio::io::unix::AsyncFd::with_interest(
                TimerFd(fd),
                tokio::io::Interest::READABLE,
            )?;
            Ok(TunnelTimer { fd, armed: None })
        }
        #[cfg(not(target_os = "linux"))]
        Ok(TunnelTimer {})
    }

    /// Wait until `deadline` (at once if it has passed).
    pub(crate) async fn sleep_until(&mut self, deadline: std::time::Instant) {
        #[cfg(target_os = "linux")]
        {
            use nix::sys::time::TimeSpec;
            use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
            loop {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return;
                }
                if self.armed != Some(deadline) {
                    let wait = TimeSpec::from_duration(deadline - now);
                    if self
                        .fd
                        .get_ref()
                        .0
                        .set(Expiration::OneShot(wait), TimerSetTimeFlags::empty())
                        .is_err()
                    {
                        // Cannot happen for a valid fd and relative time; fall back rather than spin.
                        return sleep_until(deadline).await;
                    }
                    self.armed = Some(deadline);
                }
                let Ok(mut guard) = self.fd.readable().await else {
                    return sleep_until(deadline).await;
                };
                // Consume the expiry; a stale readiness from an earlier setting reads EAGAIN.
                if guard
                    .try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from))
                    .is_ok()
                {
                    self.armed = None;
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        sleep_until(deadline).await
    }
}

/// Sleeps until a deadline with sub-millisecond accuracy (the fallback where there is no timerfd).
///
/// tokio's timer wheel has millisecond granularity (its docs say not to use it where higher
/// resolution matters), which alone would make records leave up to 1 ms late. Shaping needs
/// better: records should leave when the schedule says, because lateness is itself a timing
/// signal. One process-wide thread keeps a heap of deadlines and sleeps in the kernel (futex
/// timeouts, subject to the OS's timer slack) until the earliest, then wakes the task that owns it.
pub(crate) fn sleep_until(deadline: std::time::Instant) -> PreciseSleep {
    PreciseSleep {
        deadline,
        registered: None,
    }
}

/// The future of [`sleep_until`].
pub(crate) struct PreciseSleep {
    deadline: std::time::Instant,
    /// The waker registered with the timer thread, so a re-poll with the same waker is free.
    registered: Option<Waker>,
}

impl Future for PreciseSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if std::time::Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let fresh = match &self.registered {
            Some(w) => !w.will_wake(cx.waker()),
            None => true,
        };
        if fresh {
            timer().register(self.deadline, cx.waker().clone());
            self.registered = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct Entry {
    deadline: std::time::Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

struct Timer {
    heap: Mutex<(BinaryHeap<Reverse<Entry>>, u64)>,
    thread: Thread,
}

impl Timer {
    fn register(&self, deadline: std::time::Instant, waker: Waker) {
        let earliest = {
            let mut guard = self.heap.lock().unwrap_or_else(|p| p.into_inner());
            let (heap, seq) = &mut *guard;
            *seq += 1;
            let earlier = heap.peek().is_none_or(|Reverse(e)| deadline < e.deadline);
            heap.push(Reverse(Entry {
                deadline,
                seq: *seq,
                waker,
            }));
            earlier
        };
        if earliest {
            self.thread.unpark();
        }
    }
}

fn timer() -> &'static Timer {
    static TIMER: OnceLock<Arc<Timer>> = OnceLock::new();
    TIMER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<Timer>>();
        let handle = thread::Builder::new()
            .name("hush-timer".into())
            .spawn(move || {
                // The timer is created with this thread's handle, then sent back here.
                let Ok(timer) = rx.recv() else { return };
                run_timer(&timer);
            })
            .expect("cannot start the hush timer thread");
        let timer = Arc::new(Timer {
            heap: Mutex::new((BinaryHeap::new(), 0)),
            thread: handle.thread().clone(),
        });
        // The thread only ends if this send fails, which it cannot: rx is alive until recv.
        let _ = tx.send(Arc::clone(&timer));
        timer
    })
}

fn run_timer(timer: &Timer) {
    loop {
        let mut due = Vec::new();
        let next = {
            let mut guard = timer.heap.lock().unwrap_or_else(|p| p.into_inner());
            let now = std::time::Instant::now();
            while guard.0.peek().is_some_and(|Reverse(e)| e.deadline <= now) {
                if let Some(Reverse(e)) = guard.0.pop() {
                    due.push(e.waker);
                }
            }
            guard.0.peek().map(|Reverse(e)| e.deadline)
        };
        for w in due {
            w.wake();
        }
        match next {
            Some(deadline) => {
                thread::park_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            }
            None => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "wall-clock timing: bench/live_timing.sh runs it"]
    async fn precise_sleep_wakes_on_time() {
        let mut late = Vec::new();
        for i in 0..50u64 {
            let deadline = std::time::Instant::now() + Duration::from_micros(300 + 37 * i);
            sleep_until(deadline).await;
            late.push(std::time::Instant::now() - deadline);
        }
        late.sort();
        // Never early; a loaded CI machine may be late, so only sanity-check the median.
        assert!(late[25] < Duration::from_millis(20), "{:?}", late[25]);
    }
}
