//! `perf-runner run --backend slurm` end to end on a real one-node Slurm cluster
//! (`scripts/start-test-slurm.sh`: two fake `h100` GPUs): the stand-in engine's builds
//! interleaved as job steps of one allocation, a node set down mid-run (transient, retried
//! after it resumes), Ctrl-C leaving nothing in the queue, `doctor`, `gc` and `plan`. Skipped
//! without a cluster, failed where CI promises one (`PERF_RUNNER_TEST_REQUIRE`).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{World, labelled, text, wait_exit, wait_for_run, wait_until};
use perf_runner_tests::require::slurm_cluster as cluster;
use runner_core::Variant;
use runner_core::failure::Failure;
use runner_core::record::JobStatus;

/// The world's `[local]` settings (wheels, cache) become `[slurm.env]`; short polls.
fn use_slurm(w: &World) {
    let p = w.path("perf-runner.toml");
    let mut doc: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let local = doc.get("local").cloned().unwrap();
    let slurm: toml::Table = toml::from_str(
        "stop_grace_ms = 2000\npoll_ms = 100\nhealth_poll_ms = 100\ntime_limit = \"10\"\n",
    )
    .unwrap();
    let mut slurm = slurm;
    slurm.insert("env".into(), local);
    doc.insert("slurm".into(), toml::Value::Table(slurm));
    std::fs::write(&p, toml::to_string(&doc).unwrap()).unwrap();
}

const AGENT_PATCH: &str =
    "--- /dev/null\n+++ b/vllm/agent_note.py\n@@ -0,0 +1 @@\n+NOTE = 'agent'\n";

fn slurm_args() -> [&'static str; 4] {
    ["--backend", "slurm", "--gpu", "H100:1"]
}

/// Jobs in the queue named `perf-runner.<run>`, with their states.
fn queued(run: &str) -> Vec<String> {
    let o = Command::new("squeue")
        .args(["-h", "-o", "%i %T", "-n", &format!("perf-runner.{run}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Job steps of the cluster whose name starts with `prefix`.
fn steps_named(prefix: &str) -> usize {
    let o = Command::new("squeue")
        .args(["-h", "-s", "-o", "%j"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .count()
}

fn node() -> String {
    let o = Command::new("sinfo")
        .args(["-h", "-o", "%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn scontrol_node(state: &str) {
    let mut args = vec![
        "update".to_string(),
        format!("nodename={}", node()),
        format!("state={state}"),
    ];
    if state == "down" {
        args.push("reason=perf-runner-test".into());
    }
    let o = Command::new("scontrol").args(&args).output().unwrap();
    assert!(o.status.success(), "scontrol {args:?}: {}", text(&o));
}

fn slurm_json(artifact_dir: &str) -> serde_json::Value {
    let p = PathBuf::from(artifact_dir).join("slurm.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

#[test]
fn variants_run_interleaved_as_job_steps_of_one_allocation() {
    let Some(_g) = cluster("variants_run_interleaved_as_job_steps_of_one_allocation") else {
        return;
    };
    let w = World::new(1.4, None);
    use_slurm(&w);
    // The agent's patch adds a module to the baseline build (applied by the local backend's
    // environment code, on the shared cache).
    std::fs::write(w.path("agent.patch"), AGENT_PATCH).unwrap();
    let t = Instant::now();
    let mut extra = slurm_args().to_vec();
    let patch = w.path("agent.patch").display().to_string();
    extra.extend(["--repeats", "2", "--patch", &patch]);
    let o = w.run(&extra);
    eprintln!(
        "run --backend slurm, 2 repeats × 3 variants: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let run = w.only_run();
    let attempts = w.attempts(&run);
    assert_eq!(attempts.len(), 6, "2 repeats × baseline, human, agent");
    for round in attempts.chunks(3) {
        let mut vs: Vec<Variant> = round.iter().map(|a| a.job.variant).collect();
        vs.sort();
        assert_eq!(vs, [Variant::Baseline, Variant::Human, Variant::Agent]);
    }
    let mut jobs = Vec::new();
    for a in &attempts {
        assert!(
            a.succeeded(),
            "{:?}: {:?} {:?}",
            a.job,
            a.failure,
            a.failure_detail
        );
        assert_eq!(a.backend, "slurm");
        assert_eq!(a.gpu_names, ["H100"]);
        assert_eq!(a.host.as_deref(), Some(node().as_str()));
        assert_eq!(a.client_argv, attempts[0].client_argv);
        let s = slurm_json(&a.artifact_dir);
        jobs.push(s["allocation"]["job"].as_u64().unwrap());
        // The GPUs Slurm granted are recorded with the commands.
        let cmds =
            std::fs::read_to_string(PathBuf::from(&a.artifact_dir).join("commands.txt")).unwrap();
        let cuda = s["allocation"]["cuda_visible_devices"].as_str().unwrap();
        assert!(
            cmds.contains(&format!("CUDA_VISIBLE_DEVICES={cuda}")),
            "{cmds}"
        );
    }
    jobs.dedup();
    assert_eq!(
        jobs.len(),
        1,
        "every job ran inside one allocation: {jobs:?}"
    );
    let tput = |v: Variant| -> f64 {
        let xs: Vec<f64> = attempts
            .iter()
            .filter(|a| a.job.variant == v)
            .map(|a| a.metrics.get("output_throughput_tps").unwrap())
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    // The human build is the faster one (1.4×); a loaded 2-core machine narrows the gap.
    let ratio = tput(Variant::Human) / tput(Variant::Baseline);
    eprintln!("human/baseline output throughput {ratio:.3}");
    assert!(ratio > 1.05, "human/baseline output throughput {ratio:.3}");
    assert!(queued(&run.0).is_empty(), "released: {:?}", queued(&run.0));
}

#[test]
fn a_node_set_down_mid_run_is_transient_and_retried_after_it_resumes() {
    let Some(_g) = cluster("a_node_set_down_mid_run_is_transient_and_retried_after_it_resumes")
    else {
        return;
    };
    // Each server takes 3 s to start: the node goes down while the first one does (either
    // build may go first: rounds rotate).
    let w = World::with_configs(|_, c| c.startup_ms = 3000);
    use_slurm(&w);
    w.restart_servers();
    let mut extra = slurm_args().to_vec();
    extra.extend(["--repeats", "1"]);
    let mut child = w.cmd();
    let mut child = child
        .args(w.run_args())
        .args(&extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = wait_for_run(&w, Duration::from_secs(60));
    wait_until("a server step", Duration::from_secs(60), || {
        steps_named("perf-runner.server") > 0
    });
    scontrol_node("down");
    let resumed = std::panic::catch_unwind(|| {
        wait_until("the failed attempt", Duration::from_secs(30), || {
            w.attempts(&run).iter().any(|a| a.failure.is_some())
        });
        // The retry waits for a new allocation while the node is down.
        std::thread::sleep(Duration::from_millis(1000));
        assert!(
            queued(&run.0).iter().any(|l| l.contains("PENDING")),
            "{:?}",
            queued(&run.0)
        );
    });
    scontrol_node("resume");
    resumed.unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(120));
    let o = child.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(0), "{}", text(&o));
    let attempts = w.attempts(&run);
    let failed: Vec<_> = attempts.iter().filter(|a| !a.succeeded()).collect();
    assert_eq!(failed.len(), 1, "{attempts:?}");
    assert_eq!(
        failed[0].failure,
        Some(Failure::InfraTransient),
        "{:?}",
        failed[0]
    );
    let detail = failed[0].failure_detail.clone().unwrap_or_default();
    assert!(
        detail.contains("NODE_FAIL") || detail.contains("Node failure"),
        "{detail}"
    );
    let retried = attempts
        .iter()
        .find(|a| a.job == failed[0].job && a.succeeded())
        .expect("the job is retried and succeeds");
    assert_eq!(retried.attempt, failed[0].attempt + 1);
    let s = slurm_json(&retried.artifact_dir);
    assert_eq!(
        s["allocations"].as_array().map(Vec::len),
        Some(2),
        "a new allocation after the node failure: {s}"
    );
    let jobs = w.jobs(&run);
    assert!(
        jobs.iter().all(|(_, s)| *s == JobStatus::Succeeded),
        "{jobs:?}"
    );
    assert!(queued(&run.0).is_empty());
}

#[test]
fn ctrl_c_leaves_no_job_in_the_queue() {
    let Some(_g) = cluster("ctrl_c_leaves_no_job_in_the_queue") else {
        return;
    };
    let w = World::new(1.0, None);
    use_slurm(&w);
    let mut extra = slurm_args().to_vec();
    extra.extend(["--repeats", "3"]);
    let log = std::fs::File::create(w.path("runner.log")).unwrap();
    let mut child = w.cmd();
    let mut child = child
        .env("PERF_RUNNER_LOG", "info")
        .args(w.run_args())
        .args(&extra)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(w.path("runner.log")).unwrap_or_default();
    let run = wait_for_run(&w, Duration::from_secs(60));
    wait_until("a job step", Duration::from_secs(60), || {
        steps_named("perf-runner.") > 0
    });
    assert_eq!(queued(&run.0).len(), 1, "{:?}", queued(&run.0));
    common::signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130));
    let t = Instant::now();
    let t0 = Instant::now();
    while !queued(&run.0).is_empty() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        queued(&run.0).is_empty(),
        "queue not empty: {:?}\n{}",
        queued(&run.0),
        log()
    );
    eprintln!(
        "queue empty {:.2} s after the runner exited",
        t.elapsed().as_secs_f64()
    );
    assert!(labelled(&run).is_empty(), "{:?}", labelled(&run));
    // gc finds nothing left of it.
    let o = w.cmd().args(["gc", &run.0]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("0 leftover Slurm job(s) cancelled"),
        "{}",
        text(&o)
    );
}

#[test]
fn doctor_checks_the_cluster() {
    let Some(_g) = cluster("doctor_checks_the_cluster") else {
        return;
    };
    let w = World::new(1.0, None);
    use_slurm(&w);
    let o = w
        .cmd()
        .args(["doctor", "--backend", "slurm"])
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(0), "{all}");
    for check in ["sinfo", "partition", "gpus", "gpu:h100:2", "cache"] {
        assert!(all.contains(check), "{check}: {all}");
    }
}

#[test]
fn plan_shows_the_allocation_and_the_step_commands() {
    // No cluster needed: nothing is contacted.
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .current_dir(dir.path())
        .env_remove("PERF_RUNNER_LOG")
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .args(["--store", dir.path().join("s.db").to_str().unwrap()])
        .args(["plan", "310aca88", "--backend", "slurm", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let builds = v["builds"].as_array().unwrap();
    assert_eq!(builds.len(), 2);
    for b in builds {
        let d = &b["dry_run"];
        let salloc: Vec<&str> = d["allocation"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str())
            .collect();
        assert_eq!(salloc[..2], ["salloc", "--no-shell"], "{d}");
        assert!(salloc.contains(&"--gres=gpu:h100:4"), "{d}");
        // The example's task is offline (benchmark_latency.py): its client is the only step.
        let client = d["steps"]["client"].as_array().unwrap();
        assert_eq!(client[0], "srun");
        assert_eq!(client[1], "--jobid=<ALLOC>");
        assert!(client.iter().any(|a| a == "--overlap"));
        assert!(client.iter().any(|a| a == "{PYTHON}"), "{d}");
    }
}
