//! Reports of a real run through the command line (the dummy backend: computed results):
//! the provenance block, P50/P99 latencies per variant, the agent comparison plot,
//! `report --metric`, and JSON outputs that validate against `perf-runner schema NAME`.

use std::path::Path;
use std::process::{Command, Output};

use perf_runner_tests::cli::{assert_valid, run_in, schema_errors};

use serde_json::Value;
use sha2::{Digest, Sha256};

fn cli(dir: &Path, args: &[&str]) -> Output {
    run_in(env!("CARGO_BIN_EXE_perf-runner"), dir, args)
}

fn stdout(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap()
}

/// A finished dummy run of one serving commit, baseline, human (1.25× faster) and agent
/// (1.1× faster), 3 repeats each: the directory and the run id.
fn dummy_run() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("perf-runner.toml"),
        "[dummy]\nspeed = { human = 1.25, agent = 1.1 }\nstep_ms = 1\n",
    )
    .unwrap();
    std::fs::write(
        d.join("agent.diff"),
        "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    stdout(&cli(
        d,
        &[
            "run",
            "e3580537",
            "--backend",
            "dummy",
            "--variants",
            "baseline,human,agent",
            "--patch",
            "agent.diff",
            "--repeats",
            "3",
        ],
    ));
    let runs = json(&cli(d, &["runs", "--format", "json"]));
    let id = runs["runs"][0]["id"].as_str().unwrap().to_string();
    (dir, id)
}

fn sha256_of_argv(argv: &Value) -> String {
    let argv: Vec<String> = serde_json::from_value(argv.clone()).unwrap();
    hex::encode(Sha256::digest(serde_json::to_string(&argv).unwrap()))
}

/// The commit this checkout is at, when git can say.
fn head() -> Option<String> {
    let o = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

#[test]
fn a_report_carries_provenance_percentiles_and_the_agent_plot() {
    let (dir, run) = dummy_run();
    let d = dir.path();
    let r = json(&cli(d, &["report", &run, "--format", "json"]));
    // The program that ran the run and the one that reported it: version and commit.
    for who in ["run_by", "report_by"] {
        let p = &r["provenance"][who];
        assert_eq!(p["version"], env!("CARGO_PKG_VERSION"), "{r:#}");
        let commit = p["commit"].as_str().unwrap();
        assert!(
            commit == "unknown"
                || (commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
            "{commit}"
        );
        if let Some(h) = head() {
            assert_eq!(commit, h, "the binary names the commit it was built from");
        }
    }
    let task = &r["tasks"][0];
    let variants = task["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3);
    // The attempts as stored, to check the digests against.
    let attempts = stdout(&cli(d, &["report", &run, "--format", "jsonl"]));
    assert!(!attempts.is_empty());
    for v in variants {
        let p = &v["provenance"];
        assert_eq!(p["engine_versions"], serde_json::json!(["0.0.0+dummy"]));
        assert_eq!(p["backends"], serde_json::json!(["dummy"]));
        assert_eq!(p["hosts"], serde_json::json!(["dummy"]));
        assert!(p["gpu_names"][0].as_str().unwrap().contains("H100"), "{p}");
        for key in ["client_argv_sha256", "server_argv_sha256"] {
            let ds = p[key].as_array().unwrap();
            assert!(!ds.is_empty(), "{key}: {p}");
            for dg in ds {
                let dg = dg.as_str().unwrap();
                assert!(dg.len() == 64 && dg.bytes().all(|b| b.is_ascii_hexdigit()));
            }
        }
        // The median run's client argv hashes to one of the recorded digests.
        let median = sha256_of_argv(&v["median_run"]["client_argv"]);
        assert!(
            p["client_argv_sha256"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == &Value::from(median.clone())),
            "{p}"
        );
    }
    // P50 and P99 per variant from the results' median_*/p99_* keys: the dummy's baseline
    // TTFT is 100 ms (P99 1.5×); the human build is 1.25× faster.
    let ttft = |i: usize| {
        variants[i]["latency"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["family"] == "ttft")
            .cloned()
            .unwrap()
    };
    assert_eq!(ttft(0)["p50_ms"], 100.0);
    assert_eq!(ttft(0)["p99_ms"], 150.0);
    assert_eq!(ttft(0)["n"], 3);
    assert_eq!(ttft(1)["p50_ms"], 80.0);
    assert!(
        variants[0]["latency"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["family"] == "tpot" && l["p99_ms"].is_f64())
    );

    let md = stdout(&cli(d, &["report", &run]));
    assert!(md.contains("## Provenance"), "{md}");
    assert!(
        md.contains(&format!("run by {}", env!("CARGO_PKG_VERSION"))),
        "{md}"
    );
    assert!(md.contains("| TTFT P50 | TTFT P99 |"), "{md}");
    assert!(md.contains("| baseline | 3 | 100.0 | 150.0 |"), "{md}");
    assert!(md.contains("0.0.0+dummy"), "{md}");
    let json_text = stdout(&cli(d, &["report", &run, "--format", "json"]));
    let page = stdout(&cli(d, &["report", &run, "--format", "html"]));
    for text in [&md, &json_text, &page] {
        assert!(
            !text.contains(&d.display().to_string()) && !text.contains(env!("CARGO_MANIFEST_DIR")),
            "no absolute path of this machine in the report"
        );
    }
    assert!(page.contains("<h2>Provenance</h2>") && page.contains("TTFT P99"));
    assert!(page.contains("<h2>Agent comparison</h2>"));
    let plot = page
        .split("aria-label=\"agent comparison\"")
        .nth(1)
        .unwrap();
    let plot = plot.split("</svg>").next().unwrap();
    assert_eq!(
        plot.matches("<circle").count(),
        2,
        "agent/baseline and agent/human"
    );
    // Speedups: agent/baseline 1.10, agent/human 1.10/1.25 = 0.88.
    assert!(
        plot.contains("1.100 improved") && plot.contains("0.880 regressed"),
        "{plot}"
    );
}

#[test]
fn report_metric_chooses_the_metric_of_the_tables_and_verdicts() {
    let (dir, run) = dummy_run();
    let d = dir.path();
    let r = json(&cli(d, &["report", &run, "--format", "json"]));
    assert_eq!(r["tasks"][0]["primary_metric"], "output_throughput_tps");
    assert!(r["options"].get("metric").is_none());

    let r = json(&cli(
        d,
        &[
            "report",
            &run,
            "--format",
            "json",
            "--metric",
            "ttft_p99_ms",
        ],
    ));
    let t = &r["tasks"][0];
    assert_eq!(r["options"]["metric"], "ttft_p99_ms");
    assert_eq!(t["primary_metric"], "ttft_p99_ms");
    assert_eq!(t["metrics"][0]["metric"], "ttft_p99_ms");
    assert_eq!(t["metrics"][0]["higher_is_better"], false);
    assert_eq!(t["variants"][0]["summary"]["median"], 150.0);
    let hb = &t["metrics"][0]["comparisons"][0];
    assert_eq!(hb["pair"], "human_vs_baseline");
    assert!((hb["comparison"]["ratio"]["value"].as_f64().unwrap() - 0.8).abs() < 1e-9);
    assert_eq!(hb["comparison"]["verdict"], "improved");
    assert_eq!(t["validity"]["status"], "reproduced");
    // The chosen metric is not repeated among the secondary ones.
    let secondary: Vec<&Value> = t["metrics"].as_array().unwrap()[1..]
        .iter()
        .map(|m| &m["metric"])
        .collect();
    assert!(!secondary.contains(&&Value::from("ttft_p99_ms")));
    let md = stdout(&cli(d, &["report", &run, "--metric", "ttft_p99_ms"]));
    assert!(
        md.contains("decides on `ttft_p99_ms`: chosen for this report (--metric)"),
        "{md}"
    );

    // A metric no attempt reported is a usage error that lists the ones there are.
    let o = cli(d, &["report", &run, "--metric", "ttft_p99.9_ms"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--metric ttft_p99.9_ms: no attempt of run"),
        "{err}"
    );
    assert!(err.contains("ttft_p99_ms"), "{err}");
    assert!(o.stdout.is_empty());
}

fn schema_of(d: &Path, name: &str) -> Value {
    json(&cli(d, &["schema", name]))
}

#[test]
fn json_outputs_validate_against_their_published_schemas() {
    let (dir, run) = dummy_run();
    let d = dir.path();
    let listed = stdout(&cli(d, &["schema"]));
    for name in ["report", "runs", "doctor", "compare"] {
        assert!(listed.lines().any(|l| l.starts_with(name)), "{listed}");
    }
    let o = cli(d, &["schema", "nosuch"]);
    assert_eq!(o.status.code(), Some(2));

    for args in [
        vec!["report", run.as_str(), "--format", "json"],
        vec![
            "report",
            run.as_str(),
            "--format",
            "json",
            "--metric",
            "tpot_median_ms",
        ],
    ] {
        let s = schema_of(d, "report");
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_valid("report", &s, &json(&cli(d, &args)));
    }
    assert_valid(
        "runs",
        &schema_of(d, "runs"),
        &json(&cli(d, &["runs", "--format", "json"])),
    );
    assert_valid(
        "doctor",
        &schema_of(d, "doctor"),
        &json(&cli(
            d,
            &["doctor", "--backend", "dummy", "--format", "json"],
        )),
    );
    // compare: the vLLM-schema files the report writes, baseline against human.
    let out = d.join("out");
    stdout(&cli(
        d,
        &[
            "report",
            &run,
            "--format",
            "json",
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    let mut files: Vec<_> = std::fs::read_dir(out.join("vllm"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let pick = |v: &str| {
        files
            .iter()
            .find(|p| p.to_string_lossy().ends_with(&format!("-{v}.json")))
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let c = json(&cli(
        d,
        &[
            "compare",
            &pick("baseline"),
            &pick("human"),
            "--format",
            "json",
        ],
    ));
    assert_valid("compare", &schema_of(d, "compare"), &c);

    // A report that breaks its schema is caught: a wrong type deep inside.
    let mut bad = json(&cli(d, &["report", &run, "--format", "json"]));
    bad["tasks"][0]["variants"][0]["latency"][0]["p50_ms"] = "fast".into();
    let errors = schema_errors(&schema_of(d, "report"), &bad);
    assert!(
        errors.iter().any(|e| e.contains("/latency/0/p50_ms")),
        "{errors:?}"
    );
}
