//! The `perf-runner` binary as a user runs it: `tasks`, `plan`, `config`, exit codes, stdout
//! for results and stderr for problems.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
    c.env_remove("PERF_RUNNER_LOG");
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("runs")
}

fn real_world() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/real-world.jsonl")
        .display()
        .to_string()
}

fn stdout_json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    })
}

#[test]
fn tasks_on_the_embedded_default() {
    let o = run(&["tasks", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = stdout_json(&o);
    assert_eq!(v["schema_version"], 1);
    let tasks = v["tasks"].as_array().unwrap();
    assert!(tasks.len() >= 8);
    assert!(
        tasks.iter().any(|t| t["status"] == "bad_config"),
        "the placeholder row"
    );
    assert!(tasks.iter().filter(|t| t["status"] == "ok").count() >= 7);
}

#[test]
fn tasks_on_a_messy_dataset_reports_rows_and_goes_on() {
    let o = run(&["tasks", &real_world(), "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "rejected rows give the input exit code"
    );
    let v = stdout_json(&o);
    let errors = v["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![12, 17, 67, 71, 87]);
    assert!(v["tasks"].as_array().unwrap().len() >= 100);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("line 87: field 'files_changed'"),
        "{stderr}"
    );
}

#[test]
fn plan_text_shows_the_exact_split() {
    let o = run(&["plan", "e3580537"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let server = out
        .lines()
        .find(|l| l.starts_with("server"))
        .expect("server line");
    assert!(server.contains("--enable-prefix-caching --enable-chunked-prefill"));
    let client = out
        .lines()
        .find(|l| l.starts_with("client"))
        .expect("client line");
    assert!(!client.contains("--enable-prefix-caching"), "{client}");
    assert!(out.contains("one step, shared by every variant"));
}

#[test]
fn plan_json_has_one_step_and_a_build_per_variant() {
    let patch = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(patch.path(), "--- a/x\n+++ b/x\n").unwrap();
    let o = run(&[
        "plan",
        &real_world(),
        "22d33bac",
        "--patch",
        patch.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = stdout_json(&o);
    assert_eq!(v["schema_version"], 1);
    let builds = v["plan"]["builds"].as_array().unwrap();
    let variants: Vec<&str> = builds
        .iter()
        .map(|b| b["variant"].as_str().unwrap())
        .collect();
    assert_eq!(variants, vec!["baseline", "human", "agent"]);
    assert_eq!(builds[2]["patch"]["sha256"].as_str().unwrap().len(), 64);
    assert!(v["plan"]["step"]["client"]["argv"].is_array());
}

#[test]
fn plan_errors_are_clear() {
    let o = run(&["plan", "526de822"]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("placeholder") && err.contains("bad_config"),
        "{err}"
    );

    let o = run(&["plan", &real_world(), "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("hex prefix"));

    let o = run(&["plan", "e3580537", "--variants", "baseline,humn"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("humn"));

    let o = run(&[
        "plan",
        "e3580537",
        "--variants",
        "agent",
        "--patch",
        "/nonexistent.diff",
    ]);
    // A file that cannot be read is an input error.
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent.diff"));
}

#[test]
fn config_layers_env_over_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("perf-runner.toml");
    std::fs::write(
        &file,
        "[timeouts]\nprepare_s = 77\nserver_ready_s = 5\n[bogus]\nx = 1\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(dir.path())
        .env("PERF_RUNNER__TIMEOUTS__SERVER_READY_S", "9")
        .args(["config"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("prepare_s = 77"), "{out}");
    assert!(out.contains("server_ready_s = 9"), "{out}");
    assert!(out.contains("benchmark_s = 3600"), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("unknown configuration key") && err.contains("bogus"),
        "{err}"
    );

    let o = run(&["--config", "/nonexistent.toml", "config"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn batch_skips_what_triage_calls_not_verifiable_and_records_why() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let o = bin()
        .args(["--store", store.to_str().unwrap(), "batch", "--backend", "local"])
        .env("PERF_RUNNER__LOCAL__CPU_ONLY", "true")
        .env("XDG_CACHE_HOME", dir.path())
        .args(["--variants", "baseline,human"])
        .arg("--skip-list")
        .arg({
            let p = dir.path().join("skip.txt");
            // Everything verifiable in the example is skipped by the list, so no job runs here.
            std::fs::write(&p, "e3580537 bad_config x\n299ebb62 x\n0ec82edd x\n3b61cb45 x\n2deb029d x\nbd6028d6 x\n310aca88 x\n").unwrap();
            p
        })
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("skip b6d10354: not verifiable: model_too_large"),
        "{err}"
    );
    assert!(
        err.contains("skip 6bd8ebf0: not verifiable: rocm_specific"),
        "{err}"
    );
    assert!(
        err.contains("skip 526de822: not verifiable: bad_config"),
        "{err}"
    );
    assert!(
        err.contains("skip e3580537: listed in the skip list"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("10 task(s) skipped or not plannable"), "{out}");
}

#[test]
fn plan_with_the_modal_backend_shows_the_real_sdk_objects() {
    let has_modal = Command::new("python3")
        .args(["-c", "import modal"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_modal {
        eprintln!("the modal SDK is not installed here; skipped");
        return;
    }
    let o = run(&["plan", "310aca88", "--backend", "modal"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = stdout_json(&o);
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2);
    for b in builds {
        assert_eq!(b["dry_run"]["gpu"], "H100!:4", "the SKU is pinned: {b}");
    }
    assert_eq!(v["plan"]["step"]["gpu"]["count"], 4);
}

#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::{BufRead, BufReader};
    // ~100 KB of JSON: more than a pipe holds, so the writer meets the closed pipe.
    let mut child = bin()
        .args(["triage", &real_world(), "--format", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader is dropped here: the pipe closes while the command still prints.
    let o = child.wait_with_output().unwrap();
    assert_eq!(first.trim(), "{");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn plans_say_which_serving_client_and_why() {
    // `vllm bench serve` on random prompts: the native client, the same for every variant.
    let o = run(&["plan", "6bd8ebf0", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = stdout_json(&o);
    let client = &v["plan"]["step"]["client"]["argv"];
    assert_eq!(client[0], "{PERF_RUNNER}", "{client}");
    assert_eq!(client[2], "serve");
    assert_eq!(v["plan"]["step"]["warmup"]["argv"][0], "{PERF_RUNNER}");
    let warnings = v["plan"]["warnings"].to_string();
    assert!(warnings.contains("serving client: native"), "{warnings}");

    // ShareGPT without a file: the engine's client, and why.
    let o = run(&["plan", "e3580537"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("serving client: the engine's own (sharegpt needs --dataset-path)"),
        "{out}"
    );

    // Told so: the engine's client.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perf-runner.toml"),
        "[client]\nkind = \"engine\"\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(dir.path())
        .args(["plan", "6bd8ebf0", "--format", "json"])
        .output()
        .unwrap();
    let v = stdout_json(&o);
    assert_eq!(v["plan"]["step"]["client"]["argv"][0], "{PYTHON}");
    assert!(
        v["plan"]["warnings"]
            .to_string()
            .contains("kind = \\\"engine\\\"")
    );
}

#[test]
fn a_patch_next_to_a_dataset_named_by_its_bare_file_name_is_taken() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("known.jsonl"),
        r#"{"commit_hash": "c0ffee00000000000000000000000000000000aa", "parent_commit": "ba5e0000000000000000000000000000000000bb", "patch": "p.diff", "perf_command": "vllm bench serve --model m/tiny --num-prompts 10"}"#,
    )
    .unwrap();
    std::fs::write(
        d.path().join("p.diff"),
        "--- a/vllm/x.py\n+++ b/vllm/x.py\n@@ -1 +1 @@\n-a\n+b\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(d.path())
        .args(["plan", "known.jsonl", "c0ffee00"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("agent"),
        "{err}"
    );
}
