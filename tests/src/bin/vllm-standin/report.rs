//! The serving benchmark's result: the printed block and the `--save-result` JSON, in vLLM's
//! layouts (new, or old with `old_format`).

use crate::logs::{date_compact, err, out, py_center, py_float};
use crate::numeric::{mean, percentile, std_dev};
use serde_json::{Map, Value, json};

/// The benchmark's options (what vLLM's argparse gives it).
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Opts {
    pub backend: String,
    pub endpoint: String,
    pub chat: bool,
    pub base_url: Option<String>,
    pub host: String,
    pub port: u16,
    pub model: Option<String>,
    pub tokenizer: Option<String>,
    pub served_model_name: Option<String>,
    pub num_prompts: usize,
    pub dataset: String,
    pub dataset_path: Option<String>,
    pub input_len: usize,
    pub output_len: usize,
    pub range_ratio: f64,
    pub sharegpt_output_len: Option<usize>,
    pub request_rate: f64,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
    pub seed: u64,
    pub ignore_eos: bool,
    pub save_result: bool,
    pub save_detailed: bool,
    pub result_dir: Option<String>,
    pub result_filename: Option<String>,
    pub label: Option<String>,
    pub percentile_metrics: Vec<String>,
    pub metric_percentiles: Vec<f64>,
    pub disable_tqdm: bool,
    pub old: bool,
}

/// One request's result, in seconds (vLLM's `RequestFuncOutput`).
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub struct Outcome {
    pub prompt_len: usize,
    pub output_len: usize,
    pub ttft: f64,
    pub itl: Vec<f64>,
    pub latency: f64,
    pub success: bool,
    pub error: String,
    pub text: String,
    /// When it was sent, seconds after the benchmark started.
    pub start: f64,
}

fn metric_values(name: &str, ok: &[&Outcome]) -> Vec<f64> {
    match name {
        "ttft" => ok.iter().map(|o| o.ttft * 1000.0).collect(),
        "tpot" => ok
            .iter()
            .filter(|o| o.output_len > 1)
            .map(|o| (o.latency - o.ttft) / (o.output_len - 1) as f64 * 1000.0)
            .collect(),
        "itl" => ok
            .iter()
            .flat_map(|o| o.itl.iter().map(|x| x * 1000.0))
            .collect(),
        "e2el" => ok.iter().map(|o| o.latency * 1000.0).collect(),
        _ => Vec::new(),
    }
}

fn title(name: &str) -> &'static str {
    match name {
        "ttft" => "Time to First Token",
        "tpot" => "Time per Output Token (excl. 1st token)",
        "itl" => "Inter-token Latency",
        _ => "End-to-end Latency",
    }
}

fn p_word(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Peak tokens per one-second bucket, and peak concurrent requests.
fn peaks(ok: &[&Outcome], all: &[Outcome]) -> (f64, usize) {
    let mut buckets: std::collections::HashMap<u64, usize> = Default::default();
    for o in ok {
        let mut t = o.start + o.ttft;
        *buckets.entry(t.max(0.0) as u64).or_default() += 1;
        for d in &o.itl {
            t += d;
            *buckets.entry(t.max(0.0) as u64).or_default() += 1;
        }
    }
    let mut edges: Vec<(f64, i64)> = all
        .iter()
        .flat_map(|o| [(o.start, 1), (o.start + o.latency, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i64, 0i64);
    for (_, d) in edges {
        cur += d;
        max = max.max(cur);
    }
    (
        buckets.values().copied().max().unwrap_or(0) as f64,
        max.max(0) as usize,
    )
}

fn row(label: &str, v: impl std::fmt::Display) {
    out(&format!("{label:<40} {v:<10}"));
}

fn rowf(label: &str, v: f64) {
    out(&format!("{label:<40} {v:<10.2}"));
}

/// Prints the result block, writes the JSON when asked; returns the exit code.
pub fn finish(o: &Opts, model: &str, outcomes: &[Outcome], duration: f64) -> i32 {
    let ok: Vec<&Outcome> = outcomes.iter().filter(|x| x.success).collect();
    let completed = ok.len();
    if completed == 0 {
        err(
            "UserWarning: All requests failed. This is likely due to a misconfiguration on the benchmark arguments.",
        );
    }
    let total_input: usize = ok.iter().map(|x| x.prompt_len).sum();
    let total_output: usize = ok.iter().map(|x| x.output_len).sum();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
    let (req_tp, out_tp, in_tp) = (
        per_s(completed as f64),
        per_s(total_output as f64),
        per_s(total_input as f64),
    );
    let (peak_tp, peak_conc) = peaks(&ok, outcomes);
    let metrics: Vec<String> = if o.old {
        vec!["ttft".into(), "tpot".into(), "itl".into()]
    } else {
        o.percentile_metrics.clone()
    };
    let percents = if o.old {
        vec![99.0]
    } else {
        o.metric_percentiles.clone()
    };

    out(&py_center(" Serving Benchmark Result ", 50, '='));
    row("Successful requests:", completed);
    if !o.old && completed < outcomes.len() {
        row("Failed requests:", outcomes.len() - completed);
    }
    if let (false, Some(c)) = (o.old, o.max_concurrency) {
        row("Maximum request concurrency:", c);
    }
    if !o.old && o.request_rate.is_finite() {
        rowf("Request rate configured (RPS):", o.request_rate);
    }
    rowf("Benchmark duration (s):", duration);
    row("Total input tokens:", total_input);
    row("Total generated tokens:", total_output);
    rowf("Request throughput (req/s):", req_tp);
    if o.old {
        rowf("Input token throughput (tok/s):", in_tp);
        rowf("Output token throughput (tok/s):", out_tp);
    } else {
        rowf("Output token throughput (tok/s):", out_tp);
        rowf("Peak output token throughput (tok/s):", peak_tp);
        rowf("Peak concurrent requests:", peak_conc as f64);
        rowf("Total Token throughput (tok/s):", in_tp + out_tp);
    }
    let mut stats = Map::new();
    for m in &metrics {
        let values = metric_values(m, &ok);
        let upper = m.to_uppercase();
        out(&py_center(title(m), 50, '-'));
        let (mean_v, median_v) = (mean(&values), percentile(&values, 50.0));
        rowf(&format!("Mean {upper} (ms):"), mean_v);
        rowf(&format!("Median {upper} (ms):"), median_v);
        stats.insert(format!("mean_{m}_ms"), json!(mean_v));
        stats.insert(format!("median_{m}_ms"), json!(median_v));
        stats.insert(format!("std_{m}_ms"), json!(std_dev(&values)));
        for p in &percents {
            let v = percentile(&values, *p);
            rowf(&format!("P{} {upper} (ms):", p_word(*p)), v);
            stats.insert(format!("p{}_{m}_ms", p_word(*p)), json!(v));
        }
    }
    out(&"=".repeat(50));
    if !o.save_result {
        return 0;
    }
    let rate = if o.request_rate.is_finite() {
        json!(o.request_rate)
    } else {
        json!("inf")
    };
    let mut r = Map::new();
    let date = date_compact();
    r.insert("date".into(), json!(date));
    r.insert("backend".into(), json!(o.backend));
    r.insert("model_id".into(), json!(model));
    r.insert(
        "tokenizer_id".into(),
        json!(o.tokenizer.clone().unwrap_or_else(|| model.to_string())),
    );
    r.insert("num_prompts".into(), json!(o.num_prompts));
    r.insert("request_rate".into(), rate);
    r.insert("duration".into(), json!(duration));
    r.insert("completed".into(), json!(completed));
    r.insert("total_input_tokens".into(), json!(total_input));
    r.insert("total_output_tokens".into(), json!(total_output));
    r.insert("request_throughput".into(), json!(req_tp));
    r.insert("output_throughput".into(), json!(out_tp));
    if o.old {
        r.insert("input_throughput".into(), json!(in_tp));
        r.insert("best_of".into(), json!(1));
        r.insert("use_beam_search".into(), json!(false));
    } else {
        r.insert("label".into(), json!(o.label));
        r.insert("endpoint_type".into(), json!(o.backend));
        r.insert("burstiness".into(), json!(o.burstiness));
        r.insert("max_concurrency".into(), json!(o.max_concurrency));
        r.insert("failed".into(), json!(outcomes.len() - completed));
        r.insert("request_goodput".into(), Value::Null);
        r.insert("total_token_throughput".into(), json!(in_tp + out_tp));
        r.insert("max_output_tokens_per_s".into(), json!(peak_tp));
        r.insert("max_concurrent_requests".into(), json!(peak_conc));
    }
    if o.old || o.save_detailed {
        r.insert(
            "input_lens".into(),
            json!(outcomes.iter().map(|x| x.prompt_len).collect::<Vec<_>>()),
        );
        r.insert(
            "output_lens".into(),
            json!(outcomes.iter().map(|x| x.output_len).collect::<Vec<_>>()),
        );
        r.insert(
            "ttfts".into(),
            json!(outcomes.iter().map(|x| x.ttft).collect::<Vec<_>>()),
        );
        r.insert(
            "itls".into(),
            json!(outcomes.iter().map(|x| x.itl.clone()).collect::<Vec<_>>()),
        );
        r.insert(
            "generated_texts".into(),
            json!(outcomes.iter().map(|x| x.text.clone()).collect::<Vec<_>>()),
        );
        r.insert(
            "errors".into(),
            json!(outcomes.iter().map(|x| x.error.clone()).collect::<Vec<_>>()),
        );
    }
    r.extend(stats);
    let base_model = model.rsplit('/').next().unwrap_or(model);
    let file = o.result_filename.clone().unwrap_or_else(|| {
        let label = o.label.clone().unwrap_or_else(|| o.backend.clone());
        let conc = o
            .max_concurrency
            .map(|c| format!("-concurrency{c}"))
            .unwrap_or_default();
        format!(
            "{label}-{}qps{conc}-{base_model}-{date}.json",
            py_float(o.request_rate)
        )
    });
    let path = match &o.result_dir {
        Some(d) => {
            let _ = std::fs::create_dir_all(d);
            std::path::Path::new(d).join(&file)
        }
        None => std::path::PathBuf::from(&file),
    };
    let text = serde_json::to_string(&Value::Object(r)).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, text) {
        err(&format!(
            "Traceback (most recent call last):\n  File \"serve.py\", line 1100, in main\n    with open(file_name, \"w\", encoding='utf-8') as outfile:\n\
             FileNotFoundError: [Errno {}] {e}: '{}'",
            e.raw_os_error().unwrap_or(2),
            path.display()
        ));
        return 1;
    }
    0
}
