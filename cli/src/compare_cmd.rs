//! `perf-runner compare BASE OTHER`: medians with bootstrap CIs, the ratio with its CI, a
//! verdict against a noise floor, and a Mann–Whitney test where there are enough samples —
//! for results produced anywhere.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use runner_core::metrics::Unit;
use runner_core::samples::{Side, load_side_capped};
use runner_core::settings::Limits;
use runner_core::stats::{COMPARE_SCHEMA_VERSION, CompareOptions, NoiseFloor, compare};
use runner_core::{exit, text};
use serde_json::json;

use crate::Format;

/// Options of `compare`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Base results: a file or a directory of files.
    base: PathBuf,
    /// Other results: a file or a directory of files.
    other: PathBuf,
    /// Metric key (default: the mode's primary metric, e.g. output_throughput_tps).
    #[arg(long)]
    metric: Option<String>,
    /// Relative noise floor the ratio's CI is judged against, a fraction in [0, 1).
    #[arg(
        long,
        default_value_t = 0.02,
        allow_negative_numbers = true,
        value_parser = crate::ranges::noise_floor
    )]
    noise_floor: f64,
    /// Runs each side needs before a verdict is decided (at least 2); fewer is `inconclusive`.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=10000))]
    min_runs: u16,
    /// Bootstrap seed.
    #[arg(long, default_value_t = runner_core::stats::DEFAULT_SEED)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Compare; each file must be a regular file within `limits.max_result_bytes` whose values are
/// all possible (else an input error naming the file and value).
pub fn run(a: Args, limits: &Limits) -> Result<i32> {
    let load = |p: &PathBuf, metric: Option<&str>| -> Result<Side> {
        load_side_capped(std::slice::from_ref(p), metric, limits.result())
            .map_err(|e| anyhow!("{e}"))
    };
    let base = match load(&a.base, a.metric.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: BASE: {}", text::escape_lines(&e.to_string()));
            return Ok(exit::INPUT);
        }
    };
    let other = match load(&a.other, Some(&base.metric)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: OTHER: {}", text::escape_lines(&e.to_string()));
            return Ok(exit::INPUT);
        }
    };
    let opts = CompareOptions {
        seed: a.seed,
        floor: NoiseFloor::configured(a.noise_floor),
        min_runs: usize::from(a.min_runs),
        ..CompareOptions::default()
    };
    let Some(c) = compare(&base.metric, &base.values, &other.values, &opts) else {
        eprintln!(
            "error: no finite values of {} on one side",
            text::escape(&base.metric)
        );
        return Ok(exit::INPUT);
    };
    match a.format {
        Format::Json => {
            let out = json!({
                "schema_version": COMPARE_SCHEMA_VERSION,
                "metric": c.metric,
                "metric_why": base.why,
                "higher_is_better": c.higher_is_better,
                "base": {"n": c.base.n, "median": c.base.median, "ci": c.base.ci, "samples": "per_run", "runs": base.runs, "files": base.files},
                "other": {"n": c.other.n, "median": c.other.median, "ci": c.other.ci, "samples": "per_run", "runs": other.runs, "files": other.files},
                "ratio": c.ratio,
                "verdict": c.verdict,
                "reason": c.reason,
                "noise_floor": c.noise_floor,
                "mann_whitney": c.mann_whitney,
                "largest_significant_effect": c.largest_significant_effect,
            });
            println!("{}", text::json_pretty(&out)?);
        }
        Format::Text | Format::Table => {
            let unit = Unit::of_key(&c.metric).label();
            let dir = if c.higher_is_better {
                "higher is better"
            } else {
                "lower is better"
            };
            println!("metric   {} ({unit}, {dir})", text::escape(&c.metric));
            if let Some(why) = &base.why {
                println!("         {}", text::escape(why));
            }
            for (name, s, side) in [("base", &c.base, &base), ("other", &c.other, &other)] {
                println!(
                    "{name:<8} median {:.4} [{:.4}, {:.4}]  n={} run(s) from {} file(s)",
                    s.median,
                    s.ci[0],
                    s.ci[1],
                    s.n,
                    side.files.len()
                );
                for r in side
                    .runs
                    .iter()
                    .filter_map(|r| r.within.as_ref().map(|w| (r, w)))
                {
                    println!(
                        "           {}: within the run (descriptive) median {:.4}, IQR [{:.4}, {:.4}] over {} {}",
                        text::escape(&r.0.source),
                        r.1.median,
                        r.1.iqr[0],
                        r.1.iqr[1],
                        r.1.n,
                        match r.1.kind {
                            runner_core::samples::SampleKind::PerIteration => "iterations",
                            _ => "requests",
                        }
                    );
                }
            }
            if let Some(r) = c.ratio {
                println!(
                    "ratio    {:.4} [{:.4}, {:.4}] (other / base, 95 % bootstrap CI)",
                    r.value, r.ci[0], r.ci[1]
                );
            }
            if let Some(m) = c.mann_whitney {
                println!(
                    "mann-whitney  p = {:.3e} (one-sided: other better)",
                    m.p_value
                );
            }
            if let Some(e) = c.largest_significant_effect {
                println!("largest significant improvement  {:.1} %", e * 100.0);
            }
            println!(
                "verdict  {} (noise floor ±{:.1} %, {})",
                c.verdict.as_str(),
                c.noise_floor.value * 100.0,
                match c.noise_floor.source {
                    runner_core::stats::FloorSource::Configured => "configured",
                    runner_core::stats::FloorSource::AaMeasured => "measured by an A/A run",
                }
            );
            if let Some(reason) = &c.reason {
                println!("         {reason}");
            }
        }
    }
    Ok(exit::SUCCESS)
}
