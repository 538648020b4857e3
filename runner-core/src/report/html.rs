//! The self-contained HTML report: inline CSS and inline SVG plots, no scripts, no external
//! resources. Per task a plot of the primary metric per variant and its comparison tables; per
//! run the distribution of human/baseline speedups.

use std::fmt::Write as _;

use super::agent_plot::agent_plot;
use super::markdown::{
    counts, duration, floor_text, grouped_failures, metric_summary, num, pair_text, prefix,
    repeats_text, summary_text,
};
use super::svg::{esc, speedup_plot, task_plot, variant_colour};
use super::{Pair, Report, TaskReport, Validity};
use crate::metrics::Unit;
use crate::task::Variant;

const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#111827;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #e5e7eb}h3{font-size:15px;margin:0 0 6px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f3f4f6}code{font-size:12px}.task{border:1px solid #e5e7eb;border-radius:6px;padding:12px;margin:14px 0}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}.ok{color:#15803d}.bad{color:#b91c1c}.muted{color:#6b7280}
ul.meta{font-size:13px;padding-left:18px}.task p{font-size:13px;margin:4px 0 10px}.ev{font-family:monospace;font-size:11px;white-space:pre-wrap}
";

fn validity_html(v: &Validity) -> String {
    let class = match v {
        Validity::Reproduced => "ok",
        Validity::NotReproduced { .. } => "bad",
        Validity::NotMeasured { .. } => "muted",
    };
    format!(r#"<span class="{class}">{}</span>"#, esc(&v.text()))
}

fn short(c: &str) -> &str {
    prefix(c, 10)
}

fn task_section(out: &mut String, t: &TaskReport) {
    let _ = write!(
        out,
        r#"<div class="task" id="c{}"><h3><code>{}</code> {}</h3><p>mode {} · {} · noise floor {} · {} attempts ({} retries) · {:.0} GPU·s · wall {}</p><div class="row">"#,
        esc(short(&t.commit)),
        esc(short(&t.commit)),
        esc(t.subject.as_deref().unwrap_or("")),
        t.mode.map(|m| m.as_str()).unwrap_or("–"),
        validity_html(&t.validity),
        esc(&floor_text(&t.noise_floor)),
        t.cost.attempts,
        t.cost.retries,
        t.cost.gpu_seconds,
        esc(&duration(t.cost.wall_s)),
    );
    if let Some(svg) = task_plot(t) {
        out.push_str(&svg);
    }
    out.push_str("<div>");
    for (i, m) in t.metrics.iter().enumerate() {
        let unit = Unit::of_key(&m.metric).label();
        let _ = write!(
            out,
            "<table><tr><th>{} ({}, {})</th><th>median [95 % CI] n</th></tr>",
            esc(&m.metric),
            esc(unit),
            if m.higher_is_better { "↑" } else { "↓" }
        );
        for v in [Variant::Baseline, Variant::Human, Variant::Agent] {
            let s = if i == 0 {
                t.variant(v, false).and_then(|r| r.summary)
            } else {
                metric_summary(m, v)
            };
            if let Some(s) = s {
                let _ = write!(
                    out,
                    r#"<tr><td style="color:{}">{v}</td><td>{}</td></tr>"#,
                    variant_colour(v, false),
                    esc(&summary_text(&s))
                );
            }
        }
        for c in &m.comparisons {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td></tr>",
                esc(&c.pair.label()),
                esc(&pair_text(c))
            );
        }
        out.push_str("</table>");
    }
    if let Some(c) = &t.aa {
        if let Some(r) = c.ratio {
            let _ = write!(
                out,
                r#"<p class="muted">A/A: baseline-aa/baseline {:.3} [{:.3}, {:.3}]</p>"#,
                r.value, r.ci[0], r.ci[1]
            );
        }
    }
    for l in super::rounds::to_decide(t) {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, esc(&l.replace('`', "")));
    }
    if let Some(l) = super::rounds::line(t) {
        let _ = write!(out, r#"<p class="muted">{}</p>"#, esc(&l.replace("**", "")));
    }
    if !t.failures.is_empty() {
        out.push_str("<table><tr><th>failed</th><th>repeats</th><th>code</th><th>attempts</th><th>detail and evidence</th></tr>");
        for (f, repeats, attempts) in grouped_failures(&t.failures) {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{attempts}</td><td>{}<div class="ev">{}</div></td></tr>"#,
                esc(&super::label(f.variant, f.aa)),
                esc(&repeats_text(&repeats)),
                esc(&f.code),
                esc(f.detail.as_deref().unwrap_or("")),
                esc(&f
                    .evidence
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n"))
            );
        }
        out.push_str("</table>");
    }
    let retried: Vec<_> = t.prepare.iter().filter(|p| p.failed()).collect();
    if !retried.is_empty() {
        out.push_str("<table><tr><th>prepare</th><th>try</th><th>code</th><th>seconds</th><th>detail</th></tr>");
        for p in retried {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{:.1}</td><td>{}</td></tr>"#,
                esc(p.variant.as_str()),
                p.attempt,
                esc(p.failure.map_or("", |f| f.code())),
                p.seconds,
                esc(p.detail.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</div></div></div>");
}

/// Render the report as one self-contained HTML page.
pub fn html(r: &Report) -> String {
    let (planned, skipped, reproduced, measured) = counts(r);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>perf-runner report {}</title><style>{CSS}</style></head><body>"#,
        esc(&r.run.id)
    );
    let _ = write!(
        out,
        r#"<h1>perf-runner report: run <code>{}</code></h1><ul class="meta"><li>created {} · status {} · backend {} · dataset {}</li><li>{} tasks: {planned} planned, {skipped} skipped or unplannable; human speedup reproduced in {reproduced} of {measured} measured</li><li>medians with 95 % percentile-bootstrap CIs ({} resamples, seed {}); configured noise floor ±{:.1} %{}</li><li>cost: {:.0} GPU·s, wall {}, {} attempts ({} retries)</li></ul>"#,
        esc(&r.run.id),
        esc(&r.run.created_at),
        esc(r.run.status.as_str()),
        esc(&r.run.backend_text()),
        esc(&r.run.origin),
        r.tasks.len(),
        r.options.resamples,
        r.options.seed,
        r.options.configured_floor * 100.0,
        if r.options.aa_floor {
            ", A/A-measured per task where the run has A/A repeats"
        } else {
            ""
        },
        r.cost.gpu_seconds,
        esc(&duration(r.cost.wall_s)),
        r.cost.attempts,
        r.cost.retries,
    );
    out.push_str("<h2>Speedup distribution</h2>");
    out.push_str(&speedup_plot(r));
    if let Some(svg) = agent_plot(r) {
        out.push_str("<h2>Agent comparison</h2>");
        out.push_str(&svg);
    }
    out.push_str("<h2>Summary</h2><table><tr><th>commit</th><th>subject</th><th>mode</th><th>backend</th><th>metric</th><th>baseline</th><th>human</th><th>agent</th><th>human/baseline</th><th>agent/human</th><th>validity</th><th>GPU·s</th></tr>");
    for t in &r.tasks {
        let m = t.metrics.first();
        let med = |v: Variant| {
            t.variant(v, false)
                .and_then(|x| x.summary)
                .map(|s| num(s.median))
                .unwrap_or_else(|| "–".into())
        };
        let pair = |p: Pair| {
            m.and_then(|m| m.comparisons.iter().find(|c| c.pair == p))
                .map(pair_text)
                .unwrap_or_else(|| "–".into())
        };
        let _ = write!(
            out,
            r##"<tr><td><a href="#c{0}"><code>{0}</code></a></td><td>{1}</td><td>{2}</td><td>{11}</td><td>{3}</td><td>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td><td>{9}</td><td>{10:.0}</td></tr>"##,
            esc(short(&t.commit)),
            esc(t.subject.as_deref().unwrap_or("")),
            t.mode.map(|m| m.as_str()).unwrap_or("–"),
            esc(t.primary_metric.as_deref().unwrap_or("–")),
            med(Variant::Baseline),
            med(Variant::Human),
            med(Variant::Agent),
            esc(&pair(Pair::HumanVsBaseline)),
            esc(&pair(Pair::AgentVsHuman)),
            validity_html(&t.validity),
            t.cost.gpu_seconds,
            esc(&if t.backends.is_empty() {
                "–".to_string()
            } else {
                t.backends.join(", ")
            }),
        );
    }
    out.push_str("</table>");
    super::details::html(&mut out, r);
    out.push_str("<h2>Tasks</h2>");
    for t in r
        .tasks
        .iter()
        .filter(|t| t.status == crate::record::TaskStatus::Planned)
    {
        task_section(&mut out, t);
    }
    let skipped: Vec<&TaskReport> = r
        .tasks
        .iter()
        .filter(|t| t.status != crate::record::TaskStatus::Planned)
        .collect();
    if !skipped.is_empty() {
        out.push_str("<h2>Skipped</h2><table><tr><th>commit</th><th>line</th><th>subject</th><th>status</th><th>reason</th></tr>");
        for t in skipped {
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(short(&t.commit)),
                t.line,
                esc(t.subject.as_deref().unwrap_or("")),
                esc(t.status.as_str()),
                esc(t.reason.as_deref().unwrap_or(""))
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</body></html>\n");
    out
}
