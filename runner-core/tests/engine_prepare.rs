//! The engine's prepare phase: transient failures are retried through the one cancellable
//! backoff, every try is kept in the store and in `prepare-<variant>/attempts.json`, and a signal during a
//! backoff ends it at once instead of sleeping it out.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner_core::engine::{Engine, EngineOptions, RetryPolicy, interleaved_jobs, task_dir};
use runner_core::plan::TaskPlan;
use runner_core::record::RunId;
use runner_core::store::Store;
use runner_core::{Failure, Variant};
use support::{Canned, latency_plan};
use tokio_util::sync::CancellationToken;

#[path = "engine_support.rs"]
mod support;

/// Every variant's run prints one plain latency.
fn latency(_dir: &Path, _v: Variant) -> (String, Vec<std::path::PathBuf>) {
    ("Avg latency: 1.0 seconds\n".to_string(), vec![])
}

fn plan() -> TaskPlan {
    latency_plan(&[Variant::Baseline])
}

fn engine(dir: &Path, failures: u32, base_delay: Duration) -> (Engine, Arc<Store>, RunId) {
    let store = Arc::new(Store::open(&dir.join("s.db")).unwrap());
    let run = RunId::generate();
    store
        .create_run(&run, "canned", "t", &serde_json::json!({}))
        .unwrap();
    let plan = plan();
    store
        .add_jobs(
            &run,
            &interleaved_jobs(&plan.commit, &[Variant::Baseline], 1, false),
        )
        .unwrap();
    let opts = EngineOptions {
        repeats: 1,
        aa: false,
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay,
            max_delay: base_delay,
            max_wall: Duration::from_secs(3600),
        },
        concurrency: 1,
        artifact_root: dir.join("art"),
        data_dir: dir.join("data"),
        dataset_roots: vec![],
        budget_gpu_seconds: None,
        adaptive: None,
        servers: Default::default(),
        burn_in: true,
    };
    let backend = Arc::new(Canned::failing_prepare(failures, latency));
    (Engine::new(backend, store.clone(), opts), store, run)
}

#[tokio::test]
async fn prepare_retries_are_kept_try_by_try() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, store, run) = engine(dir.path(), 2, Duration::from_millis(5));
    let plan = plan();
    let sum = engine
        .run(&run, std::slice::from_ref(&plan), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(sum.succeeded, 1, "{sum:?}");
    let tries = task_dir(&dir.path().join("art"), &run, &plan.commit)
        .join("prepare-baseline")
        .join("attempts.json");
    let tries: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tries).unwrap()).unwrap();
    let tries = tries.as_array().unwrap();
    assert_eq!(tries.len(), 3, "{tries:?}");
    assert_eq!(tries[0]["failure"], "infra_transient");
    assert_eq!(tries[0]["detail"], "download reset by peer");
    assert_eq!(tries[2]["failure"], serde_json::Value::Null);

    // The store keeps the same three tries, numbered, with their codes and evidence.
    let stored = store.prepare_tries(&run).unwrap();
    let seen: Vec<(u32, Option<Failure>)> = stored.iter().map(|t| (t.attempt, t.failure)).collect();
    assert_eq!(
        seen,
        [
            (1, Some(Failure::InfraTransient)),
            (2, Some(Failure::InfraTransient)),
            (3, None)
        ]
    );
    assert!(
        stored
            .iter()
            .all(|t| t.commit == plan.commit && t.variant == Variant::Baseline)
    );
    assert_eq!(stored[1].detail.as_deref(), Some("download reset by peer"));
    assert!(
        stored
            .iter()
            .all(|t| t.seconds >= 0.0 && !t.finished_at.is_empty())
    );

    // The report carries them, and its markdown lists the two failed ones.
    let row = runner_core::store::TaskRow {
        commit: plan.commit.clone(),
        line: 1,
        subject: None,
        status: runner_core::record::TaskStatus::Planned,
        detail: String::new(),
        step_fingerprint: Some(plan.step_fingerprint.clone()),
        plan: Some(serde_json::to_string(&plan).unwrap()),
    };
    store.put_task(&run, &row).unwrap();
    let report = runner_core::report::build(&store, &run, &Default::default()).unwrap();
    assert_eq!(report.tasks[0].prepare, stored);
    let md = runner_core::report::markdown(&report);
    let section = md.split("## Failed prepare tries").nth(1).expect(&md);
    let rows: Vec<&str> = section
        .lines()
        .filter(|l| l.contains("infra_transient"))
        .collect();
    assert_eq!(rows.len(), 2, "{section}");
    assert!(rows[0].contains("| baseline | 1 |"), "{}", rows[0]);
    let html = runner_core::report::html(&report);
    assert_eq!(
        html.matches("<td><code>infra_transient</code></td>")
            .count(),
        2,
        "{html}"
    );
    assert!(html.contains("download reset by peer"));
}

#[tokio::test]
async fn a_signal_during_a_prepare_backoff_ends_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A one-hour backoff: only the cancellation can end it in time.
    let (engine, store, run) = engine(dir.path(), 5, Duration::from_secs(3600));
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.cancel();
    });
    let t = Instant::now();
    let sum = tokio::time::timeout(
        Duration::from_secs(20),
        engine.run(&run, std::slice::from_ref(&plan()), &cancel),
    )
    .await
    .expect("the backoff ignored the cancellation")
    .unwrap();
    assert!(t.elapsed() < Duration::from_secs(10));
    assert_eq!(sum.succeeded, 0);
    let jobs = store.jobs(&run).unwrap();
    assert!(
        jobs.iter().all(|(_, s)| s.needs_resume()),
        "the job stays resumable: {jobs:?}"
    );
}
