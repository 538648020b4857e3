//! Output helpers: writes that never panic on a closed pipe, vLLM-style log lines, Python-style
//! centring and tqdm-like progress lines.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes one line to stdout; a closed pipe is ignored (no panic).
pub fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Writes one line to stderr; errors are ignored.
pub fn err(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Seconds since the epoch split into UTC (year, month, day, hour, minute, second).
pub fn utc_now() -> (i64, u32, u32, u32, u32, u32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (
        (rem / 3600) as u32,
        ((rem % 3600) / 60) as u32,
        (rem % 60) as u32,
    );
    (year, month, day, h, m, s)
}

/// `%Y%m%d-%H%M%S`, the `date` of vLLM's result JSON and file names.
pub fn date_compact() -> String {
    let (y, mo, d, h, mi, s) = utc_now();
    format!("{y:04}{mo:02}{d:02}-{h:02}{mi:02}{s:02}")
}

/// A vLLM logger line: `INFO 01-21 02:29:49 [metrics.py:486] msg` (old versions:
/// `INFO 01-21 02:29:49 metrics.py:486] msg`), written to stderr.
pub fn log(level: &str, src: &str, msg: &str, old: bool) {
    err(&log_line(level, src, msg, old));
}

/// The text of a vLLM logger line (see [`log`]).
pub fn log_line(level: &str, src: &str, msg: &str, old: bool) -> String {
    let (_, mo, d, h, mi, s) = utc_now();
    if old {
        format!("{level} {mo:02}-{d:02} {h:02}:{mi:02}:{s:02} {src}] {msg}")
    } else {
        format!("{level} {mo:02}-{d:02} {h:02}:{mi:02}:{s:02} [{src}] {msg}")
    }
}

/// Python's `'{s:{c}^{n}}'.format(...)`: centred, the odd fill character going right.
pub fn py_center(s: &str, width: usize, fill: char) -> String {
    let len = s.chars().count();
    if len >= width {
        return s.to_string();
    }
    let left = (width - len) / 2;
    let right = width - len - left;
    let f = fill.to_string();
    format!("{}{s}{}", f.repeat(left), f.repeat(right))
}

fn clock(secs: f64) -> String {
    let t = if secs.is_finite() && secs > 0.0 {
        secs as u64
    } else {
        0
    };
    if t >= 3600 {
        format!("{}:{:02}:{:02}", t / 3600, (t % 3600) / 60, t % 60)
    } else {
        format!("{:02}:{:02}", t / 60, t % 60)
    }
}

/// A tqdm progress line, e.g. `Processed prompts: 100%|██████████| 10/10 [00:01<00:00,
/// 9.24it/s, est. speed input: 1.00 toks/s, output: 2.00 toks/s]` (`postfix` after the rate).
pub fn tqdm(desc: &str, n: usize, total: usize, elapsed: f64, postfix: &str) -> String {
    let frac = if total == 0 {
        1.0
    } else {
        (n as f64 / total as f64).clamp(0.0, 1.0)
    };
    let filled = frac * 10.0;
    let full = filled.floor() as usize;
    let mut bar = "█".repeat(full);
    if full < 10 {
        const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
        bar.push(PARTS[(((filled - full as f64) * 8.0) as usize).min(7)]);
        bar.push_str(&" ".repeat(9 - full));
    }
    let (rate, remaining) = if n == 0 || elapsed <= 0.0 {
        ("?it/s".to_string(), "?".to_string())
    } else {
        let r = n as f64 / elapsed;
        let rate = if r >= 1.0 {
            format!("{r:5.2}it/s")
        } else {
            format!("{:5.2}s/it", 1.0 / r)
        };
        (rate, clock((total - n.min(total)) as f64 / r))
    };
    let desc = if desc.is_empty() {
        String::new()
    } else {
        format!("{desc}: ")
    };
    let pct = (frac * 100.0) as u32;
    let post = if postfix.is_empty() {
        String::new()
    } else {
        format!(", {postfix}")
    };
    format!(
        "{desc}{pct:3}%|{bar}| {n}/{total} [{}<{remaining}, {rate}{post}]",
        clock(elapsed)
    )
}

/// Python's `repr(float)` for ordinary values (`3.0`, `0.8276586694998`).
pub fn py_float(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centring_and_bars_match_python_and_tqdm() {
        let h = py_center("Time to First Token", 50, '-');
        assert_eq!(h, "---------------Time to First Token----------------");
        assert_eq!(py_center(" Serving Benchmark Result ", 50, '=').len(), 50);
        assert_eq!(
            tqdm("", 3, 100, 1.41, ""),
            "  3%|▎         | 3/100 [00:01<00:45,  2.13it/s]"
        );
        assert!(tqdm("", 100, 100, 2.55, "").starts_with("100%|██████████| 100/100 [00:02<00:00"));
        assert_eq!(py_float(3.0), "3.0");
        assert_eq!(py_float(0.25), "0.25");
    }
}
