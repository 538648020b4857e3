//! The runner host's CPU use while the measured client ran, from `/proc/stat`.
//!
//! A CPU-bound engine is slowed by whatever else the host runs: on a GPU host, three rounds of
//! six ran every build 15–30 % slower, and nothing recorded why. Where the step runs on the
//! runner's own host (the local backend, Docker on the local engine, a one-node Slurm
//! cluster), the share of all CPU time that was busy — and, on a virtual machine, stolen by the
//! hypervisor for other guests — is recorded with each attempt's metrics as
//! `host_cpu_busy_pct` and `host_cpu_steal_pct`, so the report can show it per round. The
//! engine's own processes count as busy too: it is the change between rounds that tells.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::metrics::{Metrics, Provenance};

/// The source named in the metrics' provenance.
const SOURCE: &str = "/proc/stat";

/// The host's CPU over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HostCpu {
    /// Busy share of all CPU time (user, nice, system, irq, softirq, steal), percent.
    pub busy_pct: f64,
    /// Share stolen by the hypervisor, percent.
    pub steal_pct: f64,
}

/// Cumulative CPU times at one moment (clock ticks, all CPUs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    busy: u64,
    steal: u64,
    total: u64,
}

/// Read the cumulative times now; `None` where there is no `/proc/stat` (not Linux).
pub fn mark() -> Option<Mark> {
    parse(&std::fs::read_to_string(Path::new(SOURCE)).ok()?)
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest time is
/// already inside user and nice).
fn parse(stat: &str) -> Option<Mark> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = v[..] else {
        return None;
    };
    let busy = [user, nice, system, irq, softirq, steal]
        .iter()
        .try_fold(0u64, |a, x| a.checked_add(*x))?;
    let total = busy.checked_add(idle)?.checked_add(iowait)?;
    Some(Mark { busy, steal, total })
}

/// The window from `start` to `end`; `None` when no time passed or the counters went back.
pub fn between(start: Mark, end: Mark) -> Option<HostCpu> {
    let total = end.total.checked_sub(start.total).filter(|t| *t > 0)? as f64;
    let busy = end.busy.checked_sub(start.busy)? as f64;
    let steal = end.steal.checked_sub(start.steal)? as f64;
    Some(HostCpu {
        busy_pct: 100.0 * busy / total,
        steal_pct: 100.0 * steal / total,
    })
}

/// Add the window to an attempt's metrics, with `/proc/stat` as their provenance.
pub fn add_to(metrics: &mut Metrics, cpu: &HostCpu) {
    for (key, value, field) in [
        (
            "host_cpu_busy_pct",
            cpu.busy_pct,
            "busy share of the cpu line",
        ),
        (
            "host_cpu_steal_pct",
            cpu.steal_pct,
            "steal share of the cpu line",
        ),
    ] {
        metrics.insert_first(
            key,
            value,
            Provenance {
                file: SOURCE.into(),
                line: None,
                source: format!("{field} over the measured client's run (runner's host)"),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_of_a_window_and_bad_lines() {
        let a = parse("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = parse("cpu  160 0 70 860 50 5 5 10 0 0\n").unwrap();
        let w = between(a, b).unwrap();
        // Δbusy = 60 + 20 + 5 + 5 + 10 = 100, Δtotal = 100 + 60 idle = 160.
        assert!((w.busy_pct - 62.5).abs() < 1e-9, "{w:?}");
        assert!((w.steal_pct - 6.25).abs() < 1e-9, "{w:?}");
        assert_eq!(between(b, a), None, "time does not run backwards");
        assert_eq!(between(a, a), None, "an empty window says nothing");
        for bad in [
            "",
            "cpu0 1 2 3",
            "cpu  1 2 x 4 5 6 7 8",
            "cpu  1 2 3",
            "intr 5",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let huge = format!("cpu  {m} {m} 0 0 0 0 0 0", m = u64::MAX);
        assert_eq!(parse(&huge), None, "overflow is no reading");
    }

    #[test]
    fn this_hosts_proc_stat_reads_and_moves() {
        let a = mark().expect("/proc/stat on Linux");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        let w = between(a, mark().unwrap()).expect("300 ms of ticks");
        assert!(w.busy_pct > 0.0 && w.busy_pct <= 100.0, "{w:?} {x}");
        assert!((0.0..=100.0).contains(&w.steal_pct));
        let mut m = Metrics::new();
        add_to(&mut m, &w);
        assert_eq!(m.get("host_cpu_busy_pct"), Some(w.busy_pct));
        assert_eq!(m.get("host_cpu_steal_pct"), Some(w.steal_pct));
    }
}
