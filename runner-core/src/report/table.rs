//! Flat exports of a run for pandas, `datasets` and spreadsheets:
//!
//! - the **long** table: one row per attempt × metric (task × variant × metric × run), with
//!   the attempt's status (`ok` or its failure code); an attempt without metrics is one row
//!   with an empty metric;
//! - the **wide** view, in ISO-Bench's style: one row per task with `baseline_<metric>`,
//!   `human_<metric>`, `agent_<metric>` (medians over the measured repeats) and the ratios
//!   `human_baseline_ratio_<metric>`, `agent_human_ratio_<metric>`,
//!   `agent_baseline_ratio_<metric>`, plus the primary metric's verdict.
//!
//! Both are a [`Table`] (the same columns in every row; missing values are `null`), written as
//! CSV ([`Table::to_csv`]) or JSON lines ([`Table::to_jsonl`]).

use serde_json::Value;

use super::{Pair, Report};
use crate::metrics::Unit;
use crate::record::AttemptRecord;

/// Rows with named columns, every row as long as the header.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows of cells (`null` for a missing value).
    pub rows: Vec<Vec<Value>>,
}

/// The columns of the long table, in order.
pub const LONG_COLUMNS: [&str; 11] = [
    "run_id",
    "commit",
    "variant",
    "aa",
    "repeat",
    "attempt",
    "status",
    "metric",
    "value",
    "unit",
    "engine_version",
];

/// The long table of a run's attempts.
pub fn long_table(attempts: &[AttemptRecord]) -> Table {
    let mut rows = Vec::new();
    for a in attempts {
        let row = |metric: Value, value: Value, unit: Value| -> Vec<Value> {
            vec![
                a.run_id.0.clone().into(),
                a.job.commit.clone().into(),
                a.job.variant.as_str().into(),
                a.job.aa.into(),
                a.job.repeat.into(),
                a.attempt.into(),
                a.failure.map_or("ok", |f| f.code()).into(),
                metric,
                value,
                unit,
                a.engine_version.clone().map_or(Value::Null, Value::from),
            ]
        };
        if a.metrics.0.is_empty() {
            rows.push(row(Value::Null, Value::Null, Value::Null));
        }
        for (key, m) in &a.metrics.0 {
            let unit = Unit::of_key(key).label();
            rows.push(row(key.clone().into(), number(m.value), unit.into()));
        }
    }
    Table {
        columns: LONG_COLUMNS.iter().map(|c| c.to_string()).collect(),
        rows,
    }
}

/// The leading columns of the wide view; metric columns follow, sorted.
const WIDE_COLUMNS: [&str; 6] = [
    "run_id",
    "commit",
    "subject",
    "status",
    "primary_metric",
    "human_baseline_verdict",
];

/// The ISO-Bench-style wide view: one row per task.
pub fn wide_table(report: &Report) -> Table {
    let mut per_task: Vec<std::collections::BTreeMap<String, Value>> = Vec::new();
    let mut metric_columns = std::collections::BTreeSet::new();
    for t in &report.tasks {
        let mut row = std::collections::BTreeMap::new();
        row.insert("run_id".to_string(), report.run.id.clone().into());
        row.insert("commit".into(), t.commit.clone().into());
        row.insert("subject".into(), opt(t.subject.clone()));
        row.insert(
            "status".into(),
            serde_json::to_value(t.status).unwrap_or(Value::Null),
        );
        row.insert("primary_metric".into(), opt(t.primary_metric.clone()));
        row.insert(
            "human_baseline_verdict".into(),
            t.human_vs_baseline()
                .map_or(Value::Null, |c| super::verdict_name(c.verdict).into()),
        );
        for m in &t.metrics {
            for pc in &m.comparisons {
                let c = &pc.comparison;
                let (base, other) = pc.pair.sides();
                let cells = [
                    (
                        format!("{}_{}", base.as_str(), m.metric),
                        number(c.base.median),
                    ),
                    (
                        format!("{}_{}", other.as_str(), m.metric),
                        number(c.other.median),
                    ),
                    (
                        format!("{}_ratio_{}", pair_name(pc.pair), m.metric),
                        c.ratio.as_ref().map_or(Value::Null, |r| number(r.value)),
                    ),
                ];
                for (k, v) in cells {
                    metric_columns.insert(k.clone());
                    row.insert(k, v);
                }
            }
        }
        per_task.push(row);
    }
    let columns: Vec<String> = WIDE_COLUMNS
        .iter()
        .map(|c| c.to_string())
        .chain(metric_columns)
        .collect();
    let rows = per_task
        .into_iter()
        .map(|mut r| {
            columns
                .iter()
                .map(|c| r.remove(c).unwrap_or(Value::Null))
                .collect()
        })
        .collect();
    Table { columns, rows }
}

fn pair_name(p: Pair) -> &'static str {
    match p {
        Pair::HumanVsBaseline => "human_baseline",
        Pair::AgentVsHuman => "agent_human",
        Pair::AgentVsBaseline => "agent_baseline",
    }
}

fn opt(s: Option<String>) -> Value {
    s.map_or(Value::Null, Value::from)
}

/// A finite number, else `null` (JSON has no NaN).
fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

impl Table {
    /// CSV (RFC 4180): a header, fields quoted when they hold a comma, quote or line break;
    /// `null` is an empty field. A text field that a spreadsheet would run as a formula
    /// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return — a commit subject comes
    /// from the dataset) gets a leading `'`, so it stays text; numbers are written as numbers.
    /// JSON lines and Parquet keep such text as it is (no spreadsheet runs them), so only there
    /// do the three exports differ.
    pub fn to_csv(&self) -> String {
        let line = |cells: Vec<String>| cells.join(",") + "\n";
        let mut out = line(self.columns.iter().map(|c| quote(c)).collect());
        for row in &self.rows {
            out.push_str(&line(
                row.iter()
                    .map(|v| match v {
                        Value::Null => String::new(),
                        Value::String(s) => quote(&defuse(s)),
                        v => v.to_string(),
                    })
                    .collect(),
            ));
        }
        out
    }

    /// JSON lines: one object per row, keys in column order.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            let fields: Vec<String> = self
                .columns
                .iter()
                .zip(row)
                .map(|(c, v)| format!("{}:{v}", Value::from(c.as_str())))
                .collect();
            out.push('{');
            out.push_str(&fields.join(","));
            out.push_str("}\n");
        }
        out
    }
}

/// `s`, with a leading `'` when a spreadsheet would read it as a formula.
fn defuse(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_jsonl_keeps_column_order() {
        let t = Table {
            columns: vec!["b".into(), "a".into()],
            rows: vec![
                vec!["x, \"y\"\nz".into(), Value::Null],
                vec![1.5.into(), true.into()],
            ],
        };
        assert_eq!(t.to_csv(), "b,a\n\"x, \"\"y\"\"\nz\",\n1.5,true\n");
        assert_eq!(
            t.to_jsonl(),
            "{\"b\":\"x, \\\"y\\\"\\nz\",\"a\":null}\n{\"b\":1.5,\"a\":true}\n"
        );
        assert!(number(f64::NAN).is_null());
    }

    #[test]
    fn text_a_spreadsheet_would_run_stays_text_in_csv() {
        let t = Table {
            columns: vec!["subject".into(), "value".into()],
            rows: vec![
                vec!["=HYPERLINK(\"http://x\",\"y\")".into(), (-1.5).into()],
                vec!["@SUM(A1)".into(), Value::Null],
                vec!["+1, -2".into(), Value::Null],
                vec!["-cmd|' /C calc'!A0".into(), Value::Null],
                vec!["Speed up = less".into(), Value::Null],
            ],
        };
        let csv = t.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",-1.5");
        assert_eq!(lines[2], "'@SUM(A1),");
        assert_eq!(lines[3], "\"'+1, -2\",");
        assert_eq!(lines[4], "'-cmd|' /C calc'!A0,");
        assert_eq!(lines[5], "Speed up = less,");
        // JSON lines keep the text as it is (no spreadsheet reads them).
        assert!(t.to_jsonl().starts_with("{\"subject\":\"=HYPERLINK"));
    }
}
