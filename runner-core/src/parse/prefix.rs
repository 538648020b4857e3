//! The prefix-caching benchmark's text result (`benchmark_prefix_caching.py`).
//!
//! ```text
//! ------warm up------
//! Processed prompts: 100%|██████████| 100/100 [00:03<00:00, …, est. speed input: 16930.67 toks/s, output: 5249.81 toks/s]
//! cost time 3.8798890113830566
//! ------start generating------
//! Processed prompts: 100%|██████████| 100/100 [00:03<00:00, …, est. speed input: 16727.70 toks/s, output: 5186.87 toks/s]
//! cost time 3.9213526248931885
//! ```
//!
//! Only the measured run counts: a block opens at a `start generating` marker and closes at
//! the next `cost time` line; the final (100 %) progress bar inside it gives the token speeds.
//! The warm-up's `cost time` and every other progress bar are ignored. The first complete block
//! wins (captures often hold the same run twice).

use super::text::{Line, Reading, lines, number};

/// Keys expected from a prefix-caching run.
pub(crate) const EXPECTED: &[&str] = &[
    "cost_time_s",
    "input_throughput_tps",
    "output_throughput_tps",
];
/// Keys any of which makes a prefix-caching run successful.
pub(crate) const PRIMARY: &[&str] = &["cost_time_s"];

/// Whether a visible line is the measured run's marker.
pub(crate) fn is_start_marker(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('-') && t.contains("start generating")
}

fn is_warmup_marker(text: &str) -> bool {
    let t = text.trim();
    t.starts_with('-') && t.contains("warm up")
}

fn cost_time(text: &str) -> Option<f64> {
    let rest = text.trim().strip_prefix("cost time")?;
    number(rest.strip_prefix(':').unwrap_or(rest))
}

/// `(input tok/s, output tok/s)` of a finished progress bar.
fn final_speeds(text: &str) -> Option<(f64, f64)> {
    if !text.contains("100%|") {
        return None;
    }
    let rest = &text[text.find("est. speed input:")? + "est. speed input:".len()..];
    let (input, rest) = rest.split_once("toks/s")?;
    let rest = rest.trim_start().strip_prefix(',')?.trim_start();
    let rest = rest.strip_prefix("output:")?;
    let (output, _) = rest.split_once("toks/s")?;
    Some((number(input)?, number(output)?))
}

/// The first complete measured block, with its format name.
pub(crate) fn prefix_caching(text: &str) -> Option<(Vec<Reading>, &'static str)> {
    let mut open = false;
    let mut bar: Option<(f64, f64, Line<'_>)> = None;
    for line in lines(text) {
        if is_start_marker(line.text) {
            open = true;
            bar = None;
            continue;
        }
        if is_warmup_marker(line.text) {
            open = false;
            continue;
        }
        if !open {
            continue;
        }
        if let Some((input, output)) = final_speeds(line.text) {
            bar = Some((input, output, line));
        } else if let Some(cost) = cost_time(line.text).filter(|_| !line.cut) {
            let mut readings = vec![Reading::new("cost_time_s", cost, line)];
            let format = match bar {
                Some((input, output, bar_line)) => {
                    readings.push(Reading::new("input_throughput_tps", input, bar_line));
                    readings.push(Reading::new("output_throughput_tps", output, bar_line));
                    "prefix_caching_cost_time+progress_bar"
                }
                None => "prefix_caching_cost_time",
            };
            return Some((readings, format));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_only_from_finished_bars() {
        let done = "Processed prompts: 100%|##| 10/10 [00:01<00:00, 9.1it/s, est. speed input: 120.50 toks/s, output: 30.25 toks/s]";
        assert_eq!(final_speeds(done), Some((120.5, 30.25)));
        let mid = done.replace("100%|", " 50%|");
        assert_eq!(final_speeds(&mid), None);
        assert_eq!(cost_time("cost time 1.25"), Some(1.25));
        assert_eq!(cost_time("cost time: 2"), Some(2.0));
        assert_eq!(cost_time("the cost time 2"), None);
    }
}
