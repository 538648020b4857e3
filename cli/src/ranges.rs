//! Value ranges of numeric flags. A value outside its range is a usage error (exit 2) that
//! clap reports with the flag's name, before anything runs: no flag can make the tool
//! allocate, schedule or wait without bound.

use clap::builder::RangedI64ValueParser;

/// Most measured repeats per variant (and the adaptive maximum).
pub const MAX_REPEATS: u32 = 1000;
/// Most tasks at once.
pub const MAX_CONCURRENCY: usize = 256;
/// Largest GPU·hour budget.
pub const MAX_BUDGET_GPU_HOURS: f64 = 1e6;
/// Longest grace between SIGTERM and SIGKILL, seconds.
pub const MAX_GRACE_S: u32 = 3600;

/// `--repeats`: 1 to [`MAX_REPEATS`].
pub fn repeats() -> RangedI64ValueParser<u32> {
    RangedI64ValueParser::<u32>::new().range(1..=i64::from(MAX_REPEATS))
}

/// `--concurrency`: 1 to [`MAX_CONCURRENCY`].
pub fn concurrency() -> RangedI64ValueParser<usize> {
    RangedI64ValueParser::<usize>::new().range(1..=MAX_CONCURRENCY as i64)
}

/// `--grace-s`: 0 to [`MAX_GRACE_S`].
pub fn grace_s() -> RangedI64ValueParser<u64> {
    RangedI64ValueParser::<u64>::new().range(0..=i64::from(MAX_GRACE_S))
}

/// `--budget-gpu-hours`: a finite number greater than 0, at most [`MAX_BUDGET_GPU_HOURS`].
pub fn budget_gpu_hours(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 && v <= MAX_BUDGET_GPU_HOURS {
        Ok(v)
    } else {
        Err(format!(
            "expected a finite number of GPU·hours greater than 0 and at most {MAX_BUDGET_GPU_HOURS:e}"
        ))
    }
}

/// `--noise-floor`: a fraction in `[0, 1)`.
pub fn noise_floor(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected a fraction in [0, 1), e.g. 0.02 for ±2 %".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_must_be_finite_and_positive() {
        assert_eq!(budget_gpu_hours("2.5"), Ok(2.5));
        for bad in ["NaN", "nan", "inf", "-inf", "0", "-1", "1e7", "x", ""] {
            assert!(budget_gpu_hours(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn noise_floors_are_fractions() {
        assert_eq!(noise_floor("0"), Ok(0.0));
        assert_eq!(noise_floor("0.02"), Ok(0.02));
        for bad in ["1", "NaN", "-0.1", "inf"] {
            assert!(noise_floor(bad).is_err(), "{bad}");
        }
    }
}
