//! A backend registered in one place reaches every command: the test-only dummy backend
//! (`--features dummy-backend`) is a `--backend` value, a `doctor` entry and a section of
//! `config --defaults`, and `run --backend dummy` goes through plan, lease, prepare, execute,
//! parse and store like any backend.

use std::path::Path;
use std::process::Output;

use perf_runner_tests::cli;

fn run_in(dir: &Path, args: &[&str]) -> Output {
    cli::run_in(env!("CARGO_BIN_EXE_perf-runner"), dir, args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stdout));
    })
}

/// A folder whose `perf-runner.toml` is `[dummy]` followed by `settings`.
fn dummy_folder(settings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perf-runner.toml"),
        format!("[dummy]\n{settings}"),
    )
    .unwrap();
    dir
}

/// A folder whose config makes the dummy's human build 1.25× the baseline.
fn human_faster_by_a_quarter() -> tempfile::TempDir {
    dummy_folder("speed = { human = 1.25 }\n")
}

#[test]
fn the_dummy_backend_runs_a_commit_from_the_command_line() {
    let dir = human_faster_by_a_quarter();
    let d = dir.path();
    let o = run_in(d, &cli::dummy_run(&["--repeats", "2"]));
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("4 job(s) succeeded, 0 failed"), "{out}");
    assert!(out.contains("decides on output_throughput_tps"), "{out}");
    assert!(
        out.contains("  baseline     1280.0000 [1280.0000, 1280.0000] n=2"),
        "{out}"
    );
    assert!(
        out.contains("  human        1600.0000 [1600.0000, 1600.0000] n=2"),
        "{out}"
    );
    assert!(
        out.contains("  human/baseline  1.250 [1.250, 1.250] inconclusive"),
        "{out}"
    );
    let runs = json(&run_in(d, &["runs", "--format", "json"]));
    assert_eq!(runs["runs"][0]["backend"], "dummy", "{runs}");

    let o = run_in(d, &["doctor", "--backend", "dummy", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(json(&o)["backends"][0]["health"]["usable"], true);

    let o = run_in(d, &["config", "--defaults"]);
    let defaults: toml::Table = toml::from_str(&String::from_utf8_lossy(&o.stdout)).unwrap();
    assert!(defaults.contains_key("dummy"));
}

#[test]
fn run_and_gc_print_json_on_request() {
    let dir = human_faster_by_a_quarter();
    let d = dir.path();
    let o = run_in(d, &cli::dummy_run(&["--repeats", "3", "--format", "json"]));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["status"], "finished");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["summary"]["succeeded"], 6, "{v}");
    let task = &v["report"]["tasks"][0];
    assert_eq!(task["primary_metric"], "output_throughput_tps", "{task}");
    let cmp = &task["metrics"][0]["comparisons"][0]["comparison"];
    assert_eq!(cmp["verdict"], "improved", "{cmp}");
    let o = run_in(d, &["gc", "--format", "json", "--grace-s", "0"]);
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert!(
        v["backends"].as_array().is_some_and(|b| !b.is_empty()),
        "{v}"
    );
}

#[test]
fn an_inconclusive_run_says_about_how_many_rounds_would_decide_it() {
    // The human build is 1.25× faster, but its runs wobble by round (×1.0, ×1.4, ×0.8): three
    // paired rounds cannot decide it against the ±2 % floor.
    let dir = dummy_folder("speed = { human = 1.25 }\nwobble = { human = [1.0, 1.4, 0.8] }\n");
    let d = dir.path();
    let o = run_in(d, &cli::dummy_run(&["--repeats", "3"]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("human/baseline  1.298 ["), "{out}");
    // The same estimate the statistics give for these rounds.
    let pairs = [(1.0, 1.25), (1.0, 1.25 * 1.4), (1.0, 1.25 * 0.8)];
    let k = runner_core::stats::rounds_to_decide(&pairs, true, 0.02)
        .unwrap()
        .rounds
        .unwrap();
    assert!((10..40).contains(&k), "{k}");
    assert!(
        out.contains(&format!(
            "about {k} paired rounds (--repeats {k}) would decide it as improved, with a 90 % \
             chance if this estimate and its per-round spread hold"
        )),
        "{out}"
    );
    let runs = json(&run_in(d, &["runs", "--format", "json"]));
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    let md = String::from_utf8_lossy(&run_in(d, &["report", &id]).stdout).into_owned();
    assert!(
        md.contains("human/baseline inconclusive: if its estimate 1.298 and its per-round spread")
            && md.contains(&format!(
                "`improved`, with a 90 % chance (3 ran; `--repeats {k}`)"
            )),
        "{md}"
    );
}

#[test]
fn impossible_speeds_make_the_backend_unusable_and_are_named() {
    let dir = dummy_folder("speed = { agent = -1.0 }\nwobble = { human = [1.0, 0.0] }\n");
    let o = run_in(dir.path(), &cli::dummy_run(&["--repeats", "3"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("dummy.speed.agent = -1"), "{err}");
    assert!(err.contains("dummy.wobble.human[1] = 0"), "{err}");
    let runs = json(&run_in(dir.path(), &["runs", "--format", "json"]));
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}
