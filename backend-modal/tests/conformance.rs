//! The step kit's conformance suite (`runner_core::conformance`) as far as the fake shim
//! allows: the shim plays a canned scenario and runs no engine, so only what the backend
//! itself decides can be held to the suite — the filled argv of the run request, against the
//! suite's plan, up to placeholder values. Warm-up policy, cancellation and failure codes run
//! inside the Python shim here and are covered by `fake.rs` against canned events, not by the
//! stand-in engine.

mod common;

use common::*;
use runner_core::Backend;
use runner_core::backend::JobEnvs;
use runner_core::conformance::{self, transcript::match_argv};
use runner_core::task::Variant;

#[tokio::test]
async fn conformance_same_argv_in_the_run_request() {
    if !python_ok() {
        perf_runner_tests::require::skip_or_fail("python3", "conformance_same_argv", "no python3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "ok", |_| {});
    let mut p = conformance::plan(conformance::SERVE).unwrap();
    // Modal needs a GPU kind; the argv do not change with it.
    p.step.gpu.kind = Some("H100".into());
    let cx = cx(dir.path());
    let build = |v| p.builds.iter().find(|b| b.variant == v).unwrap();
    let engine = b.prepare(build(Variant::Baseline), &cx).await.unwrap();
    let client = b.prepare(build(Variant::Human), &cx).await.unwrap();
    let out = b
        .execute(&JobEnvs { engine, client }, &p.step, &cx)
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    let req = requests(dir.path())
        .into_iter()
        .rev()
        .find(|r| r.get("client").is_some())
        .expect("a run request");
    let argv = |v: &serde_json::Value| -> Vec<String> {
        serde_json::from_value(v["argv"].clone()).unwrap()
    };
    let mut ports = Vec::new();
    for (role, plan) in [
        ("server", &p.step.server.as_ref().unwrap().argv),
        ("warmup", &p.step.warmup.as_ref().unwrap().argv),
        ("client", &p.step.client.argv),
    ] {
        let taken = match_argv(plan, &argv(&req[role])).unwrap_or_else(|e| panic!("{role}: {e}"));
        println!("modal {role}: {taken:?}");
        ports.push(taken.get("{PORT}").cloned());
    }
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "{ports:?}");
    // The plan's environment reaches the sandbox.
    let env = &req["sandbox"]["env"];
    for (k, v) in &p.step.env {
        assert_eq!(env[k], v.as_str(), "{k}");
    }
}
