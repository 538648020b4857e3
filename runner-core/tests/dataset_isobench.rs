//! ISO-Bench and SWE-bench intake: the canonical field names, inline diffs, predictions files,
//! and parents resolved from a real git clone made here.

use std::path::Path;

use perf_runner_tests::git::repo_with_commits;

use runner_core::dataset::{Dataset, LoadOptions};
use runner_core::settings::{Inputs, Limits};

const A: &str = "0123456789abcdef0123456789abcdef01234567";
const B: &str = "0123456789abcdef0123456789abcdef89abcdef";
const P: &str = "fedcba9876543210fedcba9876543210fedcba98";
const CMD: &str = "python benchmarks/benchmark_latency.py --model m/a";

const HUMAN_DIFF: &str = "diff --git a/vllm/core/scheduler.py b/vllm/core/scheduler.py\n\
index 1111111..2222222 100644\n--- a/vllm/core/scheduler.py\n+++ b/vllm/core/scheduler.py\n\
@@ -1 +1 @@\n-x = 1\n+x = 2\n";
const AGENT_DIFF: &str = "diff --git a/vllm/utils.py b/vllm/utils.py\n--- a/vllm/utils.py\n\
+++ b/vllm/utils.py\n@@ -1 +1 @@\n-a\n+b\n";

fn load(text: &str, base: &Path, patches: &Path) -> Dataset {
    let inputs = Inputs::default();
    let opts = LoadOptions {
        inputs: &inputs,
        cap: Limits::default().dataset(),
        patch_dir: Some(patches),
    };
    Dataset::from_str_opts(text, "test", base, &opts)
}

fn row(fields: serde_json::Value) -> String {
    fields.to_string()
}

#[test]
fn canonical_fields_inline_human_diff_and_patch_path() {
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("patches");
    std::fs::write(dir.path().join("agent.diff"), AGENT_DIFF).unwrap();
    let text = [
        row(serde_json::json!({
            "instance_id": "vllm-project__vllm-0123456",
            "head_commit": A, "base_commit": P, "perf_command": CMD,
            "patch": HUMAN_DIFF, "patch_path": "agent.diff",
        })),
        row(serde_json::json!({"commit_hash": B, "diff_text": HUMAN_DIFF, "perf_command": CMD})),
    ]
    .join("\n");
    let ds = load(&text, dir.path(), &patches);
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    let a = &ds.tasks[0];
    assert_eq!((a.commit.as_str(), a.parent.as_deref()), (A, Some(P)));
    assert_eq!(a.instance_id.as_deref(), Some("vllm-project__vllm-0123456"));
    // patch_path is the agent patch; the inline `patch` is the commit's own change.
    assert_eq!(
        a.patch.as_deref(),
        Some(dir.path().join("agent.diff").as_path())
    );
    let human = a
        .human_patch
        .as_ref()
        .expect("the inline diff is kept as a file");
    assert!(human.starts_with(&patches));
    assert_eq!(std::fs::read_to_string(human).unwrap(), HUMAN_DIFF);
    assert_eq!(a.files_changed, vec!["vllm/core/scheduler.py"]);
    // The same text is one file, whichever field carried it.
    let b = &ds.tasks[1];
    assert_eq!(b.human_patch, a.human_patch);
    assert!(b.patch.is_none());
}

#[test]
fn hostile_patch_values_are_refused_with_bounded_errors() {
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("patches");
    let long_path = format!("\u{1b}[2J/{}", "a".repeat(5000));
    let huge_diff = format!(
        "diff --git a/x b/x\n{}",
        "+\u{1b}]0;title\u{7}\n".repeat(2000)
    );
    let text = [
        row(serde_json::json!({"commit_hash": A, "patch_path": "../outside.diff"})),
        row(serde_json::json!({"commit_hash": B, "patch_path": long_path})),
        row(serde_json::json!({"commit_hash": P, "patch_path": huge_diff})),
        row(serde_json::json!({"commit_hash": "abcdef0", "patch": "a.diff", "patch_path": "b.diff"})),
        row(serde_json::json!({"commit_hash": "abcdef1", "model_patch": "just words"})),
        row(serde_json::json!({"commit_hash": "zz".repeat(3000)})),
    ]
    .join("\n");
    let ds = load(&text, dir.path(), &patches);
    assert!(ds.tasks.is_empty(), "{:?}", ds.tasks);
    assert_eq!(ds.errors.len(), 6, "{:?}", ds.errors);
    for e in &ds.errors {
        let shown = e.to_string();
        assert!(shown.len() < 600, "unbounded error: {} bytes", shown.len());
        assert!(
            !shown.contains('\u{1b}'),
            "raw control character in {shown}"
        );
    }
    assert!(ds.errors[0].message.contains("plain relative path"));
    assert!(ds.errors[2].message.contains("model_patch"));
    assert!(ds.errors[3].message.contains("both"));
    // Nothing was written for the refused rows.
    assert!(!patches.exists());
}

#[test]
fn predictions_become_agent_patches_matched_by_id_or_commit() {
    let dir = tempfile::tempdir().unwrap();
    let patches = dir.path().join("patches");
    let text = [
        row(serde_json::json!({"instance_id": "iso-1", "commit_hash": A, "perf_command": CMD})),
        row(serde_json::json!({"commit_hash": B, "perf_command": CMD})),
        row(serde_json::json!({"commit_hash": P, "perf_command": CMD})),
    ]
    .join("\n");
    let mut ds = load(&text, dir.path(), &patches);
    let preds = serde_json::json!([
        {"instance_id": "iso-1", "model_name_or_path": "agent-x", "model_patch": AGENT_DIFF},
        {"instance_id": format!("vllm-project__vllm-{B}"), "model_patch": AGENT_DIFF},
        {"instance_id": "other", "commit": &P[..8], "model_patch": ""},
        {"instance_id": "nobody-deadbeefdead", "model_patch": AGENT_DIFF},
        {"instance_id": "iso-1", "model_patch": AGENT_DIFF},
    ])
    .to_string();
    let errors = ds.apply_predictions(&preds, &patches);
    let a = ds.tasks[0].patch.as_ref().expect("matched by instance_id");
    assert_eq!(std::fs::read_to_string(a).unwrap(), AGENT_DIFF);
    assert!(
        ds.tasks[1].patch.is_some(),
        "matched by the hash inside the id"
    );
    assert!(
        ds.tasks[2].patch.is_none(),
        "an empty prediction gives no agent variant"
    );
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5], "{errors:?}");
    assert!(errors[0].message.contains("no patch"));
    assert!(errors[1].message.contains("matches no task"));
    assert!(errors[2].message.contains("second prediction"));

    // JSONL and an object keyed by instance id read the same way.
    let mut ds = load(&text, dir.path(), &patches);
    let keyed = serde_json::json!({"iso-1": {"model_patch": AGENT_DIFF}}).to_string();
    assert!(ds.apply_predictions(&keyed, &patches).is_empty());
    assert!(ds.tasks[0].patch.is_some());
    let mut ds = load(&text, dir.path(), &patches);
    let jsonl = format!(
        "{}\n{}\n",
        serde_json::json!({"instance_id": "x", "head_commit": B, "model_patch": AGENT_DIFF}),
        serde_json::json!({"instance_id": "iso-1", "model_patch": AGENT_DIFF})
    );
    assert!(ds.apply_predictions(&jsonl, &patches).is_empty());
    assert!(ds.tasks[0].patch.is_some() && ds.tasks[1].patch.is_some());
}

#[test]
fn short_hashes_become_full_ones_from_a_git_clone() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("vllm");
    std::fs::create_dir_all(&repo).unwrap();
    let c = repo_with_commits(&repo, 3);
    let text = [
        // A short commit and a short parent; a full one stays as it is.
        row(serde_json::json!({"commit_hash": &c[2][..8], "parent_commit": &c[1][..9], "perf_command": CMD})),
        row(serde_json::json!({"commit_hash": c[1], "perf_command": CMD})),
        // A prefix the clone does not know stays short, with the reason.
        row(serde_json::json!({"commit_hash": "abcdef12", "perf_command": CMD})),
    ]
    .join("\n");
    let mut ds = load(&text, dir.path(), &dir.path().join("p"));
    let r = ds.resolve_short_commits(&repo).unwrap();
    assert_eq!(r.resolved, 2, "{r:?}");
    assert_eq!(ds.tasks[0].commit, c[2]);
    assert_eq!(ds.tasks[0].parent.as_deref(), Some(c[1].as_str()));
    assert_eq!(ds.tasks[1].commit, c[1]);
    assert_eq!(ds.tasks[2].commit, "abcdef12");
    assert_eq!(r.unresolved.len(), 1);
    assert!(r.unresolved[0].1.contains("not in the clone"), "{r:?}");
    // Then the parents of the now-full commits resolve as usual.
    let p = ds.resolve_parents(&repo).unwrap();
    assert_eq!(ds.tasks[1].parent.as_deref(), Some(c[0].as_str()));
    assert_eq!(p.unresolved.len(), 1);
    // Not a clone: one error.
    let mut again = load(&text, dir.path(), &dir.path().join("p"));
    assert!(
        again
            .resolve_short_commits(&dir.path().join("nowhere"))
            .is_err()
    );
}

#[test]
fn missing_parents_resolve_from_a_git_clone() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("vllm");
    std::fs::create_dir_all(&repo).unwrap();
    let c = repo_with_commits(&repo, 3);
    let text = [
        row(serde_json::json!({"commit_hash": c[2], "perf_command": CMD})),
        // A short hash resolves too; a given parent is kept as given.
        row(serde_json::json!({"commit_hash": &c[1][..10], "perf_command": CMD})),
        row(serde_json::json!({"commit_hash": A, "parent_commit": P, "perf_command": CMD})),
        // The root commit has no parent; an unknown commit is not in the clone.
        row(serde_json::json!({"commit_hash": c[0], "perf_command": CMD})),
        row(serde_json::json!({"commit_hash": B, "perf_command": CMD})),
    ]
    .join("\n");
    let mut ds = load(&text, dir.path(), &dir.path().join("p"));
    let r = ds.resolve_parents(&repo).unwrap();
    assert_eq!(r.resolved, 2);
    assert_eq!(ds.tasks[0].parent.as_deref(), Some(c[1].as_str()));
    assert_eq!(ds.tasks[1].parent.as_deref(), Some(c[0].as_str()));
    assert_eq!(ds.tasks[2].parent.as_deref(), Some(P));
    let unresolved: Vec<&str> = r.unresolved.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(unresolved, vec![c[0].as_str(), B]);
    assert!(r.unresolved[1].1.contains("not in the clone"), "{r:?}");
    // Not a clone at all: one error, nothing changed.
    let mut ds2 = load(&text, dir.path(), &dir.path().join("p"));
    let e = ds2
        .resolve_parents(&dir.path().join("nowhere"))
        .unwrap_err();
    assert!(e.contains("git"), "{e}");
    assert!(ds2.tasks[0].parent.is_none());
}
