//! Every try at preparing a build (install, image, sandbox image), kept in the store like the
//! jobs' attempts: a build belongs to a task's variant rather than to one job, so its tries
//! get a table of their own.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::failure::Failure;
use crate::record::RunId;
use crate::task::Variant;

/// One try at preparing one variant's build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PrepareTry {
    /// The task's commit.
    pub commit: String,
    /// The variant whose build it prepared.
    pub variant: Variant,
    /// The build's identity (what was installed).
    pub build: String,
    /// 1-based try number.
    pub attempt: u32,
    /// When it started, RFC 3339.
    pub started_at: String,
    /// When it ended, RFC 3339.
    pub finished_at: String,
    /// How long it took.
    pub seconds: f64,
    /// Its failure, when it failed.
    pub failure: Option<Failure>,
    /// What the backend said of the failure.
    pub detail: Option<String>,
}

impl PrepareTry {
    /// Whether it failed for a reason worth listing (a cancelled try is the user's doing).
    pub fn failed(&self) -> bool {
        self.failure.is_some_and(|f| f != Failure::Cancelled)
    }
}

impl Store {
    /// Keep one prepare try of `run`.
    pub fn record_prepare_try(&self, run: &RunId, t: &PrepareTry) -> Result<(), StoreError> {
        let json = serde_json::to_string(t).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT INTO prepare_tries (run_id, commit_hash, variant, attempt, failure, record_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![run.0, t.commit, t.variant.as_str(), t.attempt, t.failure.map(|f| f.code()), json],
            )
            .map(|_| ())
        })
    }

    /// How many tries at `variant`'s build of `commit` the run has (a resumed run numbers on).
    pub fn prepare_try_count(
        &self,
        run: &RunId,
        commit: &str,
        variant: Variant,
    ) -> Result<u32, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM prepare_tries WHERE run_id = ?1 AND commit_hash = ?2 AND variant = ?3",
                params![run.0, commit, variant.as_str()],
                |r| r.get(0),
            )
        })
    }

    /// Every prepare try of `run`, in the order they were made.
    pub fn prepare_tries(&self, run: &RunId) -> Result<Vec<PrepareTry>, StoreError> {
        let rows: Vec<String> = self.with(|c| {
            let mut st =
                c.prepare("SELECT record_json FROM prepare_tries WHERE run_id = ?1 ORDER BY id")?;
            st.query_map(params![run.0], |r| r.get(0))?.collect()
        })?;
        rows.iter()
            .map(|j| {
                serde_json::from_str(j)
                    .map_err(|e| StoreError::Corrupt(format!("prepare try: {e}")))
            })
            .collect()
    }
}
