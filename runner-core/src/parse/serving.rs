//! The serving benchmark's text result block (`benchmark_serving.py`, `vllm bench serve`).
//!
//! ```text
//! ============ Serving Benchmark Result ============
//! Successful requests:                     100
//! Benchmark duration (s):                  2.55
//! Request throughput (req/s):              39.16
//! ---------------Time to First Token----------------
//! Mean TTFT (ms):                          888.81
//! P99 TTFT (ms):                           1239.12
//! ==================================================
//! ```
//!
//! A metric is read only from a line that is exactly `<known label>:<spaces><number>`, starting
//! the line. Lines are grouped into blocks delimited by the header and the closing `=` rule; a
//! block whose header was cut off (truncated capture) still counts, as a fragment. The first
//! closed block carrying the throughput lines wins; other blocks (duplicates, copies) never
//! overwrite it.

use super::text::{Line, Reading, lines, number, percentile_word};

/// Fixed labels of the block, compared ASCII-case-insensitively, and their keys.
const LABELS: &[(&str, &str)] = &[
    ("Successful requests", "completed"),
    ("Failed requests", "failed"),
    ("Benchmark duration (s)", "duration_s"),
    ("Total input tokens", "total_input_tokens"),
    ("Total generated tokens", "total_output_tokens"),
    ("Request throughput (req/s)", "request_throughput_rps"),
    ("Request goodput (req/s)", "request_goodput_rps"),
    ("Input token throughput (tok/s)", "input_throughput_tps"),
    ("Output token throughput (tok/s)", "output_throughput_tps"),
    ("Total Token throughput (tok/s)", "total_throughput_tps"),
    (
        "Peak output token throughput (tok/s)",
        "peak_output_throughput_tps",
    ),
    ("Peak concurrent requests", "peak_concurrent_requests"),
];

/// Latency families printed per request, as printed and as keyed.
const FAMILIES: &[(&str, &str)] = &[
    ("TTFT", "ttft"),
    ("TPOT", "tpot"),
    ("ITL", "itl"),
    ("E2EL", "e2el"),
];

/// Keys a full serving block prints in every vLLM version with TTFT/TPOT.
pub(crate) const EXPECTED: &[&str] = &[
    "completed",
    "duration_s",
    "total_input_tokens",
    "total_output_tokens",
    "request_throughput_rps",
    "output_throughput_tps",
    "ttft_mean_ms",
    "ttft_median_ms",
    "ttft_p99_ms",
    "tpot_mean_ms",
    "tpot_median_ms",
    "tpot_p99_ms",
];

/// Keys any of which makes a serving run successful.
pub(crate) const PRIMARY: &[&str] = &[
    "request_throughput_rps",
    "output_throughput_tps",
    "total_throughput_tps",
    "ttft_mean_ms",
    "tpot_mean_ms",
    "itl_mean_ms",
    "e2el_mean_ms",
];

/// What one line is, as far as the serving block is concerned.
#[derive(Debug, PartialEq)]
pub(crate) enum ServingLine {
    /// `==== Serving Benchmark Result ====`.
    Header,
    /// The closing rule, only `=` characters.
    Close,
    /// A metric line.
    Metric(String, f64),
    /// Anything else.
    Other,
}

/// Classify one visible line.
pub(crate) fn classify_line(text: &str) -> ServingLine {
    let t = text.trim_start();
    let Some(&first) = t.as_bytes().first() else {
        return ServingLine::Other;
    };
    if first == b'=' {
        if t.contains("Serving Benchmark Result") {
            return ServingLine::Header;
        }
        if t.len() >= 10 && t.bytes().all(|b| b == b'=') {
            return ServingLine::Close;
        }
        return ServingLine::Other;
    }
    if !first.is_ascii_uppercase() {
        return ServingLine::Other;
    }
    let Some(colon) = memchr::memchr(b':', t.as_bytes()) else {
        return ServingLine::Other;
    };
    if colon > 48 {
        return ServingLine::Other;
    }
    let (label, rest) = (&t[..colon], &t[colon + 1..]);
    let Some(value) = number(rest) else {
        return ServingLine::Other;
    };
    match label_key(label) {
        Some(key) => ServingLine::Metric(key, value),
        None => ServingLine::Other,
    }
}

/// The key of a printed label (without its colon), if it is one of the block's.
fn label_key(label: &str) -> Option<String> {
    if let Some((_, key)) = LABELS.iter().find(|(l, _)| l.eq_ignore_ascii_case(label)) {
        return Some((*key).to_string());
    }
    // `<Stat> <FAMILY> (ms)` with Stat = Mean | Median | Std | P<percentile>.
    let mut words = label.split(' ');
    let (stat, family, unit) = (words.next()?, words.next()?, words.next()?);
    if unit != "(ms)" || words.next().is_some() {
        return None;
    }
    let (_, fam) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    let stat = match stat {
        "Mean" => "mean".to_string(),
        "Median" => "median".to_string(),
        "Std" => "std".to_string(),
        s => percentile_word(s.strip_prefix('P')?)?,
    };
    Some(format!("{fam}_{stat}_ms"))
}

/// One block of serving result lines.
#[derive(Debug, Default)]
pub(crate) struct Block {
    /// Whether the block began with the header (not a cut-off fragment).
    pub header: bool,
    /// Whether the closing rule was seen.
    pub closed: bool,
    /// Metric lines, in order.
    pub readings: Vec<Reading>,
}

impl Block {
    fn has(&self, key: &str) -> bool {
        self.readings.iter().any(|r| r.key == key)
    }

    /// Whether it carries the lines every version prints first.
    fn has_throughput(&self) -> bool {
        self.has("request_throughput_rps") && self.has("output_throughput_tps")
    }
}

/// Split a text into serving blocks.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in lines(text) {
        match classify_line(line.text) {
            ServingLine::Header => {
                out.extend(current.take());
                current = Some(Block {
                    header: true,
                    ..Block::default()
                });
            }
            ServingLine::Close => {
                if let Some(mut b) = current.take() {
                    b.closed = true;
                    out.push(b);
                }
            }
            // A number on a line the capture cut may be incomplete.
            ServingLine::Metric(..) if line.cut => {}
            ServingLine::Metric(key, value) => {
                let block = current.get_or_insert_with(Block::default);
                push_reading(block, key, value, line);
            }
            ServingLine::Other => {}
        }
    }
    out.extend(current);
    out.retain(|b| !b.readings.is_empty());
    out
}

fn push_reading(block: &mut Block, key: String, value: f64, line: Line<'_>) {
    if !block.has(&key) {
        block.readings.push(Reading::new(key, value, line));
    }
}

/// The block that wins: the first closed one with the throughput lines, else the first with
/// them, else the one with the most metrics (the earliest on a tie). Returns it with its
/// format name.
pub(crate) fn best_block(text: &str) -> Option<(Block, &'static str)> {
    let mut all = blocks(text);
    let pick = all
        .iter()
        .position(|b| b.closed && b.has_throughput())
        .or_else(|| all.iter().position(Block::has_throughput))
        .or_else(|| {
            let most = all.iter().map(|b| b.readings.len()).max()?;
            all.iter().position(|b| b.readings.len() == most)
        })?;
    let block = all.swap_remove(pick);
    let format = if block.header {
        "serving_text"
    } else {
        "serving_text_fragment"
    };
    Some((block, format))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_unit_keys() {
        let m = |s: &str| match classify_line(s) {
            ServingLine::Metric(k, v) => Some((k, v)),
            _ => None,
        };
        assert_eq!(
            m("Request throughput (req/s):              12.34   "),
            Some(("request_throughput_rps".into(), 12.34))
        );
        assert_eq!(
            m("P99.9 ITL (ms):  3.5"),
            Some(("itl_p99_9_ms".into(), 3.5))
        );
        assert_eq!(m("P90 E2EL (ms): 7"), Some(("e2el_p90_ms".into(), 7.0)));
        assert_eq!(
            m("Total token throughput (tok/s): 9"),
            Some(("total_throughput_tps".into(), 9.0))
        );
        assert_eq!(m("Maximum request concurrency: 10"), None);
        assert_eq!(m("Mean TTFT (ms): n/a"), None);
        assert_eq!(
            m("INFO 01-01 [metrics.py:1] Avg prompt throughput: 5.0"),
            None
        );
        assert_eq!(classify_line("====="), ServingLine::Other);
        assert_eq!(classify_line(&"=".repeat(50)), ServingLine::Close);
    }
}
