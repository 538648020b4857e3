//! `perf-runner schema [NAME]`: the JSON Schemas (draft 2020-12) of the `--format json`
//! outputs. Typed outputs derive theirs (schemars); the envelopes that the commands build
//! around typed parts are written here around the derived parts.

use anyhow::Result;
use runner_core::backend::HealthCheck;
use runner_core::report::{REPORT_SCHEMA_VERSION, Report};
use runner_core::samples::Run;
use runner_core::stats::{COMPARE_SCHEMA_VERSION, MannWhitney, NoiseFloor, Ratio, Verdict};
use runner_core::store::RunSummary;
use runner_core::{exit, text};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

/// The outputs with a schema, and the command each describes.
pub const NAMES: [(&str, &str); 13] = [
    ("report", "report --format json"),
    ("runs", "runs --format json"),
    ("doctor", "doctor --format json"),
    ("compare", "compare --format json"),
    ("tasks", "tasks --format json"),
    ("plan", "plan --format json"),
    ("plan-backend", "plan --backend NAME --format json"),
    ("parse", "parse --format json"),
    ("triage", "triage --format json"),
    ("run", "run --format json, batch --format json"),
    ("gc", "gc --format json"),
    (
        "export-long",
        "a line of report --format jsonl (the columns of --format csv)",
    ),
    (
        "export-wide",
        "a line of report --format wide-jsonl (the columns of wide-csv)",
    ),
];

const DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// A schema whose root is `root`, with the generator's definitions.
fn envelope(mut g: SchemaGenerator, title: &str, root: Value) -> Value {
    let mut out = root;
    out["$schema"] = DIALECT.into();
    out["title"] = title.into();
    let defs = g.take_definitions(true);
    if !defs.is_empty() {
        out["$defs"] = Value::Object(defs);
    }
    out
}

fn sub<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// `T` or `null`.
fn nullable<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    json!({"anyOf": [sub::<T>(g), {"type": "null"}]})
}

fn object(props: Value) -> Value {
    let required: Vec<String> = props
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn compare_side(g: &mut SchemaGenerator) -> Value {
    object(json!({
        "n": {"type": "integer", "minimum": 0},
        "median": {"type": "number"},
        "ci": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "samples": {"const": "per_run"},
        "runs": {"type": "array", "items": sub::<Run>(g)},
        "files": {"type": "array", "items": {"type": "string"}},
    }))
}

/// The derived schema of `T`, titled, its `schema_version` pinned to `version`.
fn root<T: JsonSchema>(title: &str, version: u32) -> Value {
    let mut s = SchemaGenerator::default()
        .into_root_schema_for::<T>()
        .to_value();
    s["title"] = title.into();
    s["properties"]["schema_version"] = json!({"const": version});
    s
}

/// A cell of an export: its JSON types.
fn cell(types: &[&str]) -> Value {
    json!({"type": types})
}

/// The row of the long export (`report --format jsonl`; CSV has the same columns).
fn export_long() -> Value {
    use runner_core::report::table::LONG_COLUMNS;
    let types = |c: &str| match c {
        "aa" => cell(&["boolean"]),
        "repeat" | "attempt" => json!({"type": "integer", "minimum": 0}),
        "value" => cell(&["number", "null"]),
        "run_id" | "commit" | "variant" | "status" => cell(&["string"]),
        _ => cell(&["string", "null"]),
    };
    let props: serde_json::Map<String, Value> = LONG_COLUMNS
        .iter()
        .map(|c| (c.to_string(), types(c)))
        .collect();
    let mut s = object(Value::Object(props));
    s["$schema"] = DIALECT.into();
    s["title"] = "perf-runner export (long): one attempt × metric".into();
    s
}

/// The row of the wide export (`report --format wide-jsonl`): fixed columns, then one
/// `<variant>_<metric>` median and one `<pair>_ratio_<metric>` (`human_baseline`,
/// `agent_human`, `agent_baseline`) per metric compared.
fn export_wide() -> Value {
    json!({
        "$schema": DIALECT,
        "title": "perf-runner export (wide): one task",
        "type": "object",
        "properties": {
            "run_id": cell(&["string"]),
            "commit": cell(&["string"]),
            "subject": cell(&["string", "null"]),
            "status": {"enum": ["planned", "skipped", "failed"]},
            "primary_metric": cell(&["string", "null"]),
            "human_baseline_verdict": cell(&["string", "null"]),
        },
        "required": ["run_id", "commit", "subject", "status", "primary_metric", "human_baseline_verdict"],
        "patternProperties": {
            // Medians and ratios; `human_baseline_verdict` is the one fixed column they match.
            "^(baseline|human|agent)_(?!baseline_verdict$).+$": cell(&["number", "null"]),
        },
        "additionalProperties": false,
    })
}

/// The schema of one output, `None` for an unknown name.
pub fn schema(name: &str) -> Option<Value> {
    let mut g = SchemaGenerator::default();
    Some(match name {
        "report" => {
            let mut s = SchemaGenerator::default()
                .into_root_schema_for::<Report>()
                .to_value();
            s["title"] = "perf-runner report".into();
            s["properties"]["schema_version"] = json!({"const": REPORT_SCHEMA_VERSION});
            s
        }
        "runs" => {
            let runs = sub::<Vec<RunSummary>>(&mut g);
            let root = object(json!({
                "schema_version": {"const": 2},
                "store": {"type": "string"},
                "runs": runs,
            }));
            envelope(g, "perf-runner runs", root)
        }
        "doctor" => {
            let checks = sub::<Vec<HealthCheck>>(&mut g);
            let health = json!({"anyOf": [
                object(json!({"usable": {"type": "boolean"}, "checks": checks})),
                object(json!({"usable": {"const": false}, "error": {"type": "string"}})),
            ]});
            let backend = object(json!({"backend": {"type": "string"}, "health": health}));
            let root = object(json!({
                "schema_version": {"const": 1},
                "backends": {"type": "array", "items": backend},
            }));
            envelope(g, "perf-runner doctor", root)
        }
        "compare" => {
            let root = object(json!({
                "schema_version": {"const": COMPARE_SCHEMA_VERSION},
                "metric": {"type": "string"},
                "metric_why": {"type": ["string", "null"]},
                "higher_is_better": {"type": "boolean"},
                "base": compare_side(&mut g),
                "other": compare_side(&mut g),
                "ratio": nullable::<Ratio>(&mut g),
                "verdict": sub::<Verdict>(&mut g),
                "reason": {"type": ["string", "null"]},
                "noise_floor": sub::<NoiseFloor>(&mut g),
                "mann_whitney": nullable::<MannWhitney>(&mut g),
                "largest_significant_effect": {"type": ["number", "null"]},
            }));
            envelope(g, "perf-runner compare", root)
        }
        "tasks" => root::<crate::tasks_cmd::TasksJson>(
            "perf-runner tasks",
            crate::tasks_cmd::SCHEMA_VERSION,
        ),
        "plan" => {
            root::<crate::plan_cmd::PlanJson>("perf-runner plan", crate::plan_cmd::SCHEMA_VERSION)
        }
        "plan-backend" => root::<crate::plan_cmd::PlanBackendJson>(
            "perf-runner plan --backend",
            crate::plan_cmd::SCHEMA_VERSION,
        ),
        "parse" => root::<crate::parse_cmd::ParseJson>(
            "perf-runner parse",
            crate::parse_cmd::SCHEMA_VERSION,
        ),
        "triage" => root::<crate::triage_cmd::TriageOut>(
            "perf-runner triage",
            runner_core::triage::SCHEMA_VERSION,
        ),
        "run" => root::<crate::batch_cmd::RunJson>("perf-runner run", 1),
        "gc" => root::<crate::doctor_cmd::GcJson>("perf-runner gc", 1),
        "export-long" => export_long(),
        "export-wide" => export_wide(),
        _ => return None,
    })
}

/// Run `schema`: print one schema, or list the names.
pub fn run(name: Option<&str>) -> Result<i32> {
    let Some(name) = name else {
        for (n, what) in NAMES {
            println!("{n:<10} {what}");
        }
        return Ok(exit::SUCCESS);
    };
    match schema(name) {
        Some(s) => {
            println!("{}", text::json_pretty(&s)?);
            Ok(exit::SUCCESS)
        }
        None => {
            let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "error: no schema named '{}' (known: {})",
                text::escape(name),
                names.join(", ")
            );
            Ok(exit::USAGE)
        }
    }
}
