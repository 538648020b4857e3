//! Auto-detection of the benchmark mode from output content.
//!
//! Only the result layouts themselves count (the serving block's header or metric lines, a
//! `Throughput:` result line, an `Avg latency:` line, the prefix-caching `start generating`
//! marker) — never engine logs or progress bars. When several appear, the more specific
//! layout wins: serving, then throughput, latency, prefix caching.

use super::text::lines;
use super::{json, offline, prefix, serving};
use crate::benchmark::{RunOutput, SourceKind};
use crate::spec::Mode;

/// The benchmark mode whose result layout appears in a text, if any.
pub fn detect_mode(text: &str) -> Option<Mode> {
    let (mut throughput, mut latency, mut prefix_caching) = (false, false, false);
    for line in lines(text) {
        let t = line.text;
        match serving::classify_line(t) {
            serving::ServingLine::Header | serving::ServingLine::Metric(..) => {
                return Some(Mode::Serving);
            }
            _ => {}
        }
        throughput = throughput || offline::is_throughput_line(t);
        latency = latency || offline::is_latency_line(t);
        prefix_caching = prefix_caching || prefix::is_start_marker(t);
    }
    if throughput {
        Some(Mode::Throughput)
    } else if latency {
        Some(Mode::Latency)
    } else if prefix_caching {
        Some(Mode::PrefixCaching)
    } else {
        None
    }
}

/// The mode of a JSON result text (serving `--save-result`, throughput or latency
/// `--output-json`), if it is one.
pub fn detect_json_mode(text: &str) -> Option<Mode> {
    json::first_object(text).and_then(|obj| json::detect(&obj))
}

/// The mode of a run's output: its JSON results first, then its text sources (server logs
/// are never consulted).
pub fn detect_output_mode(output: &RunOutput) -> Option<Mode> {
    let json_mode = output
        .sources
        .iter()
        .filter(|s| s.kind == SourceKind::ResultJson)
        .find_map(|s| detect_json_mode(&s.text));
    json_mode.or_else(|| {
        output
            .sources
            .iter()
            .filter(|s| is_text_result_source(s.kind))
            .find_map(|s| detect_mode(&s.text))
    })
}

/// Whether a source may hold the tool's printed results.
pub(crate) fn is_text_result_source(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Stdout | SourceKind::Stderr | SourceKind::Combined
    )
}
