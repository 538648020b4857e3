//! Warm servers end to end: `perf-runner run` with the local backend and stand-in builds that
//! serve vLLM's sleep mode (`--enable-sleep-mode`, `POST /sleep`, `POST /wake_up` under
//! `VLLM_SERVER_DEV_MODE=1`) — real processes, ports and signals. One server per build and
//! task, switched between jobs; a build without sleep mode falls back to a restart per job; a
//! server that dies asleep fails its next job and is started again.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{World, processes_under, text};
use perf_runner_tests::standin::Fault;
use runner_core::Variant;
use runner_core::failure::Failure;
use runner_core::record::{AttemptRecord, ServeMode};

/// Every file under `dir` (recursively) whose name is `name`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == name) {
                out.push(p);
            }
        }
    }
    out
}

fn starts_in(dir: &Path) -> usize {
    files_named(dir, "server.log")
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .matches("Starting vLLM API server")
                .count()
        })
        .sum()
}

fn report(w: &World) -> String {
    let o = w.cmd().args(["report", &w.only_run().0]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Each round's order is recorded with its seed, the attempts ran in it, and `firsts` distinct
/// jobs went first.
fn assert_rounds_rotate(attempts: &[AttemptRecord], firsts: usize) {
    let mut rounds: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for a in attempts {
        let s = a.serve.as_ref().unwrap();
        assert!(s.order_seed.is_some(), "{s:?}");
        rounds.insert(a.job.repeat, s.round_order.clone());
    }
    let first: BTreeSet<&String> = rounds.values().map(|o| &o[0]).collect();
    assert_eq!(first.len(), firsts, "{rounds:?}");
    for (r, order) in &rounds {
        let ran: Vec<String> = attempts
            .iter()
            .filter(|a| a.job.repeat == *r)
            .map(|a| runner_core::report::label(a.job.variant, a.job.aa))
            .collect();
        assert_eq!(&ran, order, "round {r} ran in its recorded order");
    }
}

#[test]
fn one_server_per_build_is_switched_between_jobs_in_rotating_order() {
    let w = World::with_configs(|sub, c| {
        if sub == "wh" {
            c.speed = 1.4;
            c.kv_cache_tokens = 350_000;
        }
    });
    let o = w.run(&["--repeats", "3", "--aa"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts = w.attempts(&w.only_run());
    assert_eq!(
        attempts.len(),
        9,
        "3 rounds × baseline, human, baseline A/A"
    );
    for a in &attempts {
        assert!(
            a.succeeded(),
            "{}: {:?} {:?}",
            a.job,
            a.failure,
            a.failure_detail
        );
        let s = a
            .serve
            .as_ref()
            .expect("a serving attempt records its server");
        assert_eq!(s.mode, ServeMode::Sleep, "{}: {:?}", a.job, s.why);
        assert_eq!(s.server_start, 1, "{}: never started again", a.job);
        assert!(s.wake_ms.is_some() && s.sleep_ms.is_some(), "{s:?}");
        assert!(
            a.server_argv
                .as_ref()
                .unwrap()
                .iter()
                .any(|x| x == "--enable-sleep-mode"),
            "the argv as run is recorded"
        );
        let cap = s.kv_cache.as_ref().expect("capacity from the server's log");
        let want = if a.job.variant == Variant::Human {
            350_000
        } else {
            401_232
        };
        assert_eq!(cap.amount, want);
        // The attempt's server log is its slice of the warm server's log.
        let log = std::fs::read_to_string(Path::new(&a.artifact_dir).join("server.log")).unwrap();
        assert!(log.contains("to wake up"), "{log}");
        assert!(!log.contains("Starting vLLM API server"), "{log}");
    }
    // Server starts = builds (baseline and its A/A share one), not jobs.
    let art = w.path("art");
    assert_eq!(starts_in(&art), 2);
    // Each start ran the burn-in: the measured workload once, kept in the server's folder.
    let burn_ins = files_named(&art, "client.stdout")
        .into_iter()
        .filter(|p| {
            p.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("server-")
        })
        .count();
    assert_eq!(burn_ins, 2);
    // The start of each build's server is charged once, to its first attempt.
    let charged: Vec<&AttemptRecord> = attempts
        .iter()
        .filter(|a| a.serve.as_ref().unwrap().setup_charged_s > 0.0)
        .collect();
    let charged_variants: BTreeSet<Variant> = charged.iter().map(|a| a.job.variant).collect();
    assert_eq!(charged.len(), 2, "{charged:#?}");
    assert_eq!(charged_variants.len(), 2);
    for a in &charged {
        assert!(a.gpu_seconds > a.wall_s, "the start is in its GPU·s");
    }
    // Rotation: each round's order recorded with its seed, every job first once.
    assert_rounds_rotate(&attempts, 3);
    // Still measured: the faster human build is faster.
    let tput = |v: Variant| -> f64 {
        let xs: Vec<f64> = attempts
            .iter()
            .filter(|a| a.job.variant == v && !a.job.aa)
            .map(|a| a.metrics.get("output_throughput_tps").unwrap())
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    let ratio = tput(Variant::Human) / tput(Variant::Baseline);
    assert!(ratio > 1.15, "human/baseline output throughput {ratio:.3}");
    let md = report(&w);
    assert!(
        md.contains("servers: sleep — 2 start(s) for 9 job attempt(s)"),
        "{md}"
    );
    assert!(md.contains("KV-cache capacity differs"), "{md}");
    assert!(md.contains("inside measured windows"), "{md}");
    // The steps ran on this host: its CPU over each measured client is beside the metrics,
    // from /proc/stat, and per round in the report.
    for a in &attempts {
        let busy = a
            .metrics
            .get("host_cpu_busy_pct")
            .expect("host CPU recorded");
        assert!(busy > 0.0 && busy <= 100.0, "{busy}");
        let steal = a.metrics.get("host_cpu_steal_pct").unwrap();
        assert!((0.0..=100.0).contains(&steal), "{steal}");
    }
    assert!(md.contains("; host CPU busy "), "{md}");
    assert!(
        processes_under(w.dir.path()).is_empty(),
        "{:?}",
        processes_under(w.dir.path())
    );
}

#[test]
fn a_build_without_sleep_mode_falls_back_to_a_server_per_job() {
    let w = World::with_configs(|sub, c| {
        if sub == "wb" {
            c.sleep_mode = false;
        }
    });
    let o = w.run(&["--repeats", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts = w.attempts(&w.only_run());
    assert_eq!(attempts.len(), 4);
    for a in &attempts {
        assert!(a.succeeded(), "{}: {:?}", a.job, a.failure_detail);
        let s = a.serve.as_ref().unwrap();
        assert_eq!(s.mode, ServeMode::Restart);
        let why = s.why.as_deref().unwrap();
        assert!(
            why.contains("baseline") && why.contains("--enable-sleep-mode"),
            "{why}"
        );
        assert!(
            !a.server_argv
                .as_ref()
                .unwrap()
                .iter()
                .any(|x| x == "--enable-sleep-mode")
        );
    }
    // The probe's failed start, then one start per job.
    assert_eq!(starts_in(&w.path("art")), 4);
    let md = report(&w);
    assert!(
        md.contains("servers: restart — 4 start(s) for 4 job attempt(s)"),
        "{md}"
    );
    assert!(
        md.contains("restart because the baseline server did not come up asleep"),
        "{md}"
    );
}

#[test]
fn the_restart_setting_starts_a_server_per_job() {
    let w = World::new(1.0, None);
    w.restart_servers();
    let o = w.run(&["--repeats", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts = w.attempts(&w.only_run());
    for a in &attempts {
        let s = a.serve.as_ref().unwrap();
        assert_eq!(s.mode, ServeMode::Restart);
        assert!(
            s.why
                .as_deref()
                .unwrap()
                .contains("engine.servers = restart")
        );
    }
    assert_eq!(starts_in(&w.path("art")), 4);
    // A server per job rotates the rounds too: no build always starts after the other's
    // teardown.
    assert_rounds_rotate(&attempts, 2);
}

#[test]
fn a_server_that_dies_asleep_fails_its_next_job_and_is_started_again() {
    let w = World::with_configs(|sub, c| {
        if sub == "wh" {
            // Past the start's burn-in (13 requests), within the first job (+16): it dies asleep
            // after every job.
            c.fault = Some(Fault::DieAsleep);
            c.fault_after = 20;
        }
    });
    let o = w.run(&["--repeats", "3"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let attempts = w.attempts(&w.only_run());
    let human: Vec<&AttemptRecord> = attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Human)
        .collect();
    assert!(
        human
            .iter()
            .any(|a| a.failure == Some(Failure::ServerFailed)),
        "{human:#?}"
    );
    assert!(
        human
            .iter()
            .any(|a| a.succeeded() && a.serve.as_ref().unwrap().server_start >= 2),
        "started again for a later job: {human:#?}"
    );
    for a in attempts
        .iter()
        .filter(|a| a.job.variant == Variant::Baseline)
    {
        assert!(a.succeeded(), "{:?}", a.failure_detail);
        assert_eq!(a.serve.as_ref().unwrap().server_start, 1);
    }
    assert!(
        processes_under(w.dir.path()).is_empty(),
        "{:?}",
        processes_under(w.dir.path())
    );
}

#[test]
fn docker_keeps_one_server_container_per_build_and_removes_it_at_the_end() {
    use perf_runner_tests::standin::StandinConfig;
    const TEST: &str = "docker_keeps_one_server_container_per_build_and_removes_it_at_the_end";
    if !common::docker::available(TEST) {
        return;
    }
    let image = |variant: &str, version: &str, speed: f64| {
        let tag = format!("perf-runner-test/warm-standin:{variant}");
        let config = StandinConfig {
            version: version.into(),
            speed,
            startup_ms: 200,
            jitter: 0.0,
            ..StandinConfig::default()
        };
        common::docker::standin_image(&tag, &config);
        tag
    };
    let base = image("baseline", "0.6.3.dev1+gf508e03", 1.0);
    let human = image("human", "0.6.3.dev2+ge358053", 1.3);
    let w = World::new(1.0, None);
    w.use_docker(&base, &human);
    let o = w.run(&["--backend", "docker", "--repeats", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = w.only_run();
    let attempts = w.attempts(&run);
    assert_eq!(attempts.len(), 6);
    for a in &attempts {
        assert!(a.succeeded(), "{}: {:?}", a.job, a.failure_detail);
        let s = a.serve.as_ref().unwrap();
        assert_eq!(s.mode, ServeMode::Sleep, "{:?}", s.why);
        assert_eq!(s.server_start, 1);
    }
    assert_eq!(
        starts_in(&w.path("art")),
        2,
        "one server container per build"
    );
    assert_eq!(
        common::docker::containers(&run.0),
        Vec::<String>::new(),
        "containers left"
    );
}
