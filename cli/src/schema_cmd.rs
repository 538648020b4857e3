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
pub const NAMES: [(&str, &str); 4] = [
    ("report", "report --format json"),
    ("runs", "runs --format json"),
    ("doctor", "doctor --format json"),
    ("compare", "compare --format json"),
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
