//! Samples of one metric for one side of a comparison, from results produced anywhere: vLLM's
//! JSON result files (`--save-result`, with per-request `ttfts`/`itls` when detailed;
//! `--output-json`, with per-iteration `latencies`), captured text outputs, several files per
//! side as repeats.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::benchmark::{OutputSource, RunOutput};
use crate::parse::{guess_source_kind, parse_output};
use crate::spec::Mode;

/// The metric a mode is judged by.
pub fn primary_metric(mode: Mode) -> &'static str {
    match mode {
        Mode::Serving => "output_throughput_tps",
        Mode::Throughput => "total_throughput_tps",
        Mode::Latency => "latency_avg_s",
        Mode::PrefixCaching => "cost_time_s",
        Mode::Other => "output_throughput_tps",
    }
}

/// What one sample stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// One value per result file (each file is a repeat).
    PerRun,
    /// One value per request, from a detailed serving result.
    PerRequest,
    /// One value per iteration, from a latency result.
    PerIteration,
}

/// The samples of one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The metric.
    pub metric: String,
    /// The values, in the metric's unit.
    pub values: Vec<f64>,
    /// What a value stands for.
    pub kind: SampleKind,
    /// The files read.
    pub files: Vec<String>,
    /// The mode detected.
    pub mode: Option<Mode>,
}

/// Expand a path into result files: a file as is; a directory's `*.json` (or, when it has
/// none, its `*.txt`/`*.log`) files, sorted.
pub fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| format!("{}: not a readable file or directory ({e})", path.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let json: Vec<PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .cloned()
        .collect();
    let chosen = if json.is_empty() {
        files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "txt" || e == "log"))
            .collect()
    } else {
        json
    };
    if chosen.is_empty() {
        return Err(format!(
            "{}: no .json, .txt or .log result files in it",
            path.display()
        ));
    }
    Ok(chosen)
}

/// Per-request (or per-iteration) values of `metric` in a JSON result, when it carries them.
fn detailed(json: &Value, metric: &str) -> Option<(Vec<f64>, SampleKind)> {
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default()
    };
    let family = metric.split('_').next()?;
    let (values, kind) = match family {
        "ttft" => (
            nums(json.get("ttfts")?)
                .iter()
                .map(|s| s * 1000.0)
                .collect(),
            SampleKind::PerRequest,
        ),
        "itl" => (
            json.get("itls")?
                .as_array()?
                .iter()
                .flat_map(&nums)
                .map(|s| s * 1000.0)
                .collect(),
            SampleKind::PerRequest,
        ),
        "latency" => (nums(json.get("latencies")?), SampleKind::PerIteration),
        _ => return None,
    };
    (!Vec::<f64>::is_empty(&values)).then_some((values, kind))
}

/// Load one side. `metric` `None` picks the mode's primary metric. With a single file that
/// carries per-request/per-iteration values for the metric (and `per_sample`), those are the
/// samples; otherwise each file gives one value.
pub fn load_side(
    paths: &[PathBuf],
    metric: Option<&str>,
    per_sample: bool,
) -> Result<Side, String> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(expand(p)?);
    }
    let mut values = Vec::new();
    let mut mode = None;
    let mut chosen = metric.map(str::to_string);
    let mut texts = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let name = f.display().to_string();
        let out = RunOutput {
            sources: vec![OutputSource {
                kind: guess_source_kind(&name, &text),
                name: name.clone(),
                text: text.clone(),
            }],
            exit_code: None,
        };
        let parsed = parse_output(None, &out);
        mode = mode.or(parsed.mode);
        let key = chosen
            .get_or_insert_with(|| {
                parsed
                    .mode
                    .map(primary_metric)
                    .unwrap_or("output_throughput_tps")
                    .to_string()
            })
            .clone();
        match parsed.metrics.get(&key) {
            Some(v) => values.push(v),
            None => {
                let why = match &parsed.failure {
                    Some(c) => format!("the run failed ({})", c.code),
                    None => format!(
                        "it has no '{key}' (it has: {})",
                        parsed
                            .metrics
                            .0
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                return Err(format!("{name}: {why}"));
            }
        }
        texts.push(text);
    }
    let metric = chosen.ok_or("no result files")?;
    if per_sample && texts.len() == 1 {
        if let Some((v, kind)) = serde_json::from_str::<Value>(&texts[0])
            .ok()
            .and_then(|j| detailed(&j, &metric))
        {
            return Ok(Side {
                metric,
                values: v,
                kind,
                files: files.iter().map(|f| f.display().to_string()).collect(),
                mode,
            });
        }
    }
    Ok(Side {
        metric,
        values,
        kind: SampleKind::PerRun,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        mode,
    })
}
