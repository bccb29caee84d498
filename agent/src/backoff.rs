//! Exponential backoff with jitter, for everything that retries: sinks, serial ports, the MQTT
//! connection.

use std::time::Duration;

/// The longest wait a peer's own `Retry-After` can impose.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Exponential backoff with "equal jitter": attempt n waits between half and all of
/// `min(max, initial × 2^(n-1))`.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The wait before the next attempt.
    pub fn next(&mut self, after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if let Some(after) = after {
            return after.min(MAX_RETRY_AFTER);
        }
        let shift = (self.failures - 1).min(30);
        let base = self.initial.saturating_mul(1u32 << shift).min(self.max);
        let half = base / 2;
        // xorshift64: jitter only, not security.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng % 1_000_001) as f64 / 1_000_000.0;
        half + half.mul_f64(frac)
    }
}

/// A seed for the jitter from the OS generator. Without it the jitter is merely less random;
/// retrying still works.
pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    u64::from_le_bytes(b)
}
