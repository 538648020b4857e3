//! The dataset catalogue end to end: a command that relies on its serving client's default
//! (ShareGPT) is `dataset_missing` without a mirror and `verifiable` with one; a real run with
//! the local backend and the stand-in engine gives every variant the same mirrored file, and
//! every attempt records its sha256.

mod common;

use common::{HUMAN, PARENT, World, text};
use runner_core::Variant;
use serde_json::Value;

const FILE: &str = "ShareGPT_V3_unfiltered_cleaned_split.json";
/// `vllm bench serve` with ShareGPT named but no `--dataset-path`.
const SHAREGPT_SERVE: &str = "vllm bench serve --model m/tiny --dataset-name sharegpt \
                              --num-prompts 8 --sharegpt-output-len 16 --ignore-eos";
/// The serving script's default dataset (ShareGPT), as most real perf commands rely on it.
const SCRIPT_DEFAULT: &str = "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct --num-prompts 10";

fn add_mirror(w: &World) -> Vec<u8> {
    use std::io::Write;
    let mirror = w.path("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    // Conversations long enough for a serving client's filter (prompt and reply ≥ 4 tokens).
    let body = br#"[{"id": "a", "conversations": [{"from": "human", "value": "tell me a short story about a cat"}, {"from": "gpt", "value": "once upon a time a cat sat on a mat and slept"}]}, {"id": "b", "conversations": [{"from": "human", "value": "what is the capital of france please"}, {"from": "gpt", "value": "the capital of france is paris of course"}]}]"#;
    std::fs::write(mirror.join(FILE), body).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(w.path("perf-runner.toml"))
        .unwrap();
    writeln!(f, "[datasets]\nmirror = {mirror:?}").unwrap();
    body.to_vec()
}

fn triage_one(w: &World) -> Value {
    let row = serde_json::json!({
        "commit_hash": HUMAN, "parent_commit": PARENT, "perf_command": SCRIPT_DEFAULT,
        "gpu_config": "H100:1", "commit_date": "2024-08-28T00:36:31-07:00",
    });
    std::fs::write(w.path("ds.jsonl"), row.to_string()).unwrap();
    let o = w
        .cmd()
        .args(["triage", "ds.jsonl", "--format", "json"])
        .output()
        .unwrap();
    let v: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    v["tasks"][0].clone()
}

#[test]
fn triage_says_dataset_missing_without_a_mirror_and_verifiable_with_one() {
    let w = World::new(1.0, None);
    let t = triage_one(&w);
    assert_eq!(t["verdict"], "needs_attention", "{t}");
    assert_eq!(t["primary_reason"], "dataset_missing", "{t}");
    let shown = t.to_string();
    assert!(!shown.contains("bad_config"), "{shown}");
    assert!(
        shown.contains("mirror") && shown.contains(FILE),
        "the fix: {shown}"
    );

    add_mirror(&w);
    let t = triage_one(&w);
    assert_eq!(t["verdict"], "verifiable", "{t}");
    assert!(t.to_string().contains("will be provisioned"), "{t}");

    // The plan gives the client the file from the data dir.
    let o = w
        .cmd()
        .args(["plan", "ds.jsonl", HUMAN, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let client = plan["plan"]["step"]["client"]["argv"].to_string();
    assert!(client.contains(&format!("{{DATA_DIR}}/{FILE}")), "{client}");
}

#[test]
fn every_variant_runs_on_the_same_mirrored_file() {
    let w = World::new(1.0, None);
    let body = add_mirror(&w);
    let sha = runner_core::digest::sha256_hex(&body);
    let data = w.path("data");
    let o = w
        .cmd()
        .args([
            "run",
            "--commit",
            HUMAN,
            "--parent",
            PARENT,
            "--perf-command",
            SHAREGPT_SERVE,
        ])
        .args(["--repeats", "1", "--artifacts"])
        .arg(w.path("art"))
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains(&sha),
        "the provisioned hash is said: {}",
        text(&o)
    );
    assert_eq!(std::fs::read(data.join(FILE)).unwrap(), body);
    let attempts = w.attempts(&w.only_run());
    let mut variants: Vec<Variant> = attempts.iter().map(|a| a.job.variant).collect();
    // Warm servers rotate the order of a round; both ran.
    variants.sort();
    assert_eq!(variants, [Variant::Baseline, Variant::Human]);
    for a in &attempts {
        assert!(
            a.succeeded(),
            "{:?}: {:?} {:?}",
            a.job,
            a.failure,
            a.failure_detail
        );
        let hashes: Vec<(&str, &str)> = a
            .datasets
            .iter()
            .map(|d| (d.name.as_str(), d.sha256.as_str()))
            .collect();
        assert_eq!(hashes, [(FILE, sha.as_str())], "{:?}", a.job);
        assert!(
            a.client_argv.iter().any(|x| x.ends_with(FILE)),
            "{:?}",
            a.client_argv
        );
    }
}
