//! Commits resolved from a local clone, each kind through one `git cat-file --batch-check`
//! process (an argv, never a shell; every commit was checked to be a hexadecimal hash when its
//! row was read): short hashes to full ones (`PREFIX^{commit}`) — per-commit wheels, images
//! and artifact names need the whole hash — and missing parents (`COMMIT^`).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Dataset, hex_commit};

/// What [`Dataset::resolve_parents`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentResolution {
    /// Tasks whose parent was filled in.
    pub resolved: usize,
    /// Tasks still without a parent: commit and why.
    pub unresolved: Vec<(String, String)>,
}

/// What [`Dataset::resolve_short_commits`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShortResolution {
    /// Commits (task or parent) that were short and are now full hashes.
    pub resolved: usize,
    /// Short commits the clone could not resolve: the prefix and why.
    pub unresolved: Vec<(String, String)>,
}

impl Dataset {
    /// Replace every short commit hash — a task's commit or its parent — with the full hash
    /// the git clone at `repo` gives it. A prefix the clone does not know, or knows more than
    /// one commit by, stays short and is listed with the reason. An error means git could not
    /// run on `repo` at all.
    pub fn resolve_short_commits(&mut self, repo: &Path) -> Result<ShortResolution, String> {
        // (task index, whether it is the parent) of every short hash.
        let mut short: Vec<(usize, bool)> = Vec::new();
        for (i, t) in self.tasks.iter().enumerate() {
            if t.commit.len() < 40 {
                short.push((i, false));
            }
            if t.parent.as_ref().is_some_and(|p| p.len() < 40) {
                short.push((i, true));
            }
        }
        let mut out = ShortResolution::default();
        if short.is_empty() {
            return Ok(out);
        }
        let hash = |t: &crate::task::Task, parent: bool| -> String {
            if parent {
                t.parent.clone().unwrap_or_default()
            } else {
                t.commit.clone()
            }
        };
        let queries: Vec<String> = short
            .iter()
            .map(|&(i, parent)| format!("{}^{{commit}}", hash(&self.tasks[i], parent)))
            .collect();
        for (&(i, parent), answer) in short.iter().zip(ask(repo, &queries)?) {
            let task = &mut self.tasks[i];
            let prefix = hash(task, parent);
            let why = match answer {
                Answer::Commit(full) if full.len() == 40 && full.starts_with(&prefix) => {
                    if parent {
                        task.parent = Some(full);
                    } else {
                        task.commit = full;
                    }
                    out.resolved += 1;
                    continue;
                }
                Answer::Ambiguous => {
                    "more than one commit of the clone has this prefix; give more digits"
                        .to_string()
                }
                Answer::Missing => format!(
                    "not in the clone at {} (fetch it, or give the full hash)",
                    repo.display()
                ),
                Answer::Commit(other) | Answer::Other(other) => {
                    format!("unexpected answer from git: {other}")
                }
            };
            out.unresolved.push((prefix, why));
        }
        Ok(out)
    }

    /// Fill in the parent of every task that has none with `COMMIT^` (the first parent) as the
    /// git clone at `repo` resolves it. Tasks the clone does not know, or whose commit is the
    /// root, keep no parent and are listed with the reason. An error means git could not run
    /// on `repo` at all.
    pub fn resolve_parents(&mut self, repo: &Path) -> Result<ParentResolution, String> {
        let missing: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].parent.is_none())
            .collect();
        let mut out = ParentResolution::default();
        if missing.is_empty() {
            return Ok(out);
        }
        let queries: Vec<String> = missing
            .iter()
            .map(|&i| format!("{}^", self.tasks[i].commit))
            .collect();
        for (&i, answer) in missing.iter().zip(ask(repo, &queries)?) {
            let task = &mut self.tasks[i];
            let why = match answer {
                Answer::Commit(parent) => {
                    task.parent = Some(parent);
                    out.resolved += 1;
                    continue;
                }
                Answer::Ambiguous => "the commit prefix is ambiguous in the clone".to_string(),
                Answer::Missing => format!(
                    "{}^ is not in the clone at {} (a commit it lacks, or a root commit; \
                     fetch it or give parent_commit)",
                    task.commit,
                    repo.display()
                ),
                Answer::Other(other) => format!("unexpected answer from git: {other}"),
            };
            out.unresolved.push((task.commit.clone(), why));
        }
        Ok(out)
    }
}

/// What `git cat-file --batch-check` said of one query.
enum Answer {
    /// A commit, by its full hash.
    Commit(String),
    /// A prefix more than one object has.
    Ambiguous,
    /// Nothing in the clone.
    Missing,
    /// Anything else (another object type, an odd line), as an escaped excerpt.
    Other(String),
}

/// Ask the clone at `repo` about each query (one `git cat-file --batch-check` process); one
/// answer per query, in order. An error when git cannot run there or answers short.
fn ask(repo: &Path, queries: &[String]) -> Result<Vec<Answer>, String> {
    let input: String = queries.iter().map(|q| format!("{q}\n")).collect();
    let lines = batch_check(repo, input)?;
    if lines.len() != queries.len() {
        return Err(format!(
            "git cat-file answered {} of {} queries in {}",
            lines.len(),
            queries.len(),
            repo.display()
        ));
    }
    Ok(lines
        .into_iter()
        .map(|line| {
            let mut words = line.split_whitespace();
            let (first, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            match (hex_commit(first), kind) {
                (Ok(hash), "commit") => Answer::Commit(hash),
                (_, "ambiguous") => Answer::Ambiguous,
                (_, "missing") => Answer::Missing,
                _ => Answer::Other(super::patches::excerpt(&line)),
            }
        })
        .collect())
}

/// Run `git -C repo cat-file --batch-check` on `input` (one query per line) and return its
/// answer lines. The queries are written from a thread, so a long list never deadlocks on
/// full pipes.
fn batch_check(repo: &Path, input: String) -> Result<Vec<String>, String> {
    let fail = |e: std::io::Error| format!("cannot run git in {}: {e}", repo.display());
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch-check"])
        // The clone named, not one an inherited variable points at.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(fail)?;
    let mut stdin = child.stdin.take().ok_or("git: no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let stdout = child.stdout.take().ok_or("git: no stdout")?;
    let lines: Vec<String> = BufReader::new(stdout)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(fail)?;
    let _ = writer.join();
    let output = child.wait_with_output().map_err(fail)?;
    if !output.status.success() {
        return Err(format!(
            "git cat-file failed in {} ({}): {}",
            repo.display(),
            output.status,
            super::patches::excerpt(String::from_utf8_lossy(&output.stderr).trim())
        ));
    }
    Ok(lines)
}
