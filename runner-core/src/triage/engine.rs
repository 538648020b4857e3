//! The engine-version check: does vLLM at the parent commit support the model's architecture,
//! the benchmark entry point, its flags and its `VLLM_*` env vars?
//!
//! Evidence, best first: files read at the parent (and, where the human build runs them, at the
//! commit) from a [`VllmSource`] — the model registry, the benchmark script's or CLI's argparse
//! definitions, `vllm/engine/arg_utils.py`, `vllm/envs.py`; else a version range from the wheel
//! index (online), the dataset, or the commit date, checked against the first-release tables of
//! `vllm.toml` (marked as an estimate).

use std::collections::BTreeSet;

use futures::StreamExt;

use crate::failure::Failure;
use crate::spec::{EntryPoint, Mode, Side};
use crate::task::Task;

use super::artifacts::OnlineResults;
use super::http::Http;
use super::models::Lookup;
use super::source::VllmSource;
use super::version::Presence;
use super::{Context, Findings, Reason};

/// Where the model registry lived over vLLM's history, newest first.
pub const REGISTRY_PATHS: &[&str] = &[
    "vllm/model_executor/models/registry.py",
    "vllm/model_executor/models/__init__.py",
    "vllm/model_executor/model_loader.py",
];
/// Files that define the server's and engine's flags.
pub const SERVER_FILES: &[&str] = &[
    "vllm/engine/arg_utils.py",
    "vllm/entrypoints/openai/cli_args.py",
    "vllm/entrypoints/openai/api_server.py",
];
/// A file present exactly when `vllm bench` exists.
pub const BENCH_CLI_PROBE: &str = "vllm/entrypoints/cli/benchmark/main.py";
/// A file every vLLM commit has (tells an unknown commit from a missing file).
const ROOT_PROBE: &str = "vllm/__init__.py";
const ARG_UTILS: &str = "vllm/engine/arg_utils.py";
const ENVS: &str = "vllm/envs.py";

/// What a task needs from the engine at its parent commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    /// The model's architecture, when the model table knows it.
    pub arch: Option<String>,
    /// The command's flags and where they go (`None`: the parser does not know the flag).
    pub flags: Vec<(String, Option<Side>)>,
    /// `VLLM_*` variables the command sets.
    pub env: Vec<String>,
    /// Whether the entry point is `vllm bench`.
    pub bench_cli: bool,
    /// The `benchmarks/*.py` script, repo-relative.
    pub script: Option<String>,
    /// The benchmark mode.
    pub mode: Option<Mode>,
    /// `vllm bench` subcommand.
    pub subcommand: Option<String>,
}

impl Needs {
    /// Derive the needs of a task.
    pub(crate) fn of(task: &Task, cx: &Context<'_>) -> Needs {
        let arch = task.model().and_then(|m| match cx.models.lookup(m) {
            Lookup::Known(info) => Some(info.arch),
            _ => None,
        });
        let Some(spec) = &task.spec else {
            return Needs {
                arch,
                ..Needs::default()
            };
        };
        let (script, subcommand) = match &spec.entry {
            EntryPoint::Script { path } => (
                Some(
                    path.rfind("benchmarks/")
                        .map_or(path.as_str(), |i| &path[i..])
                        .to_string(),
                ),
                None,
            ),
            EntryPoint::VllmBench { subcommand } | EntryPoint::ModuleBench { subcommand, .. } => {
                (None, Some(subcommand.clone()))
            }
        };
        Needs {
            arch,
            flags: spec
                .flags
                .iter()
                .map(|f| (f.name.clone(), f.known.then_some(f.side)))
                .collect(),
            env: spec
                .env
                .iter()
                .map(|(k, _)| k.clone())
                .filter(|k| k.starts_with("VLLM_"))
                .collect(),
            bench_cli: spec.entry.needs_bench_cli(),
            script,
            mode: Some(spec.mode),
            subcommand,
        }
    }
}

fn short(rev: &str) -> &str {
    super::prefix(rev, 12)
}

/// Check against a version range (wheel metadata, dataset version or date estimate).
pub(crate) fn check_estimate(
    task: &Task,
    needs: &Needs,
    cx: &Context<'_>,
    online: Option<&OnlineResults>,
    f: &mut Findings,
) {
    let parent = task.parent.as_deref();
    let from_wheel = parent
        .and_then(|p| online?.version_of(p))
        .and_then(|(v, url)| {
            cx.facts
                .range_for_version(&v, format!("wheel index {url} lists vllm {v}"))
        });
    let from_dataset = || {
        let key = parent.unwrap_or(&task.commit);
        let v = cx.opts.dataset_versions.get(key)?;
        cx.facts
            .range_for_version(v, format!("dataset gives vllm {v} for {}", short(key)))
    };
    let from_date = || cx.facts.range_for_date(task.date.as_deref()?);
    let Some(range) = from_wheel.or_else(from_dataset).or_else(from_date) else {
        f.not_checked
            .push("engine version: no vLLM source, wheel metadata, dataset version or date".into());
        return;
    };
    let facts = cx.facts;
    let mut judge =
        |what: String, since: Option<super::version::Version>, code: Failure, fix: &str| {
            let Some(since) = since else { return };
            let evidence = vec![
                range.basis.clone(),
                format!("{what}: first in vLLM {since} (vllm.toml)"),
            ];
            match range.presence(since) {
                Presence::Present => {}
                Presence::Absent => f.reasons.push(
                    Reason::blocking(
                        code,
                        format!(
                            "{what} needs vLLM ≥ {since}; the parent is {}",
                            range.describe()
                        ),
                        fix,
                    )
                    .with_evidence(evidence),
                ),
                Presence::Unknown => f.warnings.push(format!(
                    "{what} needs vLLM ≥ {since}; the parent is {} — may be missing ({})",
                    range.describe(),
                    range.basis
                )),
            }
        };
    let confirm = if range.estimate {
        " (confirm with --vllm-source)"
    } else {
        ""
    };
    if let Some(arch) = &needs.arch {
        judge(
            format!("architecture {arch}"),
            facts.arch_since.get(arch).copied(),
            Failure::ModelUnsupported,
            &format!("pick a commit whose parent supports {arch}{confirm}"),
        );
    }
    if needs.bench_cli {
        judge(
            "`vllm bench`".into(),
            Some(facts.bench_cli_since),
            Failure::VllmVersion,
            &format!("use the benchmarks/*.py script of that era{confirm}"),
        );
    }
    for (flag, _) in &needs.flags {
        judge(
            format!("flag {flag}"),
            facts.flag_since.get(flag).copied(),
            Failure::VllmVersion,
            &format!("drop {flag} for every variant if it does not change the workload{confirm}"),
        );
    }
    for var in &needs.env {
        judge(
            format!("env var {var}"),
            facts.env_since.get(var).copied(),
            Failure::VllmVersion,
            &format!("drop {var}; the parent does not read it{confirm}"),
        );
    }
    f.not_checked.push(format!(
        "engine version: no vLLM source; judged from {} against vllm.toml (flags, env vars and \
         architectures outside its tables unchecked)",
        if range.estimate {
            "an estimate"
        } else {
            "a stated version"
        }
    ));
}

/// The (rev, path) pairs a source check may read, for prefetching over HTTP.
fn probe_plan(task: &Task, needs: &Needs, src: &VllmSource) -> Vec<(String, String)> {
    let Ok((parent, commit)) = revs(task, src) else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for rev in [&parent, &commit] {
        out.insert((rev.clone(), ROOT_PROBE.to_string()));
        let fixed = SERVER_FILES
            .iter()
            .chain(REGISTRY_PATHS)
            .map(|p| p.to_string());
        for p in client_files(needs).into_iter().chain(fixed) {
            out.insert((rev.clone(), p));
        }
        out.insert((rev.clone(), ENVS.to_string()));
        out.insert((rev.clone(), BENCH_CLI_PROBE.to_string()));
    }
    out.into_iter().collect()
}

/// Fetch every file the tasks' source checks may read, `concurrency` at a time (HTTP only;
/// a local clone is read on demand through its single process).
pub(crate) async fn prefetch(
    tasks: &[(&Task, &Needs)],
    src: &VllmSource,
    http: Option<&Http>,
    concurrency: usize,
) {
    if src.resolves_parents() {
        return;
    }
    let pairs: BTreeSet<(String, String)> = tasks
        .iter()
        .flat_map(|(t, n)| probe_plan(t, n, src))
        .collect();
    futures::stream::iter(pairs)
        .map(|(rev, path)| async move { src.read(&rev, &path, http).await })
        .buffer_unordered(concurrency.max(1))
        .for_each(|_| async {})
        .await;
}

fn revs(task: &Task, src: &VllmSource) -> Result<(String, String), String> {
    let parent = match &task.parent {
        Some(p) => p.clone(),
        None if src.resolves_parents() => format!("{}^", task.commit),
        None => {
            return Err(
                "the task has no parent commit and a URL source cannot resolve COMMIT^".into(),
            );
        }
    };
    Ok((parent, task.commit.clone()))
}

/// Files that define the client's (or offline script's) flags.
fn client_files(needs: &Needs) -> Vec<String> {
    if let Some(s) = &needs.script {
        return vec![s.clone(), ARG_UTILS.into()];
    }
    match needs.subcommand.as_deref() {
        Some(sub) => {
            let file = if sub == "serve" { "serve" } else { sub };
            vec![
                format!("vllm/benchmarks/{file}.py"),
                "vllm/benchmarks/datasets.py".into(),
                format!("vllm/entrypoints/cli/benchmark/{file}.py"),
                ARG_UTILS.into(),
            ]
        }
        None => Vec::new(),
    }
}

/// Whether `text` defines `flag`: the literal `"--flag"` (or `--flag_name`), or the argparse
/// destination `flag_name` as a whole word (flags generated from dataclass fields).
pub fn defines_flag(text: &str, flag: &str) -> bool {
    let underscored = flag.replace('-', "_");
    let literal = |f: &str| text.contains(&format!("\"{f}\"")) || text.contains(&format!("'{f}'"));
    if literal(flag) || literal(&format!("--{}", underscored.trim_start_matches('_'))) {
        return true;
    }
    let dest = flag.trim_start_matches('-').replace('-', "_");
    flag.starts_with("--") && dest.len() >= 3 && contains_word(text, &dest)
}

fn contains_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(is_ident)
            && !text[i + word.len()..].chars().next().is_some_and(is_ident)
    })
}

mod probe;
pub(crate) use probe::check_source;
