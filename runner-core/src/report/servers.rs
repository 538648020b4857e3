//! How a task's servers ran ([`ServersReport`]): sleep mode or a restart per job, and why;
//! server starts against jobs; switch costs; what the engine allotted to each variant (a
//! variant that got another KV-cache capacity than the baseline is flagged); and the share of
//! the GPU time spent inside measured windows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::record::{AttemptRecord, Capacity, ServeMode};
use crate::stats::median;

/// The servers of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ServersReport {
    /// `sleep`, `restart`, or `sleep+restart` when the task's attempts used both.
    pub mode: String,
    /// Why a restart per job (the first reason recorded), when any attempt restarted.
    pub why: Option<String>,
    /// Server starts: one per attempt in restart mode, one per start of a warm server.
    pub starts: u32,
    /// Attempts that had a server.
    pub attempts: u32,
    /// Median `POST /wake_up`, ms.
    pub wake_ms: Option<f64>,
    /// Median `POST /sleep`, ms.
    pub sleep_ms: Option<f64>,
    /// The KV-cache capacity each variant got (label → the last one seen).
    pub capacity: BTreeMap<String, Capacity>,
    /// Variants whose capacity differs from the baseline's: their comparison is not like for
    /// like (a larger cache admits more concurrent requests).
    pub capacity_differs: Vec<String>,
}

/// The servers of a task's attempts; `None` when none had a server (offline modes).
pub fn servers(attempts: &[&AttemptRecord]) -> Option<ServersReport> {
    let served: Vec<&AttemptRecord> = attempts
        .iter()
        .copied()
        .filter(|a| a.serve.is_some())
        .collect();
    let modes: BTreeSet<&str> = served
        .iter()
        .filter_map(|a| a.serve.as_ref().map(|s| s.mode.as_str()))
        .collect();
    if modes.is_empty() {
        return None;
    }
    let mut warm_starts: BTreeSet<(String, u32)> = BTreeSet::new();
    let mut restarts = 0u32;
    let mut capacity: BTreeMap<String, Capacity> = BTreeMap::new();
    let (mut wake, mut sleep) = (Vec::new(), Vec::new());
    let mut why = None;
    for a in &served {
        let Some(s) = &a.serve else { continue };
        let label = super::label(a.job.variant, a.job.aa);
        match s.mode {
            ServeMode::Sleep => {
                // The A/A baseline shares the baseline's warm server.
                warm_starts.insert((a.job.variant.to_string(), s.server_start));
                wake.extend(s.wake_ms);
                sleep.extend(s.sleep_ms);
            }
            ServeMode::Restart => {
                restarts += 1;
                if why.is_none() {
                    why = s.why.clone();
                }
            }
        }
        if let Some(c) = &s.kv_cache {
            capacity.insert(label, c.clone());
        }
    }
    let differs = match capacity.get("baseline") {
        Some(base) => capacity
            .iter()
            .filter(|(_, c)| c.amount != base.amount || c.unit != base.unit)
            .map(|(l, _)| l.clone())
            .collect(),
        None => Vec::new(),
    };
    Some(ServersReport {
        mode: modes.into_iter().collect::<Vec<_>>().join("+"),
        why,
        starts: warm_starts.len() as u32 + restarts,
        attempts: served.len() as u32,
        wake_ms: median(&wake),
        sleep_ms: median(&sleep),
        capacity,
        capacity_differs: differs,
    })
}

/// The share of GPU time inside measured windows: the clients' own benchmark durations
/// (`duration_s` × GPUs) over all GPU·seconds of the attempts (server starts, warm-ups,
/// switches and failures included). `None` without GPU time or durations.
pub fn measured_share(attempts: &[&AttemptRecord]) -> Option<f64> {
    let total: f64 = attempts
        .iter()
        .map(|a| a.gpu_seconds)
        .filter(|g| g.is_finite())
        .sum();
    let measured: f64 = attempts
        .iter()
        .filter(|a| a.succeeded())
        .filter_map(|a| {
            let d = a.metrics.get("duration_s")?;
            Some(d * a.gpu_names.len().max(1) as f64)
        })
        .filter(|m| m.is_finite())
        .sum();
    (total > 0.0 && measured > 0.0).then(|| (measured / total).min(1.0))
}

/// One line for a markdown report.
pub fn line(s: &ServersReport) -> String {
    let mut out = format!(
        "servers: {} — {} start(s) for {} job attempt(s)",
        s.mode, s.starts, s.attempts
    );
    if let (Some(w), Some(sl)) = (s.wake_ms, s.sleep_ms) {
        out.push_str(&format!("; wake {w:.0} ms, sleep {sl:.0} ms (medians)"));
    }
    if let Some(why) = &s.why {
        out.push_str(&format!("; restart because {why}"));
    }
    if !s.capacity_differs.is_empty() {
        let caps: Vec<String> = s
            .capacity
            .iter()
            .map(|(l, c)| format!("{l} {} {}", c.amount, c.unit))
            .collect();
        out.push_str(&format!(
            "; **KV-cache capacity differs** ({}): not like for like",
            caps.join(", ")
        ));
    }
    out
}
