//! The run: requests leave at their arrival times (under --max-concurrency), each on its own
//! task; outcomes are collected by index, summarised and reported. A run in which every
//! request failed exits non-zero with the first error.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use runner_core::exit;
use runner_core::text::escape;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::args::{self, ServeArgs};
use super::metrics::{mean, percentile, summarize};
use super::report::{self, RunInfo, py_float};
use super::request::{Outcome, Target, send};
use super::{arrivals, setup};

/// `perf-runner bench serve`.
pub async fn serve(a: ServeArgs) -> Result<i32> {
    let entered = Instant::now();
    if a.num_prompts == 0 {
        bail!("--num-prompts must be at least 1");
    }
    let metrics = args::metric_names(&a.percentile_metrics).map_err(anyhow::Error::msg)?;
    let percentiles = args::percentiles(&a.metric_percentiles).map_err(anyhow::Error::msg)?;
    let goodput = args::goodput(&a.goodput).map_err(anyhow::Error::msg)?;
    let metadata = args::key_values("--metadata", &a.metadata).map_err(anyhow::Error::msg)?;
    let offsets = arrivals::offsets(a.num_prompts, a.request_rate, a.burstiness, a.seed)?;
    let s = setup::prepare(&a).await?;
    let target = Arc::new(s.target);
    let sem = a.max_concurrency.map(|c| Arc::new(Semaphore::new(c)));

    if a.ready_check_timeout_sec > 0 {
        ready_check(&target, &s.bodies, &s.samples, a.ready_check_timeout_sec).await?;
    }
    if a.num_warmups > 0 && !s.bodies.is_empty() {
        outln!("Warming up with {} requests...", a.num_warmups);
        let mut set = JoinSet::new();
        for _ in 0..a.num_warmups {
            let (t, b, sem) = (target.clone(), s.bodies[0].clone(), sem.clone());
            set.spawn(async move {
                let _permit = match &sem {
                    Some(s) => s.clone().acquire_owned().await.ok(),
                    None => None,
                };
                send(&t, b, 0).await
            });
        }
        while set.join_next().await.is_some() {}
        outln!("Warmup run completed.");
    }
    outln!("Starting main benchmark run...");
    outln!("Traffic request rate: {}", py_float(a.request_rate));
    let dist = if a.burstiness == 1.0 {
        "Poisson process"
    } else {
        "Gamma distribution"
    };
    outln!("Burstiness factor: {} ({dist})", py_float(a.burstiness));
    outln!(
        "Maximum request concurrency: {}",
        a.max_concurrency
            .map_or("None".to_string(), |c| c.to_string())
    );

    let n = s.bodies.len();
    let first_request_unix_ms = unix_ms();
    let t0 = Instant::now();
    let start_to_first = t0.duration_since(entered).as_secs_f64();
    // Requests leave from a thread of their own that sleeps to each arrival time (the OS timer,
    // tens of µs late, rather than the runtime's 1 ms ticks); each is then a task.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Outcome)>();
    let jobs: Vec<(Vec<u8>, usize)> = s
        .bodies
        .into_iter()
        .zip(s.samples.iter().map(|x| x.prompt_len))
        .collect();
    let handle = tokio::runtime::Handle::current();
    let (t_all, sem_all) = (target.clone(), sem.clone());
    let dispatcher = std::thread::Builder::new()
        .name("bench-dispatch".into())
        .spawn(move || {
            for (i, (body, prompt_len)) in jobs.into_iter().enumerate() {
                let due = t0 + Duration::from_secs_f64(offsets[i]);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                let (t, sem, tx) = (t_all.clone(), sem_all.clone(), tx.clone());
                handle.spawn(async move {
                    let woke = Instant::now();
                    let (_permit, ready) = match &sem {
                        Some(s) => (s.clone().acquire_owned().await.ok(), Instant::now()),
                        None => (None, woke),
                    };
                    let mut o = send(&t, body, prompt_len).await;
                    // Queueing: waiting for a concurrency slot (vLLM's client_queue_time). Lag:
                    // how late the request left after it could have (timer, task start, set-up).
                    o.queue = ready.duration_since(woke).as_secs_f64();
                    let could = if sem.is_some() { ready.max(due) } else { due };
                    o.lag = o
                        .sent_at
                        .map_or(0.0, |sent| sent.duration_since(could).as_secs_f64());
                    o.start = o
                        .sent_at
                        .map_or(0.0, |sent| sent.duration_since(t0).as_secs_f64());
                    let _ = tx.send((i, o));
                });
            }
        })
        .map_err(|e| anyhow::anyhow!("starting the dispatch thread: {e}"))?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut done = 0usize;
    // Ends when every task has answered (or died) and the dispatcher is done.
    while let Some((i, o)) = rx.recv().await {
        outcomes[i] = Some(o);
        done += 1;
        if !a.disable_tqdm && n > 0 && (done * 10 / n != (done - 1) * 10 / n) {
            errln!(
                "{done}/{n} requests done ({:.1} s)",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    let _ = dispatcher.join();
    let duration = t0.elapsed().as_secs_f64();
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| Outcome {
                error: "the request's task ended abnormally".into(),
                ..Outcome::default()
            })
        })
        .collect();

    let summary = summarize(
        &outcomes,
        duration,
        &s.tok,
        &metrics,
        &percentiles,
        &goodput,
    );
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.success).collect();
    if !failed.is_empty() {
        outln!("Failed requests during benchmark run detected (capping to 10):");
        for (i, o) in failed.iter().take(10).enumerate() {
            outln!("Error {i}: {}", escape(&o.error));
        }
    }
    let overhead: Vec<f64> = outcomes.iter().map(|o| (o.lag + o.work) * 1000.0).collect();
    let lag: Vec<f64> = outcomes.iter().map(|o| o.lag * 1000.0).collect();
    let extra = vec![
        ("client".to_string(), json!("perf-runner bench serve")),
        ("client_version".into(), json!(env!("CARGO_PKG_VERSION"))),
        (
            "tokenizer_path".into(),
            json!(s.tok.path().map(|p| p.display().to_string())),
        ),
        ("tokenizer_approximated".into(), json!(s.tok.approximated())),
        ("client_overhead_mean_ms".into(), json!(mean(&overhead))),
        (
            "client_overhead_p99_ms".into(),
            json!(percentile(&overhead, 99.0)),
        ),
        ("client_dispatch_lag_mean_ms".into(), json!(mean(&lag))),
        (
            "client_dispatch_lag_p99_ms".into(),
            json!(percentile(&lag, 99.0)),
        ),
        (
            "start_to_first_request_ms".into(),
            json!(start_to_first * 1000.0),
        ),
        ("first_request_unix_ms".into(), json!(first_request_unix_ms)),
    ];
    let info = RunInfo {
        backend: a.backend.name().to_string(),
        label: a.label.clone(),
        model_id: s.model_id.clone(),
        tokenizer_id: s.tokenizer_id.clone(),
        num_prompts: a.num_prompts,
        request_rate: a.request_rate,
        burstiness: a.burstiness,
        max_concurrency: a.max_concurrency,
        goodput: !goodput.is_empty(),
        duration,
        date: chrono::Local::now().format("%Y%m%d-%H%M%S").to_string(),
        metadata,
        extra,
    };
    if summary.completed == 0 && n > 0 {
        errln!(
            "UserWarning: All requests failed. This is likely due to a misconfiguration on the \
             benchmark arguments."
        );
    }
    outln!("{}", report::block(&info, &summary).trim_end());
    outln!(
        "Client overhead per request (ms): mean {:.3}, p99 {:.3} (dispatch lag mean {:.3}, p99 \
         {:.3}); start to first request: {:.1} ms",
        mean(&overhead),
        percentile(&overhead, 99.0),
        mean(&lag),
        percentile(&lag, 99.0),
        start_to_first * 1000.0
    );
    if a.save_result {
        let path =
            report::result_path(&info, a.result_filename.as_deref(), a.result_dir.as_deref());
        if let Some(d) = a.result_dir.as_deref() {
            std::fs::create_dir_all(d)
                .map_err(|e| anyhow::anyhow!("creating {}: {e}", d.display()))?;
        }
        let text = report::json_text(&info, &summary, &outcomes, a.save_detailed);
        std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("writing the result {}: {e}", path.display()))?;
    }
    if summary.completed == 0 && n > 0 {
        let first = outcomes
            .iter()
            .find(|o| !o.success)
            .map_or("", |o| &o.error);
        errln!(
            "error: all {n} requests failed; the first error: {}",
            escape(first)
        );
        return Ok(exit::TASKS_FAILED);
    }
    Ok(exit::SUCCESS)
}

/// Sends the first prompt until it succeeds (vLLM's `--ready-check-timeout-sec`).
async fn ready_check(
    t: &Target,
    bodies: &[Vec<u8>],
    samples: &[super::dataset::Sample],
    timeout_s: u64,
) -> Result<()> {
    let (Some(b), Some(s)) = (bodies.first(), samples.first()) else {
        return Ok(());
    };
    outln!("Starting initial single prompt test run...");
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    loop {
        let o = send(t, b.clone(), s.prompt_len).await;
        if o.success {
            outln!("Initial test run completed.");
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "Initial test run failed - Please make sure benchmark arguments are correctly \
                 specified. Error: {}",
                o.error
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
