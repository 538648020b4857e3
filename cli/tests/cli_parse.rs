//! `perf-runner parse` as a user runs it, over our own fixtures and — where the machine has
//! them — the real vLLM outputs in `../shared/vllm-output-samples/` (each folder's
//! `expected.json` says what is really in its `output.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn parse(files: &[PathBuf], mode: &str) -> (Option<i32>, serde_json::Value) {
    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(["parse", "--format", "json", "--mode", mode])
        .args(files)
        .output()
        .expect("runs");
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    (o.status.code(), v)
}

fn samples_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("PERF_RUNNER_SAMPLES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/vllm-output-samples")
        });
    dir.is_dir().then_some(dir)
}

#[test]
fn shared_samples_parse_and_classify_through_the_cli() {
    let Some(dir) = samples_dir() else {
        eprintln!("shared vLLM samples not present on this machine; skipped");
        return;
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expected.json").is_file())
        .collect();
    folders.sort();
    assert!(
        folders.len() >= 20,
        "expected the sample folders in {}",
        dir.display()
    );
    let files: Vec<PathBuf> = folders.iter().map(|f| f.join("output.txt")).collect();
    let (code, v) = parse(&files, "auto");
    assert_eq!(code, Some(4), "failures among the samples give exit code 4");
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), folders.len());
    let mut checked = 0;
    for (folder, r) in folders.iter().zip(results) {
        let name = folder.file_name().unwrap().to_string_lossy();
        let exp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join("expected.json")).unwrap()).unwrap();
        let metrics = r["metrics"].as_object().unwrap();
        for (k, want) in exp["metrics"].as_object().unwrap() {
            let got = metrics.get(k).and_then(|g| g.as_f64());
            let want = want.as_f64().unwrap();
            assert!(
                got.is_some_and(|g| (g - want).abs() <= 1e-9 * want.abs().max(1.0)),
                "{name}: {k} = {got:?}, expected {want}"
            );
        }
        let failure = r["failure"]["code"].as_str();
        if exp["outcome"] == "success" {
            assert_eq!(failure, None, "{name}: a successful run has no failure");
        } else {
            assert!(failure.is_some(), "{name}: a failed run is classified");
            assert!(
                metrics.is_empty() || exp["metrics"].as_object().is_some_and(|m| !m.is_empty()),
                "{name}: no metric from a failed run"
            );
            let any: Vec<&str> = exp["failure_code_any_of"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c.as_str())
                .collect();
            if !any.is_empty() {
                assert!(
                    any.contains(&failure.unwrap()),
                    "{name}: {failure:?} not in {any:?}"
                );
            }
        }
        checked += 1;
    }
    assert_eq!(checked, folders.len());
}

#[test]
fn unreadable_files_are_reported_and_the_rest_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("latency.txt");
    std::fs::write(
        &ok,
        "INFO 05-01 12:00:00 llm_engine.py:100] Avg prompt throughput: 999.0 tokens/s\n\
         Avg latency: 1.25 seconds\n50% percentile latency: 1.2 seconds\n99% percentile latency: 1.5 seconds\n",
    )
    .unwrap();
    let (code, v) = parse(&[dir.path().join("missing.txt"), ok], "latency");
    assert_eq!(code, Some(3));
    let r = v["results"].as_array().unwrap();
    assert!(r[0]["error"].is_string());
    assert_eq!(r[1]["metrics"]["latency_avg_s"], 1.25);
    assert_eq!(r[1]["metrics"]["latency_p99_s"], 1.5);
    assert!(
        r[1]["metrics"].get("total_throughput_tps").is_none(),
        "no metric from an engine log line"
    );

    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(["parse", "--mode", "bogus", "x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--mode"));
}
