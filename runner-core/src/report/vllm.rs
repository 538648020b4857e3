//! Serving results in vLLM's `--save-result` schema, so tools that read vLLM's JSON files can
//! read ours: per serving task and variant, the median repeat's metrics mapped back to vLLM's
//! field names (`request_throughput`, `output_throughput`, `mean_ttft_ms`, `p99_ttft_ms`,
//! `duration`, `completed` …), plus the run settings the client argv names.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{Report, ReportError, TaskReport, VariantReport};
use crate::spec::Mode;

/// Our keys that map one to one onto vLLM's fields (the inverse of the parser's table).
const FIELDS: &[(&str, &str)] = &[
    ("completed", "completed"),
    ("failed", "failed"),
    ("duration_s", "duration"),
    ("total_input_tokens", "total_input_tokens"),
    ("total_output_tokens", "total_output_tokens"),
    ("request_throughput_rps", "request_throughput"),
    ("request_goodput_rps", "request_goodput"),
    ("input_throughput_tps", "input_throughput"),
    ("output_throughput_tps", "output_throughput"),
    ("total_throughput_tps", "total_token_throughput"),
    ("peak_output_throughput_tps", "max_output_tokens_per_s"),
    ("peak_concurrent_requests", "max_concurrent_requests"),
];

/// Fields vLLM writes as integers.
const INTEGER_FIELDS: &[&str] = &[
    "completed",
    "failed",
    "total_input_tokens",
    "total_output_tokens",
    "max_concurrent_requests",
];

const FAMILIES: &[&str] = &["ttft", "tpot", "itl", "e2el"];

/// One file to write.
#[derive(Debug, Clone, PartialEq)]
pub struct VllmResultFile {
    /// File name: `<commit 12>-<variant>.json`.
    pub file_name: String,
    /// The JSON document.
    pub json: Value,
}

/// vLLM's field for one of our keys: `ttft_p99_9_ms` → `p99.9_ttft_ms`.
fn vllm_field(key: &str) -> Option<String> {
    if let Some((_, f)) = FIELDS.iter().find(|(k, _)| *k == key) {
        return Some((*f).to_string());
    }
    let body = key.strip_suffix("_ms")?;
    let (family, stat) = body.split_once('_')?;
    if !FAMILIES.contains(&family) {
        return None;
    }
    let stat = match stat {
        "mean" | "median" | "std" => stat.to_string(),
        p => {
            let digits = p.strip_prefix('p')?;
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
                return None;
            }
            format!("p{}", digits.replace('_', "."))
        }
    };
    Some(format!("{stat}_{family}_ms"))
}

/// The value after `flag` in an argv (`--flag V` or `--flag=V`).
fn arg<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    argv.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            argv.get(i + 1).map(String::as_str)
        } else {
            a.strip_prefix(flag).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn number_or_text(s: &str) -> Value {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => json!(v),
        _ => json!(s),
    }
}

/// The `--save-result`-schema JSON of a variant's median repeat (`None` when the task is not
/// serving or the variant has no successful repeat).
pub fn vllm_result(report: &Report, task: &TaskReport, v: &VariantReport) -> Option<Value> {
    if task.mode != Some(Mode::Serving) {
        return None;
    }
    let run = v.median_run.as_ref()?;
    let argv = &run.client_argv;
    let mut obj = Map::new();
    let date = chrono::DateTime::parse_from_rfc3339(&run.started_at)
        .map(|d| d.format("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_default();
    obj.insert("date".into(), json!(date));
    obj.insert(
        "backend".into(),
        json!(arg(argv, "--backend").unwrap_or("vllm")),
    );
    let model = arg(argv, "--model");
    obj.insert("model_id".into(), json!(model));
    obj.insert(
        "tokenizer_id".into(),
        json!(arg(argv, "--tokenizer").or(model)),
    );
    let prompts = arg(argv, "--num-prompts").and_then(|n| n.parse::<u64>().ok());
    obj.insert("num_prompts".into(), json!(prompts));
    obj.insert(
        "request_rate".into(),
        arg(argv, "--request-rate").map_or(json!("inf"), number_or_text),
    );
    obj.insert(
        "burstiness".into(),
        arg(argv, "--burstiness").map_or(json!(1.0), number_or_text),
    );
    obj.insert(
        "max_concurrency".into(),
        arg(argv, "--max-concurrency").map_or(Value::Null, number_or_text),
    );
    for (key, value) in &run.metrics {
        let Some(field) = vllm_field(key) else {
            continue;
        };
        let value = if INTEGER_FIELDS.contains(&field.as_str()) && value.fract() == 0.0 {
            json!(*value as i64)
        } else {
            json!(value)
        };
        obj.insert(field, value);
    }
    obj.insert(
        "perf_runner".into(),
        json!({
            "run_id": report.run.id,
            "commit": task.commit,
            "variant": v.label(),
            "repeat": run.repeat,
            "attempt": run.attempt,
            "engine_version": run.engine_version,
            "selected": format!(
                "median of {} repeats by {}",
                v.samples.len(),
                task.primary_metric.as_deref().unwrap_or("?")
            ),
        }),
    );
    Some(Value::Object(obj))
}

/// A commit (or any stored text) made safe as a file-name part.
fn file_part(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Every serving variant's result file (A/A repeats excluded).
pub fn vllm_results(report: &Report) -> Vec<VllmResultFile> {
    let mut out = Vec::new();
    for task in &report.tasks {
        for v in task.variants.iter().filter(|v| !v.aa) {
            if let Some(json) = vllm_result(report, task, v) {
                out.push(VllmResultFile {
                    file_name: format!("{}-{}.json", file_part(&task.commit, 12), v.variant),
                    json,
                });
            }
        }
    }
    out
}

/// Write [`vllm_results`] into `dir` (created if needed); returns the paths written.
pub fn write_vllm_results(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path, source| ReportError::Io {
        path: path.display().to_string(),
        source,
    };
    let files = vllm_results(report);
    if !files.is_empty() {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let mut written = Vec::new();
    for f in files {
        let path = dir.join(&f.file_name);
        let text = serde_json::to_string_pretty(&f.json).unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(|e| io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_back_to_vllm_names() {
        let f = |k| vllm_field(k);
        assert_eq!(
            f("output_throughput_tps").as_deref(),
            Some("output_throughput")
        );
        assert_eq!(
            f("total_throughput_tps").as_deref(),
            Some("total_token_throughput")
        );
        assert_eq!(f("duration_s").as_deref(), Some("duration"));
        assert_eq!(f("ttft_mean_ms").as_deref(), Some("mean_ttft_ms"));
        assert_eq!(f("itl_p99_9_ms").as_deref(), Some("p99.9_itl_ms"));
        assert_eq!(f("e2el_p90_ms").as_deref(), Some("p90_e2el_ms"));
        assert_eq!(f("latency_avg_s"), None);
        assert_eq!(f("foo_mean_ms"), None);
    }

    #[test]
    fn argv_values() {
        let argv: Vec<String> = ["x", "--model", "m/7b", "--num-prompts=100"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(arg(&argv, "--model"), Some("m/7b"));
        assert_eq!(arg(&argv, "--num-prompts"), Some("100"));
        assert_eq!(arg(&argv, "--backend"), None);
        assert_eq!(file_part("ab/../c", 12), "ab____c");
    }
}
