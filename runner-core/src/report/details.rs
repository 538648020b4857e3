//! The provenance block and the latency percentiles of a report, in markdown and HTML: which
//! perf-runner ran and reported the run; per task and variant the engine versions, build
//! digests, GPUs, hosts, backends and argv digests; per variant P50 and P99 of TTFT, TPOT, ITL
//! and E2EL.

use std::fmt::Write as _;

use super::markdown::{num, prefix};
use super::svg::esc;
use super::{LatencyPercentiles, Report, TaskReport, VariantProvenance, VariantReport};

/// Hex digits of a digest shown in tables (the JSON report has them whole).
const SHORT_DIGEST: usize = 16;

/// The latency families in column order, with their labels.
const FAMILIES: [(&str, &str); 4] = [
    ("ttft", "TTFT"),
    ("tpot", "TPOT"),
    ("itl", "ITL"),
    ("e2el", "E2EL"),
];

/// `0.1.0 (0123456789ab)` or `unknown`.
fn program_text(p: Option<&crate::provenance::Program>) -> String {
    p.map(|p| p.text()).unwrap_or_else(|| "not recorded".into())
}

/// The line naming the programs that ran and reported the run.
pub(super) fn programs_line(r: &Report) -> String {
    format!(
        "perf-runner: run by {}, reported by {}",
        program_text(r.provenance.run_by.as_ref()),
        program_text(r.provenance.report_by.as_ref())
    )
}

/// A digest shortened for a table: `sha256:` prefixes kept, the hex cut.
fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((algo, hex)) => format!("{algo}:{}", prefix(hex, SHORT_DIGEST)),
        None => prefix(d, SHORT_DIGEST).to_string(),
    }
}

fn list(xs: &[String]) -> String {
    if xs.is_empty() {
        "–".into()
    } else {
        xs.join(", ")
    }
}

fn digests(xs: &[String]) -> String {
    if xs.is_empty() {
        "–".into()
    } else {
        xs.iter()
            .map(|d| short_digest(d))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The cells of a provenance row: engine, build digest, GPUs, hosts, backends, client and
/// server argv digests.
fn provenance_cells(p: &VariantProvenance) -> [String; 7] {
    [
        list(&p.engine_versions),
        digests(&p.build_digests),
        list(&p.gpu_names),
        list(&p.hosts),
        list(&p.backends),
        digests(&p.client_argv_sha256),
        digests(&p.server_argv_sha256),
    ]
}

const PROVENANCE_HEAD: [&str; 9] = [
    "commit",
    "variant",
    "engine",
    "build digest",
    "GPUs",
    "hosts",
    "backend",
    "client argv sha256",
    "server argv sha256",
];

/// The rows with a variant that ran anything.
fn ran(r: &Report) -> Vec<(&TaskReport, &VariantReport)> {
    r.tasks
        .iter()
        .flat_map(|t| t.variants.iter().map(move |v| (t, v)))
        .filter(|(_, v)| v.provenance != VariantProvenance::default())
        .collect()
}

fn latency_cells(l: &[LatencyPercentiles]) -> Vec<String> {
    let mut out = Vec::new();
    for (family, _) in FAMILIES {
        let f = l.iter().find(|x| x.family == family);
        for v in [f.and_then(|f| f.p50_ms), f.and_then(|f| f.p99_ms)] {
            out.push(v.map(num).unwrap_or_else(|| "–".into()));
        }
    }
    out
}

fn latency_head() -> Vec<String> {
    let mut h = vec!["commit".to_string(), "variant".to_string(), "n".to_string()];
    for (_, label) in FAMILIES {
        h.push(format!("{label} P50"));
        h.push(format!("{label} P99"));
    }
    h
}

fn with_latency(r: &Report) -> Vec<(&TaskReport, &VariantReport)> {
    r.tasks
        .iter()
        .flat_map(|t| t.variants.iter().map(move |v| (t, v)))
        .filter(|(_, v)| !v.latency.is_empty())
        .collect()
}

fn n_of(v: &VariantReport) -> u32 {
    v.latency.iter().map(|l| l.n).max().unwrap_or(0)
}

/// The markdown sections: latency percentiles, then provenance.
pub(super) fn markdown(out: &mut String, r: &Report) {
    let rows = with_latency(r);
    if !rows.is_empty() {
        out.push_str("\n## Latency percentiles (ms)\n\nPer variant the median over its successful repeats of each repeat's P50 and P99 (each repeat's percentile is over its requests); n = repeats.\n\n");
        let head = latency_head();
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(head.len()));
        for (t, v) in rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                crate::text::md_code(prefix(&t.commit, 10)),
                v.label(),
                n_of(v),
                latency_cells(&v.latency).join(" | ")
            );
        }
    }
    let _ = writeln!(
        out,
        "\n## Provenance\n\n- {}\n",
        crate::text::md_cell(&programs_line(r))
    );
    let rows = ran(r);
    if rows.is_empty() {
        out.push_str("No attempt ran.\n");
        return;
    }
    let _ = writeln!(
        out,
        "Every distinct value the variant's attempts recorded; digests are cut to {SHORT_DIGEST} hex digits (the JSON report has them whole); an argv digest is the sha256 of the argv as a JSON array.\n"
    );
    let _ = writeln!(out, "| {} |", PROVENANCE_HEAD.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(PROVENANCE_HEAD.len()));
    for (t, v) in rows {
        let cells: Vec<String> = provenance_cells(&v.provenance)
            .iter()
            .map(|c| crate::text::md_cell(c).into_owned())
            .collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            crate::text::md_code(prefix(&t.commit, 10)),
            v.label(),
            cells.join(" | ")
        );
    }
}

fn html_table(out: &mut String, head: &[String], rows: Vec<Vec<String>>) {
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, "<td><code>{}</code></td>", esc(c));
            } else {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// The HTML sections: latency percentiles, then provenance.
pub(super) fn html(out: &mut String, r: &Report) {
    let rows = with_latency(r);
    if !rows.is_empty() {
        out.push_str("<h2>Latency percentiles (ms)</h2><p class=\"muted\">Per variant the median over its successful repeats of each repeat's P50 and P99; n = repeats.</p>");
        let rows = rows
            .into_iter()
            .map(|(t, v)| {
                let mut row = vec![
                    prefix(&t.commit, 10).to_string(),
                    v.label(),
                    n_of(v).to_string(),
                ];
                row.extend(latency_cells(&v.latency));
                row
            })
            .collect();
        html_table(out, &latency_head(), rows);
    }
    let _ = write!(
        out,
        "<h2>Provenance</h2><ul class=\"meta\"><li>{}</li></ul>",
        esc(&programs_line(r))
    );
    let rows: Vec<Vec<String>> = ran(r)
        .into_iter()
        .map(|(t, v)| {
            let mut row = vec![prefix(&t.commit, 10).to_string(), v.label()];
            row.extend(provenance_cells(&v.provenance));
            row
        })
        .collect();
    if rows.is_empty() {
        out.push_str("<p class=\"muted\">No attempt ran.</p>");
        return;
    }
    let _ = write!(
        out,
        "<p class=\"muted\">Digests cut to {SHORT_DIGEST} hex digits (the JSON report has them whole); an argv digest is the sha256 of the argv as a JSON array.</p>"
    );
    let head: Vec<String> = PROVENANCE_HEAD.iter().map(|s| s.to_string()).collect();
    html_table(out, &head, rows);
}
