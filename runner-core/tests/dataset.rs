//! Dataset loading: formats, aliases, bad rows and commit lookup.

use std::path::Path;

use runner_core::dataset::{Dataset, LookupError};

const A: &str = "0123456789abcdef0123456789abcdef01234567";
const B: &str = "0123456789abcdef0123456789abcdef89abcdef";
const P: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn load(text: &str) -> Dataset {
    Dataset::from_str(text, "test", Path::new("/data"))
}

#[test]
fn jsonl_with_aliases() {
    let text = format!(
        r#"{{"commit_hash":"{A}","parent_commit":"{P}","commit_subject":"[Perf] x","models":["m/a","m/b"],"gpu_config":"H100:2","files_changed":["vllm/a.py"],"pr_url":"u","commit_date":"2024-05-01","benchmark_mode":"serving","extra_field":1}}

{{"commit":"{B}","base_commit":"{P}","subject":"y","model":"m/c","pr_date":"2024-06-01","patch":"p/agent.diff"}}
"#
    );
    let ds = load(&text);
    assert!(ds.errors.is_empty(), "{:?}", ds.errors);
    assert_eq!(ds.tasks.len(), 2);
    let a = &ds.tasks[0];
    assert_eq!((a.source_line, a.parent.as_deref()), (1, Some(P)));
    assert_eq!(a.models, vec!["m/a", "m/b"]);
    assert_eq!(a.gpu.as_ref().unwrap().to_string(), "H100:2");
    assert_eq!(a.subject.as_deref(), Some("[Perf] x"));
    let b = &ds.tasks[1];
    assert_eq!(b.source_line, 3);
    assert_eq!(b.models, vec!["m/c"]);
    assert!(b.gpu.is_none(), "missing gpu_config means unknown");
    assert_eq!(b.date.as_deref(), Some("2024-06-01"));
    assert_eq!(b.patch.as_deref(), Some(Path::new("/data/p/agent.diff")));
}

#[test]
fn json_array_rows_keep_their_lines() {
    let text = format!(
        "[\n  {{\"commit_hash\": \"{A}\"}},\n  {{\"commit_hash\": \"zz\"}},\n  {{\"commit_hash\": \"{B}\"}}\n]\n"
    );
    let ds = load(&text);
    let lines: Vec<usize> = ds.tasks.iter().map(|t| t.source_line).collect();
    assert_eq!(lines, vec![2, 4]);
    assert_eq!(ds.errors.len(), 1);
    assert_eq!(ds.errors[0].line, 3);
    assert_eq!(ds.errors[0].field.as_deref(), Some("commit_hash"));
}

#[test]
fn bad_rows_are_reported_and_the_rest_goes_on() {
    let text = format!(
        r#"{{"commit_hash":"{A}","gpu_config":"H100x2"}}
not json at all
{{"commit_hash":"{A}","files_changed":"vllm/a.py"}}
[1,2]
{{"subject":"no commit"}}
{{"commit_hash":"{B}","models":[1]}}
{{"commit_hash":"{A}","perf_command":""}}
{{"commit_hash":"{A}"}}
"#
    );
    let ds = load(&text);
    let got: Vec<(usize, Option<&str>)> = ds
        .errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Some("gpu_config")),
            (2, None),
            (3, Some("files_changed")),
            (4, None),
            (5, Some("commit_hash")),
            (6, Some("models")),
            (8, Some("commit_hash")),
        ]
    );
    assert!(
        ds.errors[0].message.contains("KIND[:COUNT]"),
        "{}",
        ds.errors[0]
    );
    assert!(
        ds.errors[6].message.contains("line 7"),
        "duplicate names the first line"
    );
    assert_eq!(ds.tasks.len(), 1);
    assert_eq!(ds.tasks[0].source_line, 7);
    assert!(
        ds.tasks[0].perf_command.is_none(),
        "an empty command is no command"
    );
}

#[test]
fn broken_array_is_one_error_with_a_line() {
    let ds = load("[\n{\"commit_hash\": \"abc\"\n");
    assert_eq!(ds.errors.len(), 1);
    assert!(ds.errors[0].line >= 2);
    assert!(ds.tasks.is_empty());
}

#[test]
fn lookup_by_prefix() {
    let text = format!(
        "{{\"commit_hash\":\"{A}\"}}\n{{\"commit_hash\":\"{B}\"}}\n{{\"commit_hash\":\"{}\"}}\n",
        &P[..10]
    );
    let ds = load(&text);
    assert_eq!(ds.find(A).unwrap().source_line, 1);
    assert_eq!(ds.find(&B[..34]).unwrap().source_line, 2);
    assert_eq!(
        ds.find(P).unwrap().source_line,
        3,
        "a short hash in the dataset matches a full query"
    );
    match ds.find("0123456789") {
        Err(LookupError::Ambiguous { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(ds.find("abcd"), Err(LookupError::NotFound(_))));
    assert!(matches!(ds.find("xyz!"), Err(LookupError::NotHex(_))));
}
