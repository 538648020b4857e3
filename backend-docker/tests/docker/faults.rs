//! Faults during a step: containers killed mid-run, servers that crash or hang, clients that
//! fail or run too long, cancellation, and `gc` of kept containers.

use std::time::Duration;

use backend_docker::DockerBackend;
use runner_core::backend::{JobEnvs, StepOutput};
use runner_core::plan::StepPlan;
use runner_core::stepkit::AttemptFiles;
use runner_core::{Backend, BackendError, Failure, RunContext, Variant};

use crate::support::{self};

/// The stand-in's fault switch.
const FAULT: &str = perf_runner_tests::standin::FAULT_ENV;

/// Prepared baseline/human environments, the step of `cmd` with `env` added, and the backend.
async fn setup(
    dir: &std::path::Path,
    cmd: &str,
    env: &[(&str, &str)],
    keep: bool,
) -> (DockerBackend, JobEnvs, StepPlan) {
    let b = support::backend(dir, |c| {
        c.keep_containers = keep;
        c.probe_version = false;
    });
    let plan = support::plan(dir, cmd);
    let run = support::run_id("prep");
    let mut prepared = Vec::new();
    for v in [Variant::Baseline, Variant::Human] {
        let build = plan.builds.iter().find(|b| b.variant == v).unwrap();
        let cx = support::context(dir, &run, v.as_str());
        prepared.push(b.prepare(build, &cx).await.unwrap());
    }
    let mut step = plan.step;
    step.env
        .extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let job = JobEnvs {
        engine: prepared[0].clone(),
        client: prepared[1].clone(),
    };
    (b, job, step)
}

fn spawn_execute(
    b: std::sync::Arc<DockerBackend>,
    job: JobEnvs,
    step: StepPlan,
    cx: RunContext,
) -> tokio::task::JoinHandle<Result<StepOutput, BackendError>> {
    tokio::spawn(async move { b.execute(&job, &step, &cx).await })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_is_server_failed_and_a_killed_client_is_an_exit_code() {
    let Some(d) = support::engine("killed_mid_run").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let (b, job, mut step) = setup(dir.path(), &support::slow_serve(200), &[], false).await;
    step.warmup = None;
    let b = std::sync::Arc::new(b);

    let run = support::run_id("killsrv");
    let cx = support::context(dir.path(), &run, "baseline");
    let h = spawn_execute(b.clone(), job.clone(), step.clone(), cx);
    support::running(&d, &run, "client", Duration::from_secs(20)).await;
    let server = support::running(&d, &run, "server", Duration::from_secs(5)).await;
    d.kill_container(&server, None).await.unwrap();
    let e = h.await.unwrap().unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed, "{e}");
    assert!(
        e.message
            .contains("exited with code 137 while the client ran"),
        "{e}"
    );
    assert!(
        e.message.contains("Uvicorn running"),
        "the log tail is quoted: {e}"
    );
    assert!(support::containers(&d, &run, None).await.is_empty());

    let run = support::run_id("killcli");
    let cx = support::context(dir.path(), &run, "baseline");
    let h = spawn_execute(b.clone(), job, step, cx);
    let client = support::running(&d, &run, "client", Duration::from_secs(20)).await;
    d.kill_container(&client, None).await.unwrap();
    let out = h.await.unwrap().unwrap();
    assert_eq!(out.exit_code, Some(137), "SIGKILL is exit code 128 + 9");
    assert!(support::containers(&d, &run, None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_that_crash_or_hang_and_clients_that_fail_or_run_too_long() {
    let Some(d) = support::engine("server_faults").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let cx = |name: &str| support::context(dir.path(), &support::run_id(name), "baseline");
    let serve = support::SERVE;

    let (b, job, step) = setup(dir.path(), serve, &[(FAULT, "crash_at_start")], false).await;
    let e = b.execute(&job, &step, &cx("crash")).await.unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed, "{e}");
    assert!(e.message.contains("before it was ready"), "{e}");
    assert!(
        e.message.contains("Engine core initialization failed"),
        "{e}"
    );

    let (b, job, mut step) = setup(dir.path(), serve, &[(FAULT, "hang")], false).await;
    step.timeouts.server_ready_s = 2;
    let c = cx("hang");
    let e = b.execute(&job, &step, &c).await.unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(e.message.contains("server_ready_s = 2"), "{e}");
    let left = support::containers(&d, &c.labels["run-id"], None).await;
    assert!(left.is_empty(), "{left:?}");

    let (b, job, mut step) = setup(dir.path(), serve, &[(FAULT, "client_crash")], false).await;
    // The measured client's own failure (a failing warm-up stops earlier: see below).
    step.warmup = None;
    let out = b.execute(&job, &step, &cx("clientcrash")).await.unwrap();
    assert_eq!(
        out.exit_code,
        Some(1),
        "a failing client is an exit code, not an error"
    );
    let stderr = std::fs::read_to_string(&out.client_stderr).unwrap();
    assert!(stderr.contains("ClientPayloadError"), "{stderr}");

    let (b, job, mut step) = setup(dir.path(), &support::slow_serve(200), &[], false).await;
    step.warmup = None;
    step.timeouts.benchmark_s = 2;
    let e = b.execute(&job, &step, &cx("slow")).await.unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(e.message.contains("benchmark_s = 2"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_warmup_stops_the_step_and_the_measured_client_never_runs() {
    let Some(d) = support::engine("warmup_fails").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    // The stand-in's `bench serve` client crashes half-way: the warm-up is the first to.
    let (b, job, step) = setup(dir.path(), support::SERVE, &[(FAULT, "client_crash")], true).await;
    assert!(step.warmup.is_some());
    let run = support::run_id("warmfail");
    let (cx, progress) = support::context_with_progress(dir.path(), &run, "baseline");
    let out = b.execute(&job, &step, &cx).await.unwrap();
    let files = AttemptFiles::of(&cx);
    assert_eq!(out.exit_code, Some(1), "the warm-up's code");
    assert_eq!(out.client_stdout, files.warmup_stdout());
    assert!(AttemptFiles::is_warmup_stdout(&out.client_stdout));
    let stderr = std::fs::read_to_string(&out.client_stderr).unwrap();
    assert!(stderr.contains("ClientPayloadError"), "{stderr}");
    assert!(out.result_files.is_empty(), "{:?}", out.result_files);
    assert_eq!(out.benchmark_seconds, 0.0);
    // Nothing was measured: no client container was ever created, no client output exists.
    assert!(!files.client_stdout().exists());
    assert!(
        support::containers(&d, &run, Some("client"))
            .await
            .is_empty()
    );
    assert_eq!(support::containers(&d, &run, Some("warmup")).await.len(), 1);
    let lines = progress.0.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.starts_with("client: starting")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the measured client is not run")),
        "{lines:?}"
    );
    let commands = std::fs::read_to_string(files.commands()).unwrap();
    assert!(!commands.contains("client:"), "{commands}");
    assert_eq!(
        b.gc(Some(&run)).await.unwrap(),
        2,
        "the server and the warm-up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_run_leaves_no_container() {
    let Some(d) = support::engine("cancel").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let (b, job, step) = setup(dir.path(), &support::slow_serve(200), &[], false).await;
    let run = support::run_id("cancel");
    let cx = support::context(dir.path(), &run, "human");
    let cancel = cx.cancel.clone();
    let h = spawn_execute(std::sync::Arc::new(b), job, step, cx);
    support::running(&d, &run, "warmup", Duration::from_secs(20)).await;
    cancel.cancel();
    let e = h.await.unwrap().unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    let left = support::containers(&d, &run, None).await;
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_kept_containers_of_one_run_only() {
    let Some(d) = support::engine("gc").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let (b, job, step) = setup(dir.path(), support::SERVE, &[], true).await;
    let (r1, r2) = (support::run_id("gc1"), support::run_id("gc2"));
    for r in [&r1, &r2] {
        let cx = support::context(dir.path(), r, "baseline");
        b.execute(&job, &step, &cx).await.unwrap();
        let kept = support::containers(&d, r, None).await;
        assert_eq!(
            kept.len(),
            3,
            "server, warm-up and client are kept: {kept:?}"
        );
    }
    assert_eq!(b.gc(Some(&r1)).await.unwrap(), 3);
    assert!(support::containers(&d, &r1, None).await.is_empty());
    assert_eq!(support::containers(&d, &r2, None).await.len(), 3);
    assert_eq!(b.gc(Some(&r2)).await.unwrap(), 3);
    assert_eq!(b.gc(Some(&r2)).await.unwrap(), 0);
}
