//! The engine reads what a backend left behind as untrusted files: a result "file" that is a
//! FIFO never blocks it, a result file over `limits.max_result_bytes` is not read and says so,
//! a log over the cap is read from its end, and impossible values are no metrics.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[path = "engine_support.rs"]
mod support;

use runner_core::Variant;
use runner_core::engine::{Engine, EngineOptions, RetryPolicy, interleaved_jobs};
use runner_core::failure::Failure;
use runner_core::record::{AttemptRecord, RunId};
use runner_core::settings::Limits;
use runner_core::store::Store;
use support::{Canned, Write, latency_plan};
use tokio_util::sync::CancellationToken;

/// The result cap the engine runs with in these tests.
const CAP: u64 = 4096;

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Run every variant once through the engine (within 10 s) and return the attempts.
async fn run(write: Write) -> Vec<AttemptRecord> {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
    let variants = [Variant::Baseline, Variant::Human];
    let plan = latency_plan(&variants);
    let run = RunId::generate();
    store
        .create_run(&run, "canned", "t", &serde_json::json!({}))
        .unwrap();
    store
        .add_jobs(&run, &interleaved_jobs(&plan.commit, &variants, 1, false))
        .unwrap();
    let opts = EngineOptions {
        repeats: 1,
        aa: false,
        retry: RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
            max_wall: Duration::from_secs(5),
        },
        concurrency: 1,
        artifact_root: dir.path().join("artifacts"),
        data_dir: dir.path().join("data"),
        dataset_roots: vec![dir.path().to_path_buf()],
        budget_gpu_seconds: None,
        adaptive: None,
        servers: Default::default(),
        burn_in: true,
    };
    let limits = Limits {
        max_result_bytes: CAP,
        ..Limits::default()
    };
    let engine = Engine::new(Arc::new(Canned::new(write)), store.clone(), opts).with_limits(limits);
    let cancel = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        engine.run(&run, std::slice::from_ref(&plan), &cancel),
    )
    .await
    .expect("the engine never blocks on what a backend left behind")
    .unwrap();
    store.attempts(&run).unwrap()
}

fn of(attempts: &[AttemptRecord], v: Variant) -> &AttemptRecord {
    attempts.iter().find(|a| a.job.variant == v).unwrap()
}

const LATENCY: &str = "Avg latency: 1.25 seconds\n50% percentile latency: 1.2 seconds\n";

#[tokio::test]
async fn a_fifo_or_oversized_result_file_is_evidence_not_a_hang() {
    let attempts = run(|dir, v| {
        let result = dir.join("result.json");
        let _ = std::fs::remove_file(&result);
        match v {
            Variant::Baseline => mkfifo(&result),
            _ => std::fs::write(
                &result,
                format!(
                    "{{\"avg_latency\": 1.0, \"pad\": \"{}\"}}",
                    "x".repeat(5000)
                ),
            )
            .unwrap(),
        }
        ("nothing printed\n".to_string(), vec![result])
    })
    .await;
    let base = of(&attempts, Variant::Baseline);
    assert_eq!(base.failure, Some(Failure::NoMetrics));
    assert!(
        base.evidence[0].contains("result.json") && base.evidence[0].contains("FIFO"),
        "{:?}",
        base.evidence
    );
    let human = of(&attempts, Variant::Human);
    assert_eq!(human.failure, Some(Failure::NoMetrics));
    let e = &human.evidence[0];
    assert!(
        e.contains("result.json") && e.contains("4096 bytes") && e.contains("max_result_bytes"),
        "{e}"
    );
    assert!(human.metrics.is_empty(), "an unread file gives no metric");
}

#[tokio::test]
async fn logs_over_the_cap_keep_their_end_and_impossible_values_are_no_metrics() {
    let attempts = run(|_, v| match v {
        Variant::Baseline => (format!("{}\n{LATENCY}", "noise ".repeat(2000)), vec![]),
        _ => ("Avg latency: -1.5 seconds\n".to_string(), vec![]),
    })
    .await;
    let base = of(&attempts, Variant::Baseline);
    assert_eq!(base.failure, None, "{:?}", base.evidence);
    assert_eq!(base.metrics.get("latency_avg_s"), Some(1.25));
    let human = of(&attempts, Variant::Human);
    assert_eq!(human.failure, Some(Failure::NoMetrics));
    assert!(human.metrics.is_empty());
    assert!(
        human.evidence[0].contains("latency_avg_s = -1.5"),
        "{:?}",
        human.evidence
    );
}
