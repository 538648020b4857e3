//! Impossible or wrongly typed metric values are never metrics: the parse fails with
//! `no_metrics` and evidence naming the file, the key and the value.

use runner_core::Failure;
use runner_core::benchmark::{OutputSource, ParseOutcome, RunOutput, SourceKind};
use runner_core::parse::parse_output;
use runner_core::parse::sanity::IMPLAUSIBLE_SIGNATURE;
use runner_core::spec::Mode;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/parse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str, kind: SourceKind, text: &str) -> ParseOutcome {
    parse_output(
        None,
        &RunOutput {
            sources: vec![OutputSource {
                name: name.into(),
                kind,
                text: text.into(),
            }],
            exit_code: Some(0),
        },
    )
}

/// The serving fixture with one field's value replaced (`"field": VALUE` as JSON text).
fn serving_json_with(field: &str, value: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(&fixture("serving_result.json")).unwrap();
    let mut obj = json.as_object().unwrap().clone();
    obj.insert(field.into(), serde_json::from_str(value).unwrap());
    serde_json::to_string(&obj).unwrap()
}

/// Assert a rejected parse whose evidence names every part.
fn assert_rejected(o: &ParseOutcome, parts: &[&str]) {
    let f = o.failure.as_ref().expect("a failure");
    assert_eq!(f.code, Failure::NoMetrics);
    assert_eq!(f.signature.as_deref(), Some(IMPLAUSIBLE_SIGNATURE));
    assert!(
        o.metrics.is_empty(),
        "no value of a rejected result is a metric: {:?}",
        o.metrics.values()
    );
    let evidence = f.evidence.join("\n");
    for p in parts {
        assert!(
            evidence.contains(p),
            "{p:?} missing from evidence:\n{evidence}"
        );
    }
}

#[test]
fn the_unmodified_fixture_is_accepted() {
    let o = parse(
        "r.json",
        SourceKind::ResultJson,
        &fixture("serving_result.json"),
    );
    assert!(o.failure.is_none(), "{:?}", o.failure);
    assert_eq!(o.metrics.get("output_throughput_tps"), Some(264.26));
}

#[test]
fn impossible_json_values_fail_the_parse() {
    for (field, value, key) in [
        ("output_throughput", "-264.26", "output_throughput_tps"),
        ("duration", "0", "duration_s"),
        ("mean_ttft_ms", "-20", "ttft_mean_ms"),
        ("p99_ttft_ms", "1e44", "ttft_p99_ms"),
        ("completed", "4.5", "completed"),
        ("request_throughput", "0", "request_throughput_rps"),
    ] {
        let o = parse(
            "r.json",
            SourceKind::ResultJson,
            &serving_json_with(field, value),
        );
        let shown = if value == "1e44" {
            value.to_string()
        } else {
            value.parse::<f64>().unwrap().to_string()
        };
        assert_rejected(&o, &["r.json", key, &format!("= {shown} "), field]);
    }
}

#[test]
fn a_string_where_a_number_belongs_is_a_failure_not_a_gap() {
    let o = parse(
        "r.json",
        SourceKind::ResultJson,
        &serving_json_with("output_throughput", "\"264.26\""),
    );
    assert_rejected(
        &o,
        &[
            "r.json",
            "$.output_throughput",
            "output_throughput_tps",
            "a string",
            "expected a number",
        ],
    );
    // Even when the string is the only sign of the tool: the file is still judged.
    let o = parse(
        "r.json",
        SourceKind::ResultJson,
        r#"{"output_throughput": "fast"}"#,
    );
    assert_eq!(o.mode, Some(Mode::Serving));
    assert_rejected(&o, &["$.output_throughput", "\"fast\""]);
}

#[test]
fn null_and_zero_goodput_are_real() {
    for goodput in ["null", "0"] {
        let o = parse(
            "r.json",
            SourceKind::ResultJson,
            &serving_json_with("request_goodput", goodput),
        );
        assert!(o.failure.is_none(), "goodput {goodput}: {:?}", o.failure);
    }
}

#[test]
fn impossible_printed_values_fail_the_parse() {
    let block = fixture("serving_printed_twice.txt");
    let bad = block.replacen(
        "Mean TTFT (ms):",
        "Mean TTFT (ms):                          -20\nX:",
        1,
    );
    let o = parse("out.txt", SourceKind::Combined, &bad);
    assert_rejected(
        &o,
        &["out.txt", "ttft_mean_ms = -20", "Mean TTFT (ms)", "line "],
    );

    let throughput = "Throughput: 9.20 requests/s, -11770.39 total tokens/s\n";
    let o = parse("t.txt", SourceKind::Stdout, throughput);
    assert_rejected(&o, &["total_throughput_tps = -11770.39", "negative"]);

    let latency = "Avg latency: 0 seconds\n";
    let o = parse("l.txt", SourceKind::Stdout, latency);
    assert!(
        o.failure.is_none(),
        "a latency may round to 0: {:?}",
        o.failure
    );

    let prefix = "------start generating------\ncost time 0\n";
    let o = parse("p.txt", SourceKind::Stdout, prefix);
    assert_rejected(&o, &["cost_time_s = 0", "greater than 0"]);
}

#[test]
fn offline_json_values_are_checked_too() {
    let o = parse(
        "lat.json",
        SourceKind::ResultJson,
        r#"{"avg_latency": -1.5, "latencies": [1.0], "percentiles": {"50": 1.0}}"#,
    );
    assert_rejected(&o, &["lat.json", "latency_avg_s = -1.5", "$.avg_latency"]);
    let o = parse(
        "tp.json",
        SourceKind::ResultJson,
        r#"{"elapsed_time": 0, "num_requests": 10, "requests_per_second": 1e30, "tokens_per_second": 5}"#,
    );
    assert_rejected(&o, &["elapsed_s = 0", "request_throughput_rps = 1e30"]);
}
