//! The per-mode [`Benchmark`] implementations and the parse driver they share.
//!
//! For a mode: read the tool's JSON result when one carries the mode's primary metrics; else
//! the text result from stdout/stderr/combined captures (never from a server log); list the
//! expected keys not found; and classify a failure only when no primary metric was read.
//! A result (JSON file or winning text block) holding an impossible or wrongly typed value
//! is no measurement at all: the parse fails with `no_metrics` and evidence naming each bad
//! value ([`super::sanity`]).

use std::sync::Arc;

use super::classify::Classifier;
use super::detect::{detect_output_mode, is_text_result_source};
use super::text::{Reading, commit, json_provenance};
use super::{json, offline, prefix, sanity, serving};
use crate::benchmark::{Benchmark, Classified, ParseOutcome, RunOutput, SourceKind};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::plan;
use crate::spec::{EntryPoint, Mode};

/// Keys a mode's output is expected to carry, and the keys any one of which means it ran.
fn spec(mode: Mode) -> (&'static [&'static str], &'static [&'static str]) {
    match mode {
        Mode::Serving => (serving::EXPECTED, serving::PRIMARY),
        Mode::Throughput => (offline::THROUGHPUT_EXPECTED, offline::THROUGHPUT_PRIMARY),
        Mode::Latency => (offline::LATENCY_EXPECTED, offline::LATENCY_PRIMARY),
        Mode::PrefixCaching => (prefix::EXPECTED, prefix::PRIMARY),
        Mode::Other => (&[], &[]),
    }
}

fn has_primary(mode: Mode, metrics: &Metrics) -> bool {
    let (_, primary) = spec(mode);
    if primary.is_empty() {
        !metrics.is_empty()
    } else {
        primary.iter().any(|k| metrics.get(k).is_some())
    }
}

/// The text parser of a mode: the winning block of one text, with its format name.
fn text_block(mode: Mode, text: &str) -> Option<(Vec<Reading>, &'static str)> {
    match mode {
        Mode::Serving => serving::best_block(text).map(|(b, f)| (b.readings, f)),
        Mode::Throughput => offline::throughput(text),
        Mode::Latency => offline::latency(text),
        Mode::PrefixCaching => prefix::prefix_caching(text),
        Mode::Other => None,
    }
}

/// The evidence against the values of a result that cannot be measurements (empty when every
/// value is possible).
fn json_rejects(name: &str, readings: &[json::JsonReading]) -> Vec<String> {
    let mut bad = Vec::new();
    for r in readings {
        match &r.value {
            Ok(v) => {
                if let Err(why) = sanity::check(&r.key, *v) {
                    bad.push(sanity::evidence(name, &r.key, *v, &r.path, &why));
                }
            }
            Err(found) => bad.push(format!(
                "{name}: {} ({}) is {found}, expected a number",
                r.path, r.key
            )),
        }
    }
    bad
}

fn text_rejects(name: &str, readings: &[Reading]) -> Vec<String> {
    readings
        .iter()
        .filter_map(|r| {
            let why = sanity::check(&r.key, r.value).err()?;
            let at = format!("line {}: {}", r.line, r.source);
            Some(sanity::evidence(name, &r.key, r.value, &at, &why))
        })
        .collect()
}

/// Read a mode's metrics from the output into `outcome` (metrics and format). Returns the
/// evidence against impossible or wrongly typed values of the result read, if any (then no
/// metric is kept).
fn read_metrics(mode: Mode, output: &RunOutput, outcome: &mut ParseOutcome) -> Vec<String> {
    for source in output.sources.iter() {
        if source.kind != SourceKind::ResultJson {
            continue;
        }
        let Some(obj) = json::first_object(&source.text) else {
            continue;
        };
        let readings = json::readings(mode, &obj);
        let bad = json_rejects(&source.name, &readings);
        if !bad.is_empty() {
            outcome.format = Some(format!("{}_json", mode.as_str()));
            return bad;
        }
        let mut metrics = Metrics::new();
        for r in readings {
            if let Ok(v) = r.value {
                metrics.insert_first(&r.key, v, json_provenance(&source.name, &r.path));
            }
        }
        if has_primary(mode, &metrics) {
            outcome.metrics = metrics;
            outcome.format = Some(format!("{}_json", mode.as_str()));
            return Vec::new();
        }
    }
    // Text: the first source whose block has a primary metric, else the first with any.
    let mut fallback: Option<(Metrics, &'static str)> = None;
    for source in output.sources.iter() {
        if !is_text_result_source(source.kind) {
            continue;
        }
        let Some((readings, format)) = text_block(mode, &source.text) else {
            continue;
        };
        let bad = text_rejects(&source.name, &readings);
        if !bad.is_empty() {
            outcome.format = Some(format.to_string());
            return bad;
        }
        let mut metrics = Metrics::new();
        commit(&readings, &source.name, &mut metrics);
        if has_primary(mode, &metrics) {
            outcome.metrics = metrics;
            outcome.format = Some(format.to_string());
            return Vec::new();
        }
        if fallback.is_none() && !metrics.is_empty() {
            fallback = Some((metrics, format));
        }
    }
    if let Some((metrics, format)) = fallback {
        outcome.metrics = metrics;
        outcome.format = Some(format.to_string());
    }
    Vec::new()
}

/// Parse a run's output for a mode (`None` or [`Mode::Other`]: detect it from the content),
/// classifying failures with `classifier`.
pub fn parse_output_with(
    mode: Option<Mode>,
    output: &RunOutput,
    classifier: &Classifier,
) -> ParseOutcome {
    let effective = match mode {
        None | Some(Mode::Other) => detect_output_mode(output),
        Some(m) => Some(m),
    };
    let mut outcome = ParseOutcome {
        mode: effective.or(mode),
        ..ParseOutcome::default()
    };
    let rejects = match effective {
        Some(m) => read_metrics(m, output, &mut outcome),
        None => Vec::new(),
    };
    let judged = effective.or(mode);
    if let Some(m) = judged {
        let (expected, _) = spec(m);
        outcome.missing = expected
            .iter()
            .filter(|k| outcome.metrics.get(k).is_none())
            .map(|k| k.to_string())
            .collect();
    }
    let ran = judged.is_some_and(|m| has_primary(m, &outcome.metrics));
    if !rejects.is_empty() {
        outcome.failure = Some(Classified {
            code: Failure::NoMetrics,
            evidence: sanity::bounded(rejects),
            signature: Some(sanity::IMPLAUSIBLE_SIGNATURE.to_string()),
        });
    } else if !ran {
        outcome.failure = Some(classifier.classify(output));
    }
    outcome
}

/// Parse a run's output with the built-in failure signatures. `mode: None` detects the mode
/// from the content (as does [`Mode::Other`], the generic mode).
pub fn parse_output(mode: Option<Mode>, output: &RunOutput) -> ParseOutcome {
    parse_output_with(mode, output, Classifier::builtin())
}

macro_rules! benchmark {
    ($(#[$doc:meta])* $name:ident, $mode:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Benchmark for $name {
            fn mode(&self) -> Mode {
                $mode
            }

            fn result_args(&self, _entry: &EntryPoint, result_path: &str) -> Vec<String> {
                plan::result_args($mode, result_path)
            }

            fn parse(&self, output: &RunOutput) -> ParseOutcome {
                parse_output(Some($mode), output)
            }
        }
    };
}

benchmark!(
    /// Online serving: the `Serving Benchmark Result` block or the `--save-result` JSON.
    ServingBenchmark,
    Mode::Serving
);
benchmark!(
    /// Offline throughput: the `Throughput:` line or the `--output-json` JSON.
    ThroughputBenchmark,
    Mode::Throughput
);
benchmark!(
    /// Offline latency: `Avg latency:` and percentile lines or the `--output-json` JSON.
    LatencyBenchmark,
    Mode::Latency
);
benchmark!(
    /// Prefix caching: the measured run's `cost time` and final progress-bar speeds.
    PrefixCachingBenchmark,
    Mode::PrefixCaching
);
benchmark!(
    /// Another script: the output's layout is detected and parsed as that mode's.
    GenericBenchmark,
    Mode::Other
);

/// A mode's benchmark that classifies failures with a custom (e.g. config-extended) table.
#[derive(Debug, Clone)]
pub struct ClassifyingBenchmark {
    mode: Mode,
    classifier: Arc<Classifier>,
}

impl ClassifyingBenchmark {
    /// The benchmark of `mode`, classifying with `classifier`.
    pub fn new(mode: Mode, classifier: Arc<Classifier>) -> Self {
        ClassifyingBenchmark { mode, classifier }
    }
}

impl Benchmark for ClassifyingBenchmark {
    fn mode(&self) -> Mode {
        self.mode
    }

    fn result_args(&self, _entry: &EntryPoint, result_path: &str) -> Vec<String> {
        plan::result_args(self.mode, result_path)
    }

    fn parse(&self, output: &RunOutput) -> ParseOutcome {
        parse_output_with(Some(self.mode), output, &self.classifier)
    }
}
