//! The backend against the fake shim (`tests/fake_shim.py`): the same sandbox protocol, with
//! Modal's servers replaced by this machine (real processes of the stand-in engine, real
//! ports). Covers what the backend adds around the step kit's lifecycle: what the shim is
//! asked, artifacts and result files, the GPU check, Modal's error classes and their
//! transience, the scripts check. Cancellation and deadlines are in `fake_lifecycle.rs`,
//! candidates and patches in `fake_prepare.rs`, bounds on what comes out of the sandbox in
//! `fake_bounds.rs`.

mod common;

use common::*;
use runner_core::Failure;

#[tokio::test]
async fn a_run_leaves_logs_results_gpu_names_and_cost() {
    let r = run("escape", &bench_serve(2), "H100:2", &[], false, |_| {}).await;
    let out = r.result.as_ref().unwrap();
    let art = r.path().join("art");
    assert_eq!(out.exit_code, Some(0));
    let stdout = std::fs::read_to_string(&out.client_stdout).unwrap();
    assert!(stdout.contains("Request throughput (req/s):"), "{stdout}");
    assert!(out.client_stdout.ends_with("client.stdout"));
    let server = std::fs::read_to_string(out.server_log.as_ref().unwrap()).unwrap();
    assert!(
        server.contains("Uvicorn running on http://0.0.0.0:"),
        "{server}"
    );
    assert!(art.join("warmup.stdout").exists());
    let names: Vec<_> = out
        .result_files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"escape.json".to_string()),
        "names are reduced: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(".json") && n != "escape.json"),
        "{names:?}"
    );
    assert!(
        out.result_files
            .iter()
            .all(|p| p.starts_with(art.join("results")))
    );
    assert!(!r.path().join("escape.json").exists() && !art.join("escape.json").exists());
    assert_eq!(out.gpu_names, vec!["NVIDIA H100 80GB HBM3".to_string(); 2]);
    assert!(out.host.as_deref().unwrap().starts_with("modal:sb-fake-"));
    assert!(out.benchmark_seconds > 0.0);
    let cost: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("cost.json")).unwrap()).unwrap();
    let secs = cost["sandbox_seconds"].as_f64().unwrap();
    let want = 3.95 * 2.0 * secs / 3600.0;
    assert!(
        (cost["cost_usd"].as_f64().unwrap() - want).abs() < 1e-9,
        "{cost}"
    );
    assert_eq!(cost["gpu"], "H100!:2");
    assert!(
        (out.cost_usd.unwrap() - want).abs() < 1e-9,
        "the cost reaches the record"
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("modal.json")).unwrap()).unwrap();
    assert!(
        meta["sandbox_id"].as_str().unwrap().starts_with("sb-fake-"),
        "{meta}"
    );
    // The dataset was uploaded by content and reached the client at its mount.
    let create = &commands(r.path(), "create")[0];
    let upload = &create["uploads"][0];
    assert_eq!(upload["volume"], "perf-runner-datasets");
    let remote = upload["remote_path"].as_str().unwrap();
    assert!(
        remote.starts_with("/sets/")
            && remote.ends_with("/ShareGPT_V3_unfiltered_cleaned_split.json")
    );
    let client = commands(r.path(), "exec")
        .into_iter()
        .find(|e| e["id"] == "client-3")
        .unwrap();
    assert!(client["argv"].to_string().contains(remote), "{client}");
    // The server's port is the sandbox's encrypted port.
    assert_eq!(
        create["sandbox"]["encrypted_ports"],
        serde_json::json!([out_port(r.path())])
    );
    assert!(
        marked(r.path(), "terminated"),
        "terminated after a success too"
    );
    nothing_left(&r);
}

#[tokio::test]
async fn what_the_shim_is_asked_and_a_missing_script() {
    // The human build as the client: its layer, its venv's Python and its scripts. The scripts
    // are not in the fake's "image": vllm_version before anything starts.
    let r = run("ok", &serving(2), "H100:2", &[], true, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::VllmVersion, "{e}");
    assert!(
        e.message
            .contains("/opt/vllm-src-client/benchmarks/benchmark_serving.py"),
        "{e}"
    );
    let create = &commands(r.path(), "create")[0];
    assert_eq!(create["sandbox"]["gpu"], "H100!:2");
    assert_eq!(
        create["sandbox"]["secrets"],
        serde_json::json!(["huggingface"])
    );
    assert_eq!(create["sandbox"]["tags"]["run"], "r1");
    assert_eq!(create["image"]["base"]["kind"], "from_id");
    assert!(
        create["image"]["ops"]
            .to_string()
            .contains("/opt/perf-runner/client"),
        "{}",
        create["image"]
    );
    let req: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.path().join("art/modal-request.json")).unwrap())
            .unwrap();
    let client: Vec<String> = serde_json::from_value(req["processes"]["client"].clone()).unwrap();
    assert_eq!(
        client[..2],
        [
            "/opt/perf-runner/client/bin/python",
            "/opt/vllm-src-client/benchmarks/benchmark_serving.py"
        ]
    );
    let server: Vec<String> = serde_json::from_value(req["processes"]["server"].clone()).unwrap();
    assert!(
        server
            .windows(2)
            .any(|w| w[0] == "--host" && w[1] == "0.0.0.0"),
        "{server:?}"
    );
    assert!(!req.to_string().contains("{PYTHON}") && !req.to_string().contains("{DATA_DIR}"));
    // Only the checks ran: no step process was started.
    let ids: Vec<_> = commands(r.path(), "exec")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["gpu-query", "version-query", "prelude"]);
    assert!(marked(r.path(), "terminated"));
    nothing_left(&r);
}

#[tokio::test]
async fn the_client_exit_code_is_returned_not_an_error() {
    let fault = [("VLLM_STANDIN_FAULT", "unrecognized_arg")];
    let r = run("ok", BENCH_LATENCY, "H100:1", &fault, false, |_| {}).await;
    let out = r.result.as_ref().unwrap();
    assert_eq!(out.exit_code, Some(2));
    assert!(out.server_log.is_none() && out.result_files.is_empty());
    assert!(
        std::fs::read_to_string(&out.client_stderr)
            .unwrap()
            .contains("unrecognized arguments")
    );
    nothing_left(&r);
}

#[tokio::test]
async fn unavailable_is_transient_and_retried_by_the_caller() {
    let r = run("unavailable", BENCH_LATENCY, "H100:1", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient() && e.message.contains("UNAVAILABLE"), "{e}");
    assert!(
        !r.path().join("art/cost.json").exists(),
        "no sandbox, no cost"
    );
    nothing_left(&r);
}

#[tokio::test]
async fn auth_errors_are_permanent() {
    let r = run("auth", BENCH_LATENCY, "H100:1", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn a_sandbox_timeout_is_a_timeout() {
    let r = run(
        "sandbox_timeout",
        BENCH_LATENCY,
        "H100:1",
        &[],
        false,
        |_| {},
    )
    .await;
    assert_eq!(r.result.as_ref().unwrap_err().kind, Failure::Timeout);
    assert!(
        r.path().join("art/cost.json").exists(),
        "the GPU time is still accounted"
    );
    nothing_left(&r);
}

#[tokio::test]
async fn a_gpu_other_than_the_pinned_one_fails_the_run_and_stops_the_sandbox() {
    let r = run("gpu_mismatch", BENCH_LATENCY, "H100:2", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.message.contains("NVIDIA H200"), "{e}");
    assert!(marked(r.path(), "terminated"));
    let ids: Vec<_> = commands(r.path(), "exec")
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, ["gpu-query"], "nothing else ran");
    nothing_left(&r);

    let r = run("gpu_mismatch", BENCH_LATENCY, "H100:1", &[], false, |c| {
        c.pin_sku = false
    })
    .await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(
        e.kind,
        Failure::BadConfig,
        "unpinned: the config allowed the swap"
    );
    assert_eq!(commands(r.path(), "create")[0]["sandbox"]["gpu"], "H100");
}
