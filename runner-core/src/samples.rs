//! Samples of one metric for one side of a comparison, from results produced anywhere: vLLM's
//! JSON result files (`--save-result`, with per-request `ttfts`/`itls` when detailed;
//! `--output-json`, with per-iteration `latencies`), captured text outputs, several files per
//! side as repeats.
//!
//! Files are untrusted: each must be a regular file within `limits.max_result_bytes`, and a
//! file holding an impossible or wrongly typed value (see [`crate::parse::sanity`]) — in its
//! metrics or in its per-request/per-iteration arrays — is refused with the evidence, so no
//! ratio is ever computed from it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::benchmark::{OutputSource, RunOutput};
use crate::input::{Cap, read_capped};
use crate::parse::{guess_source_kind, parse_output, sanity};
use crate::settings::Limits;
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

/// Expand a path into result files: a directory's `*.json` (or, when it has none, its
/// `*.txt`/`*.log`) regular files, sorted; anything else as is (reading it says what is wrong
/// with it).
pub fn expand(path: &Path) -> Result<Vec<PathBuf>, String> {
    if !path.is_dir() {
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

/// The numbers of a per-sample array (`field`, or `field[i]` for nested ones), each scaled
/// by `scale` and checked against the bounds of `metric`; a non-number or an impossible value
/// is an error naming the field, index and value.
fn sample_values(
    v: &Value,
    field: &str,
    metric: &str,
    scale: f64,
    out: &mut Vec<f64>,
) -> Result<(), String> {
    let Some(items) = v.as_array() else {
        return Err(format!("${field} is not an array of numbers"));
    };
    for (i, item) in items.iter().enumerate() {
        let Some(x) = item.as_f64() else {
            return Err(format!("${field}[{i}] is {item}, expected a number"));
        };
        let x = x * scale;
        sanity::check(metric, x).map_err(|why| format!("${field}[{i}] = {x} {metric}: {why}"))?;
        out.push(x);
    }
    Ok(())
}

/// Per-request (or per-iteration) values of `metric` in a JSON result, when it carries them
/// (`Ok(None)` when it does not, an error when they are not all possible values).
fn detailed(json: &Value, metric: &str) -> Result<Option<(Vec<f64>, SampleKind)>, String> {
    let family = metric.split('_').next().unwrap_or_default();
    let (field, kind, scale) = match family {
        "ttft" => ("ttfts", SampleKind::PerRequest, 1000.0),
        "itl" => ("itls", SampleKind::PerRequest, 1000.0),
        "latency" => ("latencies", SampleKind::PerIteration, 1.0),
        _ => return Ok(None),
    };
    let Some(v) = json.get(field).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let mut values = Vec::new();
    if family == "itl" {
        // One array of inter-token latencies per request.
        let Some(requests) = v.as_array() else {
            return Err(format!("$.{field} is not an array of arrays of numbers"));
        };
        for (i, r) in requests.iter().enumerate() {
            sample_values(r, &format!(".{field}[{i}]"), metric, scale, &mut values)?;
        }
    } else {
        sample_values(v, &format!(".{field}"), metric, scale, &mut values)?;
    }
    Ok((!values.is_empty()).then_some((values, kind)))
}

/// Load one side with the default cap on file sizes; see [`load_side_capped`].
pub fn load_side(
    paths: &[PathBuf],
    metric: Option<&str>,
    per_sample: bool,
) -> Result<Side, String> {
    load_side_capped(paths, metric, per_sample, Limits::default().result())
}

/// Load one side. `metric` `None` picks the mode's primary metric. With a single file that
/// carries per-request/per-iteration values for the metric (and `per_sample`), those are the
/// samples; otherwise each file gives one value. Each file must be a regular file of at most
/// `cap` bytes whose values are all possible.
pub fn load_side_capped(
    paths: &[PathBuf],
    metric: Option<&str>,
    per_sample: bool,
    cap: Cap,
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
        let bytes = read_capped(f, cap).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
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
                    Some(c) if c.evidence.is_empty() => format!("the run failed ({})", c.code),
                    Some(c) => format!("the run failed ({}): {}", c.code, c.evidence.join("; ")),
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
        let detail = match serde_json::from_str::<Value>(&texts[0]) {
            Ok(j) => detailed(&j, &metric).map_err(|e| format!("{}: {e}", files[0].display()))?,
            Err(_) => None,
        };
        if let Some((v, kind)) = detail {
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
