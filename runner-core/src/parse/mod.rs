//! Benchmark implementations per mode: result-file flags, output parsing and failure
//! classification.
//!
//! - [`benchmark_for`] gives the [`Benchmark`] of a mode; [`parse_output`] parses a
//!   [`RunOutput`](crate::benchmark::RunOutput) for a mode or, with `None`, detects the mode
//!   ([`detect_mode`], [`detect_output_mode`]).
//! - Metrics come from the tool's JSON result when present, else from the block the tool
//!   prints (serving result block, `Throughput:` line, `Avg latency:` block, prefix caching's
//!   measured run) — never from engine log lines (`Avg prompt throughput: …`), progress bars
//!   or docker noise. Keys carry units (`ttft_p99_ms`, `request_throughput_rps` …) and every
//!   value keeps its provenance. The first complete block wins; copies never overwrite it.
//! - When the mode's primary metrics are absent, the failure is classified by an ordered,
//!   data-driven signature table ([`Classifier`], built-in `signatures.toml`, extendable).
//! - A value no real run can produce (negative, zero where impossible, beyond a physical
//!   ceiling, or not a number at all) is never a metric: the parse fails with `no_metrics` and
//!   evidence naming the file, key and value ([`sanity`]).

use crate::benchmark::Benchmark;
use crate::spec::Mode;

mod classify;
mod detect;
mod json;
mod modes;
mod offline;
mod prefix;
pub mod sanity;
mod serving;
mod text;

pub use classify::{
    Classifier, Signature, SignatureError, builtin_signatures, classify, classify_with,
    parse_signatures,
};
pub use detect::{detect_json_mode, detect_mode, detect_output_mode, guess_source_kind};
pub use modes::{
    ClassifyingBenchmark, GenericBenchmark, LatencyBenchmark, PrefixCachingBenchmark,
    ServingBenchmark, ThroughputBenchmark, parse_output, parse_output_with,
};

static SERVING: ServingBenchmark = ServingBenchmark;
static THROUGHPUT: ThroughputBenchmark = ThroughputBenchmark;
static LATENCY: LatencyBenchmark = LatencyBenchmark;
static PREFIX_CACHING: PrefixCachingBenchmark = PrefixCachingBenchmark;
static GENERIC: GenericBenchmark = GenericBenchmark;

/// The [`Benchmark`] implementation for a mode.
pub fn benchmark_for(mode: Mode) -> &'static dyn Benchmark {
    match mode {
        Mode::Serving => &SERVING,
        Mode::Throughput => &THROUGHPUT,
        Mode::Latency => &LATENCY,
        Mode::PrefixCaching => &PREFIX_CACHING,
        Mode::Other => &GENERIC,
    }
}

/// Parse a mode name as the `parse --mode` flag takes it: `auto` (→ `None`), `serving`,
/// `throughput`, `latency`, `prefix_caching` (or `prefix-caching`), `other`.
pub fn mode_from_flag(flag: &str) -> Result<Option<Mode>, String> {
    let wanted = flag.trim().to_ascii_lowercase().replace('-', "_");
    if wanted == "auto" {
        return Ok(None);
    }
    [
        Mode::Serving,
        Mode::Throughput,
        Mode::Latency,
        Mode::PrefixCaching,
        Mode::Other,
    ]
    .into_iter()
    .find(|m| m.as_str() == wanted)
    .map(Some)
    .ok_or_else(|| {
        format!("unknown mode '{flag}' (expected auto, serving, throughput, latency, prefix_caching or other)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::{OutputSource, RunOutput, SourceKind};

    #[test]
    fn benchmark_for_every_mode() {
        for m in [
            Mode::Serving,
            Mode::Throughput,
            Mode::Latency,
            Mode::PrefixCaching,
            Mode::Other,
        ] {
            assert_eq!(benchmark_for(m).mode(), m);
            assert_eq!(mode_from_flag(m.as_str()), Ok(Some(m)));
        }
        assert_eq!(mode_from_flag("AUTO"), Ok(None));
        assert_eq!(
            mode_from_flag("prefix-caching"),
            Ok(Some(Mode::PrefixCaching))
        );
        assert!(mode_from_flag("nope").is_err());
    }

    #[test]
    fn empty_output_is_no_metrics() {
        let out = RunOutput {
            sources: vec![OutputSource {
                name: "stdout".into(),
                kind: SourceKind::Stdout,
                text: String::new(),
            }],
            exit_code: Some(1),
        };
        let o = benchmark_for(Mode::Latency).parse(&out);
        let f = o.failure.unwrap();
        assert_eq!(f.code, crate::failure::Failure::NoMetrics);
        assert_eq!(f.evidence, vec!["exit code 1".to_string()]);
        assert_eq!(o.missing, vec!["latency_avg_s".to_string()]);
    }
}
