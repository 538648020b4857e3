//! Loading tasks from a dataset: a JSON array, JSONL or (with the `parquet` feature) a Parquet
//! file, one task per record, in the field names real datasets use (with aliases: this
//! project's own, ISO-Bench's canonical `head_commit`/`base_commit`/`patch_path`, SWE-bench's
//! `instance_id`/`patch`). A bad row is reported with its line number and field and never stops
//! the other rows.
//!
//! Around a load: [`Dataset::apply_predictions`] adds agent patches from a SWE-bench-style
//! predictions file, [`Dataset::resolve_parents`] fills missing parent commits from a local
//! clone.

mod parents;
pub mod patches;
mod predictions;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::command::{parse_perf_command, policy};
use crate::gpu::GpuSpec;
use crate::settings::Inputs;
use crate::task::Task;

/// Field aliases, canonical name first.
const COMMIT: &[&str] = &["commit_hash", "commit", "head_commit"];
const PARENT: &[&str] = &["parent_commit", "parent", "base_commit"];
const SUBJECT: &[&str] = &["commit_subject", "subject"];
const DATE: &[&str] = &["commit_date", "pr_date"];

/// A row that could not become a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RowError {
    /// 1-based line where the row starts.
    pub line: usize,
    /// The offending field, when one is to blame.
    pub field: Option<String>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: field '{field}': {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// The outcome of loading a dataset: the good tasks and the rejected rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Dataset {
    /// Where it came from (a path, or `embedded:…`).
    pub origin: String,
    /// Tasks in file order.
    pub tasks: Vec<Task>,
    /// Rows that were rejected.
    pub errors: Vec<RowError>,
    /// Line of each commit already loaded, ordered, so that a short hash and a full hash of
    /// the same commit are found as duplicates in O(log n).
    #[serde(skip)]
    lines_by_commit: std::collections::BTreeMap<String, usize>,
}

pub use parents::{ParentResolution, ShortResolution};

/// How a dataset is read.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// The input policy every command is checked against.
    pub inputs: &'a Inputs,
    /// The most bytes read (`limits.max_dataset_bytes`).
    pub cap: crate::input::Cap,
    /// Where inline diffs (a `patch`, `diff_text` or `model_patch` that holds diff text) are
    /// written, one content-addressed file each. Without it an inline agent patch is a row
    /// error and an inline human patch is only read for its list of files.
    pub patch_dir: Option<&'a Path>,
}

/// A dataset file that could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read dataset '{path}': {source}")]
pub struct DatasetError {
    /// The path.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Why a commit could not be found in a dataset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No task matches.
    #[error("no task for commit '{0}' in the dataset")]
    NotFound(String),
    /// The query is not a hex prefix of at least 4 digits.
    #[error("'{0}' is not a commit hash or a hex prefix of at least 4 digits")]
    NotHex(String),
    /// More than one task matches the prefix.
    #[error("commit prefix '{query}' is ambiguous; candidates: {}", candidates.join(", "))]
    Ambiguous {
        /// The prefix.
        query: String,
        /// Matching commits with their lines (`abcdef12… (line 3)`).
        candidates: Vec<String>,
    },
}

impl Dataset {
    /// Load a dataset file under the default input policy and size cap; relative agent patch
    /// paths resolve against its directory.
    pub fn load(path: &Path) -> Result<Dataset, DatasetError> {
        Dataset::load_with(
            path,
            &Inputs::default(),
            crate::settings::Limits::default().dataset(),
        )
    }

    /// Load a dataset file of at most `cap` bytes (`limits.max_dataset_bytes`), checking every
    /// command against `inputs` (the input policy). A FIFO, device, socket or directory is
    /// refused before it is opened, a larger file before it is read (see [`crate::input`]).
    pub fn load_with(
        path: &Path,
        inputs: &Inputs,
        cap: crate::input::Cap,
    ) -> Result<Dataset, DatasetError> {
        Dataset::load_opts(
            path,
            &LoadOptions {
                inputs,
                cap,
                patch_dir: None,
            },
        )
    }

    /// Load a dataset file as `opts` says: a Parquet file (by its `PAR1` magic) with the
    /// `parquet` feature, else JSON or JSONL text.
    pub fn load_opts(path: &Path, opts: &LoadOptions<'_>) -> Result<Dataset, DatasetError> {
        let io = |e: crate::input::InputError| DatasetError {
            path: path.to_path_buf(),
            source: e.into(),
        };
        let bytes = crate::input::read_capped(path, opts.cap).map_err(io)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let origin = path.display().to_string();
        if bytes.starts_with(b"PAR1") {
            return parquet_rows(bytes, &origin, &base, opts).map_err(|message| DatasetError {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
            });
        }
        let text = String::from_utf8(bytes).map_err(|source| {
            io(crate::input::InputError::NotUtf8 {
                path: path.to_path_buf(),
                source,
            })
        })?;
        Ok(Dataset::from_str_opts(&text, &origin, &base, opts))
    }

    /// Load a dataset from text under the default input policy.
    pub fn from_str(text: &str, origin: &str, base_dir: &Path) -> Dataset {
        Dataset::from_str_with(text, origin, base_dir, &Inputs::default())
    }

    /// Load a dataset from text (JSON array if it starts with `[`, else JSONL), checking every
    /// command against `inputs`.
    pub fn from_str_with(text: &str, origin: &str, base_dir: &Path, inputs: &Inputs) -> Dataset {
        let opts = LoadOptions {
            inputs,
            cap: crate::settings::Limits::default().dataset(),
            patch_dir: None,
        };
        Dataset::from_str_opts(text, origin, base_dir, &opts)
    }

    /// Load a dataset from text (JSON array if it starts with `[`, else JSONL) as `opts` says.
    pub fn from_str_opts(
        text: &str,
        origin: &str,
        base_dir: &Path,
        opts: &LoadOptions<'_>,
    ) -> Dataset {
        let cx = RowContext {
            base_dir,
            inputs: opts.inputs,
            patch_dir: opts.patch_dir,
        };
        let mut ds = Dataset {
            origin: origin.to_string(),
            ..Dataset::default()
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if text.trim_start().starts_with('[') {
            load_array(text, &cx, &mut ds);
        } else {
            for (i, line) in text.lines().enumerate() {
                let trimmed = line.trim();
                if trimmed.is_empty() || trimmed.starts_with("//") {
                    continue;
                }
                match serde_json::from_str::<Value>(trimmed) {
                    Ok(v) => ds.push_row(i + 1, v, &cx),
                    Err(e) => ds.errors.push(RowError {
                        line: i + 1,
                        field: None,
                        message: format!("not valid JSON ({e}); each line must be one JSON object"),
                    }),
                }
            }
        }
        ds
    }

    fn push_row(&mut self, line: usize, value: Value, cx: &RowContext<'_>) {
        match task_from_row(line, value, cx) {
            Ok(task) => {
                if let Some((other, prev)) = self.same_commit(&task.commit) {
                    let message = if other == task.commit {
                        format!(
                            "commit {} already appears on line {prev}; each commit may appear once",
                            task.commit
                        )
                    } else {
                        format!(
                            "commit {} and commit {other} on line {prev} may be the same commit \
                             (one is a prefix of the other); give each commit once, as its full \
                             40-digit hash",
                            task.commit
                        )
                    };
                    self.errors.push(RowError {
                        line,
                        field: Some("commit_hash".into()),
                        message,
                    });
                } else {
                    self.lines_by_commit.insert(task.commit.clone(), line);
                    self.tasks.push(task);
                }
            }
            Err(e) => self.errors.push(e),
        }
    }

    /// An earlier commit equal to `commit`, or one of which `commit` is a prefix, or a prefix
    /// of `commit`: the same commit written twice, or two commits no name can tell apart.
    fn same_commit(&self, commit: &str) -> Option<(String, usize)> {
        if let Some((c, l)) = self.lines_by_commit.range(commit.to_string()..).next() {
            if c.starts_with(commit) {
                return Some((c.clone(), *l));
            }
        }
        (7..commit.len()).find_map(|n| {
            let prefix = commit.get(..n)?;
            self.lines_by_commit
                .get(prefix)
                .map(|l| (prefix.to_string(), *l))
        })
    }

    /// Find a task by full hash or unique prefix (case-insensitive).
    pub fn find(&self, query: &str) -> Result<&Task, LookupError> {
        let q = query.trim().to_ascii_lowercase();
        if q.len() < 4 || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LookupError::NotHex(query.to_string()));
        }
        // A dataset may itself hold a short hash: match either way round.
        let hits: Vec<&Task> = self
            .tasks
            .iter()
            .filter(|t| t.commit.starts_with(&q) || q.starts_with(&t.commit))
            .collect();
        match hits.as_slice() {
            [] => Err(LookupError::NotFound(query.to_string())),
            [one] => Ok(one),
            many => Err(LookupError::Ambiguous {
                query: query.to_string(),
                candidates: many
                    .iter()
                    .map(|t| format!("{} (line {})", t.commit, t.source_line))
                    .collect(),
            }),
        }
    }
}

/// What every row of one load shares.
struct RowContext<'a> {
    /// Relative agent patch paths resolve against (and must stay inside) this folder.
    base_dir: &'a Path,
    /// The input policy commands are checked against.
    inputs: &'a Inputs,
    /// Where inline diffs are written.
    patch_dir: Option<&'a Path>,
}

/// Rows of a Parquet file, each converted to a JSON object and loaded like a JSON row (its
/// "line" is its 1-based row number).
#[cfg(feature = "parquet")]
fn parquet_rows(
    bytes: Vec<u8>,
    origin: &str,
    base_dir: &Path,
    opts: &LoadOptions<'_>,
) -> Result<Dataset, String> {
    let cx = RowContext {
        base_dir,
        inputs: opts.inputs,
        patch_dir: opts.patch_dir,
    };
    let mut ds = Dataset {
        origin: origin.to_string(),
        ..Dataset::default()
    };
    for (i, row) in crate::parquet_rows::read(bytes)?.into_iter().enumerate() {
        match row {
            Ok(v) => ds.push_row(i + 1, v, &cx),
            Err(message) => ds.errors.push(RowError {
                line: i + 1,
                field: None,
                message,
            }),
        }
    }
    Ok(ds)
}

#[cfg(not(feature = "parquet"))]
fn parquet_rows(_: Vec<u8>, _: &str, _: &Path, _: &LoadOptions<'_>) -> Result<Dataset, String> {
    Err(
        "this is a Parquet file, and this build of perf-runner reads none (built without the \
         `parquet` feature); convert it to JSONL or use a build with the feature"
            .into(),
    )
}

fn load_array(text: &str, cx: &RowContext<'_>, ds: &mut Dataset) {
    let items: Vec<&serde_json::value::RawValue> = match serde_json::from_str(text) {
        Ok(items) => items,
        Err(e) => {
            ds.errors.push(RowError {
                line: e.line().max(1),
                field: None,
                message: format!("the JSON array does not parse ({e}); no row could be read"),
            });
            return;
        }
    };
    for raw in items {
        let offset = raw.get().as_ptr() as usize - text.as_ptr() as usize;
        let line = 1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..offset]).count();
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => ds.push_row(line, v, cx),
            Err(e) => ds.errors.push(RowError {
                line,
                field: None,
                message: format!("not valid JSON ({e})"),
            }),
        }
    }
}

fn task_from_row(line: usize, value: Value, cx: &RowContext<'_>) -> Result<Task, RowError> {
    let err = |field: &str, message: String| RowError {
        line,
        field: Some(field.to_string()),
        message,
    };
    let Value::Object(row) = value else {
        return Err(RowError {
            line,
            field: None,
            message: format!("expected a JSON object, found {}", kind(&value)),
        });
    };
    let commit = match aliased_str(&row, COMMIT).map_err(|(f, m)| err(f, m))? {
        Some(c) => hex_commit(&c).map_err(|m| err(COMMIT[0], m))?,
        None => {
            return Err(RowError {
                line,
                field: Some(COMMIT[0].into()),
                message: format!("missing; one of {} is required", COMMIT.join(", ")),
            });
        }
    };
    let parent = match aliased_str(&row, PARENT).map_err(|(f, m)| err(f, m))? {
        Some(p) => Some(hex_commit(&p).map_err(|m| err(PARENT[0], m))?),
        None => None,
    };
    let perf_command = opt_str(&row, "perf_command")
        .map_err(|m| err("perf_command", m))?
        .filter(|c| !c.trim().is_empty());
    let (spec, command_error, policy_violation) =
        match perf_command.as_deref().map(parse_perf_command) {
            Some(Ok(spec)) => match policy::check(&spec, cx.inputs) {
                Ok(notes) => {
                    for note in notes {
                        tracing::warn!(line, "{note}");
                    }
                    (Some(spec), None, None)
                }
                Err(v) => (
                    None,
                    Some(format!("refused by the input policy: {v}")),
                    Some(v),
                ),
            },
            Some(Err(e)) => (None, Some(e.to_string()), None),
            None => (None, None, None),
        };
    let mut models = str_list(&row, "models").map_err(|m| err("models", m))?;
    if let Some(m) = opt_str(&row, "model").map_err(|m| err("model", m))? {
        if !models.contains(&m) {
            models.insert(0, m);
        }
    }
    let gpu = match opt_str(&row, "gpu_config").map_err(|m| err("gpu_config", m))? {
        Some(g) if !g.trim().is_empty() => Some(
            g.parse::<GpuSpec>()
                .map_err(|e| err("gpu_config", e.to_string()))?,
        ),
        _ => None,
    };
    let patches = row_patches(&row, cx).map_err(|(f, m)| err(f, m))?;
    let mut files_changed = str_list(&row, "files_changed").map_err(|m| err("files_changed", m))?;
    if files_changed.is_empty() {
        files_changed = patches.human_files;
    }
    Ok(Task {
        source_line: line,
        commit,
        parent,
        subject: aliased_str(&row, SUBJECT).map_err(|(f, m)| err(f, m))?,
        repo: opt_str(&row, "repo").map_err(|m| err("repo", m))?,
        perf_command,
        spec,
        command_error,
        policy_violation,
        models,
        gpu,
        files_changed,
        pr_url: opt_str(&row, "pr_url").map_err(|m| err("pr_url", m))?,
        date: aliased_str(&row, DATE).map_err(|(f, m)| err(f, m))?,
        benchmark_mode_hint: opt_str(&row, "benchmark_mode")
            .map_err(|m| err("benchmark_mode", m))?,
        patch: patches.agent,
        human_patch: patches.human,
        instance_id: opt_str(&row, "instance_id").map_err(|m| err("instance_id", m))?,
    })
}

/// The patches a row names.
struct RowPatches {
    /// The agent patch file.
    agent: Option<PathBuf>,
    /// The human patch, written from inline diff text.
    human: Option<PathBuf>,
    /// The files the inline human patch changes.
    human_files: Vec<String>,
}

/// Read a row's patch fields: `patch_path` (an agent patch file), `patch` (a file: the agent
/// patch; diff text: the commit's own change), `diff_text` (the commit's own change) and
/// `model_patch` (an agent patch as diff text). Two fields naming the agent patch is an error.
fn row_patches(
    row: &Map<String, Value>,
    cx: &RowContext<'_>,
) -> Result<RowPatches, (&'static str, String)> {
    let field = |name: &'static str| {
        opt_str(row, name)
            .map(|v| v.filter(|s| !s.trim().is_empty()))
            .map_err(|m| (name, m))
    };
    let mut agent: Option<(&'static str, PathBuf)> = None;
    let mut set_agent = |name: &'static str, path: PathBuf| match &agent {
        Some((other, _)) => Err((
            name,
            format!("both '{other}' and '{name}' name an agent patch; give one"),
        )),
        None => {
            agent = Some((name, path));
            Ok(())
        }
    };
    let mut human_text = None;
    if let Some(p) = field("patch_path")? {
        if patches::is_diff(&p) {
            return Err((
                "patch_path",
                format!(
                    "holds diff text ('{}'), not a path; put an inline agent patch in \
                     'model_patch'",
                    patches::excerpt(&p)
                ),
            ));
        }
        set_agent(
            "patch_path",
            patches::patch_path(&p, cx.base_dir).map_err(|m| ("patch_path", m))?,
        )?;
    }
    if let Some(p) = field("patch")? {
        if patches::is_diff(&p) {
            human_text = Some(p);
        } else {
            set_agent(
                "patch",
                patches::patch_path(&p, cx.base_dir).map_err(|m| ("patch", m))?,
            )?;
        }
    }
    if human_text.is_none() {
        human_text = field("diff_text")?;
    }
    if let Some(d) = field("model_patch")? {
        if !patches::is_diff(&d) {
            return Err((
                "model_patch",
                format!("is not diff text ('{}')", patches::excerpt(&d)),
            ));
        }
        let Some(dir) = cx.patch_dir else {
            return Err((
                "model_patch",
                "an inline agent patch needs a folder to be written to, and none was given".into(),
            ));
        };
        set_agent(
            "model_patch",
            patches::write_inline(&d, dir).map_err(|m| ("model_patch", m))?,
        )?;
    }
    let (human, human_files) = match &human_text {
        Some(text) => (
            match cx.patch_dir {
                Some(dir) => Some(patches::write_inline(text, dir).map_err(|m| ("patch", m))?),
                None => None,
            },
            patches::files_of_diff(text),
        ),
        None => (None, Vec::new()),
    };
    Ok(RowPatches {
        agent: agent.map(|(_, p)| p),
        human,
        human_files,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional string field; null counts as absent.
fn opt_str(row: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("expected a string, found {}", kind(other))),
    }
}

/// The first present alias of a string field.
fn aliased_str(
    row: &Map<String, Value>,
    aliases: &[&'static str],
) -> Result<Option<String>, (&'static str, String)> {
    for &a in aliases {
        if let Some(v) = opt_str(row, a).map_err(|m| (a, m))? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// A list of strings; a missing field or null is empty.
fn str_list(row: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    match row.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("item {i} is {}, expected a string", kind(other))),
            })
            .collect(),
        Some(other) => Err(format!("expected a list of strings, found {}", kind(other))),
    }
}

pub(crate) fn hex_commit(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_lowercase();
    if (7..=40).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(c)
    } else {
        Err(format!(
            "'{}' is not a commit hash (7 to 40 hexadecimal digits)",
            patches::excerpt(s)
        ))
    }
}
