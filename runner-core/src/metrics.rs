//! Typed, unit-bearing metrics that keep their provenance.
//!
//! A metric key ends in its unit (`_rps`, `_tps`, `_ms`, `_s`, `_pct`) or is a count (`completed`,
//! `num_requests`, `total_tokens` …). Each value records where it was read: file, line and the
//! source text, so no number leaves the tool without its provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where a metric value was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Provenance {
    /// The file (or stream name such as `stdout`) the value came from.
    pub file: String,
    /// 1-based line number within that file, for text sources; `None` for JSON fields.
    pub line: Option<usize>,
    /// The source text: the printed line, or the JSON field path (`$.output_throughput`).
    pub source: String,
}

/// One metric value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricValue {
    /// The value in the unit the key names.
    pub value: f64,
    /// Where it came from.
    pub provenance: Provenance,
}

/// The unit a metric key carries, derived from its suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Requests per second.
    RequestsPerSecond,
    /// Tokens per second.
    TokensPerSecond,
    /// Milliseconds.
    Milliseconds,
    /// Seconds.
    Seconds,
    /// A share, in percent.
    Percent,
    /// A plain count.
    Count,
}

impl Unit {
    /// The unit of a metric key, from its suffix.
    pub fn of_key(key: &str) -> Unit {
        if key.ends_with("_rps") {
            Unit::RequestsPerSecond
        } else if key.ends_with("_tps") {
            Unit::TokensPerSecond
        } else if key.ends_with("_ms") {
            Unit::Milliseconds
        } else if key.ends_with("_s") {
            Unit::Seconds
        } else if key.ends_with("_pct") {
            Unit::Percent
        } else {
            Unit::Count
        }
    }

    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Unit::RequestsPerSecond => "req/s",
            Unit::TokensPerSecond => "tok/s",
            Unit::Milliseconds => "ms",
            Unit::Seconds => "s",
            Unit::Percent => "%",
            Unit::Count => "",
        }
    }
}

/// Whether a larger value of a metric is better.
pub fn higher_is_better(key: &str) -> bool {
    matches!(
        Unit::of_key(key),
        Unit::RequestsPerSecond | Unit::TokensPerSecond
    )
}

/// The metrics of one run, keyed by unit-bearing names, in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<String, MetricValue>);

impl Metrics {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Insert a value unless the key is already present (the first block printed wins; a block
    /// printed twice does not overwrite) or the value is not finite. Returns whether it was
    /// inserted.
    pub fn insert_first(&mut self, key: &str, value: f64, provenance: Provenance) -> bool {
        // A NaN or infinite "metric" is no measurement (and would not survive JSON).
        if !value.is_finite() || self.0.contains_key(key) {
            return false;
        }
        self.0
            .insert(key.to_string(), MetricValue { value, provenance });
        true
    }

    /// The value of a key.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).map(|m| m.value)
    }

    /// Whether no metric was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of metrics.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Keys and plain values, for compact output.
    pub fn values(&self) -> BTreeMap<String, f64> {
        self.0.iter().map(|(k, v)| (k.clone(), v.value)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_follow_suffixes() {
        assert_eq!(
            Unit::of_key("request_throughput_rps"),
            Unit::RequestsPerSecond
        );
        assert_eq!(Unit::of_key("ttft_p99_ms"), Unit::Milliseconds);
        assert_eq!(Unit::of_key("latency_avg_s"), Unit::Seconds);
        assert_eq!(Unit::of_key("completed"), Unit::Count);
        assert_eq!(Unit::of_key("host_cpu_busy_pct"), Unit::Percent);
        assert!(higher_is_better("output_throughput_tps"));
        assert!(!higher_is_better("tpot_mean_ms"));
    }

    #[test]
    fn first_value_wins() {
        let p = |l| Provenance {
            file: "stdout".into(),
            line: Some(l),
            source: String::new(),
        };
        let mut m = Metrics::new();
        assert!(m.insert_first("duration_s", 1.0, p(1)));
        assert!(!m.insert_first("duration_s", 2.0, p(9)));
        assert_eq!(m.get("duration_s"), Some(1.0));
        assert!(
            !m.insert_first("ttft_mean_ms", f64::NAN, p(3)),
            "NaN is not a measurement"
        );
    }
}
