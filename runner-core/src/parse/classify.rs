//! Failure classification from logs: an ordered, data-driven signature table.
//!
//! The built-in table is `signatures.toml` (embedded, parsed once). Entries are tried in
//! order and the first one whose pattern matches anywhere in the output wins, so root causes
//! are listed before their consequences. Config can prepend its own entries with
//! [`Classifier::new`] (or [`classify_with`]). All patterns are compiled into one
//! [`RegexSet`] that scans each source once; only the signatures the set reports are searched
//! again, to find the evidence line.

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde::{Deserialize, Serialize};

use crate::benchmark::{Classified, RunOutput};
use crate::failure::Failure;

const BUILTIN: &str = include_str!("signatures.toml");
const MAX_EVIDENCE_CHARS: usize = 400;
const MAX_EVIDENCE_LINES: usize = 3;

/// One failure signature: evidence patterns and the code they prove.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Stable name, reported as [`Classified::signature`].
    pub name: String,
    /// The failure the evidence proves.
    pub code: Failure,
    /// Regexes (multi-line mode); any one matching anywhere is evidence.
    pub patterns: Vec<String>,
    /// Regexes vetoing a match: a match whose line matches one of these does not count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

/// A signature table that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The TOML text is not a signature table.
    #[error("invalid signature table: {0}")]
    Toml(#[from] toml::de::Error),
    /// A pattern is not a valid regex.
    #[error("signature '{name}': invalid pattern '{pattern}': {source}")]
    Pattern {
        /// The signature's name.
        name: String,
        /// The offending pattern.
        pattern: String,
        /// The regex error.
        #[source]
        source: regex::Error,
    },
    /// A signature has no patterns.
    #[error("signature '{0}' has no patterns")]
    Empty(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    signature: Vec<Signature>,
}

/// Parse a signature table in the format of the built-in `signatures.toml`
/// (`[[signature]]` entries with `name`, `code`, `patterns` and optional `exclude`).
pub fn parse_signatures(toml_text: &str) -> Result<Vec<Signature>, SignatureError> {
    let table: Table = toml::from_str(toml_text)?;
    Ok(table.signature)
}

/// The built-in signatures, in priority order.
pub fn builtin_signatures() -> &'static [Signature] {
    Classifier::builtin().signatures()
}

/// A compiled, ordered signature table.
#[derive(Debug, Clone)]
pub struct Classifier {
    signatures: Vec<Signature>,
    set: RegexSet,
    /// Per signature: indices of its patterns in `set` / `regexes`.
    owned: Vec<Vec<usize>>,
    regexes: Vec<Regex>,
    excludes: Vec<Vec<Regex>>,
}

fn build(pattern: &str, name: &str) -> Result<Regex, SignatureError> {
    RegexBuilder::new(pattern)
        .multi_line(true)
        .build()
        .map_err(|source| SignatureError::Pattern {
            name: name.to_string(),
            pattern: pattern.to_string(),
            source,
        })
}

impl Classifier {
    /// The built-in table with `extra` entries placed first (they take priority).
    pub fn new(extra: &[Signature]) -> Result<Self, SignatureError> {
        let mut all = extra.to_vec();
        all.extend_from_slice(Self::builtin().signatures());
        Self::from_signatures(all)
    }

    /// Exactly these signatures, in this order.
    pub fn from_signatures(signatures: Vec<Signature>) -> Result<Self, SignatureError> {
        let mut owned = Vec::with_capacity(signatures.len());
        let mut regexes = Vec::new();
        let mut excludes = Vec::with_capacity(signatures.len());
        for sig in &signatures {
            if sig.patterns.is_empty() {
                return Err(SignatureError::Empty(sig.name.clone()));
            }
            let mut idx = Vec::with_capacity(sig.patterns.len());
            for p in &sig.patterns {
                idx.push(regexes.len());
                regexes.push(build(p, &sig.name)?);
            }
            owned.push(idx);
            let ex = sig.exclude.iter().map(|p| build(p, &sig.name));
            excludes.push(ex.collect::<Result<Vec<_>, _>>()?);
        }
        let all_patterns = signatures.iter().flat_map(|s| s.patterns.iter());
        let set = RegexSetBuilder::new(all_patterns)
            .multi_line(true)
            .build()
            .map_err(|source| SignatureError::Pattern {
                name: "(set)".into(),
                pattern: "(all patterns)".into(),
                source,
            })?;
        Ok(Classifier {
            signatures,
            set,
            owned,
            regexes,
            excludes,
        })
    }

    /// The built-in table, compiled once.
    pub fn builtin() -> &'static Classifier {
        static BUILTIN_CLASSIFIER: OnceLock<Classifier> = OnceLock::new();
        BUILTIN_CLASSIFIER.get_or_init(|| {
            let sigs = parse_signatures(BUILTIN).expect("built-in signatures.toml parses");
            Classifier::from_signatures(sigs).expect("built-in signatures compile")
        })
    }

    /// The signatures, in priority order.
    pub fn signatures(&self) -> &[Signature] {
        &self.signatures
    }

    /// The first signature (in table order) with evidence in the output, if any.
    pub fn find(&self, output: &RunOutput) -> Option<Classified> {
        let hits: Vec<_> = output
            .sources
            .iter()
            .map(|s| self.set.matches(&s.text))
            .collect();
        if !hits.iter().any(|m| m.matched_any()) {
            return None;
        }
        for (si, sig) in self.signatures.iter().enumerate() {
            for (source, matched) in output.sources.iter().zip(&hits) {
                let mut best: Option<(usize, Vec<String>)> = None;
                for &pi in self.owned[si].iter().filter(|&&pi| matched.matched(pi)) {
                    if let Some((pos, lines)) = self.first_match(si, pi, &source.text) {
                        if best.as_ref().is_none_or(|(b, _)| pos < *b) {
                            best = Some((pos, lines));
                        }
                    }
                }
                if let Some((_, evidence)) = best {
                    return Some(Classified {
                        code: sig.code,
                        evidence,
                        signature: Some(sig.name.clone()),
                    });
                }
            }
        }
        None
    }

    /// Earliest match of pattern `pi` whose first line is not excluded: its offset and the
    /// lines it spans (at most [`MAX_EVIDENCE_LINES`]).
    fn first_match(&self, si: usize, pi: usize, text: &str) -> Option<(usize, Vec<String>)> {
        self.regexes[pi].find_iter(text).find_map(|m| {
            let (start, end) = line_bounds(text, m.start());
            let vetoed = self.excludes[si]
                .iter()
                .any(|e| e.is_match(&text[start..end]));
            if vetoed {
                return None;
            }
            let mut lines = vec![clip(&text[start..end])];
            let mut next = end;
            while next + 1 < m.end() && lines.len() < MAX_EVIDENCE_LINES {
                let (s, e) = line_bounds(text, next + 1);
                lines.push(clip(&text[s..e]));
                next = e;
            }
            Some((m.start(), lines))
        })
    }

    /// Classify a run that produced no metrics: the first matching signature, else
    /// `no_metrics` with the last error-looking lines as evidence.
    pub fn classify(&self, output: &RunOutput) -> Classified {
        self.find(output).unwrap_or_else(|| Classified {
            code: Failure::NoMetrics,
            evidence: last_error_lines(output, 3),
            signature: None,
        })
    }
}

/// Classify with the built-in table.
pub fn classify(output: &RunOutput) -> Classified {
    Classifier::builtin().classify(output)
}

/// Classify with `extra` signatures tried before the built-in table.
pub fn classify_with(
    extra: &[Signature],
    output: &RunOutput,
) -> Result<Classified, SignatureError> {
    if extra.is_empty() {
        return Ok(classify(output));
    }
    Ok(Classifier::new(extra)?.classify(output))
}

/// Byte bounds of the whole line containing offset `pos` (without its newline).
fn line_bounds(text: &str, pos: usize) -> (usize, usize) {
    let bytes = text.as_bytes();
    let pos = pos.min(bytes.len());
    let start = memchr::memrchr(b'\n', &bytes[..pos]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
    (start, end)
}

fn clip(line: &str) -> String {
    let line = super::text::visible(line).trim();
    match line.char_indices().nth(MAX_EVIDENCE_CHARS) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

const ERROR_WORDS: &[&str] = &[
    "Error",
    "error:",
    "ERROR",
    "Traceback",
    "Exception",
    "FAILED",
    "Failed",
    "fatal",
    "Killed",
];

/// The last `n` error-looking lines of the output (in order of appearance); when there are
/// none, the last non-empty lines, or the exit code.
fn last_error_lines(output: &RunOutput, n: usize) -> Vec<String> {
    let mut errors = Vec::new();
    let mut tail = Vec::new();
    'sources: for source in output.sources.iter().rev() {
        let text = source.text.as_str();
        let mut end = text.len();
        while end > 0 {
            let start = memchr::memrchr(b'\n', &text.as_bytes()[..end]).map_or(0, |i| i + 1);
            let line = super::text::visible(&text[start..end]).trim();
            if !line.is_empty() {
                if ERROR_WORDS.iter().any(|w| line.contains(w)) {
                    errors.push(clip(line));
                    if errors.len() == n {
                        break 'sources;
                    }
                } else if tail.len() < n {
                    tail.push(clip(line));
                }
            }
            end = start.saturating_sub(1);
        }
    }
    let mut picked = if errors.is_empty() { tail } else { errors };
    picked.reverse();
    if picked.is_empty() {
        if let Some(code) = output.exit_code {
            picked.push(format!("exit code {code}"));
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::{OutputSource, SourceKind};

    fn out(text: &str) -> RunOutput {
        RunOutput {
            sources: vec![OutputSource {
                name: "log".into(),
                kind: SourceKind::Combined,
                text: text.into(),
            }],
            exit_code: None,
        }
    }

    fn one(pattern: &str) -> Classifier {
        Classifier::from_signatures(vec![Signature {
            name: "s".into(),
            code: Failure::Unknown,
            patterns: vec![pattern.into()],
            exclude: vec![],
        }])
        .unwrap()
    }

    #[test]
    fn evidence_spans_the_lines_a_match_covers() {
        let c = one(r"first\n\s*second");
        let got = c.find(&out("x\nfirst\n   second line\nthird\n")).unwrap();
        assert_eq!(got.evidence, vec!["first", "second line"]);
        // A match ending with its newline does not drag the next line in.
        let c = one(r"first\n");
        let got = c.find(&out("first\nsecond\n")).unwrap();
        assert_eq!(got.evidence, vec!["first"]);
    }

    #[test]
    fn no_metrics_evidence_is_the_last_error_lines() {
        let text = "ok\nTraceback (most recent call last):\n  File x\nValueError: a\nbye\n";
        let got = Classifier::from_signatures(vec![])
            .unwrap()
            .classify(&out(text));
        assert_eq!(got.code, Failure::NoMetrics);
        assert_eq!(
            got.evidence,
            vec!["Traceback (most recent call last):", "ValueError: a"]
        );
        let quiet = Classifier::from_signatures(vec![])
            .unwrap()
            .classify(&out("a\nb\n"));
        assert_eq!(quiet.evidence, vec!["a", "b"]);
    }

    #[test]
    fn long_evidence_is_clipped() {
        let line = "CUDA out of memory ".repeat(100);
        let got = classify(&out(&line));
        assert_eq!(got.code, Failure::Oom);
        assert!(got.evidence[0].chars().count() <= MAX_EVIDENCE_CHARS + 1);
    }
}
