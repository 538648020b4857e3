//! Seeded noise and the statistics vLLM's benchmarks print (numpy semantics).

/// A small seeded generator (SplitMix64): reproducible noise without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`, decorrelated per `stream` (e.g. a request index).
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `1 + jitter * u` with `u` uniform in [-1, 1): a multiplicative noise factor.
    pub fn factor(&mut self, jitter: f64) -> f64 {
        1.0 + jitter * (2.0 * self.unit() - 1.0)
    }

    /// An exponential draw with mean `1 / rate` (Poisson arrivals).
    pub fn exp(&mut self, rate: f64) -> f64 {
        -(1.0 - self.unit()).ln() / rate
    }

    /// An index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Seconds as a `Duration`, clamped to [0, 10^7] s so no input can make it panic.
pub fn dur(secs: f64) -> std::time::Duration {
    let s = if secs.is_nan() {
        0.0
    } else {
        secs.clamp(0.0, 1e7)
    };
    std::time::Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// Mean, 0 for an empty slice (vLLM's `np.mean(x or 0)`).
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        0.0
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// Population standard deviation (`np.std`), 0 for an empty slice.
pub fn std_dev(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / xs.len() as f64).sqrt()
}

/// `np.percentile(xs, p)` with linear interpolation, 0 for an empty slice.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = (p / 100.0).clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Words the stand-in "generates" and builds prompts from (one word = one token).
pub const WORDS: [&str; 16] = [
    " the", " of", " and", " to", " in", " a", " is", " that", " for", " it", " as", " was",
    " with", " be", " by", " on",
];

/// A prompt of exactly `n` tokens (words) drawn from `rng`.
pub fn prompt_text(rng: &mut Rng, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for _ in 0..n {
        s.push_str(WORDS[rng.below(WORDS.len())]);
    }
    s.trim_start().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_like_statistics() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(mean(&xs), 2.5);
        assert!((std_dev(&xs) - 1.118_033_988_749_895).abs() < 1e-12);
        assert_eq!(percentile(&xs, 50.0), 2.5);
        assert!((percentile(&xs, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert_eq!(
            prompt_text(&mut Rng::new(1, 2), 7)
                .split_whitespace()
                .count(),
            7
        );
    }
}
