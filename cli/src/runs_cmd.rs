//! `perf-runner runs`: the runs in the results store.

use std::path::Path;

use anyhow::Result;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use runner_core::store::Store;
use runner_core::{exit, text};
use serde_json::json;

use crate::Format;

pub fn run(store_path: &Path, format: Format) -> Result<i32> {
    let store = Store::open(store_path)?;
    let runs = store.runs()?;
    match format {
        Format::Json => {
            // Schema 2: `jobs` is {total, succeeded, failed} (it was an unnamed triple).
            let out = json!({"schema_version": 2, "store": store_path.display().to_string(), "runs": runs});
            println!("{}", text::json_pretty(&out)?);
        }
        Format::Text | Format::Table => {
            let mut t = Table::new();
            t.load_preset(UTF8_BORDERS_ONLY).set_header([
                "run",
                "created",
                "status",
                "backend",
                "jobs ok/failed/total",
                "dataset",
            ]);
            for r in &runs {
                let created: String = r.created_at.chars().take(19).collect();
                t.add_row([
                    text::cell(&r.id.0).into_owned(),
                    text::cell(&created).into_owned(),
                    r.status.as_str().to_string(),
                    text::cell(&r.backend).into_owned(),
                    format!("{}/{}/{}", r.jobs.succeeded, r.jobs.failed, r.jobs.total),
                    text::cell(&r.origin).into_owned(),
                ]);
            }
            println!("{t}");
            println!(
                "{} run(s) in {}",
                runs.len(),
                text::escape(&store_path.display().to_string())
            );
        }
    }
    Ok(exit::SUCCESS)
}
