//! `perf-runner compare` over vLLM-format result files written by the test: per-iteration
//! latencies, per-request TTFTs, and directories of repeats.

use std::path::Path;
use std::process::Command;

fn compare(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .arg("compare")
        .args(args)
        .args(["--format", "json"])
        .output()
        .expect("runs");
    let v = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code(),
        v,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A deterministic wobble in [-1, 1].
fn wobble(i: usize) -> f64 {
    ((i * 7919 % 101) as f64 / 50.0) - 1.0
}

fn latency_json(dir: &Path, name: &str, center: f64, n: usize) -> String {
    let lat: Vec<f64> = (0..n).map(|i| center * (1.0 + 0.02 * wobble(i))).collect();
    let avg = lat.iter().sum::<f64>() / n as f64;
    let v = serde_json::json!({"avg_latency": avg, "latencies": lat, "percentiles": {"50": avg, "99": avg}});
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).unwrap();
    p.display().to_string()
}

fn serving_json(path: &Path, tput: f64, ttft_s: f64, n: usize) {
    let ttfts: Vec<f64> = (0..n).map(|i| ttft_s * (1.0 + 0.05 * wobble(i))).collect();
    let v = serde_json::json!({
        "duration": 10.0, "completed": n, "total_input_tokens": 1000, "total_output_tokens": 2000,
        "request_throughput": 3.0, "output_throughput": tput, "total_token_throughput": tput * 1.5,
        "mean_ttft_ms": ttft_s * 1000.0, "median_ttft_ms": ttft_s * 1000.0, "p99_ttft_ms": ttft_s * 1100.0,
        "mean_tpot_ms": 10.0, "median_tpot_ms": 10.0, "p99_tpot_ms": 12.0,
        "mean_itl_ms": 10.0, "median_itl_ms": 10.0, "p99_itl_ms": 12.0,
        "ttfts": ttfts, "itls": [[0.01, 0.011], [0.012]],
    });
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn per_iteration_latencies_detect_a_speedup() {
    let d = tempfile::tempdir().unwrap();
    let base = latency_json(d.path(), "base.json", 1.0, 30);
    let other = latency_json(d.path(), "other.json", 0.8, 30);
    let (code, v, err) = compare(&[&base, &other]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["metric"], "latency_avg_s");
    assert_eq!(v["base"]["samples"], "per_iteration");
    assert_eq!(v["base"]["n"], 30);
    assert_eq!(v["verdict"], "improved", "lower latency is better: {v}");
    let r = v["ratio"]["value"].as_f64().unwrap();
    assert!((r - 0.8).abs() < 0.02, "{r}");
    assert!(v["mann_whitney"]["p_value"].as_f64().unwrap() < 0.001);
    assert_eq!(v["noise_floor"]["source"], "configured");

    let (_, same, _) = compare(&[&base, &base]);
    assert_eq!(same["verdict"], "no_change", "{same}");
}

#[test]
fn directories_are_repeats_and_per_request_ttfts_are_used() {
    let d = tempfile::tempdir().unwrap();
    let (b, o) = (d.path().join("b"), d.path().join("o"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::create_dir_all(&o).unwrap();
    for i in 0..5 {
        serving_json(
            &b.join(format!("r{i}.json")),
            1000.0 * (1.0 + 0.01 * wobble(i)),
            0.1,
            20,
        );
        serving_json(
            &o.join(format!("r{i}.json")),
            1200.0 * (1.0 + 0.01 * wobble(i + 3)),
            0.1,
            20,
        );
    }
    let (code, v, err) = compare(&[b.to_str().unwrap(), o.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["metric"], "output_throughput_tps");
    assert_eq!(v["base"]["samples"], "per_run");
    assert_eq!(v["base"]["n"], 5);
    assert_eq!(v["verdict"], "improved");

    let one = b.join("r0.json");
    let (code, v, err) = compare(&[
        one.to_str().unwrap(),
        one.to_str().unwrap(),
        "--metric",
        "ttft_median_ms",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["base"]["samples"], "per_request");
    assert_eq!(v["base"]["n"], 20);
    assert!(
        (v["base"]["median"].as_f64().unwrap() - 100.0).abs() < 6.0,
        "seconds became ms"
    );
}

#[test]
fn bad_inputs_name_the_side_and_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let ok = latency_json(d.path(), "ok.json", 1.0, 5);
    let (code, _, err) = compare(&["/nonexistent", &ok]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("BASE") && err.contains("/nonexistent"),
        "{err}"
    );
    let (code, _, err) = compare(&[&ok, &ok, "--metric", "ttft_mean_ms"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("ttft_mean_ms"), "{err}");
    let (code, _, err) = compare(&[&ok, &ok, "--noise-floor", "5"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--noise-floor"), "{err}");
}
