//! The agent comparison plot: per task with an agent, agent/baseline and agent/human on the
//! task's metric as speedups (> 1 = the agent build is faster, whichever direction the metric
//! has) with their 95 % CIs and the task's noise floor as a band, coloured by verdict.
//! Comparisons left unscored (the human speedup did not reproduce) are drawn hollow.

use std::fmt::Write as _;

use super::markdown::prefix;
use super::svg::{domain, esc, verdict_colour};
use super::{Pair, Report, TaskReport, verdict_name};
use crate::stats::Verdict;

/// One row of the plot.
struct Row<'a> {
    task: &'a TaskReport,
    pair: Pair,
    speedup: f64,
    ci: [f64; 2],
    verdict: Verdict,
    scored: bool,
}

fn rows(r: &Report) -> Vec<Row<'_>> {
    let mut out = Vec::new();
    for t in &r.tasks {
        let Some(m) = t.metrics.first() else { continue };
        for pair in [Pair::AgentVsBaseline, Pair::AgentVsHuman] {
            let Some(c) = m.comparisons.iter().find(|c| c.pair == pair) else {
                continue;
            };
            let Some(ratio) = c.comparison.ratio else {
                continue;
            };
            let (speedup, ci) = if c.comparison.higher_is_better {
                (ratio.value, ratio.ci)
            } else {
                (1.0 / ratio.value, [1.0 / ratio.ci[1], 1.0 / ratio.ci[0]])
            };
            if speedup.is_finite() && ci.iter().all(|c| c.is_finite()) {
                out.push(Row {
                    task: t,
                    pair,
                    speedup,
                    ci,
                    verdict: c.comparison.verdict,
                    scored: c.scored,
                });
            }
        }
    }
    out
}

/// The plot, `None` when no task has an agent comparison with a ratio.
pub(super) fn agent_plot(r: &Report) -> Option<String> {
    let rows = rows(r);
    if rows.is_empty() {
        return None;
    }
    let (w, left, right, top, bottom, row_h) = (900.0, 330.0, 150.0, 48.0, 40.0, 22.0);
    let ph = row_h * rows.len() as f64;
    let h = top + bottom + ph;
    let mut s = format!(
        r##"<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="agent comparison"><title>agent/baseline and agent/human speedup per task</title><text x="10" y="20" font-size="13" font-weight="600">agent/baseline and agent/human speedup on each task's metric (&gt; 1 = agent faster), 95 % CI</text><text x="10" y="38" font-size="11" fill="#6b7280">grey band: the task's noise floor; hollow: unscored (the human speedup did not reproduce)</text>"##
    );
    let bounds = rows
        .iter()
        .flat_map(|r| [r.speedup, r.ci[0], r.ci[1]])
        .chain(rows.iter().flat_map(|r| {
            [
                1.0 - r.task.noise_floor.value,
                1.0 + r.task.noise_floor.value,
            ]
        }))
        .chain([1.0]);
    let (lo, hi) = domain(bounds)?;
    let pw = w - left - right;
    let x = |v: f64| left + pw * (v - lo) / (hi - lo);
    super::svg::ratio_frame(&mut s, (left, top, pw, ph), (lo, hi));
    for (i, row) in rows.iter().enumerate() {
        let cy = top + row_h * (i as f64 + 0.5);
        let f = row.task.noise_floor.value;
        let colour = verdict_colour(row.verdict);
        let fill = if row.scored { colour } else { "#ffffff" };
        let subject: String = row
            .task
            .subject
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(26)
            .collect();
        let unscored = if row.scored { "" } else { " (unscored)" };
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e5e7eb"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end"><tspan font-family="monospace">{}</tspan> {} · {}</text><line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{:.1}" cy="{cy:.1}" r="5" fill="{fill}" stroke="{colour}" stroke-width="2"><title>{} {} {:.3} [{:.3}, {:.3}] {}{unscored}</title></circle><text x="{:.1}" y="{:.1}" font-size="11">{:.3} {}{unscored}</text>"##,
            x(1.0 - f),
            cy - row_h * 0.35,
            x(1.0 + f) - x(1.0 - f),
            row_h * 0.7,
            left - 8.0,
            cy + 4.0,
            esc(prefix(&row.task.commit, 8)),
            esc(&subject),
            esc(&row.pair.label()),
            x(row.ci[0]),
            x(row.ci[1]),
            x(row.speedup),
            esc(&row.task.commit),
            esc(&row.pair.label()),
            row.speedup,
            row.ci[0],
            row.ci[1],
            verdict_name(row.verdict),
            w - right + 8.0,
            cy + 4.0,
            row.speedup,
            verdict_name(row.verdict)
        );
    }
    s.push_str("</svg>");
    Some(s)
}
