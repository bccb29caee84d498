//! The per-source scan rate limit: a token bucket holding at most one second's worth of
//! scans, refilled continuously. Pure: the caller passes the time.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket of `rate` tokens per second, burst `rate`.
#[derive(Debug)]
pub struct RateLimit {
    rate: u64,
    /// Tokens in billionths, so that refills are exact in integers.
    nano_tokens: u64,
    last: Instant,
}

const NANOS: u64 = 1_000_000_000;

impl RateLimit {
    /// A full bucket of `per_sec` tokens (at least 1) at `now`.
    pub fn new(per_sec: u32, now: Instant) -> RateLimit {
        let rate = u64::from(per_sec.max(1));
        RateLimit {
            rate,
            nano_tokens: rate.saturating_mul(NANOS),
            last: now,
        }
    }

    pub fn per_sec(&self) -> u64 {
        self.rate
    }

    /// Take one token at `now`; false when the bucket is empty.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let capacity = self.rate.saturating_mul(NANOS);
        // Tokens per second × nanoseconds = billionths of a token; a long idle spell saturates
        // and is capped at a full bucket anyway.
        let refill = nanos(elapsed).saturating_mul(self.rate);
        self.nano_tokens = self.nano_tokens.saturating_add(refill).min(capacity);
        if self.nano_tokens >= NANOS {
            self.nano_tokens -= NANOS;
            true
        } else {
            false
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_rate_passes_then_the_rate_refills() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(10, t0);
        assert_eq!((0..25).filter(|_| limit.take(t0)).count(), 10);
        // 100 ms later one token is back, not more.
        let t1 = t0 + Duration::from_millis(100);
        assert!(limit.take(t1));
        assert!(!limit.take(t1));
        // After a long pause the bucket is full again, never fuller.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..25).filter(|_| limit.take(t2)).count(), 10);
    }

    #[test]
    fn a_steady_stream_at_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut limit = RateLimit::new(50, t0);
        for n in 1..=10_000u64 {
            assert!(limit.take(t0 + Duration::from_millis(20 * n)), "scan {n}");
        }
    }

    #[test]
    fn time_going_backwards_refills_nothing() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut limit = RateLimit::new(1, t0);
        assert!(limit.take(t0));
        assert!(!limit.take(t0 - Duration::from_secs(5)));
        assert!(!limit.take(t0 + Duration::from_millis(999)));
        assert!(limit.take(t0 + Duration::from_secs(1)));
    }
}
