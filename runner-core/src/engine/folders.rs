//! Attempt folders, `<task>/<variant>[-aa]-r<repeat>/attempt-<n>`: every attempt gets one of
//! its own that did not exist before.

use std::io;
use std::path::{Path, PathBuf};

use crate::record::JobKey;

/// How many existing folders a new attempt may skip before giving up.
const MAX_SKIPPED: u32 = 10_000;

/// The folder of `job`'s attempt `attempt` under the task's folder.
pub(super) fn job_dir(task_dir: &Path, job: &JobKey, attempt: u32) -> PathBuf {
    let aa = if job.aa { "-aa" } else { "" };
    task_dir
        .join(format!("{}{aa}-r{}", job.variant, job.repeat))
        .join(format!("attempt-{attempt}"))
}

/// The next attempt of `job`, numbered from `from` on: the first number whose folder does not
/// exist yet, and that folder, created here. The last component is made with `create_dir`, so
/// a folder is never reused — not one of an attempt that was never recorded (its runner was
/// killed; its orphaned client may still write there), nor one another process just made.
pub(super) fn fresh(task_dir: &Path, job: &JobKey, from: u32) -> io::Result<(u32, PathBuf)> {
    let from = from.max(1);
    if let Some(parent) = job_dir(task_dir, job, from).parent() {
        std::fs::create_dir_all(parent)?;
    }
    for n in from..from.saturating_add(MAX_SKIPPED) {
        let dir = job_dir(task_dir, job, n);
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                if n != from {
                    tracing::warn!(
                        job = %job,
                        "attempt folders {from}..={} exist without a recorded attempt (an earlier runner was killed?); this attempt is {n}",
                        n - 1
                    );
                }
                return Ok((n, dir));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
    }
    Err(io::Error::other(format!(
        "{MAX_SKIPPED} attempt folders from {} on already exist",
        job_dir(task_dir, job, from).display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::Variant;

    fn job(aa: bool) -> JobKey {
        JobKey {
            commit: "c".repeat(40),
            variant: Variant::Human,
            repeat: 2,
            aa,
        }
    }

    #[test]
    fn numbers_past_folders_that_exist_and_never_reuses_one() {
        let d = tempfile::tempdir().unwrap();
        let (n, dir) = fresh(d.path(), &job(false), 1).unwrap();
        assert_eq!(n, 1);
        assert_eq!(dir, d.path().join("human-r2").join("attempt-1"));
        assert!(dir.is_dir());
        // attempt-1 exists (say, of a killed runner's unrecorded attempt) and so does -3.
        std::fs::create_dir(d.path().join("human-r2/attempt-3")).unwrap();
        assert_eq!(fresh(d.path(), &job(false), 1).unwrap().0, 2);
        assert_eq!(fresh(d.path(), &job(false), 1).unwrap().0, 4);
        assert_eq!(fresh(d.path(), &job(false), 0).unwrap().0, 5);
        assert_eq!(fresh(d.path(), &job(false), 9).unwrap().0, 9);
        let (n, dir) = fresh(d.path(), &job(true), 1).unwrap();
        assert_eq!((n, dir), (1, d.path().join("human-aa-r2/attempt-1")));
    }

    #[test]
    fn a_folder_that_cannot_be_made_is_an_error_not_a_loop() {
        let d = tempfile::tempdir().unwrap();
        // A file where the job's folder should be.
        std::fs::write(d.path().join("human-r2"), "").unwrap();
        let e = fresh(d.path(), &job(false), 1).unwrap_err();
        assert!(!e.to_string().is_empty());
        // A file where an attempt's folder should be is an existing entry: skipped.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("human-r2")).unwrap();
        std::fs::write(d.path().join("human-r2/attempt-1"), "").unwrap();
        assert_eq!(fresh(d.path(), &job(false), 1).unwrap().0, 2);
    }
}
