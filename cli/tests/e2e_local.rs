//! The main job end to end on this machine: `perf-runner run`/`batch` with the local backend,
//! real venvs made by a real `uv` (or venv + pip), the stand-in engine installed from locally
//! built wheels (a faster "human" build), real servers on real ports, real signals, and the
//! SQLite store. The stand-in is a test double of vLLM's edges; see `tests/README.md`.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{HUMAN, PARENT, SERVE, World, processes_under, text, wait_for_attempts};
use perf_runner_tests::standin::Fault;
use runner_core::Variant;
use runner_core::failure::Failure;
use runner_core::record::JobStatus;

#[test]
fn a_faster_human_build_is_measured_with_the_same_client_and_workload() {
    let w = World::new(1.4, None);
    let o = w.run(&["--repeats", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let store = w.store();
    let run = w.only_run();
    let attempts = store.attempts(&run).unwrap();
    assert_eq!(attempts.len(), 4, "2 repeats × baseline, human");
    // Interleaved: every round runs each variant once (their order rotates, `e2e_warm`).
    for round in attempts.chunks(2) {
        let mut vs: Vec<Variant> = round.iter().map(|a| a.job.variant).collect();
        vs.sort();
        assert_eq!(vs, [Variant::Baseline, Variant::Human]);
        assert_eq!(round[0].job.repeat, round[1].job.repeat);
    }
    for a in &attempts {
        assert!(
            a.succeeded(),
            "{:?}: {:?} {:?}",
            a.job,
            a.failure,
            a.failure_detail
        );
        assert_eq!(
            a.client_argv, attempts[0].client_argv,
            "one client argv for every variant"
        );
        assert_eq!(a.server_argv, attempts[0].server_argv);
        assert_eq!(a.step_fingerprint, attempts[0].step_fingerprint);
        assert!(a.warmed_up);
        let src = &a.metrics.0["output_throughput_tps"].provenance;
        assert!(
            src.file.ends_with(".json"),
            "the tool's JSON result is preferred: {src:?}"
        );
    }
    for a in &attempts {
        let want = match a.job.variant {
            Variant::Baseline => "0.6.3.dev1+gf508e03",
            _ => "0.6.3.dev2+ge358053",
        };
        assert_eq!(a.engine_version.as_deref(), Some(want));
    }
    let tput = |v: Variant| -> f64 {
        let xs: Vec<f64> = attempts
            .iter()
            .filter(|a| a.job.variant == v)
            .map(|a| a.metrics.get("output_throughput_tps").unwrap())
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    let ratio = tput(Variant::Human) / tput(Variant::Baseline);
    assert!(ratio > 1.15, "human/baseline output throughput {ratio:.3}");
    // Artifacts: plan, full server and client logs, the result file.
    let dir = PathBuf::from(&attempts[1].artifact_dir);
    for f in ["plan.json", "server.log", "client.stdout", "client.stderr"] {
        assert!(dir.join(f).is_file(), "{} missing in {}", f, dir.display());
    }
    assert!(
        std::fs::read_to_string(dir.join("server.log"))
            .unwrap()
            .contains("Avg prompt throughput")
    );
    // The second run of the same builds reuses the environments.
    let o = w.run(&["--repeats", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn deterministic_faults_are_classified_and_not_retried() {
    let w = World::new(1.0, Some(Fault::UnsupportedArch));
    let o = w.run(&["--repeats", "1"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let attempts = w.store().attempts(&w.only_run()).unwrap();
    let human: Vec<_> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Human)
        .collect();
    assert_eq!(human.len(), 1, "not retried");
    assert_eq!(
        human[0].failure,
        Some(Failure::ModelUnsupported),
        "the server log's root cause wins over 'server failed': {:?} {:?}",
        human[0].failure,
        human[0].evidence
    );
    assert!(
        attempts
            .iter()
            .any(|a| a.job.variant == Variant::Baseline && a.succeeded())
    );
}

#[test]
fn transient_faults_are_retried() {
    // The baseline server's first start fails on a reset connection while fetching the model.
    let w = World::with_faults(Some(Fault::TransientOnce), 1.0, None);
    // A server per job: the failed start is an attempt of the job (warm servers retry their
    // start before any job; `e2e_warm` covers that).
    w.restart_servers();
    let o = w.run(&["--repeats", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts = w.store().attempts(&w.only_run()).unwrap();
    let base: Vec<_> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Baseline)
        .collect();
    assert_eq!(base.len(), 2, "{base:#?}");
    assert_eq!(
        base[0].failure,
        Some(Failure::InfraTransient),
        "{:?}",
        base[0].failure_detail
    );
    assert!(
        base[0]
            .evidence
            .iter()
            .any(|e| e.contains("Connection reset")),
        "{:?}",
        base[0].evidence
    );
    assert!(base[1].succeeded());
}

#[test]
fn a_hanging_server_times_out() {
    let w = World::new(1.0, Some(Fault::Hang));
    let t = Instant::now();
    let mut c = w.cmd();
    let o = c
        .env("PERF_RUNNER__TIMEOUTS__SERVER_READY_S", "2")
        .args([
            "run",
            "--commit",
            HUMAN,
            "--parent",
            PARENT,
            "--perf-command",
            SERVE,
            "--variants",
            "human",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(60));
    let attempts = w.store().attempts(&w.only_run()).unwrap();
    assert_eq!(
        attempts[0].failure,
        Some(Failure::Timeout),
        "{:?}",
        attempts[0].failure_detail
    );
}

#[test]
fn sigint_mid_batch_leaves_no_child_and_sigkill_then_resume_repeats_nothing() {
    let w = World::new(1.2, None);
    let spawn = || {
        let mut c = w.cmd();
        c.args([
            "run",
            "--commit",
            HUMAN,
            "--parent",
            PARENT,
            "--perf-command",
            SERVE,
            "--repeats",
            "3",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    // SIGINT after the first finished job: children are cleaned up, jobs recorded cancelled.
    let child = spawn();
    wait_for_attempts(&w, 1, Duration::from_secs(120));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        processes_under(w.dir.path()),
        Vec::<String>::new(),
        "children left behind"
    );
    let run = w.only_run();
    let jobs = w.store().jobs(&run).unwrap();
    assert!(
        jobs.iter().any(|(_, s)| *s == JobStatus::Cancelled),
        "{jobs:?}"
    );
    let done_before: usize = jobs
        .iter()
        .filter(|(_, s)| *s == JobStatus::Succeeded)
        .count();
    assert!(done_before >= 1);

    // Resume, then SIGKILL the runner itself mid-run: no finished result is lost.
    let mut c = w.cmd();
    let child = c
        .args(["batch", "--resume", &run.0])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_attempts(&w, done_before + 2, Duration::from_secs(120));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait_with_output();
    // A SIGKILLed runner cannot stop its servers; `gc` finds them by the run-id label.
    let o = w
        .cmd()
        .args(["gc", &run.0, "--grace-s", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        processes_under(w.dir.path()),
        Vec::<String>::new(),
        "gc left processes"
    );
    let succeeded_at_kill: Vec<_> = w
        .store()
        .jobs(&run)
        .unwrap()
        .into_iter()
        .filter(|(_, s)| *s == JobStatus::Succeeded)
        .map(|(j, _)| j)
        .collect();
    assert!(succeeded_at_kill.len() > done_before);

    // Resume again: only unfinished jobs run; finished ones are never repeated.
    let before = w.store().attempts(&run).unwrap();
    let o = w
        .cmd()
        .args(["batch", "--resume", &run.0])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let after = w.store().attempts(&run).unwrap();
    for j in &succeeded_at_kill {
        let n = after
            .iter()
            .filter(|a| &a.job == j && a.succeeded())
            .count();
        assert_eq!(n, 1, "{j} ran again after it had finished");
    }
    assert!(after.len() > before.len());
    let jobs = w.store().jobs(&run).unwrap();
    assert!(
        jobs.iter().all(|(_, s)| *s == JobStatus::Succeeded),
        "{jobs:?}"
    );
    assert_eq!(jobs.len(), 6);
}
