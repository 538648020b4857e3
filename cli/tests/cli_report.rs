//! `perf-runner report` over a realistic store: markdown, JSON, HTML (checked in headless
//! Chromium when it is installed), vLLM-schema files, and clear errors for missing runs.

#[path = "../../runner-core/tests/report_support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RUN: &str = "20261128-030000-ab12";

fn perf_runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The `report` subcommand exists in this build (asserted: a missing one fails every test
/// here rather than skipping it).
fn wired() -> bool {
    let o = perf_runner(&["report", "--help"]);
    assert!(o.status.success(), "`perf-runner report --help` failed");
    true
}

fn store() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    support::build_store(&path);
    (dir, path)
}

fn report(store: &Path, extra: &[&str]) -> Output {
    let s = store.to_str().unwrap();
    let mut args = vec!["report", RUN, "--store", s];
    args.extend_from_slice(extra);
    perf_runner(&args)
}

#[test]
fn markdown_and_json_to_stdout() {
    if !wired() {
        return;
    }
    let (_d, path) = store();
    let o = report(&path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8(o.stdout).unwrap();
    assert!(md.contains("# perf-runner report: run `20261128-030000-ab12`"));
    assert!(md.contains("human speedup not reproduced: no_change"));
    let o = report(&path, &["--format", "json"]);
    let a: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(a["schema_version"], 1);
    assert_eq!(a["tasks"][0]["validity"]["status"], "reproduced");
    let again = report(&path, &["--format", "json"]);
    assert_eq!(o.stdout, again.stdout, "same seed, same bytes");
    let o = report(
        &path,
        &["--format", "json", "--noise-floor", "0.03", "--no-aa-floor"],
    );
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(b["tasks"][0]["noise_floor"]["source"], "configured");
    assert_eq!(b["tasks"][0]["noise_floor"]["value"], 0.03);
}

#[test]
fn missing_runs_and_stores_are_clear_errors() {
    if !wired() {
        return;
    }
    let (dir, path) = store();
    let o = report(&path, &[]);
    assert_eq!(o.status.code(), Some(0));
    let s = path.to_str().unwrap();
    let o = perf_runner(&["report", "20990101-000000-0000", "--store", s]);
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no run '20990101-000000-0000'") && err.contains(RUN),
        "{err}"
    );
    let missing = dir.path().join("nope.sqlite");
    let o = perf_runner(&["report", RUN, "--store", missing.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no results store"));
    assert!(!missing.exists(), "reporting never creates a store");
    let o = perf_runner(&["report", "../etc", "--store", s]);
    assert_eq!(o.status.code(), Some(2), "a malformed id is a usage error");
}

#[test]
fn html_and_vllm_files_to_a_directory_render_in_chromium() {
    if !wired() {
        return;
    }
    let (dir, path) = store();
    let out = dir.path().join("out");
    let o = report(&path, &["--format", "html", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed = String::from_utf8(o.stdout).unwrap();
    assert_eq!(
        listed.lines().count(),
        4,
        "report + 3 serving variants: {listed}"
    );
    for name in [
        "aaaa1111bbbb-baseline.json",
        "aaaa1111bbbb-human.json",
        "aaaa1111bbbb-agent.json",
    ] {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("vllm").join(name)).unwrap())
                .unwrap();
        assert!(
            v["output_throughput"].is_f64() && v["mean_ttft_ms"].is_f64(),
            "{name}"
        );
    }
    let page_path = out.join("report.html");
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert_eq!(
        page.matches("<svg").count(),
        3 + 1 + 1,
        "3 task plots + the distribution + the agent comparison"
    );
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));

    let has_chromium = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .any(|b| {
            Command::new("sh")
                .args(["-c", &format!("command -v {b}")])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !has_chromium {
        perf_runner_tests::require::skip_or_fail(
            "chromium",
            "the rendering check",
            "no chromium on PATH",
        );
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-report-html.sh");
    let png = out.join("report.png");
    let o = Command::new("bash")
        .arg(&script)
        .arg(&page_path)
        .arg(&png)
        .output()
        .expect("bash runs");
    assert!(
        o.status.success(),
        "check-report-html.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
    // For a person to look at: PERF_RUNNER_KEEP_SCREENSHOT=/tmp/shot.png keeps the PNG and the
    // page next to it.
    if let Ok(keep) = std::env::var("PERF_RUNNER_KEEP_SCREENSHOT") {
        let keep = PathBuf::from(keep);
        std::fs::copy(&png, &keep).unwrap();
        std::fs::copy(&page_path, keep.with_extension("html")).unwrap();
    }
}
