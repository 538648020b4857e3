//! Line-oriented scanning helpers shared by the text parsers.
//!
//! Lines are split on `\n` with `memchr`; a line carrying carriage returns (terminal progress
//! bars redrawn in place) is reduced to what a terminal would finally show: the last non-empty
//! `\r`-separated segment. Splitting only at ASCII bytes keeps every slice on a UTF-8 boundary,
//! so no input can make slicing panic.

use crate::metrics::{Metrics, Provenance};

/// One line of a source: its 1-based number and its visible text (trailing whitespace and
/// carriage-return history removed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    /// 1-based line number within the source.
    pub no: usize,
    /// The visible text of the line.
    pub text: &'a str,
    /// Whether this is the last line and no newline ends it: the capture may have been cut
    /// inside it, so a number at its end may be incomplete.
    pub cut: bool,
}

/// Iterate the lines of `text` (1-based numbers, visible text only).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let bytes = text.as_bytes();
    let mut start = 0usize;
    let mut no = 0usize;
    std::iter::from_fn(move || {
        if start > bytes.len() || (start == bytes.len() && start != 0) {
            return None;
        }
        if start == bytes.len() {
            // Empty input: no lines at all.
            start += 1;
            return None;
        }
        let end = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let raw = &text[start..end];
        let cut = end == bytes.len();
        start = end + 1;
        no += 1;
        Some(Line {
            no,
            text: visible(raw),
            cut,
        })
    })
}

/// What a terminal shows for a raw line: the last non-blank `\r` segment, right-trimmed.
pub(crate) fn visible(raw: &str) -> &str {
    let raw = raw.trim_end();
    if memchr::memchr(b'\r', raw.as_bytes()).is_none() {
        return raw;
    }
    raw.rsplit('\r')
        .map(str::trim_end)
        .find(|s| !s.trim().is_empty())
        .unwrap_or("")
}

/// Parse a whole string as a finite number (`12`, `0.5`, `1e-3`); anything else is `None`.
pub(crate) fn number(s: &str) -> Option<f64> {
    let s = s.trim();
    let first = *s.as_bytes().first()?;
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return None; // rejects "inf", "nan", "infinity" which `f64::from_str` would accept
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The key fragment for a printed percentile: `99` → `p99`, `99.9` → `p99_9`, `50.0` → `p50`.
pub(crate) fn percentile_word(p: &str) -> Option<String> {
    let p = p.trim();
    if p.is_empty() || p.len() > 8 || !p.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let v = number(p)?;
    if !(0.0..=100.0).contains(&v) {
        return None;
    }
    let trimmed = if p.contains('.') {
        p.trim_end_matches('0').trim_end_matches('.')
    } else {
        p
    };
    let trimmed = trimmed.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() || trimmed.starts_with('.') {
        format!("0{trimmed}")
    } else {
        trimmed.to_string()
    };
    Some(format!("p{}", trimmed.replace('.', "_")))
}

/// Provenance of a JSON field.
pub(crate) fn json_provenance(file: &str, path: &str) -> Provenance {
    Provenance {
        file: file.to_string(),
        line: None,
        source: path.to_string(),
    }
}

/// A metric read from text, before it is committed to a [`Metrics`] set.
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    /// The unit-bearing key.
    pub key: String,
    /// The value in the key's unit.
    pub value: f64,
    /// 1-based line number.
    pub line: usize,
    /// The printed line.
    pub source: String,
}

impl Reading {
    /// A reading from a line.
    pub fn new(key: impl Into<String>, value: f64, line: Line<'_>) -> Self {
        Reading {
            key: key.into(),
            value,
            line: line.no,
            source: line.text.trim().to_string(),
        }
    }
}

/// Commit readings to a metric set (first value of a key wins).
pub(crate) fn commit(readings: &[Reading], file: &str, metrics: &mut Metrics) {
    for r in readings {
        metrics.insert_first(
            &r.key,
            r.value,
            Provenance {
                file: file.to_string(),
                line: Some(r.line),
                source: r.source.clone(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_number_and_strip_carriage_returns() {
        let got: Vec<_> = lines("a\r\n\nprogress 10%\rprogress 100%\r\nlast")
            .map(|l| (l.no, l.text))
            .collect();
        assert_eq!(
            got,
            vec![(1, "a"), (2, ""), (3, "progress 100%"), (4, "last")]
        );
        assert_eq!(lines("").count(), 0);
        assert_eq!(lines("x\n").count(), 1);
        let cut: Vec<_> = lines("a\nb").map(|l| l.cut).collect();
        assert_eq!(cut, vec![false, true]);
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(number(" 12.50 "), Some(12.5));
        assert_eq!(number("1e-3"), Some(0.001));
        assert_eq!(number("inf"), None);
        assert_eq!(number("nan"), None);
        assert_eq!(number("12 ms"), None);
        assert_eq!(number(""), None);
    }

    #[test]
    fn percentile_words() {
        assert_eq!(percentile_word("99").as_deref(), Some("p99"));
        assert_eq!(percentile_word("99.9").as_deref(), Some("p99_9"));
        assert_eq!(percentile_word("50.0").as_deref(), Some("p50"));
        assert_eq!(percentile_word("0.5").as_deref(), Some("p0_5"));
        assert_eq!(percentile_word("101"), None);
        assert_eq!(percentile_word("x"), None);
    }
}
