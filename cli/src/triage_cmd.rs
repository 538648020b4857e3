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
        ..runner_core::session::triage_options(settings)
    }
}

/// Triage tasks (async: online checks and source probes are batched).
pub async fn triage(tasks: &[Task], opts: &TriageOptions) -> TriageReport {
    triage_dataset(tasks, opts).await
}

/// `triage --format json`: the triage report with the dataset's origin, its rejected rows
/// and, with `backend = "auto"`, where each task would go.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct TriageOut {
    /// The report.
    #[serde(flatten)]
    pub report: runner_core::triage::TriageJson,
    /// Per commit, the backend `auto` would give it (only with `backend = "auto"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backends: Option<std::collections::BTreeMap<String, crate::route::RouteJson>>,
    /// Where the dataset came from.
    pub origin: String,
    /// Its rejected rows.
    pub rejected_rows: Vec<runner_core::dataset::RowError>,
}

pub async fn run(a: Args, settings: &Settings) -> Result<i32> {
    let ds = datasets::load(a.dataset.as_deref(), settings, &a.intake)?;
    let opts = options(settings, a.online, a.intake.vllm_source.as_deref());
    let report = triage(&ds.tasks, &opts).await;
    let routes = crate::route::explain(&ds.tasks, settings).await?;
    match a.format {
        TriageFormat::Md => {
            print!("{}", report.to_markdown());
            if let Some(routes) = &routes {
                print!("{}", routes_markdown(routes));
            }
        }
        TriageFormat::Json => {
            let out = TriageOut {
                report: report.json(),
                backends: routes.as_ref().map(|routes| {
                    routes
                        .iter()
                        .map(|(c, r)| (c.clone(), r.to_json()))
                        .collect()
                }),
                origin: ds.origin.clone(),
                rejected_rows: ds.errors.clone(),
            };
            println!("{}", runner_core::text::json_pretty(&out)?);
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

/// `backend = "auto"`: per task, the backend that would take it and why the others would not.
fn routes_markdown(routes: &[(String, crate::route::Route)]) -> String {
    let mut out = String::from("\n## Backends (backend = \"auto\")\n\n");
    for (commit, route) in routes {
        let short = &commit[..commit.len().min(8)];
        match route.backend() {
            Some(b) => out.push_str(&format!("- `{short}`: **{b}**\n")),
            None => out.push_str(&format!(
                "- `{short}`: **not verifiable here**: no backend can take it\n"
            )),
        }
        for line in route.lines() {
            out.push_str(&format!("  - {}\n", runner_core::text::escape(&line)));
        }
    }
    out
}

fn write_skip_list(path: &Path, report: &TriageReport) -> Result<()> {
    std::fs::write(path, report.skip_list())
        .with_context(|| format!("--emit-skip-list {}", path.display()))
}
