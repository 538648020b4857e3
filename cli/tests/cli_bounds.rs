//! Hostile input through the binary: devices, FIFOs and over-cap files are refused within a
//! second with a message naming them; numeric flags out of range are usage errors naming the
//! flag; result files with impossible or wrongly typed metrics are failures, never metrics,
//! and `compare` refuses them instead of computing a ratio.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run the binary with `envs`; kill it and fail the test if it is still running after 10 s.
/// Returns its output and how long it ran.
fn run_env(args: &[&str], envs: &[(&str, &str)]) -> (Output, Duration) {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, envs)
}

/// [`run_env`] in the folder `dir`.
fn run_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("PERF_RUNNER_LOG")
        .env_remove("PERF_RUNNER_CONFIG")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("perf-runner {args:?} still running after 10 s: it blocked");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    (child.wait_with_output().expect("output"), elapsed)
}

fn run(args: &[&str]) -> (Output, Duration) {
    run_env(args, &[])
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mkfifo(dir: &Path) -> PathBuf {
    let p = dir.join("pipe.jsonl");
    let ok = Command::new("mkfifo")
        .arg(&p)
        .status()
        .expect("mkfifo runs");
    assert!(ok.success());
    p
}

/// A refusal: quick, an error exit, and a message naming the path and what is wrong.
fn assert_refused(args: &[&str], path: &str, what: &str) {
    let (o, t) = run(args);
    let err = stderr(&o);
    assert!(t < Duration::from_secs(1), "{args:?} took {t:?}");
    assert!(
        matches!(o.status.code(), Some(2 | 3)),
        "{args:?}: exit {:?}\n{err}",
        o.status.code()
    );
    assert!(
        err.contains(path) && err.contains(what) && err.contains("not a regular file"),
        "{args:?}: {err}"
    );
}

#[test]
fn devices_are_refused_at_once() {
    assert_refused(&["parse", "/dev/zero"], "/dev/zero", "character device");
    assert_refused(&["tasks", "/dev/zero"], "/dev/zero", "character device");
    assert_refused(
        &["compare", "/dev/zero", "/dev/zero"],
        "/dev/zero",
        "character device",
    );
    let (o, _) = run(&["parse", "/dev/zero"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "an unreadable file is an input error"
    );
}

#[test]
fn fifos_are_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = mkfifo(d.path());
    let p = fifo.to_str().unwrap();
    assert_refused(&["parse", p], p, "FIFO");
    assert_refused(&["tasks", p], p, "FIFO");
    assert_refused(&["plan", p, "e3580537"], p, "FIFO");
    assert_refused(
        &["plan", "e3580537", "--variants", "agent", "--patch", p],
        p,
        "FIFO",
    );
    let dir = d.path().to_str().unwrap();
    assert_refused(&["tasks", dir], dir, "directory");
}

#[test]
fn a_config_file_that_is_a_fifo_is_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("perf-runner.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let home = d.path().join("home");
    let envs = [("XDG_CONFIG_HOME", home.to_str().unwrap())];
    // ./perf-runner.toml, found by itself, and the same given as --config.
    for args in [vec!["tasks"], vec!["--config", "perf-runner.toml", "tasks"]] {
        let (o, t) = run_in(d.path(), &args, &envs);
        let err = stderr(&o);
        // Not blocked (the watchdog would have killed it at 10 s); quick even on a busy host.
        assert!(t < Duration::from_secs(5), "{args:?} took {t:?}");
        assert_eq!(o.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains("perf-runner.toml") && err.contains("not a regular file"),
            "{args:?}: {err}"
        );
    }
    // The user's config file, when it is a FIFO, is refused the same way.
    std::fs::remove_file(&fifo).unwrap();
    std::fs::create_dir_all(home.join("perf-runner")).unwrap();
    let user = home.join("perf-runner").join("config.toml");
    assert!(
        Command::new("mkfifo")
            .arg(&user)
            .status()
            .unwrap()
            .success()
    );
    let (o, _) = run_in(d.path(), &["tasks"], &envs);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("config.toml") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn files_over_their_cap_are_refused_with_size_cap_and_setting() {
    let d = tempfile::tempdir().unwrap();
    let dataset = d.path().join("big.jsonl");
    std::fs::write(&dataset, format!("{}\n", " ".repeat(199))).unwrap();
    let env = [("PERF_RUNNER__LIMITS__MAX_DATASET_BYTES", "100")];
    let (o, _) = run_env(&["tasks", dataset.to_str().unwrap()], &env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    for part in [
        "big.jsonl",
        "200 bytes",
        "100 bytes",
        "limits.max_dataset_bytes",
        "PERF_RUNNER__LIMITS__MAX_DATASET_BYTES",
    ] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    // The same file under the default cap is read.
    let (o, _) = run(&["tasks", dataset.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let result = d.path().join("r.json");
    std::fs::write(
        &result,
        format!("{{\"avg_latency\": 1.0, \"pad\": \"{}\"}}", "x".repeat(300)),
    )
    .unwrap();
    let env = [("PERF_RUNNER__LIMITS__MAX_RESULT_BYTES", "256")];
    let (o, _) = run_env(&["parse", result.to_str().unwrap()], &env);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("r.json") && err.contains("256 bytes") && err.contains("max_result_bytes"),
        "{err}"
    );
    let (o, _) = run_env(
        &[
            "compare",
            result.to_str().unwrap(),
            result.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("max_result_bytes"), "{}", stderr(&o));
}

#[test]
fn a_huge_perf_command_is_a_bad_config_row_not_a_stall() {
    let d = tempfile::tempdir().unwrap();
    let dataset = d.path().join("long.jsonl");
    let command = format!(
        "python benchmarks/benchmark_serving.py --model m{}",
        " --x 1".repeat(200_000)
    );
    let row = serde_json::json!({
        "commit_hash": "e3580537a41a46b0f3cd750b86b633c1857a8c90",
        "parent_commit": "f508e03e7f2d8aed897d8843e1ed1668e5c4ad7a",
        "perf_command": command,
    });
    std::fs::write(&dataset, format!("{row}\n")).unwrap();
    let (o, t) = run(&["tasks", "--format", "json", dataset.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(t < Duration::from_secs(5), "took {t:?}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let task = &v["tasks"][0];
    assert_eq!(task["status"], "bad_config");
    let detail = task["detail"].as_str().unwrap();
    assert!(
        detail.contains(&command.len().to_string()) && detail.contains("65536"),
        "{detail}"
    );
}

#[test]
fn numeric_flags_out_of_range_are_usage_errors_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["batch", "--repeats", "0"], "--repeats"),
        (&["batch", "--repeats", "4294967295"], "--repeats"),
        (&["run", "e3580537", "--repeats", "1001"], "--repeats"),
        (&["batch", "--repeats", "-1"], "--repeats"),
        (
            &["batch", "--budget-gpu-hours", "NaN"],
            "--budget-gpu-hours",
        ),
        (
            &["batch", "--budget-gpu-hours", "inf"],
            "--budget-gpu-hours",
        ),
        (&["batch", "--budget-gpu-hours", "0"], "--budget-gpu-hours"),
        (&["batch", "--budget-gpu-hours", "-2"], "--budget-gpu-hours"),
        (&["batch", "--concurrency", "0"], "--concurrency"),
        (&["batch", "--concurrency", "100000"], "--concurrency"),
        (&["gc", "--grace-s", "18446744073709551615"], "--grace-s"),
        (
            &["compare", "a", "b", "--noise-floor", "NaN"],
            "--noise-floor",
        ),
        (&["report", "x", "--noise-floor", "-0.5"], "--noise-floor"),
    ];
    for (args, flag) in cases {
        let (o, t) = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(t < Duration::from_secs(1), "{args:?} took {t:?}");
        assert!(
            err.contains(flag) && err.contains("invalid value"),
            "{args:?}: {err}"
        );
    }
    let (o, _) = run(&["batch", "--repeats", "0"]);
    assert!(stderr(&o).contains("1..=1000"), "the range is named");
    let (o, _) = run_env(&["config"], &[("PERF_RUNNER__PLAN__REPEATS", "0")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("plan.repeats"), "{}", stderr(&o));
}

/// A serving `--save-result` file with the given fields replaced.
fn serving_result(dir: &Path, name: &str, replace: &[(&str, serde_json::Value)]) -> String {
    let mut v = serde_json::json!({
        "duration": 10.0, "completed": 100, "total_input_tokens": 1000, "total_output_tokens": 2000,
        "request_throughput": 3.0, "output_throughput": 200.0, "total_token_throughput": 300.0,
        "mean_ttft_ms": 100.0, "median_ttft_ms": 100.0, "p99_ttft_ms": 110.0,
        "mean_tpot_ms": 10.0, "median_tpot_ms": 10.0, "p99_tpot_ms": 12.0,
    });
    for (k, x) in replace {
        v[*k] = x.clone();
    }
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.display().to_string()
}

#[test]
fn impossible_metrics_are_failures_with_evidence_through_parse() {
    use serde_json::json;
    let d = tempfile::tempdir().unwrap();
    let cases = [
        (
            "neg.json",
            "output_throughput",
            json!(-200.0),
            "output_throughput_tps = -200",
        ),
        ("zero.json", "duration", json!(0), "duration_s = 0"),
        (
            "ttft.json",
            "mean_ttft_ms",
            json!(-20),
            "ttft_mean_ms = -20",
        ),
        (
            "huge.json",
            "p99_ttft_ms",
            json!(1e44),
            "ttft_p99_ms = 1e44",
        ),
        (
            "typed.json",
            "output_throughput",
            json!("200.0"),
            "a string (\"200.0\")",
        ),
    ];
    for (name, field, value, says) in cases {
        let p = serving_result(d.path(), name, &[(field, value)]);
        let (o, _) = run(&["parse", "--format", "json", &p]);
        assert_eq!(o.status.code(), Some(4), "{name}: a failed parse, exit 4");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let r = &v["results"][0];
        assert_eq!(r["failure"]["code"], "no_metrics", "{name}: {r}");
        assert_eq!(r["metrics"], json!({}), "{name}: no metric from it");
        let evidence: Vec<&str> = r["failure"]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.as_str())
            .collect();
        let evidence = evidence.join("\n");
        assert!(
            evidence.contains(name) && evidence.contains(says) && evidence.contains(field),
            "{name}: {evidence}"
        );
    }
    // The untouched file parses.
    let good = serving_result(d.path(), "good.json", &[]);
    let (o, _) = run(&["parse", "--format", "json", &good]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn compare_refuses_impossible_values_instead_of_a_ratio() {
    use serde_json::json;
    let d = tempfile::tempdir().unwrap();
    let good = serving_result(d.path(), "good.json", &[]);
    let cases = [
        ("neg.json", "output_throughput", json!(-1.0)),
        ("ttft.json", "mean_ttft_ms", json!(1e44)),
        ("typed.json", "output_throughput", json!("200.0")),
        ("sample.json", "ttfts", json!([0.1, -0.02, 0.1])),
        ("sample_typed.json", "ttfts", json!([0.1, "fast"])),
    ];
    for (name, field, value) in cases {
        let bad = serving_result(d.path(), name, &[(field, value)]);
        for (base, other, side) in [(&good, &bad, "OTHER"), (&bad, &good, "BASE")] {
            let (o, _) = run(&["compare", "--metric", "ttft_mean_ms", base, other]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{name}: {err}");
            assert!(o.stdout.is_empty(), "{name}: no ratio is printed");
            assert!(
                err.contains(side) && err.contains(name) && err.contains(field),
                "{name}: {err}"
            );
        }
    }
    let (o, _) = run(&["compare", &good, &good]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
