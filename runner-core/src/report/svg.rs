//! Inline SVG plots (no scripts, no external resources): per task the primary metric per
//! variant (repeats as dots, median with its 95 % CI as a bar, the noise floor around the
//! baseline as a band), and per run the distribution of human/baseline speedups across commits.

use std::fmt::Write as _;

use super::markdown::{num, prefix};
use super::{Report, TaskReport, verdict_name};
use crate::metrics::Unit;
use crate::stats::Verdict;
use crate::task::Variant;

/// Escape text for XML/HTML content and attributes.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            // Bidi overrides and invisible format characters: shown, never obeyed.
            c if crate::text::needs_escape(c) => {
                out.push_str(&crate::text::escape(c.encode_utf8(&mut [0; 4])));
            }
            c => out.push(c),
        }
    }
    out
}

/// The colour of a variant.
pub(super) fn variant_colour(v: Variant, aa: bool) -> &'static str {
    match (v, aa) {
        (_, true) => "#9ca3af",
        (Variant::Baseline, _) => "#4b5563",
        (Variant::Human, _) => "#2563eb",
        (Variant::Agent, _) => "#ea580c",
    }
}

/// The colour of a verdict.
pub(super) fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Improved => "#16a34a",
        Verdict::Regressed => "#dc2626",
        Verdict::NoChange => "#6b7280",
        Verdict::Inconclusive => "#d97706",
    }
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for about `target` ticks over `range`.
fn nice_step(range: f64, target: f64) -> f64 {
    let raw = (range / target).max(f64::MIN_POSITIVE);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Padded `[lo, hi]` of the values (never empty or inverted).
pub(super) fn domain(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(v), h.max(v))
        });
    if !lo.is_finite() {
        return None;
    }
    let span = if hi > lo {
        hi - lo
    } else {
        lo.abs().max(1.0) * 0.02
    };
    Some((lo - span * 0.08, hi + span * 0.08))
}

pub(super) fn ticks(lo: f64, hi: f64, target: f64) -> Vec<f64> {
    let step = nice_step(hi - lo, target);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last.min(first + 50))
        .map(|k| k as f64 * step)
        .collect()
}

/// The task's plot, `None` when no variant has a sample.
pub(super) fn task_plot(t: &TaskReport) -> Option<String> {
    let metric = t.primary_metric.as_deref()?;
    if t.variants.iter().all(|v| v.samples.is_empty()) {
        return None;
    }
    let all = t.variants.iter().flat_map(|v| {
        let ci = v.summary.map(|s| s.ci).unwrap_or([f64::NAN; 2]);
        v.samples.iter().map(|s| s.value).chain(ci)
    });
    let (lo, hi) = domain(all)?;
    let (w, h, left, right, top, bottom) = (560.0, 290.0, 72.0, 16.0, 40.0, 46.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let y = |v: f64| top + ph * (1.0 - (v - lo) / (hi - lo));
    let mut s = String::new();
    let unit = Unit::of_key(metric).label();
    let better = if crate::metrics::higher_is_better(metric) {
        "higher is better"
    } else {
        "lower is better"
    };
    let _ = write!(
        s,
        r#"<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{} per variant"><title>{} {} per variant</title>"#,
        esc(metric),
        esc(&t.commit),
        esc(metric)
    );
    let _ = write!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#d1d5db"/><text x="{left}" y="16" font-size="13" font-weight="600">{} ({}, {better})</text>"##,
        esc(metric),
        esc(unit)
    );
    if let Some(b) = t.variant(Variant::Baseline, false).and_then(|v| v.summary) {
        let f = t.noise_floor.value;
        let (y1, y2) = (
            y(b.median * (1.0 + f)).max(top),
            y(b.median * (1.0 - f)).min(top + ph),
        );
        if y2 > y1 {
            let _ = write!(
                s,
                r##"<rect x="{left}" y="{y1:.1}" width="{pw}" height="{:.1}" fill="#e5e7eb" opacity="0.7"/>"##,
                y2 - y1,
            );
        }
        let _ = write!(
            s,
            r##"<text x="{left}" y="31" font-size="10" fill="#6b7280">grey band: baseline median ±{:.1} % noise floor</text>"##,
            f * 100.0
        );
    }
    for v in ticks(lo, hi, 5.0) {
        let yy = y(v);
        let _ = write!(
            s,
            r##"<line x1="{:.1}" x2="{left}" y1="{yy:.1}" y2="{yy:.1}" stroke="#6b7280"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 4.0,
            left - 6.0,
            yy + 4.0,
            num(v)
        );
    }
    let slot = pw / t.variants.len() as f64;
    for (i, v) in t.variants.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let colour = variant_colour(v.variant, v.aa);
        for (k, sample) in v.samples.iter().enumerate() {
            let jitter = ((k * 37) % 9) as f64 * 2.0 - 8.0;
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}" fill-opacity="0.55"><title>repeat {}: {}</title></circle>"#,
                cx - 14.0 + jitter,
                y(sample.value),
                sample.repeat,
                num(sample.value)
            );
        }
        if let Some(sm) = v.summary {
            let x = cx + 14.0;
            let (y1, y2, ym) = (y(sm.ci[1]), y(sm.ci[0]), y(sm.median));
            let _ = write!(
                s,
                r#"<g stroke="{colour}" stroke-width="2"><line x1="{x:.1}" x2="{x:.1}" y1="{y1:.1}" y2="{y2:.1}"/><line x1="{:.1}" x2="{:.1}" y1="{y1:.1}" y2="{y1:.1}"/><line x1="{:.1}" x2="{:.1}" y1="{y2:.1}" y2="{y2:.1}"/><line x1="{:.1}" x2="{:.1}" y1="{ym:.1}" y2="{ym:.1}" stroke-width="4"/></g>"#,
                x - 5.0,
                x + 5.0,
                x - 5.0,
                x + 5.0,
                x - 9.0,
                x + 9.0
            );
        }
        let base = top + ph;
        let _ = write!(
            s,
            r##"<text x="{cx:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="{colour}" font-weight="600">{}</text><text x="{cx:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#374151">n={}/{}</text>"##,
            base + 17.0,
            esc(&v.label()),
            base + 32.0,
            v.samples.len(),
            v.jobs
        );
    }
    s.push_str("</svg>");
    Some(s)
}

/// The run's distribution of human/baseline speedups on the primary metric: one row per
/// commit (dot = point estimate, bar = 95 % CI, band = the task's floor), coloured by verdict.
/// A speedup above 1 means the human build is faster, whichever direction the metric has.
pub(super) fn speedup_plot(r: &Report) -> String {
    let rows: Vec<(&TaskReport, f64, [f64; 2], Verdict)> = r
        .tasks
        .iter()
        .filter_map(|t| {
            let c = t.human_vs_baseline()?;
            let ratio = c.ratio?;
            Some(if c.higher_is_better {
                (t, ratio.value, ratio.ci, c.verdict)
            } else {
                (
                    t,
                    1.0 / ratio.value,
                    [1.0 / ratio.ci[1], 1.0 / ratio.ci[0]],
                    c.verdict,
                )
            })
        })
        .filter(|(_, v, ci, _)| v.is_finite() && ci.iter().all(|c| c.is_finite()))
        .collect();
    let (w, left, right, top, bottom, row_h) = (900.0, 300.0, 110.0, 48.0, 40.0, 24.0);
    let h = top + bottom + row_h * rows.len().max(1) as f64;
    let mut s = format!(
        r#"<svg class="plot" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="speedup distribution"><title>human/baseline speedup per commit</title><text x="10" y="20" font-size="13" font-weight="600">human/baseline speedup on the primary metric (&gt; 1 = human faster), 95 % CI</text>"#
    );
    let mut lx = 10.0;
    for v in [
        Verdict::Improved,
        Verdict::NoChange,
        Verdict::Inconclusive,
        Verdict::Regressed,
    ] {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="36" r="5" fill="{}"/><text x="{:.1}" y="40" font-size="11">{}</text>"#,
            lx + 5.0,
            verdict_colour(v),
            lx + 14.0,
            verdict_name(v)
        );
        lx += 110.0;
    }
    let floors = rows.iter().map(|(t, ..)| t.noise_floor.value);
    let bounds = rows
        .iter()
        .flat_map(|(_, v, ci, _)| [*v, ci[0], ci[1]])
        .chain(floors.flat_map(|f| [1.0 - f, 1.0 + f]))
        .chain([1.0]);
    let Some((lo, hi)) = domain(bounds) else {
        s.push_str("</svg>");
        return s;
    };
    let pw = w - left - right;
    let x = |v: f64| left + pw * (v - lo) / (hi - lo);
    let ph = row_h * rows.len().max(1) as f64;
    ratio_frame(&mut s, (left, top, pw, ph), (lo, hi));
    if rows.is_empty() {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#6b7280">no human/baseline comparison in this run</text>"##,
            left + 10.0,
            top + 16.0
        );
    }
    for (i, (t, v, ci, verdict)) in rows.iter().enumerate() {
        let cy = top + row_h * (i as f64 + 0.5);
        let f = t.noise_floor.value;
        let colour = verdict_colour(*verdict);
        let subject: String = t
            .subject
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(34)
            .collect();
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e5e7eb"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end"><tspan font-family="monospace">{}</tspan> {}</text><line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="{colour}" stroke-width="2"/><circle cx="{:.1}" cy="{cy:.1}" r="5" fill="{colour}"><title>{} {:.3} [{:.3}, {:.3}] {}</title></circle><text x="{:.1}" y="{:.1}" font-size="11">{:.3} {}</text>"##,
            x(1.0 - f),
            cy - row_h * 0.35,
            x(1.0 + f) - x(1.0 - f),
            row_h * 0.7,
            left - 8.0,
            cy + 4.0,
            esc(prefix(&t.commit, 8)),
            esc(&subject),
            x(ci[0]),
            x(ci[1]),
            x(*v),
            esc(&t.commit),
            v,
            ci[0],
            ci[1],
            verdict_name(*verdict),
            w - right + 8.0,
            cy + 4.0,
            v,
            verdict_name(*verdict)
        );
    }
    s.push_str("</svg>");
    s
}

/// The frame of a ratio plot: the plot area at `(left, top, width, height)`, vertical grid
/// lines with their values over `(lo, hi)`, and a dashed line at 1 (no change).
pub(super) fn ratio_frame(s: &mut String, area: (f64, f64, f64, f64), (lo, hi): (f64, f64)) {
    let (left, top, pw, ph) = area;
    let x = |v: f64| left + pw * (v - lo) / (hi - lo);
    let _ = write!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#d1d5db"/>"##
    );
    for v in ticks(lo, hi, 8.0) {
        let xx = x(v);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{:.1}" stroke="#e5e7eb"/><text x="{xx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{v:.2}</text>"##,
            top + ph,
            top + ph + 16.0
        );
    }
    let _ = write!(
        s,
        r##"<line x1="{0:.1}" x2="{0:.1}" y1="{top}" y2="{1:.1}" stroke="#111827" stroke-dasharray="4 3"/>"##,
        x(1.0),
        top + ph
    );
}
