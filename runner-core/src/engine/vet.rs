//! Which of a step's outputs may be believed. A measurement counts only when this attempt's
//! client wrote it after the attempt started and exited 0: a result file left by an earlier
//! attempt (an orphaned client of a runner that was killed finishes and writes later), or one
//! present when the client never ran (a failed warm-up) or failed, is ignored, and the attempt
//! fails with the evidence.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::backend::StepOutput;
use crate::benchmark::{Classified, RunOutput};
use crate::failure::Failure;
use crate::stepkit::AttemptFiles;

/// File timestamps come from a coarse clock (and from whole seconds on some file systems), so a
/// file written just after the attempt started may read as slightly older.
pub(super) const MTIME_SLACK: Duration = Duration::from_secs(1);

/// What of a step's output may be read, and why the rest may not.
#[derive(Debug, Default)]
pub(super) struct Vetted {
    /// Result files that this attempt's client wrote.
    pub trusted: Vec<PathBuf>,
    /// One line per result file that is ignored, with the reason.
    pub ignored: Vec<String>,
    /// Set when the client did not run or did not exit 0: nothing of the attempt is a
    /// measurement.
    pub client_failed: Option<String>,
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Sort a step's result files into trusted and ignored: an attempt started at `since`.
pub(super) fn results(output: &StepOutput, since: SystemTime) -> Vetted {
    let mut v = Vetted::default();
    let warmup = AttemptFiles::is_warmup_stdout(&output.client_stdout);
    let failed = match (output.exit_code, warmup) {
        (Some(0), false) => None,
        (Some(c), true) => Some(format!(
            "the warm-up exited with code {c}; the measured client did not run"
        )),
        (None, true) => "the warm-up was killed by a signal; the measured client did not run"
            .to_string()
            .into(),
        (Some(c), false) => Some(format!("the benchmark client exited with code {c}")),
        (None, false) => Some("the benchmark client was killed by a signal (no exit code)".into()),
    };
    for f in &output.result_files {
        if let Some(why) = &failed {
            v.ignored.push(format!(
                "ignored result file {}: {why}, so it is not this attempt's measurement",
                name(f)
            ));
            continue;
        }
        match std::fs::metadata(f).and_then(|m| m.modified()) {
            Ok(t) if t + MTIME_SLACK >= since => v.trusted.push(f.clone()),
            Ok(t) => {
                let age = since.duration_since(t).unwrap_or_default().as_secs_f64();
                v.ignored.push(format!(
                    "ignored result file {}: written {age:.1} s before this attempt started (left by an earlier attempt)",
                    name(f)
                ));
            }
            Err(e) => v.ignored.push(format!(
                "ignored result file {}: cannot read its time: {e}",
                name(f)
            )),
        }
    }
    for line in &v.ignored {
        tracing::warn!("{line}");
    }
    v.client_failed = failed;
    v
}

/// The attempt's failure (code, detail, evidence), given what the parser made of the trusted
/// output (`parsed`, over `output`): a client that did not run or exit 0 fails the attempt
/// whatever was parsed, classified from its output (its root cause) where a signature matches.
pub(super) fn judge(
    v: &Vetted,
    parsed: Option<Classified>,
    output: &RunOutput,
) -> Option<(Failure, String, Vec<String>)> {
    let Some(line) = &v.client_failed else {
        return parsed.map(|c| {
            let detail = c
                .evidence
                .first()
                .cloned()
                .unwrap_or_else(|| c.code.describe().to_string());
            let mut evidence = c.evidence;
            evidence.extend(v.ignored.iter().cloned());
            (c.code, detail, evidence)
        });
    };
    let c = parsed.unwrap_or_else(|| crate::parse::classify(output));
    let detail = match c.evidence.first() {
        Some(first) => format!("{line}: {first}"),
        None => line.clone(),
    };
    let mut evidence = vec![line.clone()];
    evidence.extend(v.ignored.iter().cloned());
    evidence.extend(c.evidence);
    Some((c.code, detail, evidence))
}

#[cfg(test)]
#[path = "vet_tests.rs"]
mod tests;
