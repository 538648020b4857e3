//! Physical bounds of metric values: a value outside them is no measurement.
//!
//! Result files and captures are untrusted: a broken or hostile tool can print a negative
//! throughput, a zero duration or a TTFT of 1e44 ms, and a comparison would happily divide
//! them. Every value read is checked against the bounds of its kind (from its unit-bearing
//! key) before it may become a metric:
//!
//! | kind | keys | accepted |
//! |---|---|---|
//! | latency | `*_ms`, `latency_*_s` | `0 ≤ v ≤ 1e8 ms` (about 28 hours) |
//! | duration | other `*_s` (`duration_s`, `elapsed_s`, `cost_time_s`) | `0 < v ≤ 1e7 s` |
//! | throughput | `*_tps` | `0 < v ≤ 1e9 tokens/s` |
//! | request rate | `*_rps` | `0 < v ≤ 1e7 requests/s` (goodput may be 0) |
//! | count | anything else (`completed`, `total_tokens` …) | a whole number, `0 ≤ v ≤ 1e15` |
//!
//! Every value must be finite. A value outside its bounds makes the parse a `no_metrics`
//! failure whose evidence names the file, the key, the value and the bound.

use crate::metrics::Unit;

/// The largest latency accepted, in milliseconds.
pub const MAX_LATENCY_MS: f64 = 1e8;
/// The largest duration accepted, in seconds.
pub const MAX_DURATION_S: f64 = 1e7;
/// The largest token throughput accepted, in tokens per second.
pub const MAX_TOKENS_PER_S: f64 = 1e9;
/// The largest request rate accepted, in requests per second.
pub const MAX_REQUESTS_PER_S: f64 = 1e7;
/// The largest count accepted.
pub const MAX_COUNT: f64 = 1e15;

/// The signature name of a failure caused by impossible or wrongly typed metric values.
pub const IMPLAUSIBLE_SIGNATURE: &str = "implausible_metric";

/// The physical kind of a metric, from its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A per-request or per-iteration latency (may be 0, e.g. a standard deviation).
    Latency,
    /// The wall time of a whole run (never 0).
    Duration,
    /// Tokens per second.
    TokenThroughput,
    /// Requests per second.
    RequestRate,
    /// A count of requests or tokens.
    Count,
    /// A share in percent (0–100).
    Share,
}

/// The kind of a metric key.
pub fn kind_of(key: &str) -> MetricKind {
    match Unit::of_key(key) {
        Unit::Milliseconds => MetricKind::Latency,
        Unit::Seconds if key.starts_with("latency_") => MetricKind::Latency,
        Unit::Seconds => MetricKind::Duration,
        Unit::TokensPerSecond => MetricKind::TokenThroughput,
        Unit::RequestsPerSecond => MetricKind::RequestRate,
        Unit::Percent => MetricKind::Share,
        Unit::Count => MetricKind::Count,
    }
}

/// Check one value of `key`: `Ok` when it is physically possible, else why not (e.g. `a
/// latency cannot be negative`).
pub fn check(key: &str, value: f64) -> Result<(), String> {
    if !value.is_finite() {
        return Err("not a finite number".into());
    }
    let unit = Unit::of_key(key);
    // Latencies in seconds share the millisecond ceiling.
    let per_ms = if unit == Unit::Seconds { 1000.0 } else { 1.0 };
    let (zero_ok, max, what) = match kind_of(key) {
        MetricKind::Latency => (true, MAX_LATENCY_MS / per_ms, "a latency"),
        MetricKind::Duration => (false, MAX_DURATION_S, "a duration"),
        MetricKind::TokenThroughput => (false, MAX_TOKENS_PER_S, "a throughput"),
        // No request may meet the goodput SLOs: 0 req/s is a real goodput.
        MetricKind::RequestRate => (key.contains("goodput"), MAX_REQUESTS_PER_S, "a rate"),
        MetricKind::Count => {
            if value.fract() != 0.0 {
                return Err("a count must be a whole number".into());
            }
            (true, MAX_COUNT, "a count")
        }
        MetricKind::Share => (true, 100.0, "a share"),
    };
    if value < 0.0 {
        return Err(format!("{what} cannot be negative"));
    }
    if value == 0.0 && !zero_ok {
        return Err(format!("{what} must be greater than 0"));
    }
    if value > max {
        let unit = unit.label();
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!(" {unit}")
        };
        return Err(format!("{what} cannot exceed {max:e}{unit}"));
    }
    Ok(())
}

/// The most evidence lines a rejected result reports; the rest are counted.
pub(crate) const MAX_EVIDENCE: usize = 5;

/// A value as evidence shows it: plain, or in scientific notation when huge or tiny.
fn shown(v: f64) -> String {
    if v != 0.0 && !(1e-6..1e9).contains(&v.abs()) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// One evidence line for a rejected value: `FILE: KEY = VALUE (SOURCE): WHY`.
pub(crate) fn evidence(file: &str, key: &str, value: f64, source: &str, why: &str) -> String {
    format!("{file}: {key} = {} ({source}): {why}", shown(value))
}

/// Keep the first [`MAX_EVIDENCE`] lines and count the others.
pub(crate) fn bounded(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_EVIDENCE {
        let more = lines.len() - MAX_EVIDENCE;
        lines.truncate(MAX_EVIDENCE);
        lines.push(format!("… and {more} more impossible value(s)"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_keys() {
        assert_eq!(kind_of("ttft_p99_ms"), MetricKind::Latency);
        assert_eq!(kind_of("latency_avg_s"), MetricKind::Latency);
        assert_eq!(kind_of("duration_s"), MetricKind::Duration);
        assert_eq!(kind_of("cost_time_s"), MetricKind::Duration);
        assert_eq!(
            kind_of("output_throughput_tps"),
            MetricKind::TokenThroughput
        );
        assert_eq!(kind_of("request_throughput_rps"), MetricKind::RequestRate);
        assert_eq!(kind_of("completed"), MetricKind::Count);
        assert_eq!(kind_of("host_cpu_busy_pct"), MetricKind::Share);
        assert_eq!(check("host_cpu_steal_pct", 0.0), Ok(()));
        assert_eq!(
            check("host_cpu_busy_pct", 100.5),
            Err("a share cannot exceed 1e2 %".into())
        );
    }

    #[test]
    fn real_values_pass() {
        for (k, v) in [
            ("ttft_mean_ms", 888.81),
            ("tpot_std_ms", 0.0),
            ("latency_avg_s", 0.8276),
            ("duration_s", 2.55),
            ("output_throughput_tps", 2354.08),
            ("request_throughput_rps", 39.16),
            ("request_goodput_rps", 0.0),
            ("completed", 100.0),
            ("failed", 0.0),
            ("total_tokens", 1_280_000.0),
        ] {
            assert_eq!(check(k, v), Ok(()), "{k} = {v}");
        }
    }

    #[test]
    fn impossible_values_are_refused_with_a_reason() {
        let why = |k: &str, v: f64| check(k, v).unwrap_err();
        assert_eq!(
            why("output_throughput_tps", -5.0),
            "a throughput cannot be negative"
        );
        assert_eq!(
            why("output_throughput_tps", 0.0),
            "a throughput must be greater than 0"
        );
        assert_eq!(why("duration_s", 0.0), "a duration must be greater than 0");
        assert_eq!(why("ttft_mean_ms", -20.0), "a latency cannot be negative");
        assert_eq!(why("ttft_mean_ms", 1e44), "a latency cannot exceed 1e8 ms");
        assert_eq!(why("latency_avg_s", 1e6), "a latency cannot exceed 1e5 s");
        assert_eq!(
            why("request_throughput_rps", 0.0),
            "a rate must be greater than 0"
        );
        assert_eq!(why("completed", 2.5), "a count must be a whole number");
        assert_eq!(why("completed", -1.0), "a count cannot be negative");
        assert_eq!(why("ttft_mean_ms", f64::NAN), "not a finite number");
        assert_eq!(
            why("total_throughput_tps", f64::INFINITY),
            "not a finite number"
        );
        assert!(check("ttft_mean_ms", MAX_LATENCY_MS).is_ok());
        assert_eq!(
            evidence("r.json", "ttft_p99_ms", 1e44, "$.p99_ttft_ms", "w"),
            "r.json: ttft_p99_ms = 1e44 ($.p99_ttft_ms): w"
        );
        assert_eq!(shown(-20.0), "-20");
        let many = bounded((0..9).map(|i| i.to_string()).collect());
        assert_eq!(many.len(), MAX_EVIDENCE + 1);
        assert_eq!(many[MAX_EVIDENCE], "… and 4 more impossible value(s)");
        assert!(check("ttft_mean_ms", MAX_LATENCY_MS * 1.0001).is_err());
    }
}
