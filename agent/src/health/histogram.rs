//! Delivery latency in constant memory: a histogram of milliseconds with fixed log-scale
//! buckets (the layout HDR histograms use, with 16 sub-buckets per power of two).
//!
//! * Values below 16 ms have a bucket each (exact).
//! * From 16 ms on, each power of two `[2^e, 2^(e+1))` is cut into 16 equal buckets of width
//!   `2^(e-4)`. A percentile is reported as the middle of its bucket, so it is off by at most
//!   half a bucket: **at most 1/32 (3.125 %) of the true value** (the value is at least
//!   `2^e`, the half width `2^(e-5)`). The property tests hold this.
//! * Values from [`MAX_MS`] on (about 34 years) land in the top bucket: no allocation, no
//!   overflow, whatever the clocks say.
//!
//! [`BUCKETS`] counters of 8 bytes: about 4.6 KiB per histogram, whatever the number of
//! values. Counts only grow; the latency of a period is the difference of two readings
//! ([`Histogram::since`]).

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered; values of `2^TOP_EXP` ms and more share the top bucket.
const TOP_EXP: u32 = 40;
/// The first value that is clamped into the top bucket.
pub const MAX_MS: u64 = 1 << TOP_EXP;
/// Buckets in a histogram.
pub const BUCKETS: usize = (SUB + (TOP_EXP - SUB_BITS) as u64 * SUB) as usize;

/// Counts of millisecond values in log-scale buckets.
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64]>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.total)
            .field("p50", &self.percentile(500))
            .field("p99", &self.percentile(990))
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            total: 0,
        }
    }

    /// Count one value (milliseconds).
    pub fn record(&mut self, ms: u64) {
        if let Some(c) = self.counts.get_mut(index(ms)) {
            *c = c.saturating_add(1);
            self.total = self.total.saturating_add(1);
        }
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The nearest-rank percentile `permille`/1000 (500 = median, 990 = p99): the smallest
    /// value with at least that share of the values at or below it, as the middle of its
    /// bucket. None when empty.
    pub fn percentile(&self, permille: u32) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let permille = u128::from(permille.min(1000));
        // ceil(total × permille / 1000), at least 1.
        let rank = (u128::from(self.total) * permille).div_ceil(1000).max(1);
        let mut seen: u128 = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += u128::from(c);
            if seen >= rank {
                return Some(middle(i));
            }
        }
        // Counts add up to the total; not reached.
        None
    }

    /// What was counted after `earlier` (an earlier reading of the same histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let counts: Box<[u64]> = self
            .counts
            .iter()
            .zip(earlier.counts.iter())
            .map(|(now, then)| now.saturating_sub(*then))
            .collect();
        let total = counts.iter().fold(0u64, |a, c| a.saturating_add(*c));
        Histogram { counts, total }
    }
}

/// The bucket of `ms`.
fn index(ms: u64) -> usize {
    if ms < SUB {
        return ms as usize;
    }
    let v = ms.min(MAX_MS - 1);
    // floor(log2 v), between SUB_BITS and TOP_EXP - 1.
    let e = 63 - v.leading_zeros();
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    (SUB + u64::from(e - SUB_BITS) * SUB + sub) as usize
}

/// The value reported for bucket `i`: its middle (below 32 ms a bucket holds one value).
fn middle(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let j = i - SUB;
    let e = j / SUB + u64::from(SUB_BITS);
    let width = 1u64 << (e - u64::from(SUB_BITS));
    let low = (1u64 << e) + (j % SUB) * width;
    low + width / 2
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The exact nearest-rank percentile of `values`.
    fn exact(values: &[u64], permille: u32) -> u64 {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let rank = (sorted.len() as u128 * u128::from(permille))
            .div_ceil(1000)
            .max(1);
        sorted[usize::try_from(rank).unwrap() - 1]
    }

    #[test]
    fn small_values_are_exact_and_empty_has_no_percentile() {
        let mut h = Histogram::new();
        assert_eq!(h.percentile(500), None);
        for v in [0, 1, 2, 3, 15, 16, 17, 31] {
            h.record(v);
        }
        assert_eq!(h.count(), 8);
        assert_eq!(h.percentile(1), Some(0));
        assert_eq!(h.percentile(500), Some(3));
        assert_eq!(h.percentile(625), Some(15));
        assert_eq!(h.percentile(750), Some(16));
        assert_eq!(h.percentile(1000), Some(31));
    }

    #[test]
    fn every_bucket_middle_falls_in_its_own_bucket() {
        for i in 0..BUCKETS {
            assert_eq!(index(middle(i)), i, "bucket {i}");
        }
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(index(MAX_MS - 1), BUCKETS - 1);
    }

    #[test]
    fn huge_values_are_clamped_not_lost() {
        let mut h = Histogram::new();
        h.record(u64::MAX);
        h.record(7);
        assert_eq!(h.count(), 2);
        assert!(h.percentile(1000).unwrap() >= MAX_MS / 2);
    }

    #[test]
    fn a_window_is_the_difference_of_two_readings() {
        let mut h = Histogram::new();
        for v in 0..100 {
            h.record(v * 1000);
        }
        let before = h.clone();
        for _ in 0..10 {
            h.record(5);
        }
        let window = h.since(&before);
        assert_eq!(window.count(), 10);
        assert_eq!(window.percentile(990), Some(5));
        assert_eq!(h.since(&h).count(), 0);
    }

    /// Latencies spread over many orders of magnitude: an exponent, then random low bits.
    fn latency() -> impl Strategy<Value = u64> {
        (0u32..TOP_EXP, any::<u64>()).prop_map(|(e, bits)| (1u64 << e) | (bits & ((1u64 << e) - 1)))
    }

    proptest! {
        #[test]
        fn percentiles_are_within_one_32nd_of_the_exact_value(
            values in prop::collection::vec(prop_oneof![latency(), 0u64..200], 1..400),
            permille in prop_oneof![Just(500u32), Just(990), Just(1), Just(1000), 1u32..=1000],
        ) {
            let mut h = Histogram::new();
            for &v in &values {
                h.record(v);
            }
            let want = exact(&values, permille);
            let got = h.percentile(permille).unwrap();
            prop_assert!(
                got.abs_diff(want) <= want / 32,
                "p{permille}‰: got {got}, exact {want}"
            );
        }

        #[test]
        fn the_window_matches_a_histogram_of_the_new_values_alone(
            old in prop::collection::vec(latency(), 0..100),
            new in prop::collection::vec(latency(), 0..100),
        ) {
            let mut h = Histogram::new();
            old.iter().for_each(|&v| h.record(v));
            let before = h.clone();
            let mut alone = Histogram::new();
            for &v in &new {
                h.record(v);
                alone.record(v);
            }
            prop_assert_eq!(h.since(&before), alone);
        }
    }
}
