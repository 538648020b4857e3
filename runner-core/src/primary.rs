//! The primary metric of a benchmark: the one a verdict is decided on, chosen from what the
//! benchmark measures — and why, so every report can say it.
//!
//! Serving at a finite request rate is the case that matters: the arrival rate then sets the
//! output throughput (a patch that adds 2 ms to every scheduler step moved it 6 % on a GPU
//! host while TPOT rose about 20 %), so a latency decides — median TPOT. Serving at rate `inf`
//! or bounded by `--max-concurrency` lets the engine's speed set the throughput, so output
//! throughput decides. Offline modes have one natural metric each.

use serde::{Deserialize, Serialize};

use crate::spec::Mode;

/// How a serving benchmark loads the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Load {
    /// Every request at once (`--request-rate inf`, the serving client's default).
    Unbounded,
    /// Poisson (or gamma) arrivals at this many requests per second.
    Rate {
        /// Requests per second.
        rps: f64,
    },
    /// At most this many requests in flight (with any rate).
    MaxConcurrency {
        /// The bound.
        n: u64,
    },
}

impl Load {
    /// The load a client argv asks for: `--max-concurrency N` wins, then `--request-rate R`
    /// (`inf` = unbounded); neither = the client's default, unbounded.
    pub fn from_argv(argv: &[String]) -> Load {
        let value = |flag: &str| {
            argv.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(&format!("{flag}="))
                    .map(str::to_string)
                    .or_else(|| (a == flag).then(|| argv.get(i + 1).cloned()).flatten())
            })
        };
        if let Some(n) = value("--max-concurrency").and_then(|v| v.parse::<u64>().ok()) {
            return Load::MaxConcurrency { n };
        }
        match value("--request-rate").map(|v| v.parse::<f64>()) {
            Some(Ok(r)) if r.is_finite() && r > 0.0 => Load::Rate { rps: r },
            _ => Load::Unbounded,
        }
    }

    /// The load a vLLM serving result JSON records (`request_rate`, `max_concurrency`).
    pub fn from_result(json: &serde_json::Value) -> Option<Load> {
        if let Some(n) = json.get("max_concurrency").and_then(|v| v.as_u64()) {
            return Some(Load::MaxConcurrency { n });
        }
        let rate = json.get("request_rate")?;
        let r = match rate {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        };
        Some(match r {
            Some(r) if r.is_finite() && r > 0.0 => Load::Rate { rps: r },
            _ => Load::Unbounded,
        })
    }
}

/// The metric a verdict is decided on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Primary {
    /// The metric key (unit-bearing).
    pub metric: String,
    /// Why this one.
    pub why: String,
}

/// The primary metric of a benchmark of `mode` under `load` (serving only; `None` = not
/// known, taken as the client's default, unbounded).
pub fn choose(mode: Mode, load: Option<Load>) -> Primary {
    let (metric, why) = match mode {
        Mode::Serving => match load.unwrap_or(Load::Unbounded) {
            Load::Rate { rps } => (
                "tpot_median_ms",
                format!(
                    "serving at a finite request rate ({rps} req/s): the arrival rate sets the \
                     output throughput, so the per-token latency (median TPOT) is what a change \
                     to the engine moves; TTFT and E2EL are reported beside it"
                ),
            ),
            Load::MaxConcurrency { n } => (
                "output_throughput_tps",
                format!(
                    "serving with at most {n} requests in flight: the engine's speed sets the \
                     output throughput"
                ),
            ),
            Load::Unbounded => (
                "output_throughput_tps",
                "serving at request rate inf (all requests at once): the engine's speed sets \
                 the output throughput"
                    .to_string(),
            ),
        },
        Mode::Throughput => (
            "total_throughput_tps",
            "offline throughput: tokens per second over the whole batch".to_string(),
        ),
        Mode::Latency => (
            "latency_avg_s",
            "offline latency: the average latency of one batch".to_string(),
        ),
        Mode::PrefixCaching => (
            "cost_time_s",
            "prefix caching: the time the benchmark reports for its prompts".to_string(),
        ),
        Mode::Other => (
            "output_throughput_tps",
            "another benchmark script: output throughput when it reports one".to_string(),
        ),
    };
    Primary {
        metric: metric.to_string(),
        why,
    }
}

/// The primary metric of a planned step (its client argv says the load).
pub fn for_step(step: &crate::plan::StepPlan) -> Primary {
    let load = step
        .mode
        .needs_server()
        .then(|| Load::from_argv(&step.client.argv));
    choose(step.mode, load)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_load_decides_the_serving_metric() {
        let finite = Load::from_argv(&argv("bench serve --request-rate 50 --num-prompts 9"));
        assert_eq!(finite, Load::Rate { rps: 50.0 });
        assert_eq!(choose(Mode::Serving, Some(finite)).metric, "tpot_median_ms");
        for a in [
            "bench serve --num-prompts 9",
            "bench serve --request-rate inf",
            "bench serve --request-rate=inf",
        ] {
            let l = Load::from_argv(&argv(a));
            assert_eq!(l, Load::Unbounded, "{a}");
            assert_eq!(
                choose(Mode::Serving, Some(l)).metric,
                "output_throughput_tps"
            );
        }
        let bounded = Load::from_argv(&argv("x --request-rate 5 --max-concurrency=8"));
        assert_eq!(bounded, Load::MaxConcurrency { n: 8 });
        let p = choose(Mode::Serving, Some(bounded));
        assert_eq!(p.metric, "output_throughput_tps");
        assert!(p.why.contains("8 requests in flight"));
    }

    #[test]
    fn results_record_their_load() {
        let j = serde_json::json!({"request_rate": "inf", "max_concurrency": null});
        assert_eq!(Load::from_result(&j), Some(Load::Unbounded));
        let j = serde_json::json!({"request_rate": 12.5});
        assert_eq!(Load::from_result(&j), Some(Load::Rate { rps: 12.5 }));
        let j = serde_json::json!({"request_rate": 1, "max_concurrency": 4});
        assert_eq!(Load::from_result(&j), Some(Load::MaxConcurrency { n: 4 }));
        assert_eq!(Load::from_result(&serde_json::json!({})), None);
    }

    #[test]
    fn offline_modes_have_one_metric_each_with_a_reason() {
        for (mode, key) in [
            (Mode::Latency, "latency_avg_s"),
            (Mode::Throughput, "total_throughput_tps"),
            (Mode::PrefixCaching, "cost_time_s"),
        ] {
            let p = choose(mode, None);
            assert_eq!(p.metric, key);
            assert!(!p.why.is_empty());
        }
    }
}
