//! Report outputs: vLLM `--save-result`-schema files per serving variant, and the
//! self-contained HTML page.

#[path = "report_support.rs"]
mod support;

use runner_core::report::{ReportOptions, build, html, write_vllm_results};
use runner_core::samples::load_side;
use runner_core::store::Store;
use support::SERVING;

fn report() -> (tempfile::TempDir, runner_core::report::Report) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let run = support::build_store(&path);
    let r = build(
        &Store::open(&path).unwrap(),
        &run,
        &ReportOptions::default(),
    )
    .unwrap();
    (dir, r)
}

#[test]
fn serving_variants_are_written_in_vllms_schema() {
    let (dir, r) = report();
    let out = dir.path().join("out/vllm");
    let written = write_vllm_results(&r, &out).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "aaaa1111bbbb-baseline.json",
            "aaaa1111bbbb-human.json",
            "aaaa1111bbbb-agent.json"
        ],
        "serving variants only, no A/A, no offline modes"
    );
    let t = &r.tasks[0];
    assert_eq!(t.commit, SERVING);
    let human = t.variant(runner_core::task::Variant::Human, false).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written[1]).unwrap()).unwrap();
    let median_run = human.median_run.as_ref().unwrap();
    assert_eq!(
        v["output_throughput"],
        median_run.metrics["output_throughput_tps"]
    );
    // The samples are the primary metric's, one per run; the median run is one of them.
    let primary = t.primary_metric.as_deref().unwrap();
    assert!(
        human
            .samples
            .iter()
            .any(|s| s.value == median_run.metrics[primary]),
        "{primary}"
    );
    for field in [
        "request_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "median_tpot_ms",
        "p99_tpot_ms",
        "mean_itl_ms",
        "duration",
    ] {
        assert!(v[field].is_f64(), "{field}: {v}");
    }
    assert_eq!(v["completed"], 200);
    assert_eq!(v["total_input_tokens"], 204_800);
    assert_eq!(v["total_output_tokens"], 25_600);
    assert_eq!(v["model_id"], "meta-llama/Llama-3.1-8B-Instruct");
    assert_eq!(v["num_prompts"], 200);
    assert_eq!(v["request_rate"], 8.0);
    assert_eq!(v["backend"], "vllm");
    assert_eq!(v["perf_runner"]["variant"], "human");
    // Tools that read vLLM's files read ours: our own reader of vLLM results does.
    // At request rate 8 the primary metric is median TPOT, in the report and in our reader.
    let side = load_side(&written[1..2], None).unwrap();
    assert_eq!(side.metric, "tpot_median_ms");
    assert_eq!(side.metric, primary);
    assert_eq!(side.values, [median_run.metrics["tpot_median_ms"]]);
    let side = load_side(&written[1..2], Some("output_throughput_tps")).unwrap();
    assert_eq!(side.values, [median_run.metrics["output_throughput_tps"]]);
}

#[test]
fn html_is_self_contained_with_one_plot_per_task_and_the_distribution() {
    let (_dir, r) = report();
    let page = html(&r);
    let plotted = r
        .tasks
        .iter()
        .filter(|t| t.variants.iter().any(|v| !v.samples.is_empty()))
        .count();
    assert_eq!(plotted, 3);
    // One plot per task, the distribution, and the agent comparison.
    assert_eq!(page.matches("<svg").count(), plotted + 2, "{page}");
    assert!(page.contains("agent/baseline and agent/human speedup"));
    for banned in [
        "http://", "https://", "<script", "<link", "src=", "url(", "@import",
    ] {
        assert!(!page.contains(banned), "the page contains {banned:?}");
    }
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<style>"));
    assert!(
        page.contains("Fused MoE for &lt;small&gt; batches"),
        "subjects are escaped"
    );
    assert!(page.contains("human speedup not reproduced: no_change"));
    assert!(page.contains("human/baseline speedup"));
    assert!(
        page.contains("(each run over its variant&#39;s median, per round): spread"),
        "the rounds' steadiness is on the page"
    );
    // Every repeat is a dot: 6 repeats × 4 sides + 6 × 3 + 6 baseline-only.
    assert_eq!(
        page.matches("<circle").count() - 4 - 2 - 4,
        24 + 18 + 6,
        "dots + legend + 2 speedup dots + 2 × 2 agent dots"
    );
}

#[test]
fn odd_records_never_panic() {
    use runner_core::record::{JobKey, JobStatus, RunId, TaskStatus};
    use runner_core::store::TaskRow;
    use runner_core::task::Variant;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
    let run = RunId("odd".into());
    store
        .create_run(&run, "local", "x", &serde_json::json!({}))
        .unwrap();
    // A non-ASCII "commit", a detail that is not a plan, no jobs rows, zero and negative
    // values, unparsable times. (NaN cannot be stored: JSON writes it as null.)
    let commit = "é€𝄞ab";
    let row = TaskRow {
        commit: commit.into(),
        line: 1,
        subject: None,
        status: TaskStatus::Planned,
        detail: "{not json".into(),
        step_fingerprint: None,
        plan: None,
    };
    store.put_task(&run, &row).unwrap();
    for (i, v) in [-1.0, 0.0, 5.0].into_iter().enumerate() {
        for variant in [Variant::Baseline, Variant::Human] {
            let job = JobKey {
                commit: commit.into(),
                variant,
                repeat: i as u32,
                aa: false,
            };
            let mut rec = support::record(&run, &job, 1, 3, &[("latency_avg_s", v)], None);
            rec.started_at = "garbage".into();
            store.record_attempt(&rec, JobStatus::Succeeded).unwrap();
        }
    }
    let r = build(&store, &run, &ReportOptions::default()).unwrap();
    assert_eq!(r.tasks[0].primary_metric.as_deref(), Some("latency_avg_s"));
    let page = html(&r);
    assert!(page.contains("é€𝄞ab"));
    let _ = runner_core::report::markdown(&r);
    let empty = RunId("empty".into());
    store
        .create_run(&empty, "local", "x", &serde_json::json!({}))
        .unwrap();
    let r = build(&store, &empty, &ReportOptions::default()).unwrap();
    assert_eq!(
        html(&r).matches("<svg").count(),
        1,
        "only the (empty) distribution"
    );
    assert!(
        write_vllm_results(&r, &dir.path().join("none"))
            .unwrap()
            .is_empty()
    );
}
