//! Triage of a dataset loaded with the real command parser (`Dataset::from_str` →
//! `parse_perf_command`), end to end through the report.

use std::path::Path;

use runner_core::dataset::Dataset;
use runner_core::failure::Failure;
use runner_core::triage::{TriageOptions, Verdict, parse_skip_line, triage_dataset};

#[tokio::test]
async fn fixture_dataset_end_to_end() {
    let text = include_str!("fixtures/triage/dataset.jsonl");
    let ds = Dataset::from_str(text, "fixture", Path::new("."));
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    let r = triage_dataset(&ds.tasks, &TriageOptions::default()).await;
    let got: Vec<(Verdict, Option<Failure>)> = r
        .tasks
        .iter()
        .map(|t| (t.verdict, t.primary().map(|p| p.code)))
        .collect();
    use Failure::*;
    use Verdict::*;
    let want = vec![
        (Verifiable, None),
        (NotVerifiable, Some(RocmSpecific)),
        (NotVerifiable, Some(NoPerfCommand)),
        (NotVerifiable, Some(ModelTooLarge)),
        (NotVerifiable, Some(ModelUnsupported)),
        (NotVerifiable, Some(BadConfig)),
        (NotVerifiable, Some(BadConfig)),
        (NeedsAttention, Some(NoWheel)),
        (NotVerifiable, Some(BadConfig)),
        (NeedsAttention, Some(Unknown)),
    ];
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "row {}: {:#?}", i + 1, r.tasks[i]);
    }
    assert_eq!(got.len(), want.len());
    let ngram = &r.tasks[6].primary().unwrap().detail;
    assert!(ngram.contains("--ngram-prompt-lookup-max"), "{ngram}");
    let skip = r.skip_list();
    assert_eq!(skip.lines().count(), 7);
    assert!(skip.lines().all(|l| parse_skip_line(l).is_some()));
    assert!(r.to_markdown().contains("**1 of 10 (10.0 %) verifiable**"));
}
