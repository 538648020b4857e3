//! No engine log line, progress bar or docker noise ever yields a metric; arbitrary input never
//! panics; cutting a capture never invents a number.

use proptest::prelude::*;
use runner_core::benchmark::{OutputSource, RunOutput, SourceKind};
use runner_core::parse::{benchmark_for, parse_output};
use runner_core::spec::Mode;

const MODES: [Mode; 5] = [
    Mode::Serving,
    Mode::Throughput,
    Mode::Latency,
    Mode::PrefixCaching,
    Mode::Other,
];

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/parse/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn one(kind: SourceKind, text: &str) -> RunOutput {
    RunOutput {
        sources: vec![OutputSource {
            name: "capture".into(),
            kind,
            text: text.to_string(),
        }],
        exit_code: None,
    }
}

/// Metrics in every mode (and auto), as `(mode, key, value)`.
fn any_metrics(kind: SourceKind, text: &str) -> Vec<(String, String, f64)> {
    let run = one(kind, text);
    let mut outcomes: Vec<_> = MODES
        .iter()
        .map(|m| (m.as_str().to_string(), benchmark_for(*m).parse(&run)))
        .collect();
    outcomes.push(("auto".into(), parse_output(None, &run)));
    outcomes
        .into_iter()
        .flat_map(|(m, o)| {
            o.metrics
                .values()
                .into_iter()
                .map(move |(k, v)| (m.clone(), k, v))
        })
        .collect()
}

/// One line of noise: engine logs, progress bars, docker pull, preamble, stray markers.
fn noise_line(template: usize, a: u32, b: u32, c: u32) -> String {
    let x = format!("{}.{:02}", a, b % 100);
    let pct = c % 101;
    match template % 14 {
        0 => format!(
            "INFO 01-21 02:29:{:02} [metrics.py:486] Avg prompt throughput: {x} tokens/s, Avg generation throughput: {b}.{c} tokens/s, Running: {c} reqs, Swapped: 0 reqs, Pending: 0 reqs, GPU KV cache usage: {pct}.0%, CPU KV cache usage: 0.0%.",
            a % 60
        ),
        1 => format!(
            "INFO 01-09 18:49:28 [loggers.py:80] Engine 000: Avg prompt throughput: {x} tokens/s, Avg generation throughput: {c}.5 tokens/s, Running: {b} reqs, Waiting: 0 reqs, GPU KV cache usage: 9.1%, Prefix cache hit rate: {pct}.7%"
        ),
        2 => format!(
            "Processed prompts: {pct:>3}%|████| {c}/{c} [00:0{}<00:00, {x}it/s, est. speed input: {x} toks/s, output: {b}.{c} toks/s]",
            b % 10
        ),
        3 => format!("{pct:>3}%|██████████| {c}/{c} [00:02<00:00, {x}it/s]"),
        4 => format!(
            "Profiling iterations: {pct:>3}%|███| {b}/{c} [00:07<00:17, {x}it/s]INFO 01-14 09:07:32 [metrics.py:417] Avg prompt throughput: {x} tokens/s, Avg generation throughput: 4.8 tokens/s"
        ),
        5 => format!("{:012x}: Pulling fs layer", u64::from(a) * 7919),
        6 => format!(
            "{:012x}: Downloading  {x}MB/{c}.{b}GB",
            u64::from(b) * 104729
        ),
        7 => format!("Digest: sha256:{:064x}", u128::from(a) * u128::from(c)),
        8 => format!(
            "INFO:     127.0.0.1:{} - \"POST /v1/completions HTTP/1.1\" 200 OK",
            a % 65536
        ),
        9 => format!(
            "Maximum request concurrency: {c}\nTraffic request rate: {x}\nBurstiness factor: 1.0 (Poisson process)"
        ),
        10 => format!("cost time {x}"),
        11 => format!("INFO 02-02 02:02:02 [x.py:1] Throughput: {x} requests/s, {b}.{c} tokens/s"),
        12 => format!(
            "Loading safetensors checkpoint shards: {pct:>3}% Completed | {b}/{c} [00:02<00:00,  {x}it/s]"
        ),
        _ => "------warm up------".to_string(),
    }
}

fn noise_strategy(max_lines: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            any::<usize>(),
            0u32..100_000,
            0u32..10_000,
            0u32..1_000,
            0usize..3,
        ),
        0..max_lines,
    )
    .prop_map(|lines| {
        let mut out = String::new();
        for (t, a, b, c, sep) in lines {
            out.push_str(&noise_line(t, a, b, c));
            out.push_str(["\n", "\r\n", "\r"][sep]);
        }
        out
    })
}

#[test]
fn the_noise_fixture_never_yields_a_metric() {
    let text = fixture("noise_never_metrics.txt");
    for kind in [
        SourceKind::Combined,
        SourceKind::Stdout,
        SourceKind::Stderr,
        SourceKind::ServerLog,
    ] {
        assert_eq!(any_metrics(kind, &text), vec![], "{kind:?}");
    }
}

#[test]
fn engine_throughput_in_failing_runs_is_not_a_metric() {
    for name in [
        "fail_engine_log_only.txt",
        "fail_oom_during_server_start.txt",
    ] {
        assert_eq!(
            any_metrics(SourceKind::Combined, &fixture(name)),
            vec![],
            "{name}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn generated_noise_never_yields_a_metric(text in noise_strategy(80)) {
        prop_assert_eq!(any_metrics(SourceKind::Combined, &text), vec![]);
    }

    #[test]
    fn noise_around_a_block_changes_nothing(before in noise_strategy(30), after in noise_strategy(30)) {
        let block = fixture("serving_bench_cli_full.txt");
        let alone = benchmark_for(Mode::Serving).parse(&one(SourceKind::Stdout, &block));
        let text = format!("{before}\n{block}{after}");
        let mixed = benchmark_for(Mode::Serving).parse(&one(SourceKind::Stdout, &text));
        prop_assert_eq!(mixed.metrics.values(), alone.metrics.values());
        prop_assert!(mixed.failure.is_none());
    }

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}", kind in 0usize..5) {
        let kind = [SourceKind::Stdout, SourceKind::Stderr, SourceKind::ServerLog, SourceKind::ResultJson, SourceKind::Combined][kind];
        let run = one(kind, &text);
        for m in MODES {
            let _ = benchmark_for(m).parse(&run);
        }
        let _ = parse_output(None, &run);
    }

    #[test]
    fn arbitrary_lines_of_near_formats_never_panic(
        lines in prop::collection::vec(prop::sample::select(vec![
            "Mean TTFT (ms):", "P", "P99.9 ITL (ms): ", "Throughput: ", " requests/s, ", "tokens/s",
            "Avg latency: ", "% percentile latency: ", " seconds", "cost time ", "------start generating------",
            "est. speed input: ", " toks/s, output: ", "100%|", "=", "==========", "\r", "\n", "1e309", "-0", "é", "{", "\"avg_latency\": ",
        ]), 0..60)
    ) {
        let text: String = lines.concat();
        for kind in [SourceKind::Combined, SourceKind::ResultJson] {
            let _ = any_metrics(kind, &text);
        }
    }

    #[test]
    fn cutting_a_capture_never_invents_a_number(
        name in prop::sample::select(vec![
            "serving_bench_cli_full.txt", "serving_old_input_throughput.txt", "throughput_old_tokens.txt",
            "latency_avg_percentiles.txt", "prefix_caching.txt",
        ]),
        head in 0.0f64..1.0, tail in 0.0f64..1.0,
    ) {
        let text = fixture(name);
        let full = parse_output(None, &one(SourceKind::Combined, &text)).metrics.values();
        let chars: Vec<char> = text.chars().collect();
        let (a, b) = ((head * chars.len() as f64) as usize, (tail * chars.len() as f64) as usize);
        let (a, b) = (a.min(b), a.max(b));
        let cut: String = chars[a..b].iter().collect();
        for (mode, key, value) in any_metrics(SourceKind::Combined, &cut) {
            prop_assert_eq!(full.get(&key), Some(&value), "{} {} from {:?}", mode, key, cut);
        }
    }
}
