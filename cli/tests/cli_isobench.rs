//! ISO-Bench's files as a user brings them: canonical JSONL rows without parents, resolved
//! from a vLLM clone made here; triage and plan agreeing row by row; a Parquet dataset built
//! with pyarrow from ISO-Bench's column names; predictions files as the agent variant.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use perf_runner_tests::git::repo_with_commits;
use serde_json::{Value, json};

struct Fixture {
    dir: tempfile::TempDir,
    /// Commits of the clone, oldest first.
    commits: Vec<String>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("vllm");
        std::fs::create_dir_all(&repo).unwrap();
        let commits = repo_with_commits(&repo, 4);
        Fixture { dir, commits }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn repo(&self) -> String {
        self.path("vllm").display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_perf-runner"))
            .current_dir(self.dir.path())
            .env_remove("PERF_RUNNER_LOG")
            .env("XDG_CACHE_HOME", self.path("cache"))
            .args(args)
            .output()
            .expect("runs")
    }
}

fn json_out(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

const LATENCY: &str = "python benchmarks/benchmark_latency.py --model meta-llama/Llama-3.1-8B-Instruct --input-len 32 --output-len 8";
const UNKNOWN: &str = "0123456789abcdef0123456789abcdef01234567";
const HUMAN_DIFF: &str = "diff --git a/vllm/core/scheduler.py b/vllm/core/scheduler.py\n--- a/vllm/core/scheduler.py\n+++ b/vllm/core/scheduler.py\n@@ -1 +1 @@\n-x\n+y\n";
const AGENT_DIFF: &str = "diff --git a/vllm/utils.py b/vllm/utils.py\n--- a/vllm/utils.py\n+++ b/vllm/utils.py\n@@ -1 +1 @@\n-a\n+b\n";

/// ISO-Bench's canonical rows: `head_commit`, no parent, the human change inline in `patch`.
fn canonical_rows(f: &Fixture) -> Vec<Value> {
    let mut rows: Vec<Value> = f.commits[1..]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({
                "instance_id": format!("vllm-{i}"), "head_commit": c, "base_commit": null,
                "perf_command": LATENCY, "gpu_config": "H100:1", "commit_date": "2025-01-01",
                "patch": HUMAN_DIFF,
            })
        })
        .collect();
    // The root commit has no parent; an unknown commit is not in the clone.
    for c in [f.commits[0].as_str(), UNKNOWN] {
        rows.push(json!({"head_commit": c, "perf_command": LATENCY, "gpu_config": "H100:1", "commit_date": "2025-01-01"}));
    }
    rows
}

/// Triage's verdict per commit, and whether `plan` plans each one.
fn triage_and_plan(f: &Fixture, dataset: &str, extra: &[&str]) -> Vec<(String, String, bool)> {
    let mut args = vec!["triage", dataset, "--format", "json"];
    args.extend(extra);
    let report = json_out(&f.run(&args));
    report["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let commit = t["commit"].as_str().unwrap().to_string();
            let mut args = vec!["plan", dataset, commit.as_str(), "--format", "json"];
            args.extend(extra);
            let o = f.run(&args);
            let planned = o.status.code() == Some(0);
            if !planned {
                let err = String::from_utf8_lossy(&o.stderr);
                assert!(
                    !err.contains("--parent"),
                    "plan names a flag it lacks: {err}"
                );
            }
            (commit, t["verdict"].as_str().unwrap().to_string(), planned)
        })
        .collect()
}

fn assert_agree(rows: &[(String, String, bool)]) {
    for (commit, verdict, planned) in rows {
        assert_eq!(
            verdict == "verifiable",
            *planned,
            "triage says {verdict} but plan {} {commit}",
            if *planned { "plans" } else { "refuses" }
        );
    }
}

#[test]
fn canonical_rows_resolve_parents_and_triage_agrees_with_plan() {
    let f = Fixture::new();
    let text: Vec<String> = canonical_rows(&f).iter().map(Value::to_string).collect();
    std::fs::write(f.path("iso.jsonl"), text.join("\n")).unwrap();

    // Without a clone nothing is plannable, and triage says so.
    let without = triage_and_plan(&f, "iso.jsonl", &[]);
    assert_eq!(without.len(), 5);
    assert!(
        without.iter().all(|(_, v, p)| v != "verifiable" && !p),
        "{without:?}"
    );
    assert_agree(&without);

    // With the clone, every row with a resolvable parent is plannable.
    let repo = f.repo();
    let with = triage_and_plan(&f, "iso.jsonl", &["--vllm-source", &repo]);
    assert_agree(&with);
    let planned: Vec<&str> = with.iter().filter(|r| r.2).map(|r| r.0.as_str()).collect();
    let expected: Vec<&str> = f.commits[1..].iter().map(String::as_str).collect();
    assert_eq!(planned, expected);

    // The plan's parent is the clone's COMMIT^, and the inline human diff was not taken for
    // an agent patch.
    let o = f.run(&[
        "plan",
        "iso.jsonl",
        &f.commits[2],
        "--vllm-source",
        &repo,
        "--format",
        "json",
    ]);
    let plan = json_out(&o);
    assert_eq!(plan["plan"]["parent"], f.commits[1].as_str());
    let variants: Vec<&str> = plan["plan"]["builds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, vec!["baseline", "human"]);
}

#[test]
fn predictions_add_the_agent_variant() {
    let f = Fixture::new();
    let text: Vec<String> = canonical_rows(&f).iter().map(Value::to_string).collect();
    std::fs::write(f.path("iso.jsonl"), text.join("\n")).unwrap();
    let preds = json!([
        {"instance_id": "vllm-1", "model_name_or_path": "agent-x", "model_patch": AGENT_DIFF},
        {"instance_id": "nobody", "model_patch": AGENT_DIFF},
    ]);
    std::fs::write(f.path("preds.json"), preds.to_string()).unwrap();
    let repo = f.repo();
    let o = f.run(&[
        "plan",
        "iso.jsonl",
        &f.commits[2],
        "--vllm-source",
        &repo,
        "--predictions",
        "preds.json",
        "--format",
        "json",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("prediction not used") && err.contains("nobody"),
        "{err}"
    );
    let plan = json_out(&o);
    let builds = plan["plan"]["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 3, "{plan}");
    let patch = &builds[2]["patch"];
    assert_eq!(builds[2]["variant"], "agent");
    let path = patch["path"].as_str().unwrap();
    assert_eq!(std::fs::read_to_string(path).unwrap(), AGENT_DIFF);
    assert!(Path::new(path).starts_with(f.path("cache")));
}

/// Write `rows` as a Parquet file with ISO-Bench's published column names and types (its
/// Hugging Face dataset card: lists of strings, a struct of counts, booleans), by pyarrow.
fn write_parquet(rows: &Value, path: &Path) {
    const SCRIPT: &str = r#"
import json, sys
import pyarrow as pa, pyarrow.parquet as pq
rows = json.load(open(sys.argv[1]))
stats = pa.struct([(k, pa.int64()) for k in (
    "commit_year", "num_edited_lines", "num_files", "num_hunks", "num_non_test_edited_lines",
    "num_non_test_files", "num_test_files", "only_non_test_files", "only_test_files")])
schema = pa.schema([
    ("commit_hash", pa.string()), ("pr_url", pa.string()), ("pr_date", pa.string()),
    ("timeline_extracted_at", pa.string()), ("analysis_extracted_at", pa.string()),
    ("models", pa.list_(pa.string())), ("perf_command", pa.string()),
    ("has_serving", pa.bool_()), ("has_latency", pa.bool_()), ("has_throughput", pa.bool_()),
    ("uses_lm_eval", pa.bool_()), ("commit_subject", pa.string()),
    ("commit_message", pa.string()), ("commit_date", pa.string()),
    ("files_changed", pa.list_(pa.string())), ("stats", stats), ("diff_text", pa.string()),
    ("gpu_config", pa.string()),
])
pq.write_table(pa.Table.from_pylist(rows, schema=schema), sys.argv[2])
"#;
    let json = path.with_extension("json");
    std::fs::write(&json, rows.to_string()).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&json)
        .arg(path)
        .output()
        .expect("python3 runs (pyarrow is installed by .ci/run)");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn iso_row(commit: &str, i: usize) -> Value {
    let stats: serde_json::Map<String, Value> = [
        "commit_year",
        "num_edited_lines",
        "num_files",
        "num_hunks",
        "num_non_test_edited_lines",
        "num_non_test_files",
        "num_test_files",
        "only_non_test_files",
        "only_test_files",
    ]
    .iter()
    .map(|k| (k.to_string(), json!(1)))
    .collect();
    json!({
        "commit_hash": commit, "pr_url": format!("https://github.com/vllm-project/vllm/pull/{i}"),
        "pr_date": "2025-01-01", "timeline_extracted_at": "2025-06-01",
        "analysis_extracted_at": "2025-06-01", "models": ["meta-llama/Llama-3.1-8B-Instruct"],
        "perf_command": LATENCY, "has_serving": false, "has_latency": true,
        "has_throughput": false, "uses_lm_eval": false, "commit_subject": format!("[Perf] c{i}"),
        "commit_message": format!("[Perf] c{i}\n\nbody"), "commit_date": "2025-01-01T00:00:00Z",
        "files_changed": ["vllm/core/scheduler.py"], "stats": stats, "diff_text": HUMAN_DIFF,
        "gpu_config": "H100:1",
    })
}

#[test]
fn a_parquet_dataset_with_iso_bench_columns_loads_and_plans() {
    let f = Fixture::new();
    let mut rows: Vec<Value> = f
        .commits
        .iter()
        .enumerate()
        .map(|(i, c)| iso_row(c, i))
        .collect();
    rows.push(iso_row(UNKNOWN, 9));
    write_parquet(&Value::Array(rows), &f.path("iso.parquet"));

    let o = f.run(&["tasks", "iso.parquet", "--format", "json"]);
    let listed = json_out(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let tasks = listed["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 5);
    assert_eq!(tasks[1]["commit"], f.commits[1].as_str());
    assert_eq!(tasks[1]["subject"], "[Perf] c1");
    assert_eq!(tasks[1]["model"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(tasks[1]["gpu_config"], "H100:1");
    assert_eq!(
        tasks[1]["status"], "bad_config",
        "no parent column: {}",
        tasks[1]
    );

    // With the clone: every row with a resolvable parent plans, and triage agrees row by row.
    let repo = f.repo();
    let rows = triage_and_plan(&f, "iso.parquet", &["--vllm-source", &repo]);
    assert_agree(&rows);
    let planned: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.0.as_str()).collect();
    let expected: Vec<&str> = f.commits[1..].iter().map(String::as_str).collect();
    assert_eq!(planned, expected);
}

#[test]
fn a_truncated_parquet_file_is_an_error_not_a_crash() {
    let f = Fixture::new();
    let rows = Value::Array(vec![iso_row(&f.commits[1], 1)]);
    write_parquet(&rows, &f.path("iso.parquet"));
    let bytes = std::fs::read(f.path("iso.parquet")).unwrap();
    std::fs::write(f.path("cut.parquet"), &bytes[..bytes.len() / 2]).unwrap();
    let o = f.run(&["tasks", "cut.parquet"]);
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cut.parquet") && err.contains("Parquet"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
