//! The result as vLLM's client gives it: the printed block (`{:<40} {:<10}` lines between
//! `=` rules) and the `--save-result` JSON (same keys; ours added under `client_*`).

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::metrics::{Stat, Summary};
use super::request::Outcome;

/// What the run was, for the block and the JSON.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub backend: String,
    pub label: Option<String>,
    pub model_id: String,
    pub tokenizer_id: String,
    pub num_prompts: usize,
    pub request_rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
    pub goodput: bool,
    pub duration: f64,
    pub date: String,
    pub metadata: Vec<(String, String)>,
    /// Our additions: (key, value).
    pub extra: Vec<(String, Value)>,
}

/// The printed name and section title of a metric.
fn names(metric: &str) -> (&'static str, &'static str) {
    match metric {
        "ttft" => ("TTFT", "Time to First Token"),
        "tpot" => ("TPOT", "Time per Output Token (excl. 1st token)"),
        "itl" => ("ITL", "Inter-token Latency"),
        "e2el" => ("E2EL", "End-to-end Latency"),
        "client_queue_time" => ("Client Queue Time", "Client-side Queueing"),
        _ => (
            "E2EL incl. Client Queue",
            "Queue-inclusive End-to-end Latency",
        ),
    }
}

/// `99` for 99.0, `99.9` otherwise (Python's `str(int(p)) if int(p) == p else str(p)`).
pub fn p_word(p: f64) -> String {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// A float as Python's `str()` prints it for the usual values (`100.0`, `inf`, `0.5`).
pub fn py_float(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// The result block.
pub fn block(r: &RunInfo, s: &Summary) -> String {
    let mut t = String::new();
    let int = |t: &mut String, label: &str, v: usize| {
        let _ = writeln!(t, "{label:<40} {v:<10}");
    };
    let flt = |t: &mut String, label: &str, v: f64| {
        let _ = writeln!(t, "{label:<40} {v:<10.2}");
    };
    let _ = writeln!(t, "{:=^50}", " Serving Benchmark Result ");
    int(&mut t, "Successful requests:", s.completed);
    int(&mut t, "Failed requests:", s.failed);
    if let Some(c) = r.max_concurrency {
        int(&mut t, "Maximum request concurrency:", c);
    }
    if r.request_rate.is_finite() {
        flt(&mut t, "Request rate configured (RPS):", r.request_rate);
    }
    flt(&mut t, "Benchmark duration (s):", r.duration);
    int(&mut t, "Total input tokens:", s.total_input);
    int(&mut t, "Total generated tokens:", s.total_output);
    flt(&mut t, "Request throughput (req/s):", s.request_throughput);
    if r.goodput {
        flt(&mut t, "Request goodput (req/s):", s.request_goodput);
    }
    flt(
        &mut t,
        "Output token throughput (tok/s):",
        s.output_throughput,
    );
    flt(
        &mut t,
        "Peak output token throughput (tok/s):",
        s.max_output_tokens_per_s,
    );
    flt(
        &mut t,
        "Peak concurrent requests:",
        s.max_concurrent_requests as f64,
    );
    flt(
        &mut t,
        "Total token throughput (tok/s):",
        s.total_token_throughput,
    );
    for st in &s.stats {
        let (name, title) = names(&st.name);
        let _ = writeln!(t, "{title:-^50}");
        flt(&mut t, &format!("Mean {name} (ms):"), st.mean);
        flt(&mut t, &format!("Median {name} (ms):"), st.median);
        for (p, v) in &st.percentiles {
            flt(&mut t, &format!("P{} {name} (ms):", p_word(*p)), *v);
        }
    }
    let _ = writeln!(t, "{}", "=".repeat(50));
    t
}

fn stat_fields(st: &Stat, out: &mut Vec<(String, Value)>) {
    let n = &st.name;
    out.push((format!("mean_{n}_ms"), json!(st.mean)));
    out.push((format!("median_{n}_ms"), json!(st.median)));
    out.push((format!("std_{n}_ms"), json!(st.std)));
    for (p, v) in &st.percentiles {
        out.push((format!("p{}_{n}_ms", p_word(*p)), json!(v)));
    }
}

/// The result JSON, keys in vLLM's order; `detailed` adds the per-request arrays.
pub fn json_text(r: &RunInfo, s: &Summary, outs: &[Outcome], detailed: bool) -> String {
    let rate = if r.request_rate.is_finite() {
        json!(r.request_rate)
    } else {
        json!("inf")
    };
    let mut f: Vec<(String, Value)> = vec![
        ("date".into(), json!(r.date)),
        ("endpoint_type".into(), json!(r.backend)),
        ("backend".into(), json!(r.backend)),
        ("label".into(), json!(r.label)),
        ("model_id".into(), json!(r.model_id)),
        ("tokenizer_id".into(), json!(r.tokenizer_id)),
        ("num_prompts".into(), json!(r.num_prompts)),
    ];
    f.extend(r.metadata.iter().map(|(k, v)| (k.clone(), json!(v))));
    f.extend([
        ("request_rate".into(), rate),
        ("burstiness".into(), json!(r.burstiness)),
        ("max_concurrency".into(), json!(r.max_concurrency)),
        ("duration".into(), json!(r.duration)),
        ("completed".into(), json!(s.completed)),
        ("failed".into(), json!(s.failed)),
        ("total_input_tokens".into(), json!(s.total_input)),
        ("total_output_tokens".into(), json!(s.total_output)),
        ("request_throughput".into(), json!(s.request_throughput)),
        (
            "request_goodput".into(),
            if r.goodput {
                json!(s.request_goodput)
            } else {
                Value::Null
            },
        ),
        ("output_throughput".into(), json!(s.output_throughput)),
        (
            "total_token_throughput".into(),
            json!(s.total_token_throughput),
        ),
    ]);
    if detailed {
        let col = |g: &dyn Fn(&Outcome) -> Value| Value::Array(outs.iter().map(g).collect());
        f.extend([
            ("input_lens".into(), col(&|o| json!(o.prompt_len))),
            ("output_lens".into(), json!(s.output_lens)),
            ("ttfts".into(), col(&|o| json!(o.ttft))),
            ("itls".into(), col(&|o| json!(o.itl))),
            ("latencies".into(), col(&|o| json!(o.latency))),
            ("start_times".into(), col(&|o| json!(o.start))),
            ("queue_times".into(), col(&|o| json!(o.queue))),
            ("generated_texts".into(), col(&|o| json!(o.text))),
            ("errors".into(), col(&|o| json!(o.error))),
        ]);
    }
    f.extend([
        (
            "max_output_tokens_per_s".into(),
            json!(s.max_output_tokens_per_s),
        ),
        (
            "max_concurrent_requests".into(),
            json!(s.max_concurrent_requests),
        ),
        ("rtfx".into(), json!(0.0)),
    ]);
    for st in &s.stats {
        stat_fields(st, &mut f);
    }
    f.extend(r.extra.iter().cloned());
    let mut out = String::from("{");
    for (i, (k, v)) in f.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push_str(": ");
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// Where the result goes: `--result-filename`, else vLLM's
/// `{label}-{rate}qps[-concurrency{C}]-{model basename}-{date}.json`, under `--result-dir`.
pub fn result_path(r: &RunInfo, filename: Option<&str>, dir: Option<&std::path::Path>) -> PathBuf {
    let name = filename.map(str::to_string).unwrap_or_else(|| {
        let base = r.model_id.rsplit('/').next().unwrap_or(&r.model_id);
        let conc = r
            .max_concurrency
            .map(|c| format!("-concurrency{c}"))
            .unwrap_or_default();
        let label = r.label.as_deref().unwrap_or(&r.backend);
        format!(
            "{label}-{}qps{conc}-{base}-{}.json",
            py_float(r.request_rate),
            r.date
        )
    });
    match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_formatting() {
        assert_eq!(p_word(99.0), "99");
        assert_eq!(p_word(99.9), "99.9");
        assert_eq!(py_float(100.0), "100.0");
        assert_eq!(py_float(f64::INFINITY), "inf");
        assert_eq!(py_float(2.5), "2.5");
        assert_eq!(
            format!("{:-^50}", "Time to First Token"),
            "---------------Time to First Token----------------"
        );
        assert_eq!(
            format!("{:-^50}", "Time per Output Token (excl. 1st token)"),
            "-----Time per Output Token (excl. 1st token)------"
        );
    }
}
