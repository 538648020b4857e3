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
    if !ranges.is_empty() {
        let _ = write!(head, "; per-round ratios {}", ranges.join(", "));
    }
    let on = match r.tested_sides {
        2 => "the baseline and its A/A",
        _ => "every variant",
    };
    let test = match r.p_value {
        Some(p) => format!("p = {p:.3} that run noise alone moves {on} this much across rounds"),
        None => "too few paired rounds to test".to_string(),
    };
    if !r.unsteady {
        return Some(format!("{head} — steady ({test})"));
    }
    Some(format!(
        "{head} — **unsteady** (over {:.0} %, {test}): something besides the variant moved \
         between rounds. Pairing by round cancels a shift every build shares, not one that \
         changes the difference itself; an inconclusive verdict here may be decided by more \
         rounds or a quieter host.",
        UNSTEADY_SPREAD * 100.0
    ))
}
