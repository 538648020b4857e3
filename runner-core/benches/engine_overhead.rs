//! Engine costs on a simulated GPU pool (a backend whose "benchmark" sleeps a known time and
//! writes a real vLLM-format output that the engine parses and records in SQLite):
//!
//! 1. runner overhead per job: wall time per job beyond the benchmark's own time, absolute and
//!    as a share of it (targets: ≤ 300 ms and ≤ 2 %);
//! 2. batch makespan on a pool of GPUs against the lower bound max(total GPU·time / GPUs,
//!    longest job) (target: ≤ 1.05 ×).
//!
//! Run with `cargo bench -p runner-core --bench engine_overhead`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use runner_core::backend::{GpuDevice, GpuLease, JobEnvs};
use runner_core::dataset::Dataset;
use runner_core::engine::{Engine, EngineOptions, RetryPolicy, interleaved_jobs};
use runner_core::plan::{GpuRequest, StepPlan, TaskPlan, plan_task};
use runner_core::record::RunId;
use runner_core::settings::Settings;
use runner_core::store::Store;
use runner_core::{
    Backend, BackendError, BuildSpec, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
    Variant,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// A pool of `n` simulated GPUs; a job "runs" for the duration its task's model name encodes.
#[derive(Debug)]
struct Pool {
    free: Mutex<Vec<u32>>,
    freed: Notify,
}

#[async_trait]
impl Backend for Pool {
    fn name(&self) -> &'static str {
        "simulated"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }
    async fn check(&self) -> Result<Health, BackendError> {
        Ok(Health::default())
    }
    async fn acquire(&self, gpu: &GpuRequest, _cx: &RunContext) -> Result<GpuLease, BackendError> {
        loop {
            let notified = self.freed.notified();
            {
                let mut free = self.free.lock().unwrap();
                if free.len() >= gpu.count as usize {
                    let at = free.len() - gpu.count as usize;
                    let devices = free
                        .split_off(at)
                        .into_iter()
                        .map(|i| GpuDevice {
                            index: i,
                            uuid: format!("GPU-{i}"),
                            name: "SIM".into(),
                            memory_mib: 81920,
                        })
                        .collect();
                    return Ok(GpuLease {
                        id: String::new(),
                        devices,
                    });
                }
            }
            notified.await;
        }
    }
    async fn release(&self, lease: GpuLease) -> Result<(), BackendError> {
        self.free
            .lock()
            .unwrap()
            .extend(lease.devices.iter().map(|d| d.index));
        self.freed.notify_waiters();
        Ok(())
    }
    async fn prepare(&self, b: &BuildSpec, _cx: &RunContext) -> Result<PreparedEnv, BackendError> {
        Ok(PreparedEnv {
            identity: b.identity.clone(),
            handle: String::new(),
            engine_version: None,
            digest: None,
            reused: true,
            scripts_dir: None,
        })
    }
    async fn execute(
        &self,
        _e: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
    ) -> Result<StepOutput, BackendError> {
        let ms: u64 = step
            .client
            .argv
            .iter()
            .find_map(|a| a.strip_prefix("sim/ms-"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let t = Instant::now();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        std::fs::create_dir_all(&cx.artifact_dir).unwrap();
        let out = cx.artifact_dir.join("client.stdout");
        let err = cx.artifact_dir.join("client.stderr");
        std::fs::write(
            &out,
            format!(
                "Avg latency: {} seconds\n50% percentile latency: {} seconds\n",
                ms as f64 / 1e3,
                ms as f64 / 1e3
            ),
        )
        .unwrap();
        std::fs::write(&err, "").unwrap();
        Ok(StepOutput {
            exit_code: Some(0),
            client_stdout: out,
            client_stderr: err,
            benchmark_seconds: t.elapsed().as_secs_f64(),
            ..StepOutput::default()
        })
    }
}

fn plans(specs: &[(u32, u64)]) -> Vec<TaskPlan> {
    let mut text = String::new();
    for (i, (gpus, ms)) in specs.iter().enumerate() {
        let row = serde_json::json!({
            "commit_hash": format!("{:040x}", 0xabc000 + i),
            "parent_commit": format!("{:040x}", 0xdef000 + i),
            "perf_command": format!("python benchmarks/benchmark_latency.py --model sim/ms-{ms}"),
            "gpu_config": format!("H100:{gpus}"),
        });
        text.push_str(&row.to_string());
        text.push('\n');
    }
    let ds = Dataset::from_str(&text, "bench", Path::new("."));
    ds.tasks
        .iter()
        .map(|t| plan_task(t, &[Variant::Human], &Settings::embedded(), None).unwrap())
        .collect()
}

async fn run(dir: &Path, gpus: u32, specs: &[(u32, u64)], repeats: u32, concurrency: usize) -> f64 {
    let store = Arc::new(Store::open(&dir.join(format!("s-{gpus}-{}.db", specs.len()))).unwrap());
    let run = RunId::generate();
    store
        .create_run(&run, "simulated", "bench", &serde_json::json!({}))
        .unwrap();
    let plans = plans(specs);
    for p in &plans {
        store
            .add_jobs(
                &run,
                &interleaved_jobs(&p.commit, &[Variant::Human], repeats, false),
            )
            .unwrap();
    }
    let pool = Arc::new(Pool {
        free: Mutex::new((0..gpus).collect()),
        freed: Notify::new(),
    });
    let opts = EngineOptions {
        repeats,
        aa: false,
        retry: RetryPolicy::default(),
        concurrency,
        artifact_root: dir.join("art"),
        data_dir: dir.join("data"),
        dataset_roots: vec![dir.to_path_buf()],
        budget_gpu_seconds: None,
        adaptive: None,
        servers: Default::default(),
        burn_in: true,
    };
    let engine = Engine::new(pool, store, opts);
    let t = Instant::now();
    let s = engine
        .run(&run, &plans, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(s.failed, 0);
    t.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    // 1. Overhead: one task, 20 sequential jobs of a 500 ms benchmark.
    let jobs = 20u32;
    let bench_ms = 500u64;
    let wall = run(dir.path(), 1, &[(1, bench_ms)], jobs, 1).await;
    let per_job = wall / jobs as f64 - bench_ms as f64 / 1e3;
    println!("engine_overhead: {jobs} jobs of a {bench_ms} ms benchmark in {wall:.3} s");
    println!(
        "  runner overhead per job: {:.1} ms = {:.2} % of the benchmark's own time (targets ≤ 300 ms, ≤ 2 %)",
        per_job * 1e3,
        per_job * 1e5 / bench_ms as f64
    );

    // 2. Makespan: 24 tasks on 4 GPUs, mixed sizes and durations (deterministic).
    let gpus = 4u32;
    let specs: Vec<(u32, u64)> = (0..24u64)
        .map(|i| ([1, 1, 2, 1, 4, 2][i as usize % 6], 200 + (i * 137) % 600))
        .collect();
    let total_gpu_time: f64 = specs
        .iter()
        .map(|(g, ms)| *g as f64 * *ms as f64 / 1e3)
        .sum();
    let longest = specs
        .iter()
        .map(|(_, ms)| *ms as f64 / 1e3)
        .fold(0.0, f64::max);
    let lower = (total_gpu_time / gpus as f64).max(longest);
    let makespan = run(dir.path(), gpus, &specs, 1, specs.len()).await;
    println!(
        "  makespan of {} tasks on {gpus} GPUs: {makespan:.3} s; lower bound {lower:.3} s; ratio {:.3} (target ≤ 1.05)",
        specs.len(),
        makespan / lower
    );
}
