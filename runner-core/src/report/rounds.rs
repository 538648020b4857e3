//! The report's line on how steady the rounds were (see [`crate::stats::round_levels`]).

use std::fmt::Write as _;

use super::TaskReport;
use crate::stats::{RoundLevels, UNSTEADY_SPREAD};

/// One line on a task's rounds, or `None` when too few rounds ran to say.
pub(super) fn line(t: &TaskReport) -> Option<String> {
    let r: &RoundLevels = t.rounds.as_ref()?;
    let levels: Vec<String> = r.levels.iter().map(|l| format!("{:.2}", l.level)).collect();
    let mut head = format!(
        "rounds {} (each run over its variant's median, per round): spread {:.0} %",
        levels.join(" · "),
        r.spread * 100.0
    );
    // The runner host's CPU per round, where the steps ran on it.
    let pct = |f: fn(&crate::stats::RoundLevel) -> Option<f64>| -> Option<String> {
        let xs: Option<Vec<String>> = r
            .levels
            .iter()
            .map(|l| f(l).map(|x| format!("{x:.0}")))
            .collect();
        xs.map(|x| x.join(" · "))
    };
    if let Some(busy) = pct(|l| l.host_cpu_busy_pct) {
        let _ = write!(head, "; host CPU busy {busy} %");
        if let Some(steal) = pct(|l| l.host_cpu_steal_pct) {
            let _ = write!(head, ", stolen {steal} %");
        }
    }
    if !r.unsteady {
        return Some(format!("{head} — steady"));
    }
    let ranges: Vec<String> = t
        .metrics
        .first()
        .map(|m| {
            m.comparisons
                .iter()
                .filter_map(|c| {
                    let [lo, hi] = c.comparison.round_ratios?;
                    Some(format!("{} {lo:.2}–{hi:.2}", c.pair.label()))
                })
                .collect()
        })
        .unwrap_or_default();
    let ranges = match ranges.is_empty() {
        true => String::new(),
        false => format!(" Per-round ratios: {}.", ranges.join(", ")),
    };
    Some(format!(
        "{head} — **unsteady** (over {:.0} %): something besides the variant moved between \
         rounds. Pairing by round cancels a shift every build shares, not one that changes the \
         difference itself; an inconclusive verdict here may be decided by more rounds or a \
         quieter host.{ranges}",
        UNSTEADY_SPREAD * 100.0
    ))
}
