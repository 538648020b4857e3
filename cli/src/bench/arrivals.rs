//! When each request is sent: all at once for `inf`, else gamma-distributed gaps (Poisson for
//! burstiness 1) with mean `1/rate`, scaled so that the last request leaves at `n/rate` s, as
//! vLLM's client does (so seeds do not move the throughput by the 1–2 % a raw sum drifts).

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

/// Offsets in seconds from the start of the run, one per request, non-decreasing.
pub fn offsets(n: usize, rate: f64, burstiness: f64, seed: u64) -> Result<Vec<f64>> {
    if burstiness.is_nan() || burstiness <= 0.0 {
        bail!("--burstiness must be > 0, got {burstiness}");
    }
    if rate.is_nan() || rate <= 0.0 {
        bail!("--request-rate must be > 0 (or inf), got {rate}");
    }
    if rate.is_infinite() || n == 0 {
        return Ok(vec![0.0; n]);
    }
    let mut gaps: Vec<f64> = if burstiness.is_infinite() {
        vec![1.0 / rate; n]
    } else {
        // A stream of its own, so that the dataset's draws do not shift the arrivals.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_a11e_0000_0001);
        let gamma = Gamma::new(burstiness, 1.0 / (rate * burstiness))
            .map_err(|e| anyhow::anyhow!("--burstiness {burstiness}: {e}"))?;
        (0..n).map(|_| gamma.sample(&mut rng)).collect()
    };
    let mut sum = 0.0;
    for g in gaps.iter_mut() {
        sum += *g;
        *g = sum;
    }
    if sum > 0.0 && sum.is_finite() {
        let scale = (n as f64 / rate) / sum;
        for t in gaps.iter_mut() {
            *t *= scale;
        }
    }
    Ok(gaps)
}

#[cfg(test)]
mod tests {
    use super::offsets;

    #[test]
    fn poisson_arrivals_end_at_n_over_rate_and_are_seeded() {
        let t = offsets(1000, 100.0, 1.0, 7).unwrap();
        assert!((t[999] - 10.0).abs() < 1e-9);
        assert!(t.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(t, offsets(1000, 100.0, 1.0, 7).unwrap());
        assert_ne!(t, offsets(1000, 100.0, 1.0, 8).unwrap());
        // Exponential gaps: their coefficient of variation is about 1.
        let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        let cv = var.sqrt() / mean;
        assert!((0.85..1.15).contains(&cv), "cv {cv}");
    }

    #[test]
    fn bursty_uniform_and_infinite_rates() {
        let bursty = offsets(2000, 10.0, 0.25, 1).unwrap();
        let gaps: Vec<f64> = bursty.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(var.sqrt() / mean > 1.5, "burstiness < 1 is burstier");
        let even = offsets(4, 2.0, f64::INFINITY, 0).unwrap();
        assert_eq!(even, vec![0.5, 1.0, 1.5, 2.0]);
        assert_eq!(offsets(3, f64::INFINITY, 1.0, 0).unwrap(), vec![0.0; 3]);
        assert!(offsets(3, 1.0, 0.0, 0).is_err());
        assert!(offsets(3, 1.0, f64::NAN, 0).is_err());
    }
}
