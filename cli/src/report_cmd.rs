//! `perf-runner report RUN_ID`: the report of a stored run as markdown, JSON or a
//! self-contained HTML page; with `--out DIR`, the report file plus, for serving tasks, one
//! JSON per variant in vLLM's `--save-result` schema under `DIR/vllm/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use clap::ValueEnum;
use runner_core::record::RunId;
use runner_core::report::{
    ReportError, ReportOptions, build, html, markdown, table, write_vllm_results,
};
use runner_core::store::{Store, StoreError};
use runner_core::{exit, text};

/// Formats of `report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown tables.
    Md,
    /// JSON with a `schema_version`.
    Json,
    /// One self-contained HTML page with inline SVG plots.
    Html,
    /// The long table as CSV: one row per attempt × metric (task × variant × metric × run).
    Csv,
    /// The long table as JSON lines.
    Jsonl,
    /// The ISO-Bench-style wide view as CSV: one row per task, `baseline_*`, `human_*`,
    /// `agent_*` medians and their ratios.
    WideCsv,
    /// The wide view as JSON lines.
    WideJsonl,
    /// The long table as a Parquet file (needs `--out`, or a pipe: it is binary).
    Parquet,
    /// The wide view as a Parquet file (needs `--out`, or a pipe).
    WideParquet,
}

impl ReportFormat {
    fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
            ReportFormat::Csv => "csv",
            ReportFormat::Jsonl => "jsonl",
            ReportFormat::WideCsv => "wide.csv",
            ReportFormat::WideJsonl => "wide.jsonl",
            ReportFormat::Parquet => "parquet",
            ReportFormat::WideParquet => "wide.parquet",
        }
    }
}

/// Options of `report`.
#[derive(Debug, Clone)]
pub struct Args {
    /// The run id.
    pub run_id: String,
    /// Output format.
    pub format: ReportFormat,
    /// Write the report and the vLLM-schema files here instead of printing the report.
    pub out: Option<PathBuf>,
    /// The results store (default: [`Store::default_path`]).
    pub store: Option<PathBuf>,
    /// The configured noise floor; default: the run's recorded `noise_floor`, else 0.02.
    pub noise_floor: Option<f64>,
    /// Judge against the configured floor even where the run has A/A repeats.
    pub no_aa_floor: bool,
    /// Bootstrap seed.
    pub seed: u64,
    /// The metric the tables and verdicts use instead of each task's primary one.
    pub metric: Option<String>,
}

/// The metric keys the run's successful attempts reported, sorted.
fn reported_metrics(store: &Store, run: &RunId) -> Result<Vec<String>> {
    let mut keys = std::collections::BTreeSet::new();
    for a in store.attempts(run)?.iter().filter(|a| a.succeeded()) {
        keys.extend(a.metrics.values().into_keys());
    }
    Ok(keys.into_iter().collect())
}

/// The configured floor: the flag, else the run's recorded `noise_floor`, else 0.02.
fn configured_floor(flag: Option<f64>, meta: &serde_json::Value) -> Result<f64> {
    let from_meta = meta.get("noise_floor").and_then(serde_json::Value::as_f64);
    let floor = flag.or(from_meta).unwrap_or(0.02);
    if !(0.0..1.0).contains(&floor) {
        return Err(anyhow!(
            "--noise-floor {floor}: give a fraction in [0, 1), e.g. 0.02 for ±2 %"
        ));
    }
    Ok(floor)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Run `report`. A bad run id is a usage error; a missing store or run prints an error and
/// returns [`exit::INPUT`].
pub fn run(a: Args) -> Result<i32> {
    let run: RunId = a.run_id.parse().map_err(|e: String| anyhow!(e))?;
    let path = a.store.clone().unwrap_or_else(Store::default_path);
    if !path.is_file() {
        eprintln!(
            "error: no results store at {} (give one with --store, or run `perf-runner run` first)",
            text::escape(&path.display().to_string())
        );
        return Ok(exit::INPUT);
    }
    let store = Store::open(&path)?;
    let meta = match store.run_meta(&run) {
        Ok(meta) => meta,
        Err(StoreError::NoSuchRun(id)) => {
            let runs = store.runs()?;
            let newest: Vec<String> = runs.iter().take(5).map(|r| r.id.0.clone()).collect();
            let hint = if newest.is_empty() {
                "the store has no runs".to_string()
            } else {
                format!("newest runs: {}", newest.join(", "))
            };
            eprintln!(
                "error: no run '{}' in {} ({hint})",
                text::escape(&id),
                text::escape(&path.display().to_string())
            );
            return Ok(exit::INPUT);
        }
        Err(e) => return Err(e.into()),
    };
    let opts = ReportOptions {
        seed: a.seed,
        configured_floor: configured_floor(a.noise_floor, &meta)?,
        aa_floor: !a.no_aa_floor,
        metric: a.metric.clone(),
        ..ReportOptions::default()
    };
    if let Some(metric) = &a.metric {
        let known = reported_metrics(&store, &run)?;
        if !known.contains(metric) {
            let list = if known.is_empty() {
                "the run has no successful attempt".to_string()
            } else {
                format!("its attempts reported: {}", known.join(", "))
            };
            eprintln!(
                "error: --metric {}: no attempt of run {run} reported it ({list})",
                text::escape(metric)
            );
            return Ok(exit::USAGE);
        }
    }
    let report = match build(&store, &run, &opts) {
        Ok(r) => r,
        Err(ReportError::Store(StoreError::NoSuchRun(id))) => {
            eprintln!(
                "error: no run '{}' in {}",
                text::escape(&id),
                text::escape(&path.display().to_string())
            );
            return Ok(exit::INPUT);
        }
        Err(e) => return Err(e.into()),
    };
    let parquet = |t: table::Table| {
        runner_core::parquet_rows::write(&t.columns, &t.rows).map_err(anyhow::Error::msg)
    };
    let bytes: Vec<u8> = match a.format {
        ReportFormat::Md => markdown(&report).into(),
        ReportFormat::Json => (text::json_pretty(&report)? + "\n").into(),
        ReportFormat::Html => html(&report).into(),
        ReportFormat::Csv => table::long_table(&store.attempts(&run)?).to_csv().into(),
        ReportFormat::Jsonl => table::long_table(&store.attempts(&run)?).to_jsonl().into(),
        ReportFormat::WideCsv => table::wide_table(&report).to_csv().into(),
        ReportFormat::WideJsonl => table::wide_table(&report).to_jsonl().into(),
        ReportFormat::Parquet => parquet(table::long_table(&store.attempts(&run)?))?,
        ReportFormat::WideParquet => parquet(table::wide_table(&report))?,
    };
    let Some(dir) = a.out else {
        let binary = matches!(a.format, ReportFormat::Parquet | ReportFormat::WideParquet);
        if binary && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            let name = a.format.to_possible_value();
            eprintln!(
                "error: --format {} is binary: give --out DIR, or pipe it to a file",
                name.as_ref().map_or("parquet", |v| v.get_name())
            );
            return Ok(exit::USAGE);
        }
        std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
        return Ok(exit::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join(format!("report.{}", a.format.extension()));
    write(&file, &bytes)?;
    println!("{}", text::escape(&file.display().to_string()));
    for p in write_vllm_results(&report, &dir.join("vllm"))? {
        println!("{}", text::escape(&p.display().to_string()));
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_precedence() {
        let meta = serde_json::json!({"noise_floor": 0.05});
        assert_eq!(configured_floor(Some(0.01), &meta).unwrap(), 0.01);
        assert_eq!(configured_floor(None, &meta).unwrap(), 0.05);
        assert_eq!(
            configured_floor(None, &serde_json::json!({})).unwrap(),
            0.02
        );
        assert!(configured_floor(Some(1.5), &meta).is_err());
    }
}
