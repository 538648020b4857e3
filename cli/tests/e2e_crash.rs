//! Crash safety end to end, with real processes and signals on the stand-in engine: a runner
//! SIGKILLed mid-attempt never gets its orphaned client's late result stored as a later
//! attempt's measurement, and one run is run by one process at a time.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{
    HUMAN, World, labelled, processes_under, signal, text, wait_for_attempts, wait_for_run,
    wait_until,
};
use runner_core::exit;
use runner_core::record::{JobStatus, RunId};
use runner_core::store::hostname;

/// The folder of one job's attempt `n`.
fn attempt_dir(w: &World, run: &RunId, job: &str, n: u32) -> PathBuf {
    runner_core::engine::task_dir(&w.path("art"), run, HUMAN)
        .join(job)
        .join(format!("attempt-{n}"))
}

/// The JSON result files in an attempt's `results/`.
fn results_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("results"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Stand-in processes whose command line mentions `what`.
fn running(w: &World, what: &str) -> Vec<String> {
    processes_under(w.dir.path())
        .into_iter()
        .filter(|p| p.contains(what))
        .collect()
}

#[test]
fn an_orphaned_clients_late_result_is_never_stored_for_a_later_attempt() {
    // A slow engine: each request streams 24 tokens at 10 tokens/s.
    let w = World::with_configs(|_, c| {
        c.tokens_per_s = 10.0;
        c.jitter = 0.0;
    });
    // The stand-in's own client: its injected `client_crash` fails the warm-up below.
    w.use_engine_client();
    let runner = w.spawn_run(&["--variants", "human", "--repeats", "1"]);
    let run = wait_for_run(&w, Duration::from_secs(120));
    let first = attempt_dir(&w, &run, "human-r0", 1);
    // The warm-up is over and the measured client runs: SIGKILL the runner.
    wait_until(
        "the measured client running",
        Duration::from_secs(120),
        || {
            std::fs::read_to_string(first.join("commands.txt"))
                .is_ok_and(|c| c.contains("\nclient: ") || c.starts_with("client: "))
                && !running(&w, " bench ").is_empty()
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    signal(&runner, libc::SIGKILL);
    let mut runner = runner;
    runner.wait().unwrap();
    // The orphaned client (and its server) live on; the client finishes and writes its result
    // into the attempt's folder after the runner is gone.
    wait_until("the orphan's result file", Duration::from_secs(60), || {
        !results_in(&first).is_empty() && running(&w, " bench ").is_empty()
    });
    let orphan = results_in(&first);
    assert_eq!(orphan.len(), 1, "{orphan:?}");
    let orphan_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&orphan[0]).unwrap()).unwrap();
    let orphan_tps = orphan_json["output_throughput"].as_f64().unwrap();
    assert!(
        w.attempts(&run).is_empty(),
        "the killed attempt was never recorded"
    );
    w.gc(&run);
    assert_eq!(labelled(&run), Vec::<String>::new(), "gc left processes");

    // Resume with a warm-up that fails: the measured client never runs.
    let o = w
        .cmd()
        .env("VLLM_STANDIN_FAULT", "client_crash")
        .args(["batch", "--resume", &run.0])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::TASKS_FAILED), "{}", text(&o));
    let attempts = w.attempts(&run);
    assert!(!attempts.is_empty());
    for a in &attempts {
        assert!(!a.succeeded(), "stored as ok: {a:#?}");
        assert!(
            a.metrics.0.is_empty(),
            "a failed attempt carries no measurement: {:?}",
            a.metrics
        );
        assert!(
            a.metrics
                .get("output_throughput_tps")
                .is_none_or(|v| (v - orphan_tps).abs() > 1e-9),
            "the orphan's {orphan_tps} tok/s was stored"
        );
        assert_ne!(
            Path::new(&a.artifact_dir),
            first,
            "the killed attempt's folder was reused"
        );
        assert!(a.attempt >= 2, "numbered past the unrecorded attempt-1");
        assert!(
            a.evidence
                .iter()
                .any(|e| e.contains("the warm-up exited with code 1")),
            "{:?}",
            a.evidence
        );
        let dir = Path::new(&a.artifact_dir);
        assert!(
            dir.join("warmup.stderr").is_file(),
            "a fresh folder of its own"
        );
        assert!(results_in(dir).is_empty(), "{:?}", results_in(dir));
    }
    let jobs = w.jobs(&run);
    assert!(
        jobs.iter().all(|(_, s)| *s != JobStatus::Succeeded),
        "{jobs:?}"
    );
    // The orphan's file is still where it wrote it, untouched and unused.
    assert_eq!(results_in(&first), orphan);
    assert_eq!(labelled(&run), Vec::<String>::new());
}

#[test]
fn one_process_per_run_and_a_dead_holders_lock_is_taken_over() {
    let w = World::with_configs(|_, c| c.tokens_per_s = 40.0);
    // A run whose runner is SIGKILLed after its first attempt: its lock stays, held by a pid
    // that is gone.
    let mut first = w.spawn_run(&["--repeats", "2"]);
    wait_for_attempts(&w, 1, Duration::from_secs(120));
    let run = w.only_run();
    signal(&first, libc::SIGKILL);
    first.wait().unwrap();
    w.gc(&run);
    let stale = w
        .store()
        .run_lock(&run)
        .unwrap()
        .expect("the killed runner's lock");
    assert_eq!(stale.pid, first.id());
    assert_eq!(stale.alive(), Some(false));

    // A resume takes the dead holder's lock over.
    let resumer = w.spawn_resume(&run);
    wait_until(
        "the resume holding the lock",
        Duration::from_secs(60),
        || {
            w.store()
                .run_lock(&run)
                .ok()
                .flatten()
                .is_some_and(|h| h.pid == resumer.id())
        },
    );
    let done_before = w.attempts(&run).len();

    // A second resume while it runs is refused, naming the holder, and changes nothing.
    let o = w
        .cmd()
        .args(["batch", "--resume", &run.0])
        .output()
        .unwrap();
    let mut resumer = resumer;
    assert!(
        resumer.try_wait().unwrap().is_none(),
        "the first resume ended before the second was refused; the test proves nothing"
    );
    assert_eq!(o.status.code(), Some(exit::USAGE), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("pid {} on host {}", resumer.id(), hostname())),
        "{err}"
    );
    assert!(err.contains("only one process may run it"), "{err}");
    assert_eq!(
        w.store().run_lock(&run).unwrap().map(|h| h.pid),
        Some(resumer.id())
    );

    let o = resumer.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains(&format!("taking the run over from pid {}", stale.pid)),
        "{}",
        text(&o)
    );
    assert_eq!(w.store().run_lock(&run).unwrap(), None, "released on exit");
    // Every job ran exactly once: no attempt twice, none lost.
    let attempts = w.attempts(&run);
    let jobs = w.jobs(&run);
    assert_eq!(jobs.len(), 4);
    assert!(
        jobs.iter().all(|(_, s)| *s == JobStatus::Succeeded),
        "{jobs:?}"
    );
    assert_eq!(
        attempts.len(),
        4,
        "{done_before} before the resume: {attempts:#?}"
    );
    for (job, _) in &jobs {
        assert_eq!(
            attempts.iter().filter(|a| &a.job == job).count(),
            1,
            "{job}"
        );
    }
}
