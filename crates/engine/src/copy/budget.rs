//! The copy buffers of the whole process: one budget shared by every running copy.
//!
//! A direct copy reads into [`CHUNK`]-sized buffers (`direct`). Each running copy used to
//! make its own three, so the daemon's memory grew by 12 MiB per running full clone (16 at
//! once: ~200 MiB). Now every buffer is lent by one process-wide pool of at most
//! [`BUFFERS`]: memory stays flat however many jobs run, while a few buffers in flight are
//! enough to keep the disk busy (one copy alone still gets its three).
//!
//! Fair: copies asking for a buffer are served in arrival order, one buffer at a time, and
//! a buffer goes back to the pool as soon as its chunk is written, so the copies running at
//! once take turns chunk by chunk and none is starved while others finish. A waiting copy
//! gives up when its `stop` test says so (cancelled, or its writer has gone).
//!
//! Deadlock-free: a lent buffer is always being read into, queued for its copy's writer, or
//! being written, and none of these needs another buffer, so every lease ends.
//!
//! The full-size buffers are made on first need and then kept for later copies: at most
//! [`BUFFERS`] ever exist, so the process's copy memory is bounded by the budget for good.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Bytes of one buffer (and of one direct read or write).
pub(super) const CHUNK: usize = 4 << 20;

/// Buffers the whole process may have lent at once: 8 × 4 MiB = 32 MiB of copy buffers,
/// however many copies run.
pub(super) const BUFFERS: usize = 8;

/// Alignment of a buffer's memory, and of a direct transfer's offset and length: the page
/// size, a multiple of every disk's logical block size (for `O_DIRECT`).
pub(super) const ALIGN: usize = 4096;

/// How often a waiting copy looks at its `stop` test.
const POLL: Duration = Duration::from_millis(20);

/// A buffer aligned on [`ALIGN`], with the length of the data it holds.
pub(super) struct Buf {
    mem: Vec<u8>,
    at: usize,
    /// Usable bytes (from `at`).
    cap: usize,
    pub(super) len: usize,
}

impl Buf {
    fn new(cap: usize) -> Buf {
        let mem = vec![0u8; cap + ALIGN];
        let at = mem.as_ptr().align_offset(ALIGN);
        Buf {
            mem,
            at,
            cap,
            len: 0,
        }
    }

    /// The first `len` bytes of the buffer (`len` at most its size).
    pub(super) fn space(&mut self, len: usize) -> &mut [u8] {
        &mut self.mem[self.at..self.at + len]
    }

    pub(super) fn data(&self) -> &[u8] {
        &self.mem[self.at..self.at + self.len]
    }
}

struct State {
    /// Full-size buffers made earlier and not lent now: kept for the next copy, so the
    /// process never holds more than `max` of them, made once. (Freed and made again, they
    /// came back from whichever of the allocator's per-thread arenas the next reader thread
    /// used, and the peak RSS of a 16-clone pool reached twice the budget.)
    free: Vec<Buf>,
    /// Buffers lent now.
    lent: usize,
    /// The most ever lent at once (for tests and the docs' claim).
    peak: usize,
    /// Tickets of the waiting copies, in arrival order, each with the condvar its copy
    /// waits on: only the first in line is woken (its turn, or a buffer back), not every
    /// waiter. (One condvar for all woke the 15 others of a 16-clone pool at every buffer
    /// lent or given back, to look and sleep again: ~5,900 futex calls per 512 MiB clone.)
    queue: VecDeque<(u64, Arc<Condvar>)>,
    next: u64,
}

/// A pool of at most `max` buffers, lent in arrival order.
pub(super) struct Budget {
    state: Mutex<State>,
    max: usize,
}

/// The process's budget.
pub(super) static GLOBAL: Budget = Budget::new(BUFFERS);

impl Budget {
    pub(super) const fn new(max: usize) -> Budget {
        Budget {
            state: Mutex::new(State {
                free: Vec::new(),
                lent: 0,
                peak: 0,
                queue: VecDeque::new(),
                next: 0,
            }),
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves only counters behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of at least `cap` bytes (at most [`CHUNK`]), once it is this caller's turn
    /// and one is free; `None` if `stop()` turns true while waiting.
    pub(super) fn lease(&self, cap: usize, stop: &dyn Fn() -> bool) -> Option<Lease<'_>> {
        let mut st = self.lock();
        let ticket = st.next;
        st.next += 1;
        let cv = Arc::new(Condvar::new());
        st.queue.push_back((ticket, cv.clone()));
        loop {
            if st.queue.front().is_some_and(|(t, _)| *t == ticket) && st.lent < self.max {
                st.queue.pop_front();
                st.lent += 1;
                st.peak = st.peak.max(st.lent);
                // A full-size buffer from the pool if there is one; a small copy's own.
                let buf = match st.free.pop() {
                    Some(b) if cap > CHUNK / 2 => Some(b),
                    Some(b) => {
                        st.free.push(b);
                        None
                    }
                    None => None,
                };
                // The next in line may be served too.
                if st.lent < self.max {
                    wake_first(&st);
                }
                drop(st);
                let mut buf = buf.unwrap_or_else(|| {
                    Buf::new(if cap > CHUNK / 2 {
                        CHUNK
                    } else {
                        cap.max(ALIGN)
                    })
                });
                buf.len = 0;
                return Some(Lease {
                    budget: self,
                    buf: Some(buf),
                });
            }
            if stop() {
                st.queue.retain(|(t, _)| *t != ticket);
                wake_first(&st);
                return None;
            }
            st = cv
                .wait_timeout(st, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn give_back(&self, buf: Buf) {
        let mut st = self.lock();
        st.lent -= 1;
        if buf.cap == CHUNK {
            st.free.push(buf);
        }
        wake_first(&st);
    }

    /// The most buffers ever lent at once.
    #[cfg(test)]
    pub(super) fn peak(&self) -> usize {
        self.lock().peak
    }
}

/// Wakes the first waiting copy, whose turn it is.
fn wake_first(st: &State) {
    if let Some((_, cv)) = st.queue.front() {
        cv.notify_one();
    }
}

/// A buffer lent by a [`Budget`]; it goes back when dropped.
pub(super) struct Lease<'b> {
    budget: &'b Budget,
    buf: Option<Buf>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Buf;
    fn deref(&self) -> &Buf {
        self.buf
            .as_ref()
            .expect("a lease holds its buffer until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Buf {
        self.buf
            .as_mut()
            .expect("a lease holds its buffer until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            self.budget.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{mpsc, Barrier};

    #[test]
    fn never_lends_more_than_its_buffers() {
        let budget = Budget::new(3);
        let out = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let mut l = budget.lease(CHUNK, &|| false).unwrap();
                        let n = out.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        l.space(4)[0] = 1;
                        std::thread::yield_now();
                        out.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(
            budget.peak(),
            3,
            "12 threads kept all three lent at some point"
        );
        let st = budget.lock();
        assert_eq!(st.lent, 0);
        assert_eq!(
            st.free.len(),
            3,
            "the three buffers made, kept for the next copies"
        );
    }

    #[test]
    fn serves_waiters_in_arrival_order() {
        let budget = Budget::new(1);
        let first = budget.lease(CHUNK, &|| false).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            for i in 0..4 {
                let (tx, budget) = (tx.clone(), &budget);
                s.spawn(move || {
                    let l = budget.lease(CHUNK, &|| false).unwrap();
                    tx.send(i).unwrap();
                    drop(l);
                });
                // Each waits before the next arrives.
                while budget.lock().queue.len() < i + 1 {
                    std::thread::yield_now();
                }
            }
            drop(first);
        });
        drop(tx);
        assert_eq!(rx.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_waiter_that_stops_gives_up_its_place() {
        let budget = Budget::new(1);
        let held = budget.lease(CHUNK, &|| false).unwrap();
        let stop = AtomicBool::new(false);
        let ready = Barrier::new(2);
        std::thread::scope(|s| {
            let gave_up = s.spawn(|| {
                ready.wait();
                budget
                    .lease(CHUNK, &|| stop.load(Ordering::SeqCst))
                    .is_none()
            });
            ready.wait();
            while budget.lock().queue.is_empty() {
                std::thread::yield_now();
            }
            stop.store(true, Ordering::SeqCst);
            assert!(gave_up.join().unwrap(), "the stopped waiter got nothing");
        });
        assert!(budget.lock().queue.is_empty(), "its ticket left the queue");
        drop(held);
        // The next caller is not stuck behind the one that left.
        assert!(budget.lease(CHUNK, &|| false).is_some());
    }

    #[test]
    fn small_copies_take_small_buffers() {
        let budget = Budget::new(2);
        let l = budget.lease(64 << 10, &|| false).unwrap();
        assert_eq!(l.cap, 64 << 10);
        let mut big = budget.lease(CHUNK, &|| false).unwrap();
        assert_eq!(big.cap, CHUNK);
        assert_eq!(big.space(CHUNK).as_ptr() as usize % ALIGN, 0);
    }
}
