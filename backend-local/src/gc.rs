//! Leftover processes, found by the run id every child carries in its environment
//! (`PERF_RUNNER_RUN_ID`), never by name. A runner killed with SIGKILL cannot stop its
//! servers; `perf-runner gc` does.

use std::time::{Duration, Instant};

use runner_core::RunContext;

/// The environment variable that labels every child process with its run id.
pub const RUN_ID_ENV: &str = "PERF_RUNNER_RUN_ID";

/// The label to add to a child's environment, when the context has a run id.
pub fn run_label(cx: &RunContext) -> Option<(String, String)> {
    cx.labels
        .get("run-id")
        .map(|id| (RUN_ID_ENV.to_string(), id.clone()))
}

/// A labelled process found on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Process id.
    pub pid: i32,
    /// Its process group.
    pub pgid: i32,
    /// Its run id.
    pub run_id: String,
    /// Its command line.
    pub cmdline: String,
}

/// Processes labelled with `run_id` (any run when `None`).
pub fn find(run_id: Option<&str>) -> Vec<Leftover> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let needle = format!("{RUN_ID_ENV}=");
    let mut out = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<i32>() else {
            continue;
        };
        let Ok(environ) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let label = environ
            .split(|b| *b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(&needle).map(str::to_string));
        let Some(label) = label else { continue };
        if run_id.is_some_and(|r| r != label) {
            continue;
        }
        let Some((state, pgid)) = crate::process::proc_stat(&name) else {
            continue;
        };
        if state == 'Z' {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        out.push(Leftover {
            pid,
            pgid,
            run_id: label,
            cmdline,
        });
    }
    out
}

/// Stop the process groups of labelled leftovers: SIGTERM, `grace`, SIGKILL. Returns what was
/// found.
pub async fn collect(run_id: Option<&str>, grace: Duration) -> Vec<Leftover> {
    let found = find(run_id);
    let mut groups: Vec<i32> = found.iter().map(|l| l.pgid).filter(|g| *g > 1).collect();
    groups.sort_unstable();
    groups.dedup();
    for g in &groups {
        // SAFETY: plain syscall on a process group id read from /proc.
        unsafe { libc::kill(-g, libc::SIGTERM) };
    }
    let start = Instant::now();
    while start.elapsed() < grace && groups.iter().any(|g| crate::process::group_alive(*g)) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for g in &groups {
        if crate::process::group_alive(*g) {
            // SAFETY: as above.
            unsafe { libc::kill(-g, libc::SIGKILL) };
        }
    }
    found
}
