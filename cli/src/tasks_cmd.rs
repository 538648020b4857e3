//! `perf-runner tasks`: validate a dataset and list its tasks.

use std::path::Path;

use anyhow::Result;
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use runner_core::dataset::RowError;
use runner_core::settings::Settings;
use runner_core::{Mode, Task, exit, text};
use schemars::JsonSchema;
use serde::Serialize;

use crate::{Format, datasets};

/// The JSON schema version of `tasks --format json`.
pub const SCHEMA_VERSION: u32 = 1;

/// A task's readiness to be planned: `ok`, or a failure code with its detail.
fn status(t: &Task) -> (&'static str, Option<String>) {
    match (&t.perf_command, &t.command_error) {
        (None, _) => ("no_perf_command", None),
        (Some(_), Some(e)) if t.policy_violation.is_some() => (
            t.policy_violation
                .as_ref()
                .map_or("bad_config", |v| v.code.code()),
            Some(e.clone()),
        ),
        (Some(_), Some(e)) => ("bad_config", Some(e.clone())),
        (Some(_), None) if t.parent.is_none() => (
            "bad_config",
            Some(
                "no parent commit (parent_commit or base_commit, or --vllm-source PATH to \
                 resolve it)"
                    .into(),
            ),
        ),
        _ => ("ok", None),
    }
}

/// `tasks --format json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TasksJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// Where the dataset came from.
    pub origin: String,
    /// Its tasks, in order.
    pub tasks: Vec<TaskJson>,
    /// Its rejected rows, each with line, field and what is wrong.
    pub errors: Vec<RowError>,
}

/// One task of [`TasksJson`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskJson {
    /// Dataset line.
    pub line: usize,
    /// The commit hash: whole, unless the dataset gave a prefix that no `--vllm-source` clone
    /// resolved.
    pub commit: String,
    /// Parent commit (the baseline), when known.
    pub parent: Option<String>,
    /// Commit subject.
    pub subject: Option<String>,
    /// Benchmark mode, when the command parsed.
    pub mode: Option<Mode>,
    /// The model the command names.
    pub model: Option<String>,
    /// GPUs, as `KIND:COUNT`.
    pub gpu_config: Option<String>,
    /// `ok`, or the failure code that keeps it from being planned.
    pub status: String,
    /// Why, when not `ok`.
    pub detail: Option<String>,
    /// Command flags the planner could not place (they stay with the client).
    pub unclassified_flags: Vec<String>,
}

impl TaskJson {
    fn of(t: &Task) -> TaskJson {
        let (status, detail) = status(t);
        TaskJson {
            line: t.source_line,
            commit: t.commit.clone(),
            parent: t.parent.clone(),
            subject: t.subject.clone(),
            mode: t.spec.as_ref().map(|s| s.mode),
            model: t.model().map(str::to_string),
            gpu_config: t.gpu.as_ref().map(ToString::to_string),
            status: status.to_string(),
            detail,
            unclassified_flags: t
                .spec
                .as_ref()
                .map(|s| s.unclassified().map(|f| f.name.clone()).collect())
                .unwrap_or_default(),
        }
    }
}

pub fn run(
    dataset: Option<&Path>,
    format: Format,
    settings: &Settings,
    intake: &datasets::Intake,
) -> Result<i32> {
    let ds = datasets::load(dataset, settings, intake)?;
    match format {
        Format::Json => {
            let out = TasksJson {
                schema_version: SCHEMA_VERSION,
                origin: ds.origin.clone(),
                tasks: ds.tasks.iter().map(TaskJson::of).collect(),
                errors: ds.errors.clone(),
            };
            println!("{}", text::json_pretty(&out)?);
        }
        Format::Text | Format::Table => {
            let mut table = Table::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_content_arrangement(ContentArrangement::Dynamic);
            if table.width().is_none() {
                table.set_width(160);
            }
            table.set_header([
                "line", "commit", "mode", "model", "gpus", "status", "subject",
            ]);
            for t in &ds.tasks {
                let (status, detail) = status(t);
                let status = match detail {
                    Some(d) => format!("{status}: {}", truncate(&d, 60)),
                    None => status.to_string(),
                };
                // Every cell may quote the dataset: one line, escaped.
                table.add_row([
                    t.source_line.to_string(),
                    text::cell(t.short()).into_owned(),
                    t.spec
                        .as_ref()
                        .map(|s| s.mode.to_string())
                        .unwrap_or_else(|| "-".into()),
                    text::cell(t.model().unwrap_or("-")).into_owned(),
                    t.gpu
                        .as_ref()
                        .map(|g| text::cell(&g.to_string()).into_owned())
                        .unwrap_or_else(|| "?".into()),
                    text::cell(&status).into_owned(),
                    text::cell(&truncate(t.subject.as_deref().unwrap_or(""), 50)).into_owned(),
                ]);
            }
            println!("{table}");
            let ok = ds.tasks.iter().filter(|t| status(t).0 == "ok").count();
            println!(
                "{} tasks ({} plannable), {} rejected rows — {}",
                ds.tasks.len(),
                ok,
                ds.errors.len(),
                text::escape(&ds.origin)
            );
        }
    }
    Ok(if ds.errors.is_empty() {
        exit::SUCCESS
    } else {
        exit::INPUT
    })
}

/// At most `n` characters, with an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}
