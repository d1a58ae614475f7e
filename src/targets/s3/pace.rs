//! Pacing of requests to a server: adaptive concurrency and a hard cap on requests per
//! second.
//!
//! Every request takes a [`Permit`] first. The number of permits out at once is a limit
//! that starts at `--concurrency` and moves with what the server sustains:
//! - it grows while requests come back as fast as the fastest seen lately (the server is
//!   not queueing them: the time is the network's, as on S3 from far away): by one per
//!   success until the first throttling (doubling each round trip), by one per "limit"
//!   successes after it, up to `--max-concurrency`;
//! - it is cut by a third on throttling or a server error (at most once per cut window,
//!   so that one burst of 503s does not collapse it to one);
//! - it eases back towards `--concurrency` when requests queue (they take well over the
//!   fastest time), so that a busy local server is not flooded.
//!
//! `--max-rps` spaces the starts of requests evenly whatever the limit.
//!
//! The SDK's own retries are off: a request that fails is retried by the S3 target's
//! request layer, after [`crate::time::backoff`], so that one layer decides how hard the
//! server is pushed.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
    freed: Notify,
    /// Where the limit starts, and what easing back returns to.
    start: f64,
    /// The most it grows to.
    max: f64,
    /// Minimum time between request starts, from `--max-rps`.
    spacing: Option<Duration>,
}

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    last_cut: Option<Instant>,
    next_start: Instant,
    throttled: u64,
    /// The fastest successful request lately, and a moving average of recent ones
    /// (seconds); the fastest is forgotten slowly, so that it follows the network.
    fastest: Option<f64>,
    average: Option<f64>,
}

/// One request's right to run; give it back with [`Permit::success`] or
/// [`Permit::throttled`], or drop it (counted as neither).
#[derive(Debug)]
pub struct Permit<'a> {
    pacer: &'a Pacer,
    started: Instant,
    done: bool,
}

/// Requests taking no longer than this many times the fastest are not queued: room to grow.
const UNQUEUED: f64 = 1.5;
/// Requests taking longer than this many times the fastest are queued: ease back.
const QUEUED: f64 = 3.0;

/// The lowest concurrency pacing cuts down to.
const MIN_LIMIT: f64 = 1.0;
/// After a cut, further throttling within this time does not cut again.
const CUT_WINDOW: Duration = Duration::from_millis(500);

impl Pacer {
    /// A pacer that starts at `start` requests in flight and never goes above `max`.
    pub fn new(start: usize, max: usize, max_rps: Option<f64>) -> Pacer {
        let start = start.max(1) as f64;
        Pacer {
            state: Mutex::new(State {
                limit: start,
                in_flight: 0,
                last_cut: None,
                next_start: Instant::now(),
                throttled: 0,
                fastest: None,
                average: None,
            }),
            freed: Notify::new(),
            start,
            max: (max.max(1) as f64).max(start),
            spacing: max_rps
                .filter(|r| *r > 0.0)
                .map(|r| Duration::from_secs_f64(1.0 / r)),
        }
    }

    /// Waits for room under the limit, then for the request's start time under the rate cap.
    pub async fn acquire(&self) -> Permit<'_> {
        let start = loop {
            let notified = self.freed.notified();
            {
                let mut s = self.state.lock().expect("not poisoned");
                if (s.in_flight as f64) < s.limit.floor().max(MIN_LIMIT) {
                    s.in_flight += 1;
                    let start = match self.spacing {
                        Some(spacing) => {
                            let now = Instant::now();
                            let at = s.next_start.max(now);
                            s.next_start = at + spacing;
                            Some(at)
                        }
                        None => None,
                    };
                    break start;
                }
            }
            notified.await;
        };
        if let Some(at) = start {
            tokio::time::sleep_until(at).await;
        }
        Permit {
            pacer: self,
            started: Instant::now(),
            done: false,
        }
    }

    /// The current concurrency limit (whole requests).
    pub fn limit(&self) -> usize {
        self.state.lock().expect("not poisoned").limit.floor() as usize
    }

    /// How many requests were throttled or failed with a server error so far.
    pub fn throttled(&self) -> u64 {
        self.state.lock().expect("not poisoned").throttled
    }

    fn release(&self, outcome: Option<bool>, took: Duration) {
        let mut s = self.state.lock().expect("not poisoned");
        s.in_flight -= 1;
        let metrics = crate::metrics::metrics();
        match outcome {
            Some(true) => {
                let took = took.as_secs_f64();
                let fastest = s.fastest.map_or(took, |f| (f * 1.0001).min(took));
                let average = s.average.map_or(took, |a| a * 0.9 + took * 0.1);
                (s.fastest, s.average) = (Some(fastest), Some(average));
                if average <= fastest * UNQUEUED {
                    let step = if s.last_cut.is_none() {
                        1.0
                    } else {
                        1.0 / s.limit
                    };
                    s.limit = (s.limit + step).min(self.max);
                } else if average > fastest * QUEUED && s.limit > self.start {
                    s.limit = (s.limit * 0.99).max(self.start);
                }
            }
            Some(false) => {
                s.throttled += 1;
                metrics.throttled.inc();
                let now = Instant::now();
                if s.last_cut
                    .is_none_or(|t| now.duration_since(t) >= CUT_WINDOW)
                {
                    s.limit = (s.limit * 2.0 / 3.0).max(MIN_LIMIT);
                    s.last_cut = Some(now);
                }
            }
            None => {}
        }
        metrics.concurrency.set(s.limit.floor() as i64);
        drop(s);
        self.freed.notify_waiters();
    }
}

impl Permit<'_> {
    pub fn success(mut self) {
        self.done = true;
        self.pacer.release(Some(true), self.started.elapsed());
    }

    pub fn throttled(mut self) {
        self.done = true;
        self.pacer.release(Some(false), self.started.elapsed());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pacer.release(None, self.started.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttling_cuts_the_limit_and_successes_raise_it() {
        let pacer = Pacer::new(30, 30, None);
        assert_eq!(pacer.limit(), 30);
        pacer.acquire().await.throttled();
        assert_eq!(pacer.limit(), 20);
        // A second throttle inside the window does not cut again.
        pacer.acquire().await.throttled();
        assert_eq!(pacer.limit(), 20);
        // +1/limit per success: from 20 to 30 takes about (30² − 20²) / 2 = 250.
        for _ in 0..400 {
            pacer.acquire().await.success();
        }
        assert_eq!(pacer.limit(), 30, "grows back, never above the maximum");
        assert_eq!(pacer.throttled(), 2);
    }

    /// One request that takes `took` (on tokio's paused clock).
    async fn request(pacer: &Pacer, took: Duration) {
        let permit = pacer.acquire().await;
        tokio::time::advance(took).await;
        permit.success();
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_grows_while_the_network_is_the_wait_and_eases_back_when_requests_queue() {
        let pacer = Pacer::new(4, 64, None);
        // Far from the server: every request takes 20 ms, none queues. One more per
        // success until the first throttling, never above the ceiling.
        for _ in 0..20 {
            request(&pacer, Duration::from_millis(20)).await;
        }
        assert_eq!(pacer.limit(), 24);
        for _ in 0..100 {
            request(&pacer, Duration::from_millis(20)).await;
        }
        assert_eq!(pacer.limit(), 64);
        // Requests now wait in the server's queue (five times the fastest): back towards
        // the start, not below it.
        for _ in 0..2000 {
            request(&pacer, Duration::from_millis(100)).await;
        }
        assert_eq!(pacer.limit(), 4);
        // After a throttling, growth is one per "limit" successes.
        for _ in 0..50 {
            request(&pacer, Duration::from_millis(20)).await;
        }
        pacer.acquire().await.throttled();
        let cut = pacer.limit();
        for _ in 0..10 {
            request(&pacer, Duration::from_millis(20)).await;
        }
        assert!(pacer.limit() <= cut + 2, "{cut} -> {}", pacer.limit());
    }

    #[tokio::test]
    async fn the_limit_holds_requests_back() {
        let pacer = std::sync::Arc::new(Pacer::new(2, 2, None));
        let a = pacer.acquire().await;
        let _b = pacer.acquire().await;
        let p = pacer.clone();
        let waiter = tokio::spawn(async move {
            p.acquire().await.success();
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "a third request waits");
        a.success();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released")
            .unwrap();
    }

    #[tokio::test]
    async fn max_rps_spaces_starts() {
        let pacer = Pacer::new(100, 100, Some(50.0));
        let t0 = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await.success();
        }
        // Five starts at 50/s: the fifth starts 80 ms after the first, however fast the
        // requests themselves are.
        assert!(
            t0.elapsed() >= Duration::from_millis(80),
            "{:?}",
            t0.elapsed()
        );
    }
}
