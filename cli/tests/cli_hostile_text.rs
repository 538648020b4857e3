//! Hostile text never reaches a terminal raw: a dataset, a results store, logs, file names and
//! a config file carrying ESC, NUL, C1 controls and bidi overrides go through `tasks`,
//! `triage` (markdown and JSON), `plan`, `report`, `parse`, `compare` and the log subscriber;
//! stdout and stderr hold none of those characters, only their visible escapes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use runner_core::dataset::Dataset;
use runner_core::engine::interleaved_jobs;
use runner_core::failure::Failure;
use runner_core::metrics::Metrics;
use runner_core::plan::plan_task;
use runner_core::record::{AttemptRecord, JobStatus, RunId, TaskStatus};
use runner_core::settings::Settings;
use runner_core::store::{Store, TaskRow};
use runner_core::task::Variant;

/// ESC with a screen clear and a window title, NUL, the 8-bit CSI and a right-to-left override.
const EVIL: &str = "\u{1b}[2J\u{1b}[31m\u{7}\u{0}\u{9b}31m\u{202e}";
const COMMIT: &str = "5b0bd6df0a4b3c7f1e2d9a8b7c6d5e4f3a2b1c0d";
const PARENT: &str = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
    c.env_remove("PERF_RUNNER_LOG");
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("the binary runs")
}

/// The first character in `bytes` that a terminal would act on or hide, if any.
fn raw_char(bytes: &[u8]) -> Option<String> {
    if let Some(i) = bytes.iter().position(|&b| b == 0x1b || b == 0) {
        return Some(format!("byte {:#04x} at {i}", bytes[i]));
    }
    // Valid UTF-8 means a 0x9b byte can only be inside a character, never an 8-bit CSI.
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => return Some(format!("invalid UTF-8: {e}")),
    };
    text.chars()
        .find(|&c| {
            (c < ' ' && c != '\n' && c != '\t')
                || matches!(c,
                    '\u{7f}'..='\u{9f}'
                    | '\u{61c}' | '\u{200b}'..='\u{200f}'
                    | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("U+{:04X}", c as u32))
}

/// Both streams are free of raw characters, and the escapes show what was there.
fn assert_clean(what: &str, o: &Output) -> (String, String) {
    for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        if let Some(c) = raw_char(bytes) {
            panic!(
                "{what}: raw {c} on {stream}:\n{}",
                String::from_utf8_lossy(bytes).escape_debug()
            );
        }
    }
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn evil(s: &str) -> String {
    format!("{s}{EVIL}end")
}

/// A dataset whose strings carry [`EVIL`] everywhere a row allows text, plus rows rejected for
/// a hostile commit and parent (their errors quote the value).
fn dataset(dir: &Path) -> PathBuf {
    let cmd = format!(
        "python benchmarks/benchmark_serving.py --model {} --dataset-name random \
         --random-input-len 1024 --random-output-len 128 --num-prompts 200",
        evil("org/model")
    );
    let rows = [
        serde_json::json!({
            "commit_hash": COMMIT, "parent_commit": PARENT,
            "commit_subject": evil("[Perf] faster"), "perf_command": cmd,
            "models": [evil("org/model")], "gpu_config": "H100:1",
            "repo": evil("vllm-project/vllm"), "pr_url": evil("https://x.invalid/pr/1"),
            "commit_date": evil("2025-01-01"), "files_changed": [evil("vllm/a.py")],
        }),
        serde_json::json!({
            "commit_hash": "c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ffe", "parent_commit": PARENT,
            "commit_subject": evil("no command"),
            "perf_command": evil("python benchmarks/benchmark_latency.py --model"),
            "models": [evil("m")],
        }),
        serde_json::json!({"commit_hash": evil("abc"), "parent_commit": PARENT}),
        serde_json::json!({"commit_hash": "abcdef1234567", "parent_commit": evil("12")}),
    ];
    let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
    assert!(
        text.contains("\\u001b") && text.contains("\\u0000") && text.contains('\u{202e}'),
        "the dataset carries the characters as JSON gives them"
    );
    let path = dir.join("evil.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tasks_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let ds = ds.to_str().unwrap();
    let o = run(&["tasks", ds]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "rejected rows: the input exit code"
    );
    let (out, err) = assert_clean("tasks", &o);
    assert!(out.contains("\\x1b[2J"), "{out}");
    assert!(
        out.contains("\\u{202e}") || out.contains("\\u{9b}"),
        "{out}"
    );
    assert!(
        err.contains("rejected row") && err.contains("\\x1b"),
        "{err}"
    );
    let o = run(&["tasks", ds, "--format", "json"]);
    assert_clean("tasks --format json", &o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["tasks"][0]["subject"],
        evil("[Perf] faster"),
        "JSON keeps the value"
    );
}

#[test]
fn triage_markdown_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let ds = ds.to_str().unwrap();
    let skip = dir.path().join("skip.txt");
    let o = run(&["triage", ds, "--emit-skip-list", skip.to_str().unwrap()]);
    let (md, _) = assert_clean("triage", &o);
    assert!(md.contains("\\\\x1b"), "markdown shows the escape: {md}");
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let cols = line.matches(" | ").count() - line.matches("\\| ").count();
        assert!(cols <= 8, "a table row keeps its columns: {line}");
    }
    let skip_list = std::fs::read(&skip).unwrap();
    assert_eq!(raw_char(&skip_list), None, "the skip list is safe to cat");
    let o = run(&["triage", ds, "--format", "json"]);
    let (json, _) = assert_clean("triage --format json", &o);
    assert!(
        json.contains("\\u001b") && json.contains("\\u202e"),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let text = v.to_string();
    assert!(
        text.contains('\u{202e}'),
        "the parsed JSON has the original characters"
    );
}

#[test]
fn plan_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path());
    let ds = ds.to_str().unwrap();
    // The command carries control characters: the input policy refuses it, and the refusal
    // quotes the token escaped.
    let o = run(&["plan", ds, &COMMIT[..12]]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr).escape_debug()
    );
    let (_, err) = assert_clean("plan", &o);
    assert!(
        err.contains("a control character") && err.contains("org/model\\u{1b}[2J"),
        "{err}"
    );
    // The task itself, with its hostile subject, still lists cleanly as JSON.
    let o = run(&["tasks", ds, "--format", "json"]);
    assert_clean("tasks --format json", &o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let task = v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["commit"] == COMMIT)
        .unwrap();
    assert_eq!(task["subject"], evil("[Perf] faster"));
    assert_eq!(task["status"], "bad_config");
    // A command that does not plan: its error quotes the dataset.
    let o = run(&["plan", ds, "c0ffee0c"]);
    assert_ne!(o.status.code(), Some(0));
    let (_, err) = assert_clean("plan of a bad command", &o);
    assert!(!err.is_empty());
}

/// A run whose origin, subjects, reasons, failure details, evidence and metric keys are
/// hostile, recorded as the engine records them.
fn hostile_store(path: &Path) -> RunId {
    let store = Store::open(path).unwrap();
    let run = RunId("20260101-000000-e5c4".into());
    store
        .create_run(
            &run,
            "local",
            &evil("data/set.jsonl"),
            &serde_json::json!({}),
        )
        .unwrap();
    let cmd = "python benchmarks/benchmark_latency.py --model m/x --num-iters 3";
    let row = serde_json::json!({
        "commit_hash": COMMIT, "parent_commit": PARENT, "perf_command": cmd,
        "gpu_config": "H100:1",
    });
    let ds = Dataset::from_str(&row.to_string(), "t", Path::new("."));
    let variants = [Variant::Baseline, Variant::Human];
    let plan = plan_task(&ds.tasks[0], &variants, &Settings::embedded(), None).unwrap();
    store
        .put_task(
            &run,
            &TaskRow {
                commit: COMMIT.into(),
                line: 1,
                subject: Some(evil("subject | with a pipe")),
                status: TaskStatus::Planned,
                detail: serde_json::to_string(&plan).unwrap(),
                step_fingerprint: Some(plan.step_fingerprint.clone()),
                plan: None,
            },
        )
        .unwrap();
    store
        .put_task(
            &run,
            &TaskRow {
                commit: "0badc0de0badc0de0badc0de0badc0de0badc0de".into(),
                line: 2,
                subject: Some(evil("skipped")),
                status: TaskStatus::Skipped,
                detail: evil("triage: reason\nsecond line"),
                step_fingerprint: None,
                plan: None,
            },
        )
        .unwrap();
    let jobs = interleaved_jobs(COMMIT, &variants, 2, false);
    store.add_jobs(&run, &jobs).unwrap();
    for (i, job) in jobs.iter().enumerate() {
        let mut metrics = Metrics::new();
        let failure = (job.variant == Variant::Human).then_some(Failure::Oom);
        if failure.is_none() {
            let p = runner_core::metrics::Provenance {
                file: evil("out.log"),
                line: Some(3),
                source: evil("Avg latency: 1.0 seconds"),
            };
            metrics.insert_first("latency_avg_s", 1.0 + i as f64 / 100.0, p.clone());
            metrics.insert_first(&evil("weird_key"), 2.0, p);
        }
        let rec = AttemptRecord {
            run_id: run.clone(),
            job: job.clone(),
            attempt: 1,
            started_at: format!("2026-01-01T00:0{i}:00Z"),
            finished_at: format!("2026-01-01T00:0{i}:30Z"),
            backend: evil("local"),
            host: Some(evil("host")),
            gpu_names: vec![evil("NVIDIA H100")],
            build_identity: evil("vllm"),
            engine_version: Some(evil("0.6.4")),
            build_digest: None,
            step_fingerprint: plan.step_fingerprint.clone(),
            client_argv: vec!["{PYTHON}".into(), evil("--model")],
            server_argv: None,
            datasets: vec![],
            warmed_up: true,
            failure,
            failure_detail: failure.map(|_| evil("CUDA out of memory | detail")),
            evidence: failure
                .map(|_| vec![evil("torch.OutOfMemoryError: `x` | y")])
                .unwrap_or_default(),
            metrics,
            artifact_dir: evil("artifacts/x"),
            wall_s: 30.0,
            benchmark_s: 20.0,
            gpu_seconds: 30.0,
            cost_usd: None,
            serve: None,
        };
        let status = if failure.is_some() {
            JobStatus::Failed
        } else {
            JobStatus::Succeeded
        };
        store.record_attempt(&rec, status).unwrap();
    }
    run
}

#[test]
fn report_markdown_json_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("results.sqlite");
    let run_id = hostile_store(&db);
    let db = db.to_str().unwrap();
    let o = run_report(&run_id, db, "md");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (md, _) = assert_clean("report md", &o);
    assert!(md.contains("\\\\x1b[2J"), "{md}");
    assert!(md.contains("## Failures"), "{md}");
    assert!(md.contains("## Skipped"), "{md}");
    for line in md.lines().filter(|l| l.starts_with("| `")) {
        let s = line.replace("\\\\", "").replace("\\|", "");
        assert!(
            // The widest table (tasks) has 10 columns.
            s.matches('|').count() <= 11,
            "a row keeps its columns: {line}"
        );
    }
    let o = run_report(&run_id, db, "json");
    let (json, _) = assert_clean("report json", &o);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(v.to_string().contains('\u{202e}'));
    let o = run_report(&run_id, db, "html");
    assert_clean("report html", &o);
    let o = run(&["runs", "--store", db]);
    let (out, _) = assert_clean("runs", &o);
    assert!(out.contains("\\x1b"), "{out}");
}

fn run_report(run: &RunId, db: &str, format: &str) -> Output {
    bin()
        .args(["report", &run.0, "--store", db, "--format", format])
        .output()
        .unwrap()
}

#[test]
fn parse_and_compare_text_show_log_lines_escaped() {
    let dir = tempfile::tempdir().unwrap();
    // A file name may hold anything but '/' and NUL.
    let log = dir.path().join(evil("client").replace('\0', "") + ".log");
    std::fs::write(
        &log,
        format!(
            "INFO start {EVIL}\ntorch.OutOfMemoryError: CUDA out of memory. {EVIL}\n\
             Traceback {EVIL}\n"
        ),
    )
    .unwrap();
    let o = run(&["parse", log.to_str().unwrap()]);
    let (out, _) = assert_clean("parse", &o);
    assert!(out.contains("failure: oom"), "{out}");
    assert!(
        out.contains("\\x1b"),
        "evidence and the file name are shown escaped: {out}"
    );
    let ok = dir.path().join("ok.log");
    std::fs::write(&ok, "Avg latency: 1.0 seconds\n").unwrap();
    let o = run(&[
        "compare",
        log.to_str().unwrap(),
        ok.to_str().unwrap(),
        "--metric",
        &evil("latency_avg_s").replace('\0', ""),
    ]);
    assert_ne!(o.status.code(), Some(0));
    let (_, err) = assert_clean("compare", &o);
    assert!(err.contains("\\x1b"), "{err}");
}

#[test]
fn log_lines_escape_field_values() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("perf-runner.toml");
    std::fs::write(&cfg, "[engine]\n\"evil\\u001b[2J\\u202ekey\" = 1\n").unwrap();
    let o = bin()
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "tasks",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let (_, err) = assert_clean("tracing", &o);
    assert!(
        err.contains("unknown configuration key") && err.contains("evil\\x1b[2J\\u{202e}key"),
        "{err}"
    );
}
