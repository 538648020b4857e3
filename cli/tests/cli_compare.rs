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
fn per_iteration_latencies_describe_their_run_and_one_run_per_side_decides_nothing() {
    let d = tempfile::tempdir().unwrap();
    let base = latency_json(d.path(), "base.json", 1.0, 30);
    let other = latency_json(d.path(), "other.json", 0.8, 30);
    let (code, v, err) = compare(&[&base, &other]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["metric"], "latency_avg_s");
    assert!(v["metric_why"].as_str().unwrap().contains("latency"));
    // 30 iterations are one run: n = 1, and one run per side decides nothing.
    assert_eq!(v["base"]["samples"], "per_run");
    assert_eq!(v["base"]["n"], 1);
    assert_eq!(v["base"]["runs"][0]["within"]["kind"], "per_iteration");
    assert_eq!(v["base"]["runs"][0]["within"]["n"], 30);
    assert_eq!(v["verdict"], "inconclusive", "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("at least 3 runs"),
        "{v}"
    );
    assert!(
        v["mann_whitney"].is_null(),
        "no rank test across requests of one run"
    );
    let r = v["ratio"]["value"].as_f64().unwrap();
    assert!((r - 0.8).abs() < 0.02, "{r}");
}

#[test]
fn an_appended_result_file_is_one_run_per_line() {
    let d = tempfile::tempdir().unwrap();
    let appended = |name: &str, center: f64| -> String {
        let lines: Vec<String> = (0..3)
            .map(|i| {
                let x = center * (1.0 + 0.005 * wobble(i));
                serde_json::json!({"avg_latency": x, "latencies": [x, x], "percentiles": {"50": x}})
                    .to_string()
            })
            .collect();
        let p = d.path().join(name);
        std::fs::write(&p, lines.join("\n") + "\n").unwrap();
        p.display().to_string()
    };
    let base = appended("base.jsonl", 1.0);
    let other = appended("other.jsonl", 0.8);
    let (code, v, err) = compare(&[&base, &other]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["base"]["n"], 3, "{v}");
    assert!(
        v["base"]["runs"][2]["source"]
            .as_str()
            .unwrap()
            .ends_with("base.jsonl:3"),
        "{v}"
    );
    assert_eq!(v["verdict"], "improved", "lower latency is better: {v}");
    let (_, same, _) = compare(&[&base, &base]);
    assert_eq!(same["verdict"], "no_change", "{same}");
}

#[test]
fn directories_are_repeats_and_per_request_ttfts_describe_their_run() {
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
    // The same run on both sides, 20 requests each: still one run per side, never "regressed"
    // with a tiny p-value from pooling requests.
    assert_eq!(v["base"]["n"], 1);
    assert_eq!(v["verdict"], "inconclusive", "{v}");
    let within = &v["base"]["runs"][0]["within"];
    assert_eq!(within["kind"], "per_request");
    assert_eq!(within["n"], 20);
    assert!(
        (within["median"].as_f64().unwrap() - 100.0).abs() < 6.0,
        "seconds became ms: {within}"
    );
}

#[test]
fn a_finite_request_rate_makes_tpot_the_primary_metric() {
    let d = tempfile::tempdir().unwrap();
    let (b, o) = (d.path().join("b"), d.path().join("o"));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::create_dir_all(&o).unwrap();
    for i in 0..4 {
        for (dir, tpot) in [(&b, 10.0), (&o, 12.0)] {
            let v = serde_json::json!({
                "request_rate": 50.0, "max_concurrency": null,
                "duration": 10.0, "completed": 100, "total_input_tokens": 1000,
                "total_output_tokens": 2000, "request_throughput": 10.0,
                // The arrival rate sets the throughput: the same on both sides.
                "output_throughput": 200.0 * (1.0 + 0.01 * wobble(i)),
                "total_token_throughput": 300.0,
                "mean_ttft_ms": 20.0, "median_ttft_ms": 20.0, "p99_ttft_ms": 30.0,
                "mean_tpot_ms": tpot, "median_tpot_ms": tpot * (1.0 + 0.01 * wobble(i + 5)),
                "p99_tpot_ms": tpot * 1.5,
                "mean_itl_ms": tpot, "median_itl_ms": tpot, "p99_itl_ms": tpot * 2.0,
            });
            std::fs::write(dir.join(format!("r{i}.json")), v.to_string()).unwrap();
        }
    }
    let (code, v, err) = compare(&[b.to_str().unwrap(), o.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(v["metric"], "tpot_median_ms", "{v}");
    assert!(
        v["metric_why"]
            .as_str()
            .unwrap()
            .contains("finite request rate")
    );
    assert_eq!(v["verdict"], "regressed", "{v}");
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
