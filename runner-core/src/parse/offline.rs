//! Offline benchmarks' text results: throughput and latency.
//!
//! Throughput (`benchmark_throughput.py`, `vllm bench throughput`):
//!
//! ```text
//! Throughput: 9.20 requests/s, 11770.39 tokens/s                      (old: tokens = prompt + output)
//! Throughput: 9.20 requests/s, 11770.39 total tokens/s, 2354.08 output tokens/s
//! Total num prompt tokens:  1024000
//! Total num output tokens:  256000
//! ```
//!
//! Latency (`benchmark_latency.py`, `vllm bench latency`):
//!
//! ```text
//! Avg latency: 0.8276 seconds
//! 10% percentile latency: 0.8228 seconds
//! ```
//!
//! Each result is a block of consecutive lines, anchored at the start of a line; the first
//! complete block wins and later copies never overwrite it.

use std::sync::OnceLock;

use regex::Regex;

use super::text::{Line, Reading, lines, number, percentile_word};

/// Keys expected from a throughput run.
pub(crate) const THROUGHPUT_EXPECTED: &[&str] = &["request_throughput_rps", "total_throughput_tps"];
/// Keys any of which makes a throughput run successful.
pub(crate) const THROUGHPUT_PRIMARY: &[&str] = &[
    "request_throughput_rps",
    "total_throughput_tps",
    "output_throughput_tps",
];
/// Keys expected from a latency run.
pub(crate) const LATENCY_EXPECTED: &[&str] = &["latency_avg_s"];
/// Keys any of which makes a latency run successful.
pub(crate) const LATENCY_PRIMARY: &[&str] = &["latency_avg_s"];

const NUM: &str = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)";

fn throughput_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pat = format!(
            r"^Throughput:\s+{NUM}\s+requests/s(?:,\s+{NUM}\s+(total\s+)?tokens/s(?:,\s+{NUM}\s+output\s+tokens/s)?)?$"
        );
        Regex::new(&pat).expect("throughput regex is valid")
    })
}

/// Whether a visible line is a throughput result line.
pub(crate) fn is_throughput_line(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with("Throughput:") && throughput_re().is_match(t)
}

/// Whether a visible line is the latency average line.
pub(crate) fn is_latency_line(text: &str) -> bool {
    avg_latency(text).is_some()
}

/// The first throughput block of a text (the throughput line and the token totals printed
/// right after it), with its format name.
pub(crate) fn throughput(text: &str) -> Option<(Vec<Reading>, &'static str)> {
    let mut it = lines(text);
    while let Some(line) = it.next() {
        let Some((mut readings, format)) = throughput_line(line) else {
            continue;
        };
        for next in it.by_ref() {
            let t = next.text.trim_start();
            if t.is_empty() {
                continue;
            }
            if next.cut {
                break; // a cut line's number may be incomplete
            }
            let total = if let Some(v) = t.strip_prefix("Total num prompt tokens:") {
                number(v).map(|v| ("total_input_tokens", v))
            } else if let Some(v) = t.strip_prefix("Total num output tokens:") {
                number(v).map(|v| ("total_output_tokens", v))
            } else {
                None
            };
            match total {
                Some((key, v)) => push_new(&mut readings, key.to_string(), v, next),
                None => break,
            }
        }
        return Some((readings, format));
    }
    None
}

fn throughput_line(line: Line<'_>) -> Option<(Vec<Reading>, &'static str)> {
    let t = line.text.trim_start();
    if !t.starts_with("Throughput:") {
        return None;
    }
    let c = throughput_re().captures(t)?;
    let get = |i: usize| c.get(i).and_then(|m| number(m.as_str()));
    let mut readings = vec![Reading::new("request_throughput_rps", get(1)?, line)];
    let format = match (get(2), c.get(3).is_some(), get(4)) {
        (Some(tokens), false, _) => {
            // Old scripts divided prompt + output tokens by the elapsed time.
            readings.push(Reading::new("total_throughput_tps", tokens, line));
            "throughput_text_requests_tokens"
        }
        (Some(total), true, output) => {
            readings.push(Reading::new("total_throughput_tps", total, line));
            if let Some(output) = output {
                readings.push(Reading::new("output_throughput_tps", output, line));
            }
            "throughput_text_total_output"
        }
        (None, _, _) => "throughput_text_requests",
    };
    Some((readings, format))
}

fn avg_latency(text: &str) -> Option<f64> {
    let rest = text.trim_start().strip_prefix("Avg latency:")?;
    number(rest.trim().strip_suffix("seconds")?)
}

fn percentile_latency(text: &str) -> Option<(String, f64)> {
    let t = text.trim_start();
    let pct = t.find("% percentile latency:")?;
    let word = percentile_word(&t[..pct])?;
    let rest = t[pct + "% percentile latency:".len()..].trim();
    let v = number(rest.strip_suffix("seconds")?)?;
    Some((format!("latency_{word}_s"), v))
}

/// The first latency block of a text (the average line and the percentile lines after it),
/// with its format name. A fragment of percentile lines without the average is returned
/// only when no block has an average.
pub(crate) fn latency(text: &str) -> Option<(Vec<Reading>, &'static str)> {
    let mut fragment: Option<Vec<Reading>> = None;
    let mut current: Option<(Vec<Reading>, bool)> = None; // (readings, has average)
    let finish = |cur: Option<(Vec<Reading>, bool)>, fragment: &mut Option<Vec<Reading>>| match cur
    {
        Some((r, true)) => Some(r),
        Some((r, false)) => {
            fragment.get_or_insert(r);
            None
        }
        None => None,
    };
    for line in lines(text) {
        if let Some(v) = avg_latency(line.text) {
            if let Some(done) = finish(current.take(), &mut fragment) {
                return Some((done, "latency_avg_seconds"));
            }
            current = Some((vec![Reading::new("latency_avg_s", v, line)], true));
        } else if let Some((key, v)) = percentile_latency(line.text).filter(|_| line.no > 1) {
            // (A capture's first line may have lost its head: "10%" would read as "0%".)
            let (readings, _) = current.get_or_insert_with(|| (Vec::new(), false));
            push_new(readings, key, v, line);
        } else if !line.text.trim().is_empty() && current.is_some() {
            if let Some(done) = finish(current.take(), &mut fragment) {
                return Some((done, "latency_avg_seconds"));
            }
        }
    }
    if let Some(done) = finish(current.take(), &mut fragment) {
        return Some((done, "latency_avg_seconds"));
    }
    fragment.map(|r| (r, "latency_percentiles_fragment"))
}

fn push_new(readings: &mut Vec<Reading>, key: String, v: f64, line: Line<'_>) {
    if !readings.iter().any(|r| r.key == key) {
        readings.push(Reading::new(key, v, line));
    }
}
