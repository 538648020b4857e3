//! `perf-runner triage`: before any GPU is rented, whether each commit can be verified and
//! why, from evidence.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use runner_core::exit;
use runner_core::settings::Settings;
use runner_core::task::Task;
use runner_core::triage::{TriageOptions, TriageReport, VllmSource, triage_dataset};

use crate::datasets;

/// Output formats of `triage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TriageFormat {
    /// A markdown report.
    Md,
    /// JSON with a `schema_version`.
    Json,
}

/// Options of `triage`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset file (omit for the embedded example).
    dataset: Option<PathBuf>,
    /// Also check per-commit wheels and images over the network (bounded, retried).
    #[arg(long)]
    online: bool,
    #[command(flatten)]
    intake: datasets::Intake,
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    format: TriageFormat,
    /// Write the skip list (`<commit> <code> <detail>` per not-verifiable task) to FILE.
    #[arg(long, value_name = "FILE")]
    emit_skip_list: Option<PathBuf>,
}

/// Triage options from the settings and the command line.
pub fn options(settings: &Settings, online: bool, vllm_source: Option<&str>) -> TriageOptions {
    TriageOptions {
        online,
        vllm_source: vllm_source.map(VllmSource::parse),
        datasets: settings.datasets.clone(),
        ..TriageOptions::from_sources(settings.artifacts.clone())
    }
}

/// Triage tasks (async: online checks and source probes are batched).
pub async fn triage(tasks: &[Task], opts: &TriageOptions) -> TriageReport {
    triage_dataset(tasks, opts).await
}

pub async fn run(a: Args, settings: &Settings) -> Result<i32> {
    let ds = datasets::load(a.dataset.as_deref(), settings, &a.intake)?;
    let opts = options(settings, a.online, a.intake.vllm_source.as_deref());
    let report = triage(&ds.tasks, &opts).await;
    match a.format {
        TriageFormat::Md => print!("{}", report.to_markdown()),
        TriageFormat::Json => {
            let mut v = report.to_json();
            v["origin"] = ds.origin.clone().into();
            v["rejected_rows"] = serde_json::to_value(&ds.errors)?;
            println!("{}", runner_core::text::json_pretty(&v)?);
        }
    }
    if let Some(path) = &a.emit_skip_list {
        write_skip_list(path, &report)?;
        eprintln!(
            "skip list written to {}",
            runner_core::text::escape(&path.display().to_string())
        );
    }
    Ok(if ds.errors.is_empty() {
        exit::SUCCESS
    } else {
        exit::INPUT
    })
}

fn write_skip_list(path: &Path, report: &TriageReport) -> Result<()> {
    std::fs::write(path, report.skip_list())
        .with_context(|| format!("--emit-skip-list {}", path.display()))
}
