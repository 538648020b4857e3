//! Hand-written fixtures under `tests/fixtures/parse/`: each `NAME.txt` (a combined capture)
//! or `NAME.json` (a result file) has a `NAME.expect.toml` saying exactly what parsing gives:
//! the metric set (complete, not a subset), format, missing keys, failure code, signature and
//! evidence. Provenance is checked against the fixture's own lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use runner_core::benchmark::{OutputSource, ParseOutcome, RunOutput, SourceKind};
use runner_core::parse::{benchmark_for, mode_from_flag, parse_output};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    /// `auto` or a mode name.
    mode: String,
    format: Option<String>,
    missing: Option<Vec<String>>,
    /// Failure code; absent means success.
    failure: Option<String>,
    signature: Option<String>,
    evidence_contains: Option<String>,
    #[serde(default)]
    json_provenance: bool,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parse")
}

/// The fixture's data file and its source kind.
fn data_file(expect: &Path) -> (PathBuf, SourceKind) {
    let stem = expect.to_string_lossy().replace(".expect.toml", "");
    let json = PathBuf::from(format!("{stem}.json"));
    if json.is_file() {
        (json, SourceKind::ResultJson)
    } else {
        (PathBuf::from(format!("{stem}.txt")), SourceKind::Combined)
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn check(name: &str, text: &str, e: &Expect, o: &ParseOutcome) -> Vec<String> {
    let mut bad = Vec::new();
    let got = o.metrics.values();
    let same_keys = got.keys().eq(e.metrics.keys());
    let same_values = e
        .metrics
        .iter()
        .all(|(k, v)| got.get(k).is_some_and(|g| close(*g, *v)));
    if !same_keys || !same_values {
        bad.push(format!(
            "metrics: expected {:?}\n    got {:?}",
            e.metrics, got
        ));
    }
    if e.format.is_some() && o.format != e.format {
        bad.push(format!(
            "format: expected {:?}, got {:?}",
            e.format, o.format
        ));
    }
    if let Some(missing) = &e.missing {
        if &o.missing != missing {
            bad.push(format!(
                "missing: expected {missing:?}, got {:?}",
                o.missing
            ));
        }
    }
    let code = o.failure.as_ref().map(|f| f.code.code().to_string());
    if code != e.failure {
        bad.push(format!(
            "failure: expected {:?}, got {:?}",
            e.failure, o.failure
        ));
    }
    if let (Some(want), Some(f)) = (&e.signature, &o.failure) {
        if f.signature.as_ref() != Some(want) {
            bad.push(format!("signature: expected {want}, got {:?}", f.signature));
        }
    }
    if let Some(want) = &e.evidence_contains {
        let ok = o
            .failure
            .as_ref()
            .is_some_and(|f| f.evidence.iter().any(|l| l.contains(want.as_str())));
        if !ok {
            bad.push(format!("evidence lacks {want:?}: {:?}", o.failure));
        }
    }
    let lines: Vec<&str> = text.split('\n').collect();
    for (key, m) in &o.metrics.0 {
        let p = &m.provenance;
        if !p.file.ends_with(name) {
            bad.push(format!("{key}: provenance file {:?}", p.file));
        }
        match (e.json_provenance, p.line) {
            (true, None) if p.source.starts_with("$.") => {}
            (false, Some(n))
                if n >= 1 && lines.get(n - 1).is_some_and(|l| l.contains(&p.source)) => {}
            _ => bad.push(format!(
                "{key}: provenance {p:?} does not point at its line"
            )),
        }
    }
    bad
}

#[test]
fn every_fixture_parses_as_its_expectation_says() {
    let mut expects: Vec<_> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expect.toml"))
        .collect();
    expects.sort();
    assert!(expects.len() >= 40, "only {} fixtures found", expects.len());
    let mut wrong = Vec::new();
    for path in &expects {
        let e: Expect = toml::from_str(&std::fs::read_to_string(path).unwrap())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        let (data, kind) = data_file(path);
        let name = data.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&data)
            .unwrap_or_else(|err| panic!("{}: {err}", data.display()));
        let run = RunOutput {
            sources: vec![OutputSource {
                name: format!("fixtures/{name}"),
                kind,
                text: text.clone(),
            }],
            exit_code: None,
        };
        let mode = mode_from_flag(&e.mode).unwrap();
        let outcome = match mode {
            Some(m) => benchmark_for(m).parse(&run),
            None => parse_output(None, &run),
        };
        let problems = check(&name, &text, &e, &outcome);
        if !problems.is_empty() {
            wrong.push(format!("{name}:\n  {}", problems.join("\n  ")));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
