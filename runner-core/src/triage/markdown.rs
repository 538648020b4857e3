//! Markdown rendering of a [`TriageReport`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::failure::Failure;

use super::report::{Counts, TriageReport, TriageSummary};
use super::{TaskTriage, Verdict};

/// Untrusted text inline in markdown (a list item, a heading): one line, no raw HTML, no
/// control or bidi characters.
fn flat(s: &str) -> Cow<'_, str> {
    crate::text::md_cell(s)
}

/// A table cell: as [`flat`], pipes escaped.
fn cell(s: &str) -> Cow<'_, str> {
    crate::text::md_cell(s)
}

/// A code span (in a table or a list item).
fn code(s: &str) -> String {
    crate::text::md_code(s)
}

fn short(c: &str) -> &str {
    super::prefix(c, 10)
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Verifiable => "✅ verifiable",
        Verdict::NeedsAttention => "⚠️ needs attention",
        Verdict::NotVerifiable => "❌ not verifiable",
    }
}

fn counts_row(name: &str, c: &Counts) -> String {
    format!(
        "| {name} | {} | {} | {} | {} |\n",
        c.total, c.verifiable, c.needs_attention, c.not_verifiable
    )
}

fn task_row(t: &TaskTriage) -> String {
    let (reason, fix) = match t.primary() {
        Some(r) => (
            format!("`{}`: {}", r.code, cell(&r.detail)),
            cell(&r.fix).into_owned(),
        ),
        None => ("—".into(), "—".into()),
    };
    format!(
        "| {} | {} | {} | {reason} | {fix} |\n",
        code(short(&t.commit)),
        cell(t.model.as_deref().unwrap_or("—")),
        verdict(t.verdict)
    )
}

/// Render the report.
pub(crate) fn render(r: &TriageReport, s: &TriageSummary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Triage of {} task(s)\n", s.overall.total);
    let _ = writeln!(
        out,
        "Checks: command, ROCm-only changes, model size, engine version, artifacts, relevance. \
         Online probes: {}. vLLM source: {}.\n",
        if r.online {
            "yes"
        } else {
            "no (artifacts judged by date)"
        },
        r.vllm_source.as_deref().map_or(
            Cow::Borrowed("none (engine version estimated from dates)"),
            flat
        )
    );

    out.push_str("## Summary by GPU config\n\n");
    out.push_str("| GPU config | total | verifiable | needs attention | not verifiable |\n");
    out.push_str("|---|---:|---:|---:|---:|\n");
    for (gpu, c) in &s.by_gpu_config {
        out.push_str(&counts_row(&cell(gpu), c));
    }
    out.push_str(&counts_row("**all**", &s.overall));
    out.push('\n');

    for gpu in s.by_gpu_config.keys() {
        let _ = writeln!(out, "## {}\n", flat(gpu));
        out.push_str(
            "| commit | model | verdict | primary reason | fix |\n|---|---|---|---|---|\n",
        );
        let tasks: Vec<&TaskTriage> = r.tasks.iter().filter(|t| &t.gpu_config == gpu).collect();
        for t in &tasks {
            out.push_str(&task_row(t));
        }
        out.push('\n');
        for t in tasks.iter().filter(|t| !t.reasons.is_empty()) {
            let _ = writeln!(out, "- {}:", code(short(&t.commit)));
            for reason in &t.reasons {
                let _ = writeln!(
                    out,
                    "  - `{}` ({}): {}",
                    reason.code,
                    reason.severity,
                    flat(&reason.detail)
                );
                for e in &reason.evidence {
                    let _ = writeln!(out, "    - {}", flat(e));
                }
            }
        }
        if tasks.iter().any(|t| !t.reasons.is_empty()) {
            out.push('\n');
        }
    }

    out.push_str("## Root causes\n\n");
    if s.affected.is_empty() {
        out.push_str("None: every task is verifiable.\n\n");
    } else {
        out.push_str(
            "| code | primary reason of | appears in | what it means |\n|---|---:|---:|---|\n",
        );
        let mut codes: Vec<(&String, &usize)> = s.affected.iter().collect();
        codes.sort_by_key(|(c, n)| {
            (
                std::cmp::Reverse(s.root_causes.get(*c).copied().unwrap_or(0)),
                std::cmp::Reverse(**n),
            )
        });
        for (code, n) in codes {
            let meaning = code.parse::<Failure>().map(|f| f.describe()).unwrap_or("");
            let _ = writeln!(
                out,
                "| {} | {} | {n} | {meaning} |",
                self::code(code),
                s.root_causes.get(code).copied().unwrap_or(0)
            );
        }
        out.push('\n');
    }

    recommendations(r, s, &mut out);

    if !r.notes.is_empty() {
        out.push_str("## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {}", flat(n));
        }
        out.push('\n');
    }

    let c = &s.overall;
    let _ = writeln!(
        out,
        "## Verdict\n\n**{} of {} ({:.1} %) verifiable**; {} need attention, {} not verifiable.",
        c.verifiable,
        c.total,
        c.verifiable_percent(),
        c.needs_attention,
        c.not_verifiable
    );
    out
}

fn recommendations(r: &TriageReport, s: &TriageSummary, out: &mut String) {
    out.push_str("## Recommendations\n\n");
    let skip: Vec<&TaskTriage> = r
        .tasks
        .iter()
        .filter(|t| t.verdict == Verdict::NotVerifiable)
        .collect();
    let attention: Vec<&TaskTriage> = r
        .tasks
        .iter()
        .filter(|t| t.verdict == Verdict::NeedsAttention)
        .collect();
    if skip.is_empty() && attention.is_empty() {
        out.push_str("- Run every task; nothing blocks them.\n");
    }
    if !skip.is_empty() {
        let _ = writeln!(
            out,
            "- **Skip {} commit(s)** that cannot be verified (`--emit-skip-list FILE` writes them):",
            skip.len()
        );
        out.push_str("\n  ```text\n");
        for t in &skip {
            if let Some(p) = t.primary() {
                // Inside a fenced block markdown shows text literally: one line, escaped.
                let _ = writeln!(
                    out,
                    "  {} {} {}",
                    crate::text::cell(&t.commit),
                    p.code,
                    crate::text::cell(&p.detail)
                );
            }
        }
        out.push_str("  ```\n\n");
    }
    if !attention.is_empty() {
        let _ = writeln!(
            out,
            "- **Look at {} commit(s)** before running them:",
            attention.len()
        );
        for t in &attention {
            if let Some(p) = t.primary() {
                let _ = writeln!(
                    out,
                    "  - {} (`{}`): {}",
                    code(short(&t.commit)),
                    p.code,
                    flat(&p.fix)
                );
            }
        }
    }
    let mut unchecked: BTreeMap<String, usize> = BTreeMap::new();
    for t in &r.tasks {
        for n in &t.not_checked {
            let head = n.split(':').next().unwrap_or(n).trim().to_string();
            *unchecked.entry(head).or_default() += 1;
        }
    }
    if !unchecked.is_empty() {
        out.push_str("- Not checked (tasks): ");
        let list: Vec<String> = unchecked
            .iter()
            .map(|(k, v)| format!("{} ({v})", flat(k)))
            .collect();
        out.push_str(&list.join(", "));
        out.push_str(". `--online` and `--vllm-source` close most of these gaps.\n");
    }
    let warned = r.tasks.iter().filter(|t| !t.warnings.is_empty()).count();
    if warned > 0 {
        let _ = writeln!(
            out,
            "- {warned} task(s) carry warnings (see the JSON report)."
        );
    }
    let _ = s;
    out.push('\n');
}
