//! One process per run: a lock row in the store naming its holder (pid, host, boot, process
//! start time). A second process is refused while the holder lives; a holder that is gone (its
//! pid is not running on this host any more, or is another process now, or the host rebooted)
//! is taken over. A holder on another host cannot be checked from here: it is refused unless
//! the caller breaks the lock on purpose.

use std::sync::Arc;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::record::RunId;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS run_locks (
  run_id TEXT PRIMARY KEY, pid INTEGER NOT NULL, host TEXT NOT NULL, boot_id TEXT NOT NULL,
  proc_start INTEGER, since TEXT NOT NULL);";

/// The process that holds (or held) a run's lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// The boot of its host (Linux `boot_id`; empty when unknown).
    pub boot_id: String,
    /// Its start time in clock ticks after boot (Linux `/proc/<pid>/stat`), which tells a
    /// reused pid from the holder.
    pub proc_start: Option<u64>,
    /// When it took the lock, RFC 3339.
    pub since: String,
}

impl LockHolder {
    /// This process.
    pub fn me() -> LockHolder {
        let pid = std::process::id();
        LockHolder {
            pid,
            host: hostname(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            proc_start: proc_start(pid),
            since: chrono::Utc::now().to_rfc3339(),
        }
    }

    /// Whether this process, on this host, is still running. `None` when that cannot be known
    /// from here (another host).
    pub fn alive(&self) -> Option<bool> {
        let me = LockHolder::me();
        if self.host != me.host {
            return None;
        }
        if !self.boot_id.is_empty() && !me.boot_id.is_empty() && self.boot_id != me.boot_id {
            return Some(false);
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return Some(false);
        };
        if std::path::Path::new("/proc/self/stat").exists() {
            // Linux: the pid is running, not a zombie, and is the same process (start time).
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let Some((state, start)) = stat.as_deref().and_then(parse_stat) else {
                return Some(false);
            };
            let same = self.proc_start.is_none_or(|s| s == start);
            return Some(same && state != 'Z' && state != 'X');
        }
        // SAFETY: signal 0 only asks whether the process exists.
        let r = unsafe { libc::kill(pid, 0) };
        Some(r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM))
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} since {}",
            self.pid, self.host, self.since
        )
    }
}

/// Why a run's lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A live process on this host holds it.
    #[error(
        "run {run} is being run by {holder}; only one process may run it at a time (wait for it to end, or stop it)"
    )]
    Running {
        /// The run.
        run: String,
        /// Who holds it.
        holder: LockHolder,
    },
    /// A process on another host holds it; whether it still runs cannot be checked here.
    #[error(
        "run {run} is held by {holder}; this host cannot tell whether that process still runs — if it does not, take the run over with --break-lock"
    )]
    Elsewhere {
        /// The run.
        run: String,
        /// Who holds it.
        holder: LockHolder,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A held run lock; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    store: Arc<Store>,
    run: RunId,
    me: LockHolder,
    /// The earlier holder whose lock was taken over (it was gone, or broken on purpose).
    pub taken_over: Option<LockHolder>,
}

impl RunLock {
    /// Release the lock now (also done on drop).
    pub fn release(self) {}
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let (run, me) = (&self.run, &self.me);
        let r = self.store.with(|c| {
            c.execute(
                "DELETE FROM run_locks WHERE run_id = ?1 AND pid = ?2 AND host = ?3 AND since = ?4",
                params![run.0, me.pid, me.host, me.since],
            )
        });
        if let Err(e) = r {
            tracing::warn!(run = %run, error = %e, "releasing the run lock failed");
        }
    }
}

impl Store {
    /// Take `run`'s lock for this process: refused while a live process on this host holds it,
    /// or (unless `break_foreign`) any process on another host; taken over from a holder that
    /// is gone.
    pub fn lock_run(
        self: &Arc<Self>,
        run: &RunId,
        break_foreign: bool,
    ) -> Result<RunLock, LockError> {
        let me = LockHolder::me();
        let taken_over = self.with(|c| {
            c.execute_batch(SCHEMA)?;
            // IMMEDIATE: two processes asking at once are serialised by SQLite's write lock.
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let old = read_holder(&tx, run)?;
            let verdict = match &old {
                None => Ok(None),
                Some(h) => match h.alive() {
                    Some(false) => Ok(Some(h.clone())),
                    Some(true) => Err(LockError::Running {
                        run: run.0.clone(),
                        holder: h.clone(),
                    }),
                    None if break_foreign => Ok(Some(h.clone())),
                    None => Err(LockError::Elsewhere {
                        run: run.0.clone(),
                        holder: h.clone(),
                    }),
                },
            };
            if verdict.is_ok() {
                tx.execute(
                    "INSERT OR REPLACE INTO run_locks (run_id, pid, host, boot_id, proc_start, since) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![run.0, me.pid, me.host, me.boot_id, me.proc_start.map(|s| s as i64), me.since],
                )?;
                tx.commit()?;
            }
            Ok(verdict)
        })??;
        if let Some(h) = &taken_over {
            tracing::info!(run = %run, "taking over the run lock of {h}");
        }
        Ok(RunLock {
            store: self.clone(),
            run: run.clone(),
            me,
            taken_over,
        })
    }

    /// Who holds `run`'s lock, if anyone (alive or not).
    pub fn run_lock(&self, run: &RunId) -> Result<Option<LockHolder>, StoreError> {
        self.with(|c| {
            c.execute_batch(SCHEMA)?;
            read_holder(c, run)
        })
    }
}

fn read_holder(c: &rusqlite::Connection, run: &RunId) -> rusqlite::Result<Option<LockHolder>> {
    c.query_row(
        "SELECT pid, host, boot_id, proc_start, since FROM run_locks WHERE run_id = ?1",
        [&run.0],
        |r| {
            Ok(LockHolder {
                pid: r.get(0)?,
                host: r.get(1)?,
                boot_id: r.get(2)?,
                proc_start: r.get::<_, Option<i64>>(3)?.map(|s| s as u64),
                since: r.get(4)?,
            })
        },
    )
    .optional()
}

/// This host's name (Linux's `/proc/sys/kernel/hostname`, else `gethostname`).
pub fn hostname() -> String {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        if !s.trim().is_empty() {
            return s.trim().to_string();
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the result is NUL-terminated or truncated.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if r == 0 && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_string()
    }
}

/// A process's start time in clock ticks after boot, from `/proc/<pid>/stat` (Linux).
fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, start)| start)
}

/// State letter and start time (field 22) of a `/proc/<pid>/stat` line. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state: ppid, pgrp, session, tty_nr, tpgid, flags, minflt, cminflt, majflt,
    // cmajflt, utime, stime, cutime, cstime, priority, nice, num_threads, itrealvalue,
    // starttime — the 19th.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
#[path = "lock_tests.rs"]
mod tests;
