//! Every `--format json` output (and every export line) validates against the schema that
//! `perf-runner schema NAME` publishes, checked by a complete draft 2020-12 validator (the
//! `jsonschema` crate) on real outputs: the embedded dataset and a messy one with rejected
//! rows, a plan with and without `auto` routing and a backend's dry run, parsed files and an
//! unreadable one, a real run through the dummy backend with its exports, and `gc`. Each
//! published schema is itself checked against the draft 2020-12 meta-schema, and a broken
//! output is shown to fail (so a pass means something).

use std::path::{Path, PathBuf};
use std::process::Output;

use perf_runner_tests::cli::{self, json_of, run_in, schema_errors};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const BIN: &str = env!("CARGO_BIN_EXE_perf-runner");

fn cli(dir: &Path, args: &[&str]) -> Output {
    run_in(BIN, dir, args)
}

/// The JSON on stdout of a command that must exit `code`.
fn output(dir: &Path, args: &[&str], code: i32) -> Value {
    json_of(&cli(dir, args), code)
}

fn schema(dir: &Path, name: &str) -> Value {
    output(dir, &["schema", name], 0)
}

/// The errors of `value` against the published schema `name` (empty: valid).
fn errors(dir: &Path, name: &str, value: &Value) -> Vec<String> {
    schema_errors(&schema(dir, name), value)
}

fn assert_valid(dir: &Path, name: &str, value: &Value) {
    cli::assert_valid(name, &schema(dir, name), value);
}

#[test]
fn every_published_schema_is_a_valid_draft_2020_12_schema() {
    let dir = tempfile::tempdir().unwrap();
    let listed = String::from_utf8(cli(dir.path(), &["schema"]).stdout).unwrap();
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for want in [
        "report",
        "runs",
        "doctor",
        "compare",
        "tasks",
        "plan",
        "plan-backend",
        "parse",
        "triage",
        "run",
        "gc",
        "export-long",
        "export-wide",
    ] {
        assert!(names.contains(&want), "{want} not listed:\n{listed}");
    }
    for name in names {
        let s = schema(dir.path(), name);
        assert_eq!(
            s["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if let Some(e) = cli::meta_error(&s) {
            panic!("schema {name} breaks the meta-schema: {e}");
        }
    }
}

#[test]
fn dataset_plan_parse_and_triage_outputs_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let messy = root().join("tests/data/real-world.jsonl");
    let messy = messy.to_str().unwrap();

    let tasks = output(d, &["tasks", "--format", "json"], 0);
    assert_valid(d, "tasks", &tasks);
    // Rejected rows (exit 3, input) are part of the document too.
    let tasks = output(d, &["tasks", messy, "--format", "json"], 3);
    assert!(!tasks["errors"].as_array().unwrap().is_empty());
    assert_valid(d, "tasks", &tasks);

    let plan = output(d, &["plan", "e3580537", "--format", "json"], 0);
    assert!(plan.get("route").is_none());
    assert_valid(d, "plan", &plan);
    let dry = output(
        d,
        &["plan", "e3580537", "--backend", "slurm", "--format", "json"],
        0,
    );
    assert_valid(d, "plan-backend", &dry);

    let triage = output(d, &["triage", messy, "--format", "json"], 3);
    assert_valid(d, "triage", &triage);

    // With `auto`, plan and triage also say where each task would go.
    std::fs::write(d.join("perf-runner.toml"), "backend = \"auto\"\n").unwrap();
    let plan = output(d, &["plan", "e3580537", "--format", "json"], 0);
    assert!(plan["route"]["backends"].is_array(), "{plan}");
    assert_valid(d, "plan", &plan);
    let triage = output(d, &["triage", "--format", "json"], 0);
    assert!(triage["backends"].is_object(), "{triage}");
    assert_valid(d, "triage", &triage);

    let fixtures = root().join("runner-core/tests/fixtures/parse");
    let serving = fixtures.join("serving_result.json");
    let failing = fixtures.join("fail_dns.txt");
    let parsed = output(
        d,
        &[
            "parse",
            serving.to_str().unwrap(),
            failing.to_str().unwrap(),
            "--format",
            "json",
        ],
        4,
    );
    assert!(
        parsed["results"][1]["failure"]["code"].is_string(),
        "{parsed}"
    );
    assert_valid(d, "parse", &parsed);
    let unreadable = output(d, &["parse", "/nonexistent.json", "--format", "json"], 3);
    assert_valid(d, "parse", &unreadable);

    // A wrong type deep inside is caught.
    let mut bad = tasks.clone();
    bad["tasks"][0]["line"] = "first".into();
    assert!(!errors(d, "tasks", &bad).is_empty());
    let mut bad = plan.clone();
    bad["plan"]["builds"][0]["variant"] = "sideways".into();
    assert!(!errors(d, "plan", &bad).is_empty());
}

#[test]
fn run_exports_and_gc_outputs_validate() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("perf-runner.toml"),
        "[dummy]\nspeed = { human = 1.25 }\nstep_ms = 1\n",
    )
    .unwrap();
    let run = output(
        d,
        &cli::dummy_run(&["--repeats", "3", "--format", "json"]),
        0,
    );
    assert_valid(d, "run", &run);
    let id = run["run_id"].as_str().unwrap();

    for (format, name) in [("jsonl", "export-long"), ("wide-jsonl", "export-wide")] {
        let o = cli(d, &["report", id, "--format", format]);
        assert_eq!(o.status.code(), Some(0));
        let text = String::from_utf8(o.stdout).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!lines.is_empty(), "{format}: no lines");
        for line in &lines {
            assert_valid(d, name, line);
        }
        // A row with a column the schema does not know fails.
        let mut bad = lines[0].clone();
        bad["surprise"] = 1.into();
        assert!(!errors(d, name, &bad).is_empty(), "{name}");
    }
    let wide: Value = serde_json::from_str(
        String::from_utf8(cli(d, &["report", id, "--format", "wide-jsonl"]).stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        wide["human_baseline_ratio_output_throughput_tps"].is_number(),
        "{wide}"
    );

    let gc = output(d, &["gc", id, "--format", "json"], 0);
    assert_valid(d, "gc", &gc);
}
