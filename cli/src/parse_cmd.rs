//! `perf-runner parse FILE…`: metrics with units and provenance, or a failure code with
//! evidence, for benchmark outputs produced anywhere.

use std::path::PathBuf;

use anyhow::Result;
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use runner_core::benchmark::{OutputSource, RunOutput};
use runner_core::metrics::Unit;
use runner_core::parse::{guess_source_kind, mode_from_flag, parse_output};
use runner_core::settings::Limits;
use runner_core::text::escape as esc;
use runner_core::{exit, text};
use schemars::JsonSchema;
use serde::Serialize;

use crate::Format;

/// The JSON schema version of `parse --format json`.
pub const SCHEMA_VERSION: u32 = 1;

/// `parse --format json`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ParseJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// One result per file, in the order given.
    pub results: Vec<ParseResult>,
}

/// One file's result: unreadable, or what parsing found.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ParseResult {
    /// The file could not be read (missing, not a regular file, too large).
    Unreadable {
        /// The file.
        file: String,
        /// Why.
        error: String,
    },
    /// What parsing found.
    Parsed(Box<ParsedFile>),
}

/// What parsing one file found.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ParsedFile {
    /// The file.
    pub file: String,
    /// The mode that parsed it.
    pub mode: Option<runner_core::Mode>,
    /// The output layout recognised.
    pub format: Option<String>,
    /// Metric values by key (units in the key's suffix).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// The same metrics, each with where it was read.
    pub provenance: runner_core::Metrics,
    /// Why the file gave no usable metrics: code, evidence, signature.
    pub failure: Option<runner_core::benchmark::Classified>,
    /// Metrics the mode expects that were not found.
    pub missing: Vec<String>,
}

/// Parse each file (a regular file of at most `limits.max_result_bytes`; anything else is an
/// input error naming it).
pub fn run(files: &[PathBuf], mode: &str, format: Format, limits: &Limits) -> Result<i32> {
    let mode = mode_from_flag(mode).map_err(|e| anyhow::anyhow!("--mode: {e}"))?;
    let mut results = Vec::new();
    let mut code = exit::SUCCESS;
    for path in files {
        let bytes = match runner_core::input::read_capped(path, limits.result()) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}", esc(&e.to_string()));
                results.push(ParseResult::Unreadable {
                    file: path.display().to_string(),
                    error: e.to_string(),
                });
                code = exit::INPUT;
                continue;
            }
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name = path.display().to_string();
        let kind = guess_source_kind(&name, &text);
        let output = RunOutput {
            sources: vec![OutputSource {
                name: name.clone(),
                kind,
                text,
            }],
            exit_code: None,
        };
        let outcome = parse_output(mode, &output);
        if outcome.failure.is_some() && code == exit::SUCCESS {
            code = exit::TASKS_FAILED;
        }
        results.push(ParseResult::Parsed(Box::new(ParsedFile {
            file: name,
            mode: outcome.mode,
            format: outcome.format,
            metrics: outcome.metrics.values(),
            provenance: outcome.metrics,
            failure: outcome.failure,
            missing: outcome.missing,
        })));
    }
    match format {
        Format::Json => {
            let out = ParseJson {
                schema_version: SCHEMA_VERSION,
                results,
            };
            println!("{}", text::json_pretty(&out)?);
        }
        Format::Text | Format::Table => {
            let values: Vec<serde_json::Value> = results
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?;
            print_tables(&values)
        }
    }
    Ok(code)
}

fn print_tables(results: &[serde_json::Value]) {
    for r in results {
        // File names, evidence lines, metric keys and sources all come from the files parsed.
        println!("{}", esc(r["file"].as_str().unwrap_or("")));
        if let Some(e) = r["error"].as_str() {
            println!("  error: {}\n", esc(e));
            continue;
        }
        println!(
            "  mode {}  format {}",
            esc(r["mode"].as_str().unwrap_or("?")),
            esc(r["format"].as_str().unwrap_or("-"))
        );
        if let Some(f) = r["failure"].as_object() {
            println!("  failure: {}", esc(f["code"].as_str().unwrap_or("?")));
            for e in f["evidence"].as_array().into_iter().flatten() {
                println!("    > {}", esc(e.as_str().unwrap_or("")));
            }
        }
        if let Some(m) = r["provenance"].as_object().filter(|m| !m.is_empty()) {
            let mut table = Table::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(["metric", "value", "unit", "from"]);
            for (k, v) in m {
                let p = &v["provenance"];
                let at = match p["line"].as_u64() {
                    Some(l) => format!("line {l}: {}", p["source"].as_str().unwrap_or("").trim()),
                    None => p["source"].as_str().unwrap_or("").to_string(),
                };
                table.add_row([
                    text::cell(k).into_owned(),
                    text::cell(&v["value"].to_string()).into_owned(),
                    Unit::of_key(k).label().to_string(),
                    text::cell(&at).into_owned(),
                ]);
            }
            println!("{table}");
        }
        if let Some(missing) = r["missing"].as_array().filter(|m| !m.is_empty()) {
            let names: Vec<&str> = missing.iter().filter_map(|m| m.as_str()).collect();
            println!("  missing: {}", esc(&names.join(", ")));
        }
        println!();
    }
}
