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

/// One line per inconclusive paired comparison of the task's primary metric: about how many
/// paired rounds would decide it (see [`crate::stats::rounds_to_decide`]).
pub(super) fn to_decide(t: &TaskReport) -> Vec<String> {
    let Some(m) = t.metrics.first() else {
        return Vec::new();
    };
    m.comparisons
        .iter()
        .filter_map(|pc| {
            let c = &pc.comparison;
            let d = c.rounds_to_decide?;
            let ran = c.paired_rounds.unwrap_or(0);
            let est = c
                .ratio
                .map_or(String::new(), |r| format!(" {:.3}", r.value));
            let what = match d.toward {
                crate::stats::Verdict::NoChange => "`no_change` (inside the noise floor)".into(),
                v => format!("`{}`", v.as_str()),
            };
            let need = match d.rounds {
                Some(k) => format!(
                    "about {k} paired rounds would decide it, as {what}, with a 90 % chance \
                     ({ran} ran; `--repeats {k}`)"
                ),
                None => format!(
                    "more than {} paired rounds would be needed for a 90 % chance: the \
                     estimate is about the size of the noise floor, and more rounds are \
                     unlikely to decide it",
                    crate::stats::MAX_ROUNDS
                ),
            };
            Some(format!(
                "{} inconclusive: if its estimate{est} and its per-round spread (sd {:.3} of \
                 the log ratio) hold, {need}",
                pc.pair.label(),
                d.log_sd
            ))
        })
        .collect()
}
