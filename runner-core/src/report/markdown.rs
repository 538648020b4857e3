//! The markdown report: run summary, per-task tables of medians with CIs, ratios with CIs and
//! verdicts, validity, cost; failures with codes and evidence; skipped tasks with reasons.

use std::fmt::Write as _;

use super::{
    FailureReport, MetricReport, Pair, PairComparison, Report, TaskReport, Validity, verdict_name,
};
use crate::metrics::Unit;
use crate::stats::{NoiseFloor, Summary};
use crate::task::Variant;

/// A number with about four significant digits.
pub(super) fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "–".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median [lo, hi] n=N`.
pub(super) fn summary_text(s: &Summary) -> String {
    format!(
        "{} [{}, {}] n={}",
        num(s.median),
        num(s.ci[0]),
        num(s.ci[1]),
        s.n
    )
}

/// `±2.0 % (A/A)`.
pub(super) fn floor_text(f: &NoiseFloor) -> String {
    f.to_string()
}

/// Seconds as `1h02m`, `3m05s` or `12.0s`.
pub(super) fn duration(s: Option<f64>) -> String {
    match s {
        None => "–".into(),
        Some(s) if s >= 3600.0 => {
            format!("{}h{:02}m", (s / 3600.0) as u64, (s % 3600.0 / 60.0) as u64)
        }
        Some(s) if s >= 60.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!("{s:.1}s"),
    }
}

/// `1.102 [1.081, 1.124] improved`, with `(unscored)` for unscored agent comparisons.
pub(super) fn pair_text(c: &PairComparison) -> String {
    let cmp = &c.comparison;
    let mut out = match cmp.ratio {
        Some(r) => format!(
            "{:.3} [{:.3}, {:.3}] {}",
            r.value,
            r.ci[0],
            r.ci[1],
            verdict_name(cmp.verdict)
        ),
        None => verdict_name(cmp.verdict).to_string(),
    };
    if let Some(mw) = cmp.mann_whitney {
        let _ = write!(out, " · MW p={:.1e}", mw.p_value);
    }
    if let Some(e) = cmp.largest_significant_effect {
        let _ = write!(out, " · ≥{:.1} % sig.", e * 100.0);
    }
    if !c.scored {
        out.push_str(" (unscored)");
    }
    out
}

/// A variant's summary of a metric, from whichever comparison has it as a side.
pub(super) fn metric_summary(m: &MetricReport, v: Variant) -> Option<Summary> {
    m.comparisons.iter().find_map(|c| {
        let (b, o) = c.pair.sides();
        if b == v {
            Some(c.comparison.base)
        } else if o == v {
            Some(c.comparison.other)
        } else {
            None
        }
    })
}

/// A table cell: one line, no pipes, no raw HTML, no control or bidi characters.
fn cell(s: &str) -> std::borrow::Cow<'_, str> {
    crate::text::md_cell(s)
}

/// A code span inside a table cell (shown literally; pipes and backticks cannot break it).
fn code_cell(s: &str) -> String {
    crate::text::md_code(s)
}

/// Failures of one task grouped by variant, code, detail and evidence: `(first, repeats)`.
pub(super) fn grouped_failures(fs: &[FailureReport]) -> Vec<(&FailureReport, Vec<u32>, u32)> {
    let mut out: Vec<(&FailureReport, Vec<u32>, u32)> = Vec::new();
    for f in fs {
        let same = |g: &FailureReport| {
            (g.variant, g.aa, &g.code, &g.detail, &g.evidence)
                == (f.variant, f.aa, &f.code, &f.detail, &f.evidence)
        };
        match out.iter_mut().find(|(g, ..)| same(g)) {
            Some((_, repeats, attempts)) => {
                repeats.push(f.repeat);
                *attempts += f.attempts;
            }
            None => out.push((f, vec![f.repeat], f.attempts)),
        }
    }
    out
}

/// `0, 1, 2` as `0–2`; otherwise comma-separated.
pub(super) fn repeats_text(r: &[u32]) -> String {
    let contiguous = r.windows(2).all(|w| w[1] == w[0] + 1);
    match r {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] if contiguous => format!("{first}–{last}"),
        _ => r.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
    }
}

/// The first `n` characters (never splits a character).
pub(super) fn prefix(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

fn short(commit: &str) -> &str {
    prefix(commit, 10)
}

fn trunc(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Summary counts: planned, skipped, reproduced, measured.
pub(super) fn counts(r: &Report) -> (usize, usize, usize, usize) {
    let planned = r
        .tasks
        .iter()
        .filter(|t| t.status == crate::record::TaskStatus::Planned)
        .count();
    let reproduced = r
        .tasks
        .iter()
        .filter(|t| t.validity == Validity::Reproduced)
        .count();
    let measured = r
        .tasks
        .iter()
        .filter(|t| !matches!(t.validity, Validity::NotMeasured { .. }))
        .count();
    (planned, r.tasks.len() - planned, reproduced, measured)
}

fn metric_rows(out: &mut String, t: &TaskReport, m: &MetricReport, primary: bool) {
    let unit = Unit::of_key(&m.metric).label();
    let dir = if m.higher_is_better { "↑" } else { "↓" };
    let side = |v: Variant| -> String {
        let s = if primary {
            t.variant(v, false).and_then(|r| r.summary)
        } else {
            metric_summary(m, v)
        };
        s.map(|s| summary_text(&s)).unwrap_or_else(|| "–".into())
    };
    let pair = |p: Pair| -> String {
        m.comparisons
            .iter()
            .find(|c| c.pair == p)
            .map(pair_text)
            .unwrap_or_else(|| "–".into())
    };
    let _ = writeln!(
        out,
        "| {} | {} ({unit}, {dir}) | {} | {} | {} | {} | {} | {} |",
        code_cell(short(&t.commit)),
        cell(&m.metric),
        side(Variant::Baseline),
        side(Variant::Human),
        side(Variant::Agent),
        pair(Pair::HumanVsBaseline),
        pair(Pair::AgentVsHuman),
        pair(Pair::AgentVsBaseline),
    );
}

/// Render the report as markdown.
pub fn markdown(r: &Report) -> String {
    let mut out = String::new();
    let (planned, skipped, reproduced, measured) = counts(r);
    let o = &r.options;
    let _ = writeln!(out, "# perf-runner report: run {}\n", code_cell(&r.run.id));
    let _ = writeln!(
        out,
        "- created {} · status {} · backend {} · dataset {}",
        cell(&r.run.created_at),
        cell(r.run.status.as_str()),
        cell(&r.run.backend_text()),
        cell(&r.run.origin)
    );
    let _ = writeln!(
        out,
        "- {} tasks: {planned} planned, {skipped} skipped or unplannable; human speedup reproduced in {reproduced} of {measured} measured",
        r.tasks.len()
    );
    let aa = if o.aa_floor {
        format!(
            "A/A-measured per task where the run has A/A repeats (at least ±{:.1} %), else the configured ±{:.1} %",
            o.aa_floor_minimum * 100.0,
            o.configured_floor * 100.0
        )
    } else {
        format!("configured ±{:.1} %", o.configured_floor * 100.0)
    };
    let _ = writeln!(out, "- noise floor: {aa}");
    let _ = writeln!(
        out,
        "- statistics: medians with 95 % percentile-bootstrap CIs ({} resamples, seed {}); ratios are other/base; Mann–Whitney only with ≥ 10 samples per side",
        o.resamples, o.seed
    );
    let _ = writeln!(
        out,
        "- cost: {:.0} GPU·s, wall {}, {} attempts ({} retries)\n",
        r.cost.gpu_seconds,
        duration(r.cost.wall_s),
        r.cost.attempts,
        r.cost.retries
    );

    out.push_str("## Tasks\n\n");
    out.push_str("| commit | subject | mode | backend | validity | noise floor | jobs ok/total | attempts (retries) | GPU·s | wall |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for t in &r.tasks {
        let (ok, total) = t
            .variants
            .iter()
            .fold((0, 0), |(a, b), v| (a + v.succeeded, b + v.jobs));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {ok}/{total} | {} ({}) | {:.0} | {} |",
            code_cell(short(&t.commit)),
            cell(&trunc(t.subject.as_deref().unwrap_or(""), 60)),
            t.mode.map(|m| m.as_str()).unwrap_or("–"),
            if t.backends.is_empty() {
                "–".to_string()
            } else {
                cell(&t.backends.join(", ")).into_owned()
            },
            cell(&t.validity.text()),
            if t.metrics.is_empty() {
                "–".to_string()
            } else {
                floor_text(&t.noise_floor)
            },
            t.cost.attempts,
            t.cost.retries,
            t.cost.gpu_seconds,
            duration(t.cost.wall_s),
        );
    }

    let served: Vec<&TaskReport> = r.tasks.iter().filter(|t| t.servers.is_some()).collect();
    if !served.is_empty() {
        out.push('\n');
        for t in served {
            let Some(s) = &t.servers else { continue };
            let share = t
                .cost
                .measured_share
                .map(|m| format!("; {:.1} % of its GPU·s inside measured windows", m * 100.0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "- {} {}{share}",
                code_cell(short(&t.commit)),
                cell(&super::servers::line(s))
            );
        }
    }

    let header = "| commit | metric | baseline | human | agent | human/baseline | agent/human | agent/baseline |\n|---|---|---|---|---|---|---|---|\n";
    out.push_str("\n## Primary metric\n\nMedian [95 % CI] n per variant (n = runs: a run, not a request, is the replicate); ratio [95 % CI] and verdict per pair — paired by interleaved round (geometric mean of per-round ratios, Student-t CI) where at least 3 rounds pair, so a drift that every variant of a round shares cancels; otherwise medians with a bootstrap CI. Agent comparisons are unscored where the human speedup did not reproduce.\n\n");
    out.push_str(header);
    for t in &r.tasks {
        if let Some(m) = t.metrics.first() {
            metric_rows(&mut out, t, m, true);
        }
    }
    let whys: Vec<&TaskReport> = r.tasks.iter().filter(|t| t.primary_why.is_some()).collect();
    if !whys.is_empty() {
        out.push('\n');
        for t in &whys {
            let _ = writeln!(
                out,
                "- {} decides on {}: {}",
                code_cell(short(&t.commit)),
                code_cell(t.primary_metric.as_deref().unwrap_or("?")),
                cell(t.primary_why.as_deref().unwrap_or(""))
            );
        }
    }
    let to_decide: Vec<(&TaskReport, String)> = r
        .tasks
        .iter()
        .flat_map(|t| super::rounds::to_decide(t).into_iter().map(move |l| (t, l)))
        .collect();
    if whys.is_empty() && !to_decide.is_empty() {
        out.push('\n');
    }
    for (t, l) in to_decide {
        let _ = writeln!(out, "- {} {l}", code_cell(short(&t.commit)));
    }
    let steadiness: Vec<(&TaskReport, String)> = r
        .tasks
        .iter()
        .filter_map(|t| super::rounds::line(t).map(|l| (t, l)))
        .collect();
    if !steadiness.is_empty() {
        out.push('\n');
        for (t, l) in steadiness {
            let _ = writeln!(out, "- {} {l}", code_cell(short(&t.commit)));
        }
    }
    let secondary: Vec<(&TaskReport, &MetricReport)> = r
        .tasks
        .iter()
        .flat_map(|t| t.metrics.iter().skip(1).map(move |m| (t, m)))
        .collect();
    if !secondary.is_empty() {
        out.push_str("\n## Secondary metrics (descriptive)\n\nThroughput and P50/P99 latencies beside the primary metric. Their verdicts are descriptive: no decision is drawn from them.\n\n");
        out.push_str(header);
        for (t, m) in secondary {
            metric_rows(&mut out, t, m, false);
        }
    }
    let aa: Vec<&TaskReport> = r.tasks.iter().filter(|t| t.aa.is_some()).collect();
    if !aa.is_empty() {
        out.push_str("\n## A/A noise measurements\n\n| commit | baseline | baseline-aa | ratio [95 % CI] | floor used |\n|---|---|---|---|---|\n");
        for t in aa {
            if let Some(c) = &t.aa {
                let ratio = c
                    .ratio
                    .map(|r| format!("{:.3} [{:.3}, {:.3}]", r.value, r.ci[0], r.ci[1]))
                    .unwrap_or_else(|| "–".into());
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {ratio} | {} |",
                    code_cell(short(&t.commit)),
                    summary_text(&c.base),
                    summary_text(&c.other),
                    floor_text(&t.noise_floor)
                );
            }
        }
    }

    super::details::markdown(&mut out, r);

    let failures: Vec<_> = r
        .tasks
        .iter()
        .flat_map(|t| {
            grouped_failures(&t.failures)
                .into_iter()
                .map(move |g| (t, g))
        })
        .collect();
    if !failures.is_empty() {
        out.push_str("\n## Failures\n\n| commit | variant | repeats | code | attempts | detail | evidence |\n|---|---|---|---|---|---|---|\n");
        for (t, (f, repeats, attempts)) in failures {
            let evidence: Vec<String> = f
                .evidence
                .iter()
                .take(3)
                .map(|e| code_cell(&trunc(e, 160)))
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {attempts} | {} | {} |",
                code_cell(short(&t.commit)),
                super::label(f.variant, f.aa),
                repeats_text(&repeats),
                code_cell(&f.code),
                cell(&trunc(f.detail.as_deref().unwrap_or(""), 200)),
                evidence.join("<br>"),
            );
        }
    }
    let retried: Vec<_> = r
        .tasks
        .iter()
        .flat_map(|t| t.prepare.iter().filter(|p| p.failed()).map(move |p| (t, p)))
        .collect();
    if !retried.is_empty() {
        out.push_str("\n## Failed prepare tries\n\n| commit | variant | try | code | seconds | detail |\n|---|---|---|---|---|---|\n");
        for (t, p) in retried {
            let code = p.failure.map(|f| f.code()).unwrap_or("");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {} |",
                code_cell(short(&t.commit)),
                p.variant,
                p.attempt,
                code_cell(code),
                p.seconds,
                cell(&trunc(p.detail.as_deref().unwrap_or(""), 200)),
            );
        }
    }
    let skipped: Vec<&TaskReport> = r
        .tasks
        .iter()
        .filter(|t| t.status != crate::record::TaskStatus::Planned)
        .collect();
    if !skipped.is_empty() {
        out.push_str("\n## Skipped\n\n| commit | line | subject | status | reason |\n|---|---|---|---|---|\n");
        for t in skipped {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                code_cell(short(&t.commit)),
                t.line,
                cell(&trunc(t.subject.as_deref().unwrap_or(""), 60)),
                cell(t.status.as_str()),
                cell(&trunc(t.reason.as_deref().unwrap_or(""), 300)),
            );
        }
    }
    out
}
