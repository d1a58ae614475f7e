//! Pacing of requests to a server: adaptive concurrency (AIMD) and a hard cap on requests
//! per second.
//!
//! Every request takes a [`Permit`] first. The number of permits out at once is a limit that
//! grows by one for every "limit" successes in a row (additive increase) and is cut by a
//! third on throttling or a server error (multiplicative decrease, at most once per
//! cut window so that one burst of 503s does not collapse it to one). `--max-rps` spaces
//! the starts of requests evenly whatever the limit.
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
}

/// One request's right to run; give it back with [`Permit::success`] or
/// [`Permit::throttled`], or drop it (counted as neither).
#[derive(Debug)]
pub struct Permit<'a> {
    pacer: &'a Pacer,
    done: bool,
}

/// The lowest concurrency pacing cuts down to.
const MIN_LIMIT: f64 = 1.0;
/// After a cut, further throttling within this time does not cut again.
const CUT_WINDOW: Duration = Duration::from_millis(500);

impl Pacer {
    /// A pacer that starts at `max` requests in flight and never goes above it.
    pub fn new(max: usize, max_rps: Option<f64>) -> Pacer {
        let max = max.max(1) as f64;
        Pacer {
            state: Mutex::new(State {
                limit: max,
                in_flight: 0,
                last_cut: None,
                next_start: Instant::now(),
                throttled: 0,
            }),
            freed: Notify::new(),
            max,
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

    fn release(&self, outcome: Option<bool>) {
        let mut s = self.state.lock().expect("not poisoned");
        s.in_flight -= 1;
        let metrics = crate::metrics::metrics();
        match outcome {
            Some(true) => s.limit = (s.limit + 1.0 / s.limit).min(self.max),
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
        self.pacer.release(Some(true));
    }

    pub fn throttled(mut self) {
        self.done = true;
        self.pacer.release(Some(false));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pacer.release(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn throttling_cuts_the_limit_and_successes_raise_it() {
        let pacer = Pacer::new(30, None);
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

    #[tokio::test]
    async fn the_limit_holds_requests_back() {
        let pacer = std::sync::Arc::new(Pacer::new(2, None));
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
        let pacer = Pacer::new(100, Some(50.0));
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
