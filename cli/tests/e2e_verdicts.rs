//! The known-effect check, end to end on the stand-in engine (the GPU host repeats it with real
//! vLLM): a human build 1.6× faster, an agent patch that makes the baseline build 0.6× as
//! fast (it edits the config the build ships), four interleaved rounds with an A/A baseline,
//! warm servers. `run` and `report` must call the speedup `improved`, the agent `regressed`
//! against both, make no call on the A/A, and say which metric decided and why.
//!
//! The stand-in is not the engine: this shows the plumbing from a patch to a verdict, not the
//! noise or the power of a verdict on a GPU. The effects are large on purpose: on this 2-core
//! machine under load the stand-in's A/A floor reached ±13 %, and a 1.25× speedup over three
//! rounds was then `inconclusive` in one run of four (CI [1.10, 1.45]) — which is the verdict
//! working, not the plumbing failing.

mod common;

use common::*;
use perf_runner_tests::standin::StandinConfig;
use runner_core::Variant;

/// The agent's patch: the baseline build's shipped config, its `speed` 1.0 → 0.6. The line is
/// found in the config the world builds (pretty JSON, one field a line).
fn slowdown_patch() -> String {
    let json = StandinConfig {
        version: "0.6.3.dev1+gf508e03".into(),
        speed: 1.0,
        state_dir: Some("x".into()),
        ..StandinConfig::default()
    }
    .to_json();
    let line = json
        .lines()
        .position(|l| l.trim_start().starts_with("\"speed\""))
        .expect("the config has a speed")
        + 1;
    format!(
        "--- a/vllm/_standin/standin-config.json\n+++ b/vllm/_standin/standin-config.json\n\
         @@ -{line} +{line} @@\n-  \"speed\": 1.0,\n+  \"speed\": 0.6,\n"
    )
}

#[test]
fn a_known_speedup_and_a_known_slowdown_get_their_verdicts_and_the_aa_makes_no_call() {
    let w = World::new(1.6, None);
    std::fs::write(w.path("agent.patch"), slowdown_patch()).unwrap();
    let patch = w.path("agent.patch").display().to_string();
    let o = w.run(&["--patch", &patch, "--repeats", "4", "--aa"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let run = w.only_run();
    let attempts = w.attempts(&run);
    assert_eq!(attempts.len(), 16, "4 rounds × baseline, human, agent, A/A");
    assert!(attempts.iter().all(|a| a.succeeded()), "{out}");
    // The agent ran the baseline's build with the patch, and was slower for it.
    let agent = attempts
        .iter()
        .find(|a| a.job.variant == Variant::Agent)
        .unwrap();
    assert_eq!(agent.engine_version.as_deref(), Some("0.6.3.dev1+gf508e03"));

    // The end of `run` says it as hyperfine would: the ratio, its CI and the verdict.
    assert!(out.contains("decides on output_throughput_tps"), "{out}");
    let line = |pair: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(pair))
            .unwrap_or_else(|| panic!("no {pair} line:\n{out}"))
            .to_string()
    };
    assert!(line("human/baseline").contains("improved"), "{out}");
    assert!(line("agent/baseline").contains("regressed"), "{out}");
    assert!(line("agent/human").contains("regressed"), "{out}");

    // The report: the same verdicts, their metric and why, scored (the speedup reproduced),
    // and no call on the A/A.
    let o = w
        .cmd()
        .args(["report", &run.0, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &r["tasks"][0];
    assert_eq!(t["primary_metric"], "output_throughput_tps", "{t}");
    assert!(
        t["primary_why"].as_str().unwrap_or("").contains("inf"),
        "{t}"
    );
    assert_eq!(t["validity"]["status"], "reproduced", "{t}");
    let verdict = |pair: &str| -> (String, f64, bool) {
        let c = t["metrics"][0]["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["pair"] == pair)
            .unwrap_or_else(|| panic!("no {pair}: {t}"));
        (
            c["comparison"]["verdict"].as_str().unwrap().to_string(),
            c["comparison"]["ratio"]["value"].as_f64().unwrap(),
            c["scored"].as_bool().unwrap(),
        )
    };
    let (v, ratio, scored) = verdict("human_vs_baseline");
    assert_eq!(v, "improved");
    // Fixed costs (first token, client) and the load of this machine make throughput grow
    // less than the build's speed: only the direction and a clear size are asserted.
    assert!(ratio > 1.2, "human/baseline {ratio}");
    assert!(scored);
    let (v, ratio, scored) = verdict("agent_vs_baseline");
    assert_eq!(v, "regressed");
    assert!(ratio < 0.85, "agent/baseline {ratio}");
    assert!(scored, "scored: the human speedup reproduced");
    assert_eq!(verdict("agent_vs_human").0, "regressed");
    let aa = t["aa"]["verdict"].as_str().unwrap();
    assert!(
        aa == "no_change" || aa == "inconclusive",
        "the A/A made a call: {aa} ({t})"
    );
}
