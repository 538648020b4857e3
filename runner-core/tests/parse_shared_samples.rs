//! Real vLLM outputs parse and classify as their `expected.json` says.
//!
//! The samples live outside the repository (`../shared/vllm-output-samples` next to the
//! workspace, or `$PERF_RUNNER_SAMPLES_DIR`) and exist only on some machines; without them
//! this test prints a note and passes.

use std::path::PathBuf;

use runner_core::Mode;
use runner_core::benchmark::{OutputSource, ParseOutcome, RunOutput, SourceKind};
use runner_core::parse::benchmark_for;
use serde_json::Value;

fn samples_dir() -> PathBuf {
    match std::env::var_os("PERF_RUNNER_SAMPLES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/vllm-output-samples"
        )),
    }
}

fn mode_hint(folder: &str) -> Option<Mode> {
    match folder.split('-').next()? {
        "serving" => Some(Mode::Serving),
        "throughput" => Some(Mode::Throughput),
        "latency" => Some(Mode::Latency),
        "other" => Some(Mode::Other),
        _ => None,
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Lines a metric must never be read from.
const FORBIDDEN_SOURCES: &[&str] = &[
    "Avg prompt throughput",
    "Avg generation throughput",
    "metrics.py",
    "loggers.py",
    "Pulling",
    "Downloaded",
];

/// What is wrong with one sample's outcome (empty: all right).
fn problems(expected: &Value, outcome: &ParseOutcome) -> Vec<String> {
    let mut out = Vec::new();
    let success = expected["outcome"] == "success";
    if success != outcome.failure.is_none() {
        out.push(format!(
            "outcome: expected {}, got failure {:?}",
            expected["outcome"], outcome.failure
        ));
    }
    if let Some(Value::Object(metrics)) = expected.get("metrics") {
        for (key, want) in metrics {
            let want = want.as_f64().unwrap_or(f64::NAN);
            match outcome.metrics.get(key) {
                Some(got) if close(got, want) => {}
                got => out.push(format!("metric {key}: expected {want}, got {got:?}")),
            }
        }
    }
    if !success && !outcome.metrics.is_empty() {
        out.push(format!(
            "failure sample yielded metrics {:?}",
            outcome.metrics.values()
        ));
    }
    if let (Some(f), Some(Value::Array(any_of))) =
        (&outcome.failure, expected.get("failure_code_any_of"))
    {
        let codes: Vec<_> = any_of.iter().filter_map(Value::as_str).collect();
        if !codes.is_empty() && !codes.contains(&f.code.code()) {
            out.push(format!(
                "failure code {} not in {codes:?} (evidence {:?}, signature {:?})",
                f.code, f.evidence, f.signature
            ));
        }
    }
    for bad in expected["isobench_misparsed"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let hit = match bad {
            Value::String(k) => outcome.metrics.get(k).is_some(),
            Value::Number(n) => {
                let n = n.as_f64().unwrap_or(f64::NAN);
                outcome.metrics.0.values().any(|m| close(m.value, n))
            }
            _ => false,
        };
        if hit {
            out.push(format!("returned a misparsed value: {bad}"));
        }
    }
    for (key, m) in &outcome.metrics.0 {
        if FORBIDDEN_SOURCES
            .iter()
            .any(|f| m.provenance.source.contains(f))
        {
            out.push(format!("{key} read from {:?}", m.provenance.source));
        }
        if m.provenance.line.is_none() {
            out.push(format!("{key} has no line number"));
        }
    }
    out
}

#[test]
fn shared_samples_parse_as_expected() {
    let dir = samples_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "note: {} is absent; shared-sample checks skipped",
            dir.display()
        );
        return;
    };
    let mut folders: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("output.txt").is_file() && p.join("expected.json").is_file())
        .collect();
    folders.sort();
    let mut wrong = Vec::new();
    for folder in &folders {
        let name = folder.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read(folder.join("output.txt")).unwrap();
        let text = String::from_utf8_lossy(&text).into_owned();
        let expected: Value =
            serde_json::from_slice(&std::fs::read(folder.join("expected.json")).unwrap()).unwrap();
        let Some(mode) = mode_hint(&name) else {
            wrong.push(format!("{name}: no mode prefix"));
            continue;
        };
        let run = RunOutput {
            sources: vec![OutputSource {
                name: "output.txt".into(),
                kind: SourceKind::Combined,
                text,
            }],
            exit_code: None,
        };
        let outcome = benchmark_for(mode).parse(&run);
        if std::env::var_os("PERF_RUNNER_SAMPLES_VERBOSE").is_some() {
            eprintln!(
                "{name}: format {:?} metrics {:?} missing {:?} failure {:?}",
                outcome.format,
                outcome.metrics.values(),
                outcome.missing,
                outcome.failure
            );
        }
        let p = problems(&expected, &outcome);
        if !p.is_empty() {
            wrong.push(format!("{name}:\n  {}", p.join("\n  ")));
        }
    }
    assert!(!folders.is_empty(), "no samples under {}", dir.display());
    assert!(
        wrong.is_empty(),
        "{}/{} samples wrong:\n{}",
        wrong.len(),
        folders.len(),
        wrong.join("\n")
    );
    eprintln!("{n}/{n} shared samples pass", n = folders.len());
}
