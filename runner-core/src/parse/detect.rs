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

/// The kind of a captured file, for callers that only have files (e.g. `perf-runner parse
/// FILE…`): a JSON object (by name or content) is a result file, anything else a combined
/// capture.
pub fn guess_source_kind(name: &str, text: &str) -> SourceKind {
    let looks_json = text.trim_start().starts_with('{');
    if looks_json && (name.ends_with(".json") || json::first_object(text).is_some()) {
        SourceKind::ResultJson
    } else {
        SourceKind::Combined
    }
}

/// Whether a source may hold the tool's printed results.
pub(crate) fn is_text_result_source(kind: SourceKind) -> bool {
    matches!(
        kind,
        SourceKind::Stdout | SourceKind::Stderr | SourceKind::Combined
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_are_ranked() {
        let serving = "============ Serving Benchmark Result ============\n";
        let throughput = "Throughput: 1.00 requests/s, 2.00 tokens/s\n";
        let latency = "Avg latency: 0.5 seconds\n";
        let prefix = "------start generating------\n";
        assert_eq!(detect_mode(serving), Some(Mode::Serving));
        assert_eq!(
            detect_mode(&format!("{latency}{throughput}")),
            Some(Mode::Throughput)
        );
        assert_eq!(
            detect_mode(&format!("{prefix}{latency}")),
            Some(Mode::Latency)
        );
        assert_eq!(detect_mode(prefix), Some(Mode::PrefixCaching));
        assert_eq!(
            detect_mode(&format!("{prefix}{serving}")),
            Some(Mode::Serving)
        );
        assert_eq!(
            detect_mode("INFO x Throughput: 1.00 requests/s, 2.00 tokens/s"),
            None
        );
        assert_eq!(detect_mode(""), None);
    }

    #[test]
    fn source_kinds_are_guessed() {
        assert_eq!(
            guess_source_kind("r.json", "{\"a\": 1}"),
            SourceKind::ResultJson
        );
        assert_eq!(
            guess_source_kind("out", "{\"avg_latency\": 1}"),
            SourceKind::ResultJson
        );
        assert_eq!(
            guess_source_kind("out.txt", "{ broken"),
            SourceKind::Combined
        );
        assert_eq!(
            guess_source_kind("r.json", "Throughput: 1 requests/s"),
            SourceKind::Combined
        );
    }
}
