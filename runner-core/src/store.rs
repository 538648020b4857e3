//! The results store: an embedded SQLite database (WAL) holding runs, tasks, jobs, every
//! attempt and every try at preparing a build. Each attempt is committed in its own transaction together with its job's new
//! status, so a crash — even SIGKILL — loses no completed result.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::record::{AttemptRecord, JobKey, JobStatus, RunId, RunStatus, TaskStatus};
use crate::task::Variant;

mod lock;
mod prepare;
pub use lock::{LockError, LockHolder, RunLock, hostname};
pub use prepare::PrepareTry;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("results store {path}: {source}")]
    Sqlite {
        /// The database path.
        path: String,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored JSON document did not decode.
    #[error("results store: corrupt record: {0}")]
    Corrupt(String),
    /// No such run.
    #[error("no run '{0}' in the results store")]
    NoSuchRun(String),
    /// The store's directory could not be created.
    #[error("cannot create the results store directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// One run as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunSummary {
    /// Run id.
    pub id: RunId,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Where the run stands.
    pub status: RunStatus,
    /// Backend name.
    pub backend: String,
    /// Dataset origin.
    pub origin: String,
    /// Its jobs, counted.
    pub jobs: JobCounts,
}

/// The jobs of a run, counted.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct JobCounts {
    /// Every job.
    pub total: u32,
    /// Jobs that succeeded.
    pub succeeded: u32,
    /// Jobs that failed (transiently or not).
    pub failed: u32,
}

/// A task as recorded in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRow {
    /// Full commit hash.
    pub commit: String,
    /// Dataset line.
    pub line: usize,
    /// Subject.
    pub subject: Option<String>,
    /// Planned, skipped or failed.
    pub status: TaskStatus,
    /// Why it was skipped or failed (empty when planned).
    pub detail: String,
    /// Step fingerprint, when planned.
    pub step_fingerprint: Option<String>,
    /// The plan's JSON, when planned (its own column; stores written before it kept the plan in
    /// `detail`, which [`TaskRow::plan_json`] still reads).
    #[serde(default)]
    pub plan: Option<String>,
}

impl TaskRow {
    /// The plan's JSON of a planned task (from its own column, else from `detail` as older
    /// stores kept it).
    pub fn plan_json(&self) -> Option<&str> {
        match (&self.plan, self.status) {
            (Some(p), _) => Some(p),
            (None, TaskStatus::Planned) => Some(&self.detail),
            _ => None,
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
  backend TEXT NOT NULL, origin TEXT NOT NULL, meta_json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
  run_id TEXT NOT NULL, commit_hash TEXT NOT NULL, line INTEGER NOT NULL, subject TEXT,
  status TEXT NOT NULL, detail TEXT NOT NULL, step_fingerprint TEXT,
  PRIMARY KEY (run_id, commit_hash));
CREATE TABLE IF NOT EXISTS jobs (
  run_id TEXT NOT NULL, commit_hash TEXT NOT NULL, variant TEXT NOT NULL,
  repeat INTEGER NOT NULL, aa INTEGER NOT NULL, seq INTEGER NOT NULL, status TEXT NOT NULL,
  PRIMARY KEY (run_id, commit_hash, variant, repeat, aa));
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, commit_hash TEXT NOT NULL,
  variant TEXT NOT NULL, repeat INTEGER NOT NULL, aa INTEGER NOT NULL, attempt INTEGER NOT NULL,
  failure TEXT, record_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_run ON attempts (run_id, commit_hash);
CREATE TABLE IF NOT EXISTS prepare_tries (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, commit_hash TEXT NOT NULL,
  variant TEXT NOT NULL, attempt INTEGER NOT NULL, failure TEXT, record_json TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS prepare_tries_run ON prepare_tries (run_id, commit_hash);
";

/// The results store.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl Store {
    /// The default location: `<data dir>/perf-runner/results.sqlite`.
    pub fn default_path() -> PathBuf {
        dirs::data_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("perf-runner")
            .join("results.sqlite")
    }

    /// Open (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        // The busy timeout first: switching to WAL needs a lock that a running writer (a run
        // being recorded while `report` or `runs` opens the store) may hold for a moment.
        conn.execute_batch(
            "PRAGMA busy_timeout=5000; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        )
        .and_then(|_| conn.execute_batch(SCHEMA))
        .and_then(|_| migrate(&conn))
        .map_err(|e| sql(path, e))?;
        Ok(Store {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
        })
    }

    /// The database path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| sql(&self.path, e))
    }

    /// Record a new run. An object `meta` gets a `perf_runner` key (version and commit of the
    /// running program, [`crate::provenance::program`]) unless it has one.
    pub fn create_run(
        &self,
        id: &RunId,
        backend: &str,
        origin: &str,
        meta: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = chrono::Utc::now().to_rfc3339();
        let mut meta = meta.clone();
        if let Some(m) = meta.as_object_mut() {
            if !m.contains_key("perf_runner") {
                let program = serde_json::to_value(crate::provenance::program())
                    .unwrap_or(serde_json::Value::Null);
                m.insert("perf_runner".into(), program);
            }
        }
        self.with(|c| {
            c.execute(
                "INSERT INTO runs (id, created_at, status, backend, origin, meta_json) VALUES (?1, ?2, 'running', ?3, ?4, ?5)",
                params![id.0, now, backend, origin, meta.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Set a run's status.
    pub fn set_run_status(&self, id: &RunId, status: RunStatus) -> Result<(), StoreError> {
        let status = status.as_str();
        self.with(|c| {
            c.execute(
                "UPDATE runs SET status = ?2 WHERE id = ?1",
                params![id.0, status],
            )
            .map(|_| ())
        })
    }

    /// A run's metadata JSON (the options it was started with).
    pub fn run_meta(&self, id: &RunId) -> Result<serde_json::Value, StoreError> {
        let meta: Option<String> = self.with(|c| {
            c.query_row("SELECT meta_json FROM runs WHERE id = ?1", [&id.0], |r| {
                r.get(0)
            })
            .optional()
        })?;
        let meta = meta.ok_or_else(|| StoreError::NoSuchRun(id.0.clone()))?;
        serde_json::from_str(&meta).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Record (or replace) a task of a run.
    pub fn put_task(&self, run: &RunId, t: &TaskRow) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO tasks (run_id, commit_hash, line, subject, status, detail, step_fingerprint, plan_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![run.0, t.commit, t.line as i64, t.subject, t.status.as_str(), t.detail, t.step_fingerprint, t.plan],
            )
            .map(|_| ())
        })
    }

    /// The tasks of a run, in dataset order.
    pub fn tasks(&self, run: &RunId) -> Result<Vec<TaskRow>, StoreError> {
        type Raw = (
            String,
            i64,
            Option<String>,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Raw> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT commit_hash, line, subject, status, detail, step_fingerprint, plan_json FROM tasks WHERE run_id = ?1 ORDER BY line",
            )?;
            let rows = st.query_map([&run.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(
                |(commit, line, subject, status, detail, step_fingerprint, plan)| {
                    let status = TaskStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("task status '{}'", status.escape_default()))
                    })?;
                    Ok(TaskRow {
                        commit,
                        line: usize::try_from(line).unwrap_or(0),
                        subject,
                        status,
                        detail,
                        step_fingerprint,
                        plan,
                    })
                },
            )
            .collect()
    }

    /// Add jobs in their scheduling order (existing ones are left as they are).
    pub fn add_jobs(&self, run: &RunId, jobs: &[JobKey]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            {
                let mut st = tx.prepare(
                    "INSERT OR IGNORE INTO jobs (run_id, commit_hash, variant, repeat, aa, seq, status) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                )?;
                for (seq, j) in jobs.iter().enumerate() {
                    st.execute(params![run.0, j.commit, j.variant.as_str(), j.repeat, j.aa, seq as i64])?;
                }
            }
            tx.commit()
        })
    }

    /// Set a job's status.
    pub fn set_job_status(
        &self,
        run: &RunId,
        job: &JobKey,
        status: JobStatus,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET status = ?6 WHERE run_id = ?1 AND commit_hash = ?2 AND variant = ?3 AND repeat = ?4 AND aa = ?5",
                params![run.0, job.commit, job.variant.as_str(), job.repeat, job.aa, status.as_str()],
            )
            .map(|_| ())
        })
    }

    /// Record an attempt and, in the same transaction, its job's new status.
    pub fn record_attempt(&self, rec: &AttemptRecord, status: JobStatus) -> Result<(), StoreError> {
        let json = serde_json::to_string(rec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let j = &rec.job;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO attempts (run_id, commit_hash, variant, repeat, aa, attempt, failure, record_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![rec.run_id.0, j.commit, j.variant.as_str(), j.repeat, j.aa, rec.attempt, rec.failure.map(|f| f.code()), json],
            )?;
            tx.execute(
                "UPDATE jobs SET status = ?6 WHERE run_id = ?1 AND commit_hash = ?2 AND variant = ?3 AND repeat = ?4 AND aa = ?5",
                params![rec.run_id.0, j.commit, j.variant.as_str(), j.repeat, j.aa, status.as_str()],
            )?;
            tx.commit()
        })
    }

    /// How many attempts a job already has (so a resumed job numbers its next attempt on).
    pub fn attempt_count(&self, run: &RunId, job: &JobKey) -> Result<u32, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM attempts WHERE run_id = ?1 AND commit_hash = ?2 AND variant = ?3 AND repeat = ?4 AND aa = ?5",
                params![run.0, job.commit, job.variant.as_str(), job.repeat, job.aa],
                |r| r.get(0),
            )
        })
    }

    /// Jobs of a run with their status, in scheduling order.
    pub fn jobs(&self, run: &RunId) -> Result<Vec<(JobKey, JobStatus)>, StoreError> {
        let rows: Vec<(String, String, u32, bool, String)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT commit_hash, variant, repeat, aa, status FROM jobs WHERE run_id = ?1 ORDER BY seq",
            )?;
            let rows = st.query_map([&run.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(|(commit, variant, repeat, aa, status)| {
                let variant: Variant = variant
                    .parse()
                    .map_err(|e: crate::task::UnknownVariant| StoreError::Corrupt(e.to_string()))?;
                let status = JobStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("job status '{status}'")))?;
                Ok((
                    JobKey {
                        commit,
                        variant,
                        repeat,
                        aa,
                    },
                    status,
                ))
            })
            .collect()
    }

    /// Every attempt of a run, in the order recorded.
    pub fn attempts(&self, run: &RunId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows: Vec<String> = self.with(|c| {
            let mut st =
                c.prepare("SELECT record_json FROM attempts WHERE run_id = ?1 ORDER BY id")?;
            let rows = st.query_map([&run.0], |r| r.get(0))?;
            rows.collect()
        })?;
        rows.iter()
            .map(|j| serde_json::from_str(j).map_err(|e| StoreError::Corrupt(e.to_string())))
            .collect()
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<RunSummary>, StoreError> {
        type Raw = (String, String, String, String, String, u32, u32, u32);
        let rows: Vec<Raw> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT r.id, r.created_at, r.status, r.backend, r.origin,
                   (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id),
                   (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id AND j.status = 'succeeded'),
                   (SELECT COUNT(*) FROM jobs j WHERE j.run_id = r.id AND j.status IN ('failed', 'failed_transient'))
                 FROM runs r ORDER BY r.created_at DESC, r.id DESC",
            )?;
            let rows = st.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?;
            rows.collect()
        })?;
        rows.into_iter()
            .map(
                |(id, created_at, status, backend, origin, total, succeeded, failed)| {
                    let status = RunStatus::parse(&status).ok_or_else(|| {
                        StoreError::Corrupt(format!("run status '{}'", status.escape_default()))
                    })?;
                    Ok(RunSummary {
                        id: RunId(id),
                        created_at,
                        status,
                        backend,
                        origin,
                        jobs: JobCounts {
                            total,
                            succeeded,
                            failed,
                        },
                    })
                },
            )
            .collect()
    }
}

/// Bring a store made by an older perf-runner up to this schema (columns are only added).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let mut st = conn.prepare("SELECT name FROM pragma_table_info('tasks')")?;
    let columns: Vec<String> = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !columns.iter().any(|c| c == "plan_json") {
        conn.execute_batch("ALTER TABLE tasks ADD COLUMN plan_json TEXT")?;
    }
    Ok(())
}

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}
