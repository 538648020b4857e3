//! Predictions files (SWE-bench style): one record per task with `instance_id` and
//! `model_patch` (the agent's diff), as a JSON array, JSONL, or an object keyed by instance id.
//! Each prediction becomes the agent patch of the task it matches.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Dataset, RowError, hex_commit, kind, opt_str, patches};

/// Commit fields a prediction may carry, first found wins.
const COMMIT_FIELDS: &[&str] = &["commit_hash", "head_commit", "commit"];

impl Dataset {
    /// Read a predictions file's text and set the agent patch of each task a prediction
    /// matches, writing each `model_patch` to a content-addressed file under `patch_dir`.
    ///
    /// A prediction matches a task by, in order: its commit field (`commit_hash`,
    /// `head_commit`, `commit`; a full hash or unique prefix), an `instance_id` equal to the
    /// task's, or a hexadecimal part of the `instance_id` (7 digits or more, between `-`, `_`,
    /// `/`, `.` or `@`) that is a prefix of exactly one task's commit. A prediction that matches
    /// no task, a second prediction for one task, and an empty or non-diff `model_patch` are
    /// returned as errors (line and field); the other predictions still apply.
    pub fn apply_predictions(&mut self, text: &str, patch_dir: &Path) -> Vec<RowError> {
        let mut errors = Vec::new();
        let mut taken: std::collections::BTreeMap<usize, usize> = Default::default();
        for (line, value) in records(text, &mut errors) {
            let err = |field: Option<&str>, message: String| RowError {
                line,
                field: field.map(str::to_string),
                message,
            };
            let Value::Object(row) = value else {
                errors.push(err(
                    None,
                    format!("expected a JSON object, found {}", kind(&value)),
                ));
                continue;
            };
            let index = match self.match_prediction(&row) {
                Ok(i) => i,
                Err(m) => {
                    errors.push(err(Some("instance_id"), m));
                    continue;
                }
            };
            if let Some(prev) = taken.get(&index) {
                errors.push(err(
                    None,
                    format!(
                        "a second prediction for commit {} (the first is on line {prev}); give \
                         one per task",
                        self.tasks[index].commit
                    ),
                ));
                continue;
            }
            let text = match opt_str(&row, "model_patch") {
                Ok(Some(t)) if patches::is_diff(&t) => t,
                Ok(Some(t)) if t.trim().is_empty() => {
                    errors.push(err(
                        Some("model_patch"),
                        "is empty: the agent produced no patch, so the task has no agent \
                         variant"
                            .into(),
                    ));
                    continue;
                }
                Ok(Some(t)) => {
                    errors.push(err(
                        Some("model_patch"),
                        format!("is not diff text ('{}')", patches::excerpt(&t)),
                    ));
                    continue;
                }
                Ok(None) => {
                    errors.push(err(
                        Some("model_patch"),
                        "missing: the agent produced no patch, so the task has no agent variant"
                            .into(),
                    ));
                    continue;
                }
                Err(m) => {
                    errors.push(err(Some("model_patch"), m));
                    continue;
                }
            };
            match patches::write_inline(&text, patch_dir) {
                Ok(path) => {
                    let task = &mut self.tasks[index];
                    if let Some(old) = &task.patch {
                        tracing::warn!(
                            commit = %task.commit,
                            replaced = %old.display(),
                            "the prediction replaces the dataset's agent patch"
                        );
                    }
                    task.patch = Some(path);
                    taken.insert(index, line);
                }
                Err(m) => errors.push(err(Some("model_patch"), m)),
            }
        }
        errors
    }

    /// The index of the task a prediction names.
    fn match_prediction(&self, row: &Map<String, Value>) -> Result<usize, String> {
        let id = opt_str(row, "instance_id").ok().flatten();
        for f in COMMIT_FIELDS {
            if let Ok(Some(c)) = opt_str(row, f) {
                let c = hex_commit(&c)?;
                let hits = self.indices(|t| t.commit.starts_with(&c) || c.starts_with(&t.commit));
                return one(hits, || format!("commit {c}"));
            }
        }
        let Some(id) = id else {
            return Err(format!(
                "a prediction needs an instance_id or one of {}",
                COMMIT_FIELDS.join(", ")
            ));
        };
        let exact = self.indices(|t| t.instance_id.as_deref() == Some(id.as_str()));
        if !exact.is_empty() {
            return one(exact, || format!("instance_id '{}'", patches::excerpt(&id)));
        }
        let mut hits: Vec<usize> = id
            .split(['-', '_', '/', '.', '@'])
            .filter(|p| p.len() >= 7 && p.bytes().all(|b| b.is_ascii_hexdigit()))
            .flat_map(|p| {
                let p = p.to_ascii_lowercase();
                self.indices(move |t| t.commit.starts_with(&p) || p.starts_with(&t.commit))
            })
            .collect();
        hits.dedup();
        one(hits, || format!("instance_id '{}'", patches::excerpt(&id)))
    }

    fn indices(&self, pred: impl Fn(&crate::task::Task) -> bool) -> Vec<usize> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| pred(t))
            .map(|(i, _)| i)
            .collect()
    }
}

fn one(hits: Vec<usize>, what: impl Fn() -> String) -> Result<usize, String> {
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => Err(format!("{} matches no task of the dataset", what())),
        _ => Err(format!(
            "{} matches {} tasks; name the commit",
            what(),
            hits.len()
        )),
    }
}

/// The records of a predictions file with their lines: a JSON array, an object of objects
/// (keyed by instance id, which fills a missing `instance_id`), or JSONL.
fn records(text: &str, errors: &mut Vec<RowError>) -> Vec<(usize, Value)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let start = text.trim_start();
    let whole = |e: serde_json::Error, errors: &mut Vec<RowError>| {
        errors.push(RowError {
            line: e.line().max(1),
            field: None,
            message: format!("the predictions file does not parse ({e})"),
        });
    };
    if start.starts_with('[') {
        return match serde_json::from_str::<Vec<Value>>(text) {
            Ok(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i + 1, v))
                .collect(),
            Err(e) => {
                whole(e, errors);
                Vec::new()
            }
        };
    }
    if start.starts_with('{') {
        // One object whose values are objects: keyed by instance id. Anything else is JSONL.
        if let Ok(map) = serde_json::from_str::<Map<String, Value>>(text) {
            if map.values().all(Value::is_object) && !map.contains_key("model_patch") {
                return map
                    .into_iter()
                    .enumerate()
                    .map(|(i, (id, mut v))| {
                        if let Value::Object(o) = &mut v {
                            o.entry("instance_id").or_insert(Value::String(id));
                        }
                        (i + 1, v)
                    })
                    .collect();
            }
        }
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(trimmed) {
            Ok(v) => out.push((i + 1, v)),
            Err(e) => errors.push(RowError {
                line: i + 1,
                field: None,
                message: format!("not valid JSON ({e}); each line must be one JSON object"),
            }),
        }
    }
    out
}
