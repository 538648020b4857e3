//! The engine-version check against files read at the parent (and commit) from a vLLM source.

use std::sync::Arc;

use crate::failure::Failure;
use crate::spec::{Mode, Side};
use crate::task::Task;

use super::super::http::Http;
use super::super::source::{Probe, VllmSource};
use super::super::{Findings, Reason};
use super::{
    BENCH_CLI_PROBE, ENVS, Needs, REGISTRY_PATHS, ROOT_PROBE, SERVER_FILES, client_files,
    defines_flag, revs, short,
};

/// Files read at one revision: `(path, text)` for those that exist.
struct FileSet {
    rev: String,
    found: Vec<(String, Arc<str>)>,
    failed: Vec<String>,
}

async fn read_set(src: &VllmSource, http: Option<&Http>, rev: &str, paths: &[String]) -> FileSet {
    let mut set = FileSet {
        rev: rev.to_string(),
        found: Vec::new(),
        failed: Vec::new(),
    };
    for p in paths {
        match src.read(rev, p, http).await {
            Probe::Found(text) => set.found.push((p.clone(), text)),
            Probe::Missing => {}
            Probe::Failed(why) => set.failed.push(format!("{p}@{}: {why}", short(rev))),
        }
    }
    set
}

/// Check a task against its parent's (and commit's) files. `Err` means the source could not
/// answer for this task (unknown commit, broken clone): the caller falls back to an estimate.
pub(crate) async fn check_source(
    task: &Task,
    needs: &Needs,
    src: &VllmSource,
    http: Option<&Http>,
    f: &mut Findings,
) -> Result<(), String> {
    let (parent, commit) = revs(task, src)?;
    for rev in [&parent, &commit] {
        match src.read(rev, ROOT_PROBE, http).await {
            Probe::Found(_) => {}
            Probe::Missing => {
                return Err(format!(
                    "commit {} is not in it (no {ROOT_PROBE})",
                    short(rev)
                ));
            }
            Probe::Failed(why) => return Err(why),
        }
    }
    let p = short(&parent).to_string();

    if let Some(arch) = &needs.arch {
        let mut decided = false;
        for path in REGISTRY_PATHS {
            match src.read(&parent, path, http).await {
                Probe::Found(text) => {
                    decided = true;
                    if !defines_string(&text, arch) {
                        f.reasons.push(
                            Reason::blocking(
                                Failure::ModelUnsupported,
                                format!(
                                    "vLLM at the parent {p} has no {arch} in its model registry"
                                ),
                                format!(
                                    "pick a commit whose parent registers {arch}, or another model"
                                ),
                            )
                            .with_evidence([format!("{path}@{p}: no \"{arch}\"")]),
                        );
                    }
                    break;
                }
                Probe::Missing => continue,
                Probe::Failed(why) => {
                    f.not_checked.push(format!("model registry: {why}"));
                    decided = true;
                    break;
                }
            }
        }
        if !decided {
            f.not_checked.push(format!(
                "model registry: none of {} at {p}",
                REGISTRY_PATHS.join(", ")
            ));
        }
    }

    if !needs.env.is_empty() {
        match src.read(&parent, ENVS, http).await {
            Probe::Found(text) => {
                for var in needs.env.iter().filter(|v| !defines_string(&text, v)) {
                    f.reasons.push(
                        Reason::attention(
                            Failure::VllmVersion,
                            format!("{var} is not read by vLLM at the parent {p}; setting it has no effect there"),
                            format!("make sure the baseline without {var} is the comparison you want, or pick another commit"),
                        )
                        .with_evidence([format!("{ENVS}@{p}: no \"{var}\"")]),
                    );
                }
            }
            Probe::Missing => f.not_checked.push(format!("env vars: no {ENVS} at {p}")),
            Probe::Failed(why) => f.not_checked.push(format!("env vars: {why}")),
        }
    }

    let Some(mode) = needs.mode else {
        return Ok(());
    };
    // Serving: the client always runs from the human build, the server from each variant.
    let client_revs: Vec<&String> = if mode == Mode::Serving {
        vec![&commit]
    } else {
        vec![&parent, &commit]
    };
    if needs.bench_cli {
        for rev in &client_revs {
            if matches!(src.read(rev, BENCH_CLI_PROBE, http).await, Probe::Missing) {
                f.reasons.push(
                    Reason::blocking(
                        Failure::VllmVersion,
                        format!("`vllm bench` does not exist at {}", short(rev)),
                        "use the benchmarks/*.py script of that era for every variant",
                    )
                    .with_evidence([format!("{BENCH_CLI_PROBE}@{}: missing", short(rev))]),
                );
                return Ok(());
            }
        }
    }
    if let Some(script) = &needs.script {
        for rev in &client_revs {
            if matches!(src.read(rev, script, http).await, Probe::Missing) {
                f.reasons.push(
                    Reason::blocking(
                        Failure::VllmVersion,
                        format!("{script} does not exist at {}", short(rev)),
                        "use a benchmark script that exists at both commits",
                    )
                    .with_evidence([format!("{script}@{}: missing", short(rev))]),
                );
                return Ok(());
            }
        }
    }
    if mode == Mode::Other {
        return Ok(());
    }
    let client_paths = client_files(needs);
    let server_paths: Vec<String> = SERVER_FILES.iter().map(|s| s.to_string()).collect();
    let mut sets: Vec<(Side, FileSet)> = Vec::new();
    for rev in &client_revs {
        sets.push((Side::Client, read_set(src, http, rev, &client_paths).await));
    }
    if mode == Mode::Serving {
        for rev in [&parent, &commit] {
            sets.push((Side::Server, read_set(src, http, rev, &server_paths).await));
        }
    }
    for (_, set) in &sets {
        f.not_checked
            .extend(set.failed.iter().map(|w| format!("flags: {w}")));
    }
    for (flag, side) in &needs.flags {
        // Groups of file sets; the flag must be defined somewhere in each group.
        let groups: Vec<Vec<&(Side, FileSet)>> = match side {
            Some(want) if mode == Mode::Serving && *want != Side::Both => sets
                .iter()
                .filter(|(s, _)| s == want)
                .map(|s| vec![s])
                .collect(),
            Some(_) => sets.iter().map(|s| vec![s]).collect(),
            None => [&parent, &commit]
                .into_iter()
                .map(|rev| {
                    sets.iter()
                        .filter(|(_, set)| &set.rev == rev)
                        .collect::<Vec<_>>()
                })
                .filter(|g| !g.is_empty())
                .collect(),
        };
        for group in groups {
            let usable = group.iter().all(|(_, s)| s.failed.is_empty())
                && group.iter().any(|(_, s)| !s.found.is_empty());
            let defined = group
                .iter()
                .any(|(_, s)| s.found.iter().any(|(_, text)| defines_flag(text, flag)));
            if !usable || defined {
                continue;
            }
            let at = short(&group[0].1.rev);
            let which = match group.iter().map(|(s, _)| *s).collect::<Vec<_>>().as_slice() {
                [Side::Server] => "server",
                [Side::Client] => "benchmark",
                _ => "engine",
            };
            let evidence = group.iter().flat_map(|(_, s)| {
                s.found
                    .iter()
                    .map(move |(path, _)| format!("{path}@{}: no \"{flag}\"", short(&s.rev)))
            });
            f.reasons.push(
                Reason::blocking(
                    Failure::VllmVersion,
                    format!("the {which} at {at} does not accept {flag}"),
                    format!(
                        "drop {flag} for every variant if it does not change the workload, or pick another commit"
                    ),
                )
                .with_evidence(evidence.collect::<Vec<_>>()),
            );
            break;
        }
    }
    Ok(())
}

/// Whether `text` contains `s` as a quoted string literal.
fn defines_string(text: &str, s: &str) -> bool {
    text.contains(&format!("\"{s}\"")) || text.contains(&format!("'{s}'"))
}
