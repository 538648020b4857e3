//! Samples of one metric for one side of a comparison, from results produced anywhere: vLLM's
//! JSON result files (`--save-result`, `--output-json`), files of several results appended one
//! JSON object per line (`--append-result`), captured text outputs, directories of files.
//!
//! **The replicate is a run.** Each result — a file, or a line of an appended file — gives one
//! value. Requests inside a run share that run's conditions (the same server, the same moment,
//! the same clocks), so per-request TTFTs or per-iteration latencies are never pooled as if
//! independent: they describe their run (its median and spread) and nothing more.
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
use crate::primary::Load;
use crate::settings::Limits;
use crate::spec::Mode;

/// The metric a mode is judged by when nothing is known of its load (serving: the client's
/// default, request rate inf). See [`crate::primary`] for the choice with its reason.
pub fn primary_metric(mode: Mode) -> String {
    crate::primary::choose(mode, None).metric
}

/// What the values inside one run stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// One value per run (the replicate).
    PerRun,
    /// One value per request, from a detailed serving result.
    PerRequest,
    /// One value per iteration, from a latency result.
    PerIteration,
}

/// The spread of a metric inside one run: descriptive, never a replicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Within {
    /// Per request or per iteration.
    pub kind: SampleKind,
    /// How many values the run holds.
    pub n: usize,
    /// Their median.
    pub median: f64,
    /// Their first and third quartiles.
    pub iqr: [f64; 2],
}

/// One run of one side: where it came from and its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    /// The file, with `:LINE` for a line of an appended file.
    pub source: String,
    /// The run's value of the metric.
    pub value: f64,
    /// The metric's spread inside the run, when the result carries per-request or
    /// per-iteration values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub within: Option<Within>,
}

/// The samples of one side: one value per run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The metric.
    pub metric: String,
    /// Why this metric, when it was chosen from the results (not named by the caller).
    pub why: Option<String>,
    /// One value per run, in the metric's unit.
    pub values: Vec<f64>,
    /// The runs behind `values`, in order.
    pub runs: Vec<Run>,
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

/// The per-request (or per-iteration) values of `metric` inside one JSON result, summarised
/// (`Ok(None)` when it carries none; an error when they are not all possible values).
fn within(json: &Value, metric: &str) -> Result<Option<Within>, String> {
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
    if values.is_empty() {
        return Ok(None);
    }
    values.sort_by(f64::total_cmp);
    let q = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
    Ok(Some(Within {
        kind,
        n: values.len(),
        median: crate::stats::median(&values).unwrap_or(f64::NAN),
        iqr: [q(0.25), q(0.75)],
    }))
}

/// The runs in one file's text: one JSON document, or one JSON object per line (an appended
/// result file), or one text output. `(source, text)` per run.
fn runs_in(name: &str, text: &str) -> Vec<(String, String)> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') && serde_json::from_str::<Value>(trimmed).is_err() {
        let lines: Vec<(usize, &str)> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .collect();
        let all_objects = lines.len() > 1
            && lines
                .iter()
                .all(|(_, l)| serde_json::from_str::<serde_json::Map<String, Value>>(l).is_ok());
        if all_objects {
            return lines
                .into_iter()
                .map(|(i, l)| (format!("{name}:{}", i + 1), l.to_string()))
                .collect();
        }
    }
    vec![(name.to_string(), text.to_string())]
}

/// Load one side with the default cap on file sizes; see [`load_side_capped`].
pub fn load_side(paths: &[PathBuf], metric: Option<&str>) -> Result<Side, String> {
    load_side_capped(paths, metric, Limits::default().result())
}

/// Load one side: one value per run (each file, each line of an appended file). `metric`
/// `None` picks the primary metric from what the first run says of its mode and load. Each
/// file must be a regular file of at most `cap` bytes whose values are all possible.
pub fn load_side_capped(paths: &[PathBuf], metric: Option<&str>, cap: Cap) -> Result<Side, String> {
    let mut files = Vec::new();
    for p in paths {
        files.extend(expand(p)?);
    }
    let mut runs = Vec::new();
    let mut mode = None;
    let mut chosen = metric.map(str::to_string);
    let mut why = None;
    for f in &files {
        let bytes = read_capped(f, cap).map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name = f.display().to_string();
        for (source, text) in runs_in(&name, &text) {
            let json = serde_json::from_str::<Value>(&text).ok();
            let out = RunOutput {
                sources: vec![OutputSource {
                    kind: guess_source_kind(&name, &text),
                    name: source.clone(),
                    text,
                }],
                exit_code: None,
            };
            let parsed = parse_output(None, &out);
            mode = mode.or(parsed.mode);
            if chosen.is_none() {
                let load = json.as_ref().and_then(Load::from_result);
                let p = match parsed.mode {
                    Some(m) => crate::primary::choose(m, load),
                    None => crate::primary::choose(Mode::Other, None),
                };
                why = Some(p.why);
                chosen = Some(p.metric);
            }
            let key = chosen.clone().unwrap_or_default();
            let Some(value) = parsed.metrics.get(&key) else {
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
                return Err(format!("{source}: {why}"));
            };
            let within = match &json {
                Some(j) => within(j, &key).map_err(|e| format!("{source}: {e}"))?,
                None => None,
            };
            runs.push(Run {
                source,
                value,
                within,
            });
        }
    }
    let metric = chosen.ok_or("no result files")?;
    Ok(Side {
        metric,
        why,
        values: runs.iter().map(|r| r.value).collect(),
        runs,
        files: files.iter().map(|f| f.display().to_string()).collect(),
        mode,
    })
}
