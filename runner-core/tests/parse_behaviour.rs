//! Parsing across several sources, JSON preference, server logs, failure rules and the
//! extensible signature table.

use std::sync::Arc;

use runner_core::Failure;
use runner_core::benchmark::{Benchmark, OutputSource, RunOutput, SourceKind};
use runner_core::parse::{
    Classifier, ClassifyingBenchmark, Signature, SignatureError, benchmark_for, builtin_signatures,
    classify_with, detect_json_mode, detect_mode, detect_output_mode, parse_output,
    parse_signatures,
};
use runner_core::plan;
use runner_core::spec::{EntryPoint, Mode};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/parse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn source(name: &str, kind: SourceKind, text: impl Into<String>) -> OutputSource {
    OutputSource {
        name: name.into(),
        kind,
        text: text.into(),
    }
}

fn run(sources: Vec<OutputSource>) -> RunOutput {
    RunOutput {
        sources,
        exit_code: None,
    }
}

#[test]
fn json_result_wins_over_printed_block() {
    let out = run(vec![
        source(
            "stdout",
            SourceKind::Stdout,
            fixture("serving_printed_twice.txt"),
        ),
        source(
            "result.json",
            SourceKind::ResultJson,
            fixture("serving_result.json"),
        ),
    ]);
    let o = benchmark_for(Mode::Serving).parse(&out);
    assert_eq!(o.format.as_deref(), Some("serving_json"));
    assert_eq!(o.metrics.get("request_throughput_rps"), Some(2.0645));
    let p = &o.metrics.0["ttft_p99_ms"].provenance;
    assert_eq!((p.file.as_str(), p.line), ("result.json", None));
    assert_eq!(p.source, "$.p99_ttft_ms");
}

#[test]
fn unusable_json_falls_back_to_text() {
    for json in ["{not json", "{\"avg_latency\": 1.0}", "[1, 2, 3]", ""] {
        let out = run(vec![
            source("result.json", SourceKind::ResultJson, json),
            source(
                "stdout",
                SourceKind::Stdout,
                fixture("serving_printed_twice.txt"),
            ),
        ]);
        let o = benchmark_for(Mode::Serving).parse(&out);
        assert_eq!(o.format.as_deref(), Some("serving_text"), "{json}");
        assert_eq!(o.metrics.get("request_throughput_rps"), Some(9.71));
        assert!(o.failure.is_none());
    }
}

#[test]
fn server_logs_never_give_metrics_but_are_classified() {
    let block = fixture("serving_bench_cli_full.txt");
    let out = run(vec![
        source(
            "client.log",
            SourceKind::Stdout,
            "Traceback (most recent call last):\n",
        ),
        source(
            "server.log",
            SourceKind::ServerLog,
            format!("{block}\nCUDA out of memory\n"),
        ),
    ]);
    let o = benchmark_for(Mode::Serving).parse(&out);
    assert!(o.metrics.is_empty(), "{:?}", o.metrics.values());
    assert_eq!(o.failure.unwrap().code, Failure::Oom);
    assert_eq!(detect_output_mode(&out), None);
}

#[test]
fn parsed_metrics_mean_no_failure_even_with_error_lines() {
    let text = format!(
        "{}\nWARNING torch.OutOfMemoryError: CUDA out of memory (recovered)\nSERVER_CRASHED\n",
        fixture("latency_avg_percentiles.txt")
    );
    let out = RunOutput {
        sources: vec![source("stdout", SourceKind::Combined, text)],
        exit_code: Some(1),
    };
    let o = benchmark_for(Mode::Latency).parse(&out);
    assert!(o.failure.is_none());
    assert_eq!(o.metrics.get("latency_avg_s"), Some(0.4342977812001482));
}

#[test]
fn metrics_come_from_the_first_source_with_a_result() {
    let out = run(vec![
        source(
            "stderr",
            SourceKind::Stderr,
            fixture("noise_never_metrics.txt"),
        ),
        source(
            "stdout",
            SourceKind::Stdout,
            fixture("throughput_old_tokens.txt"),
        ),
        source(
            "again",
            SourceKind::Stdout,
            fixture("throughput_total_output.txt"),
        ),
    ]);
    let o = parse_output(None, &out);
    assert_eq!(o.mode, Some(Mode::Throughput));
    assert_eq!(o.metrics.get("request_throughput_rps"), Some(9.41));
    assert_eq!(
        o.metrics.0["request_throughput_rps"].provenance.file,
        "stdout"
    );
    assert_eq!(
        o.metrics.0["request_throughput_rps"].provenance.line,
        Some(8)
    );
    assert!(o.metrics.get("output_throughput_tps").is_none());
}

#[test]
fn modes_are_detected_from_content() {
    let cases = [
        ("serving_bench_cli_full.txt", Some(Mode::Serving)),
        ("serving_fragment_docker_noise.txt", Some(Mode::Serving)),
        ("throughput_old_tokens.txt", Some(Mode::Throughput)),
        ("throughput_total_output.txt", Some(Mode::Throughput)),
        ("latency_avg_percentiles.txt", Some(Mode::Latency)),
        ("prefix_caching.txt", Some(Mode::PrefixCaching)),
        ("noise_never_metrics.txt", None),
        ("fail_engine_log_only.txt", None),
    ];
    for (name, mode) in cases {
        assert_eq!(detect_mode(&fixture(name)), mode, "{name}");
    }
    assert_eq!(
        detect_json_mode(&fixture("serving_result.json")),
        Some(Mode::Serving)
    );
    assert_eq!(
        detect_json_mode(&fixture("throughput_result.json")),
        Some(Mode::Throughput)
    );
    assert_eq!(
        detect_json_mode(&fixture("latency_result.json")),
        Some(Mode::Latency)
    );
}

#[test]
fn generic_mode_parses_what_it_detects() {
    let out = run(vec![source(
        "log",
        SourceKind::Combined,
        fixture("prefix_caching.txt"),
    )]);
    let o = benchmark_for(Mode::Other).parse(&out);
    assert_eq!(o.mode, Some(Mode::PrefixCaching));
    assert_eq!(o.metrics.get("cost_time_s"), Some(4.8025));
    let o = benchmark_for(Mode::Other).parse(&run(vec![]));
    assert_eq!(
        (o.mode, o.failure.map(|f| f.code)),
        (Some(Mode::Other), Some(Failure::NoMetrics))
    );
}

#[test]
fn result_args_delegate_to_the_plan() {
    let entry = EntryPoint::Script {
        path: "benchmarks/benchmark_serving.py".into(),
    };
    for m in [
        Mode::Serving,
        Mode::Throughput,
        Mode::Latency,
        Mode::PrefixCaching,
        Mode::Other,
    ] {
        let b = benchmark_for(m);
        assert_eq!(
            b.result_args(&entry, "/out/r.json"),
            plan::result_args(m, "/out/r.json")
        );
    }
}

fn sig(name: &str, code: Failure, pattern: &str) -> Signature {
    Signature {
        name: name.into(),
        code,
        patterns: vec![pattern.into()],
        exclude: vec![],
    }
}

#[test]
fn extra_signatures_come_first() {
    let out = run(vec![source(
        "log",
        SourceKind::Combined,
        fixture("fail_oom_during_server_start.txt"),
    )]);
    let builtin = classify_with(&[], &out).unwrap();
    assert_eq!(builtin.code, Failure::Oom);
    let extra = [sig(
        "moe_too_big",
        Failure::ModelTooLarge,
        r"example/moe-\d+b",
    )];
    let c = classify_with(&extra, &out).unwrap();
    assert_eq!(
        (c.code, c.signature.as_deref()),
        (Failure::ModelTooLarge, Some("moe_too_big"))
    );
    // Through a benchmark that classifies with the extended table.
    let classifier = Arc::new(Classifier::new(&extra).unwrap());
    assert_eq!(
        classifier.signatures().len(),
        builtin_signatures().len() + 1
    );
    let b = ClassifyingBenchmark::new(Mode::Serving, classifier);
    assert_eq!(b.parse(&out).failure.unwrap().code, Failure::ModelTooLarge);
}

#[test]
fn bad_signature_tables_are_errors() {
    let err = classify_with(
        &[sig("broken", Failure::Unknown, "(unclosed")],
        &run(vec![]),
    );
    assert!(matches!(err, Err(SignatureError::Pattern { ref name, .. }) if name == "broken"));
    let mut empty = sig("empty", Failure::Unknown, "x");
    empty.patterns.clear();
    assert!(matches!(
        Classifier::new(&[empty]),
        Err(SignatureError::Empty(_))
    ));
    assert!(matches!(
        parse_signatures("[[signature]]\nname = 1"),
        Err(SignatureError::Toml(_))
    ));
    let bad_code = "[[signature]]\nname = \"x\"\ncode = \"not_a_code\"\npatterns = [\"x\"]\n";
    assert!(parse_signatures(bad_code).is_err());
}

#[test]
fn config_tables_parse_in_the_builtin_format() {
    let text = r#"
[[signature]]
name = "site_quota"
code = "infra_transient"
patterns = ['quota exceeded for project \w+']
exclude = ['dry run']
"#;
    let sigs = parse_signatures(text).unwrap();
    assert_eq!(sigs[0].code, Failure::InfraTransient);
    let c = Classifier::new(&sigs).unwrap();
    let hit = run(vec![source(
        "l",
        SourceKind::Stderr,
        "dry run: quota exceeded for project a\nquota exceeded for project b\n",
    )]);
    let got = c.classify(&hit);
    assert_eq!(got.signature.as_deref(), Some("site_quota"));
    assert_eq!(
        got.evidence,
        vec!["quota exceeded for project b".to_string()]
    );
}

#[test]
fn builtin_table_is_well_formed() {
    let sigs = builtin_signatures();
    let mut names = std::collections::BTreeSet::new();
    for s in sigs {
        assert!(names.insert(s.name.as_str()), "duplicate {}", s.name);
        assert!(!s.patterns.is_empty());
    }
    let pos = |name: &str| sigs.iter().position(|s| s.name == name).unwrap();
    // Root causes before consequences.
    assert!(pos("cuda_oom") < pos("server_not_ready"));
    assert!(pos("gated_or_missing_model") < pos("server_not_ready"));
    assert!(pos("cli_too_old") < pos("import_error"));
    assert!(pos("unsupported_architecture") < pos("import_error"));
    assert!(pos("native_extension_missing") < pos("architecture_inspection_failed"));
    assert!(pos("server_not_ready") < pos("connection_reset"));
}
