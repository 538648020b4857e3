//! The step kit's lifecycle over real processes: a small runtime of process groups on this
//! host (`stepkit_support`), the stand-in engine as the server (real HTTP, real `/health`, real
//! faults) and `sh -c` clients. What is asserted is the lifecycle's behaviour: what runs, what
//! is stopped, what fails with which code.

mod stepkit_support;

use std::time::{Duration, Instant};

use runner_core::Failure;
use runner_core::spec::Mode;
use runner_core::stepkit::{AttemptFiles, Role, run_step};
use stepkit_support::*;

#[tokio::test]
async fn a_step_runs_server_warmup_and_client_and_stops_the_server() {
    let s = Scratch::new(None);
    let client = "echo measured; echo '{}' > {RESULT_DIR}/result.json";
    let step = step(Some("echo warm; kill -0 $SERVER_PID"), client);
    let out = run_step(&s.runtime(), &envs(), &step, &s.cx(), &policy())
        .await
        .unwrap();
    let f = s.files();
    assert_eq!(out.exit_code, Some(0), "{}", read(&out.client_stderr));
    assert_eq!(out.client_stdout, f.client_stdout());
    assert_eq!(read(&out.client_stdout), "measured\n");
    assert_eq!(read(&f.warmup_stdout()), "warm\n");
    assert_eq!(out.result_files, [f.results_dir().join("result.json")]);
    assert_eq!(out.server_log, Some(f.server_log()));
    assert!(read(&f.server_log()).contains("Uvicorn running"));
    assert!(
        read(&f.server_log()).contains("GET /health"),
        "probed over HTTP"
    );
    assert_eq!(out.host.as_deref(), Some("this-host"));
    let commands = read(&f.commands());
    let roles: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.split(':').next())
        .collect();
    assert_eq!(roles, ["server", "warmup", "client"], "{commands}");
    assert!(!commands.contains("{PORT}") && !commands.contains("{PYTHON}"));
    // Only the server uses the GPUs of a serving step.
    let gpus: Vec<(Role, bool)> = s
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _, g)| (*r, *g))
        .collect();
    assert_eq!(
        gpus,
        [
            (Role::Server, true),
            (Role::Warmup, false),
            (Role::Client, false)
        ]
    );
    s.nothing_left();
}

#[tokio::test]
async fn a_failed_warmup_stops_the_step_before_the_measured_client() {
    let s = Scratch::new(None);
    let step = step(
        Some("echo 'warm-up broke' >&2; exit 3"),
        "touch {RESULT_DIR}/../client-ran; echo '{}' > {RESULT_DIR}/result.json",
    );
    let out = run_step(&s.runtime(), &envs(), &step, &s.cx(), &policy())
        .await
        .unwrap();
    let f = s.files();
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.client_stdout, f.warmup_stdout());
    assert!(AttemptFiles::is_warmup_stdout(&out.client_stdout));
    assert_eq!(read(&out.client_stderr), "warm-up broke\n");
    assert!(out.result_files.is_empty());
    assert!(
        !s.dir.join("client-ran").exists(),
        "the measured client ran"
    );
    assert!(s.pgids(Role::Client).is_empty());
    assert!(!read(&f.commands()).contains("client:"));
    s.nothing_left();
}

#[tokio::test]
async fn a_server_that_dies_before_ready_is_server_failed_at_once() {
    let s = Scratch::new(Some("crash_at_start"));
    let step = step(Some("true"), "true");
    let (rt, job) = (s.runtime(), envs());
    let t = Instant::now();
    let e = run_step(&rt, &job, &step, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::ServerFailed, "{e}");
    assert!(e.message.contains("before it was ready"), "{e}");
    assert!(
        e.message.contains("Engine core initialization failed"),
        "{e}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "liveness, not the deadline"
    );
    assert!(s.pgids(Role::Warmup).is_empty() && s.pgids(Role::Client).is_empty());
    s.nothing_left();
}

#[tokio::test]
async fn a_server_that_dies_during_the_client_is_server_failed_whatever_the_client_says() {
    // The client kills the server and waits, or kills it and exits 0 at once: either way
    // nothing it measured counts.
    for client in [
        "kill -9 $SERVER_PID; sleep 30",
        "kill -9 $SERVER_PID; sleep 0.3; exit 0",
    ] {
        let s = Scratch::new(None);
        let mut step = step(None, client);
        step.warmup = None;
        let (rt, job) = (s.runtime(), envs());
        let t = Instant::now();
        let e = run_step(&rt, &job, &step, &s.cx(), &policy())
            .await
            .unwrap_err();
        assert_eq!(e.kind, Failure::ServerFailed, "{client}: {e}");
        assert!(
            e.message.contains("by signal 9 while the client ran"),
            "{e}"
        );
        assert!(e.message.contains("Uvicorn running"), "the log's tail: {e}");
        assert!(t.elapsed() < Duration::from_secs(15));
        s.nothing_left();
    }
}

#[tokio::test]
async fn phases_past_their_limit_time_out_and_are_stopped() {
    // A server that never gets ready.
    let s = Scratch::new(Some("hang"));
    let mut st = step(None, "true");
    st.timeouts.server_ready_s = 1;
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message.contains("not ready within server_ready_s = 1 s"),
        "{e}"
    );
    s.nothing_left();

    // A client past benchmark_s, with a child of its own.
    let s = Scratch::new(None);
    let mut st = step(None, "sleep 30 & sleep 30");
    st.timeouts.benchmark_s = 1;
    let (rt, job) = (s.runtime(), envs());
    let t = Instant::now();
    let e = run_step(&rt, &job, &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message.contains("client ran past benchmark_s = 1 s"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(15));
    s.nothing_left();

    // The attempt's deadline comes first.
    let s = Scratch::new(None);
    let st = step(Some("sleep 30"), "true");
    let mut cx = s.cx();
    cx.deadline = Some(Instant::now() + Duration::from_secs(3));
    let e = run_step(&s.runtime(), &envs(), &st, &cx, &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Timeout, "{e}");
    assert!(
        e.message
            .contains("warm-up ran past the attempt's deadline"),
        "{e}"
    );
    s.nothing_left();
}

#[tokio::test]
async fn cancellation_ends_any_phase_and_leaves_nothing_running() {
    // While the client runs (its background child included).
    let s = Scratch::new(None);
    let mut st = step(None, "sleep 30 & touch {RESULT_DIR}/../started; wait");
    st.warmup = None;
    let cx = s.cx();
    let cancel = cx.cancel.clone();
    let (rt, job, pol) = (s.runtime(), envs(), policy());
    let e = tokio::join!(run_step(&rt, &job, &st, &cx, &pol), async {
        s.appears("started").await;
        cancel.cancel();
    })
    .0
    .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert!(e.message.contains("during the client"), "{e}");
    s.nothing_left();

    // While the server starts.
    let s = Scratch::new(Some("hang"));
    let cx = s.cx();
    let cancel = cx.cancel.clone();
    let (rt, job, pol) = (s.runtime(), envs(), policy());
    let st = step(Some("true"), "true");
    let e = tokio::join!(run_step(&rt, &job, &st, &cx, &pol), async {
        s.appears("commands.txt").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    })
    .0
    .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled, "{e}");
    assert_eq!(s.pgids(Role::Server).len(), 1);
    s.nothing_left();

    // Before anything started.
    let s = Scratch::new(None);
    let cx = s.cx();
    cx.cancel.cancel();
    let e = run_step(&s.runtime(), &envs(), &step(None, "true"), &cx, &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::Cancelled);
    assert!(s.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_step_that_cannot_be_filled_starts_nothing() {
    let s = Scratch::new(None);
    // {VLLM_SOURCE} without a source tree: vllm_version, before the server loads anything.
    let st = step(
        None,
        "{PYTHON} {VLLM_SOURCE}/benchmarks/benchmark_serving.py",
    );
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::VllmVersion, "{e}");
    assert!(s.started.lock().unwrap().is_empty());

    // {PORT} without a server: bad_config.
    let mut st = step(None, "echo {PORT}");
    st.server = None;
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");

    // A dataset the step names and the data dir lacks.
    let mut st = step(None, "true");
    st.datasets.push(runner_core::plan::DatasetFile {
        flag: "--dataset-path".into(),
        original: "/data/sharegpt.json".into(),
        name: "sharegpt.json".into(),
    });
    let e = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::DatasetMissing, "{e}");
    assert!(s.started.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_offline_step_runs_its_script_with_the_gpus_and_no_server() {
    let s = Scratch::new(None);
    let mut st = step(None, "echo offline; echo '{}' > {RESULT_DIR}/r.json");
    st.server = None;
    st.mode = Mode::Throughput;
    let out = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.server_log, None);
    assert_eq!(out.result_files.len(), 1);
    assert!(!s.files().server_log().exists());
    let gpus: Vec<(Role, bool)> = s
        .started
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _, g)| (*r, *g))
        .collect();
    assert_eq!(
        gpus,
        [(Role::Client, true)],
        "the offline script uses the GPUs"
    );
    // A failing script is output, not an error.
    let mut st = st.clone();
    st.client = sh("exit 2");
    let out = run_step(&s.runtime(), &envs(), &st, &s.cx(), &policy())
        .await
        .unwrap();
    assert_eq!(out.exit_code, Some(2));
    s.nothing_left();
}
