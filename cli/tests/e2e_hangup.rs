//! SIGHUP (a dropped SSH session) stops a run the way SIGTERM does: everything it started is
//! stopped, the run is recorded `interrupted` and `--resume` finishes it. On the local backend
//! the runner sits on a real pseudo-terminal that is hung up (the kernel sends SIGHUP and the
//! terminal stops taking writes); on the Docker backend, containers of the run are counted by
//! their run-id label. A second signal ends the process at once, clean-up or not.

mod common;

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use common::docker;
use common::pty::OnPty;
use common::{
    World, labelled, processes_under, signal, text, wait_exit, wait_for_attempts, wait_until,
};
use perf_runner_tests::standin::StandinConfig;
use runner_core::exit;
use runner_core::record::{JobStatus, RunId};

/// After an interrupted run: recorded `interrupted`, unlocked, some jobs cancelled; then a
/// resume finishes every job.
fn interrupted_then_resumed(w: &World, run: &RunId, backend_leftovers: impl Fn() -> Vec<String>) {
    let runs = w.store().runs().unwrap();
    assert_eq!(
        runs[0].status,
        runner_core::record::RunStatus::Interrupted,
        "{runs:?}"
    );
    assert_eq!(
        w.store().run_lock(run).unwrap(),
        None,
        "the lock was released"
    );
    let jobs = w.jobs(run);
    assert!(
        jobs.iter().any(|(_, s)| *s == JobStatus::Cancelled),
        "{jobs:?}"
    );
    let o = w
        .cmd()
        .args(["batch", "--resume", &run.0])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(exit::SUCCESS), "{}", text(&o));
    let jobs = w.jobs(run);
    assert_eq!(jobs.len(), 4);
    assert!(
        jobs.iter().all(|(_, s)| *s == JobStatus::Succeeded),
        "{jobs:?}"
    );
    assert_eq!(backend_leftovers(), Vec::<String>::new());
}

#[test]
fn a_dropped_terminal_stops_a_local_run_cleanly_and_resume_finishes_it() {
    let w = World::with_configs(|_, c| c.tokens_per_s = 40.0);
    let mut cmd = w.cmd();
    cmd.args(w.run_args()).args(["--repeats", "2"]);
    let mut term = OnPty::spawn(&mut cmd).unwrap();
    wait_for_attempts(&w, 1, Duration::from_secs(120));
    let run = w.only_run();
    wait_until("a job's processes running", Duration::from_secs(60), || {
        !labelled(&run).is_empty()
    });
    // The connection drops: the terminal is hung up.
    let shown = term.hang_up();
    let status = wait_exit(&mut term.child, Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(exit::INTERRUPTED),
        "{status:?}; the terminal showed:\n{shown}"
    );
    assert_eq!(
        labelled(&run),
        Vec::<String>::new(),
        "stand-in processes left"
    );
    assert_eq!(processes_under(w.dir.path()), Vec::<String>::new());
    interrupted_then_resumed(&w, &run, || labelled(&run));
}

#[test]
fn sighup_on_the_docker_backend_leaves_no_container_and_resume_finishes() {
    const TEST: &str = "sighup_on_the_docker_backend_leaves_no_container_and_resume_finishes";
    if !docker::available(TEST) {
        return;
    }
    let image = |variant: &str, version: &str, speed: f64| {
        let tag = format!("perf-runner-test/cli-standin:{variant}");
        let config = StandinConfig {
            version: version.into(),
            speed,
            tokens_per_s: 40.0,
            startup_ms: 200,
            jitter: 0.0,
            ..StandinConfig::default()
        };
        docker::standin_image(&tag, &config);
        tag
    };
    let base = image("baseline", "0.6.3.dev1+gf508e03", 1.0);
    let human = image("human", "0.6.3.dev2+ge358053", 1.25);
    let w = World::new(1.0, None);
    w.use_docker(&base, &human);
    let log = File::create(w.path("runner.log")).unwrap();
    let mut runner = w
        .cmd()
        .args(w.run_args())
        .args(["--backend", "docker", "--repeats", "2"])
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(w.path("runner.log")).unwrap_or_default();
    wait_for_attempts(&w, 1, Duration::from_secs(180));
    let run = w.only_run();
    wait_until(
        "a container of the run running",
        Duration::from_secs(60),
        || {
            docker::containers(&run.0)
                .iter()
                .any(|c| c.ends_with(" running"))
        },
    );
    signal(&runner, libc::SIGHUP);
    let status = wait_exit(&mut runner, Duration::from_secs(60));
    assert_eq!(status.code(), Some(exit::INTERRUPTED), "{}", log());
    assert!(log().contains("SIGHUP received"), "{}", log());
    assert_eq!(
        docker::containers(&run.0),
        Vec::<String>::new(),
        "containers left"
    );
    interrupted_then_resumed(&w, &run, || docker::containers(&run.0));
}

/// A second signal ends the process at once, even while the clean-up still waits for a server
/// that ignores SIGTERM; what it left is for `gc`. The same run with one signal shows that the
/// clean-up was indeed busy: it waits out the stop grace before the SIGKILL.
#[test]
fn a_second_signal_exits_at_once_while_the_clean_up_waits() {
    let w = World::new(1.0, Some(perf_runner_tests::standin::Fault::HangUnkillable));
    let _reaper = Reaper(w.dir.path());
    let human = &common::HUMAN[..12];
    // Start a run, wait for the human build's server (it never becomes ready and ignores
    // SIGTERM), signal once or twice; the seconds from the first signal to the exit.
    let interrupt = |twice: bool| -> (Duration, RunId) {
        // A 10 s grace (these tests use 2 s) leaves a wide window for the second signal.
        let mut child = w
            .cmd()
            .args(w.run_args())
            .args(["--repeats", "1"])
            .env("PERF_RUNNER__LOCAL__STOP_GRACE_MS", "10000")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the human server hanging", Duration::from_secs(120), || {
            processes_under(w.dir.path())
                .iter()
                .any(|p| p.contains(human) && p.contains("api_server"))
        });
        std::thread::sleep(Duration::from_millis(500));
        signal(&child, libc::SIGINT);
        let t = std::time::Instant::now();
        if twice {
            std::thread::sleep(Duration::from_millis(800));
            signal(&child, libc::SIGINT);
        }
        let status = wait_exit(&mut child, Duration::from_secs(60));
        assert_eq!(status.code(), Some(exit::INTERRUPTED));
        let run = w.store().runs().unwrap()[0].id.clone();
        (t.elapsed(), run)
    };
    let (once, run) = interrupt(false);
    assert!(
        once >= Duration::from_secs(8),
        "one signal: the clean-up waits the grace for the unkillable server, not {once:?}"
    );
    wait_until("no process left", Duration::from_secs(10), || {
        processes_under(w.dir.path()).is_empty()
    });
    let (twice, run2) = interrupt(true);
    assert_ne!(run, run2);
    assert!(
        twice < Duration::from_secs(5),
        "a second signal exits at once, not after {twice:?}"
    );
    // The hung server outlived the runner; `gc` removes it by its run-id label.
    assert!(!labelled(&run2).is_empty(), "the server is left for gc");
    w.gc(&run2);
    wait_until("gc's clean-up", Duration::from_secs(20), || {
        labelled(&run2).is_empty()
    });
}

/// SIGKILLs what still runs from a world's folder when dropped, so a failed assertion does not
/// leave a server that ignores SIGTERM running.
struct Reaper<'a>(&'a std::path::Path);

impl Drop for Reaper<'_> {
    fn drop(&mut self) {
        for p in processes_under(self.0) {
            if let Some(pid) = p.split(':').next().and_then(|x| x.parse::<i32>().ok()) {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}
