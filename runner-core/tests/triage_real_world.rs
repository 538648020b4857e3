//! Triage of the repository's messy real-world dataset (`tests/data/real-world.jsonl`, real
//! vLLM commits with ISO-Bench's commands), parsed with the real command parser.

use std::path::Path;

use runner_core::dataset::Dataset;
use runner_core::failure::Failure;
use runner_core::triage::{TaskTriage, TriageOptions, Verdict, parse_skip_line, triage_offline};

fn find<'a>(r: &'a [TaskTriage], prefix: &str) -> &'a TaskTriage {
    r.iter().find(|t| t.commit.starts_with(prefix)).unwrap()
}

#[test]
fn real_world_dataset() {
    let text = include_str!("../../tests/data/real-world.jsonl");
    let ds = Dataset::from_str(text, "real-world", Path::new("."));
    let r = triage_offline(&ds.tasks, &TriageOptions::default());
    assert_eq!(r.tasks.len(), ds.tasks.len());
    for t in &r.tasks {
        assert_eq!(
            t.verdict == Verdict::Verifiable,
            t.reasons.is_empty(),
            "{t:#?}"
        );
    }
    let code = |p: &str| find(&r.tasks, p).primary().map(|x| x.code);
    assert_eq!(code("0d243f2a"), Some(Failure::RocmSpecific));
    assert_eq!(code("6bd8ebf0"), Some(Failure::RocmSpecific));
    assert_eq!(
        code("dae68969"),
        Some(Failure::ModelTooLarge),
        "DeepSeek-R1 on H100:8"
    );
    assert_eq!(
        code("015069b0"),
        Some(Failure::BadConfig),
        "Qwen3 has no 7B"
    );
    assert!(
        find(&r.tasks, "015069b0")
            .primary()
            .unwrap()
            .detail
            .contains("no 7b")
    );
    assert_eq!(code("526de822"), Some(Failure::BadConfig), "a placeholder");
    assert_eq!(code("3127e975"), Some(Failure::NoPerfCommand));
    let skip = r.skip_list();
    assert!(skip.lines().all(|l| parse_skip_line(l).is_some()));
    let s = r.summary().overall;
    assert_eq!(s.total, s.verifiable + s.needs_attention + s.not_verifiable);
    assert!(
        r.to_markdown()
            .contains(&format!("**{} of {}", s.verifiable, s.total))
    );
}
