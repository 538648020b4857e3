//! The results store on a real SQLite file: runs, jobs, attempts, resume state, reopen.

use runner_core::Variant;
use runner_core::failure::Failure;
use runner_core::metrics::{Metrics, Provenance};
use runner_core::record::{AttemptRecord, JobKey, JobStatus, RunId, RunStatus, TaskStatus};
use runner_core::store::{Store, TaskRow};

const C: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";

fn job(variant: Variant, repeat: u32) -> JobKey {
    JobKey {
        commit: C.into(),
        variant,
        repeat,
        aa: false,
    }
}

fn attempt(run: &RunId, job: &JobKey, n: u32, failure: Option<Failure>) -> AttemptRecord {
    let mut metrics = Metrics::new();
    if failure.is_none() {
        metrics.insert_first(
            "output_throughput_tps",
            1234.5,
            Provenance {
                file: "result.json".into(),
                line: None,
                source: "$.output_throughput".into(),
            },
        );
    }
    AttemptRecord {
        run_id: run.clone(),
        job: job.clone(),
        attempt: n,
        started_at: "2026-11-28T03:00:00Z".into(),
        finished_at: "2026-11-28T03:01:00Z".into(),
        backend: "local".into(),
        host: Some("h".into()),
        gpu_names: vec!["NVIDIA H100 80GB HBM3".into()],
        build_identity: "vllm-abc".into(),
        engine_version: Some("0.6.0".into()),
        build_digest: None,
        step_fingerprint: "f".repeat(64),
        client_argv: vec!["python".into()],
        server_argv: None,
        datasets: vec![],
        warmed_up: true,
        failure,
        failure_detail: failure.map(|f| f.describe().to_string()),
        evidence: vec![],
        metrics,
        artifact_dir: "a".into(),
        wall_s: 60.0,
        benchmark_s: 50.0,
        gpu_seconds: 60.0,
        cost_usd: None,
        serve: None,
    }
}

#[test]
fn runs_jobs_and_attempts_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/results.sqlite");
    let run = RunId::generate();
    {
        let store = Store::open(&path).unwrap();
        store
            .create_run(
                &run,
                "local",
                "examples.jsonl",
                &serde_json::json!({"repeats": 2}),
            )
            .unwrap();
        store
            .put_task(
                &run,
                &TaskRow {
                    commit: C.into(),
                    line: 1,
                    subject: Some("s".into()),
                    status: TaskStatus::Planned,
                    detail: "{}".into(),
                    step_fingerprint: Some("f".repeat(64)),
                    plan: None,
                },
            )
            .unwrap();
        let jobs = vec![
            job(Variant::Baseline, 0),
            job(Variant::Human, 0),
            job(Variant::Baseline, 1),
            job(Variant::Human, 1),
        ];
        store.add_jobs(&run, &jobs).unwrap();
        store.add_jobs(&run, &jobs).unwrap(); // idempotent
        store
            .record_attempt(&attempt(&run, &jobs[0], 1, None), JobStatus::Succeeded)
            .unwrap();
        store
            .record_attempt(
                &attempt(&run, &jobs[1], 1, Some(Failure::InfraTransient)),
                JobStatus::Running,
            )
            .unwrap();
        store
            .record_attempt(
                &attempt(&run, &jobs[1], 2, Some(Failure::InfraTransient)),
                JobStatus::FailedTransient,
            )
            .unwrap();
        store
            .record_attempt(
                &attempt(&run, &jobs[2], 1, Some(Failure::Oom)),
                JobStatus::Failed,
            )
            .unwrap();
        store
            .set_job_status(&run, &jobs[3], JobStatus::Running)
            .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let jobs = store.jobs(&run).unwrap();
    let statuses: Vec<JobStatus> = jobs.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        statuses,
        vec![
            JobStatus::Succeeded,
            JobStatus::FailedTransient,
            JobStatus::Failed,
            JobStatus::Running
        ]
    );
    let resume: Vec<String> = jobs
        .iter()
        .filter(|(_, s)| s.needs_resume())
        .map(|(j, _)| j.to_string())
        .collect();
    assert_eq!(resume, vec!["e3580537/human#0", "e3580537/human#1"]);
    let attempts = store.attempts(&run).unwrap();
    assert_eq!(attempts.len(), 4);
    assert_eq!(
        attempts[0].metrics.get("output_throughput_tps"),
        Some(1234.5)
    );
    assert_eq!(attempts[2].attempt, 2, "every attempt is kept");
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0].jobs,
        runner_core::store::JobCounts {
            total: 4,
            succeeded: 1,
            failed: 2
        }
    );
    assert_eq!(store.run_meta(&run).unwrap()["repeats"], 2);
    assert_eq!(store.tasks(&run).unwrap()[0].status, TaskStatus::Planned);
    store.set_run_status(&run, RunStatus::Finished).unwrap();
    assert_eq!(store.runs().unwrap()[0].status, RunStatus::Finished);
}

#[test]
fn a_store_of_an_older_schema_gains_the_plan_column_and_keeps_its_plans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        // The tasks table as perf-runner wrote it before the plan had its own column.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE tasks (run_id TEXT NOT NULL, commit_hash TEXT NOT NULL, \
             line INTEGER NOT NULL, subject TEXT, status TEXT NOT NULL, detail TEXT NOT NULL, \
             step_fingerprint TEXT, PRIMARY KEY (run_id, commit_hash)); \
             INSERT INTO tasks VALUES ('r', 'c', 1, NULL, 'planned', '{\"old\": 1}', NULL); \
             INSERT INTO tasks VALUES ('r', 'd', 2, NULL, 'exploded', '', NULL);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let run = RunId("r".into());
    // A status this perf-runner does not know is a corrupt store, named, not a guess.
    let e = store.tasks(&run).unwrap_err().to_string();
    assert!(e.contains("task status 'exploded'"), "{e}");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("DELETE FROM tasks WHERE commit_hash = 'd'", [])
        .unwrap();
    let rows = store.tasks(&run).unwrap();
    assert_eq!(rows[0].status, TaskStatus::Planned);
    assert_eq!(rows[0].plan, None);
    assert_eq!(rows[0].plan_json(), Some("{\"old\": 1}"));
}

#[test]
fn run_ids_are_validated() {
    assert!("20261128-031500-ab12".parse::<RunId>().is_ok());
    let e = "../etc".parse::<RunId>().unwrap_err();
    assert!(e.contains("not a run id"));
    let store = Store::open(&tempfile::tempdir().unwrap().path().join("s.db")).unwrap();
    let err = store
        .run_meta(&RunId("nope".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no run 'nope'"), "{err}");
}
