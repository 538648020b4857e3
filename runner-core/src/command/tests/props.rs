//! Property tests: no input makes the parser panic, and accepted commands keep every word.

use proptest::prelude::*;

use crate::command::*;
use crate::spec::Side;

/// Fragments that exercise every branch: entry points, flags of each kind, quotes,
/// escapes, operators, placeholders and odd characters.
const FRAGMENTS: &[&str] = &[
    "python",
    "python3",
    "vllm",
    "bench",
    "serve",
    "throughput",
    "latency",
    "-m",
    "vllm.entrypoints.cli.main",
    "benchmarks/benchmark_serving.py",
    "benchmarks/benchmark_latency.py",
    "benchmarks/kernels/benchmark_moe.py",
    "env",
    "A=1",
    "B='x y'",
    "--model",
    "m/x",
    "--model=",
    "--enable-prefix-caching",
    "true",
    "False",
    "--max_model_len",
    "-tp",
    "-O3",
    "-O",
    "-O.level=3",
    "--compilation-config.level=1",
    "--goodput",
    "--cuda-graph-sizes",
    "--lora-modules",
    "a=b",
    "--host",
    "--port",
    "8000",
    "--x-unknown",
    "-1",
    "-",
    "--",
    "'",
    "\"",
    "\\",
    "\\\n",
    "\n",
    ";",
    "&&",
    "||",
    "|",
    "&",
    ">",
    "<",
    "2>&1",
    "`",
    "$(",
    "$X",
    "${X}",
    "MODEL",
    "<model>",
    "{m}",
    "[--x]",
    "[ngram]",
    "...",
    "…",
    "=",
    "==",
    "[",
    "]",
    "(",
    ")",
    "#",
    "'{\"a\": 1}'",
    "é",
    "\u{0}",
    "\t",
    "",
];

fn soup() -> impl Strategy<Value = String> {
    let fragment = prop::sample::select(FRAGMENTS);
    let sep = prop::sample::select(&[" ", "", "  ", "=", "'", "\""][..]);
    prop::collection::vec((fragment, sep), 0..24)
        .prop_map(|parts| parts.into_iter().map(|(f, s)| format!("{f}{s}")).collect())
}

fn entry() -> impl Strategy<Value = &'static str> {
    prop::sample::select(
        &[
            "",
            "python benchmarks/benchmark_serving.py ",
            "X=1 vllm bench serve ",
            "python3 benchmarks/benchmark_throughput.py ",
            "python -m vllm.entrypoints.cli.main bench latency ",
            "python benchmarks/kernels/benchmark_moe.py ",
        ][..],
    )
}

fn check(raw: &str) {
    match parse_perf_command(raw) {
        Ok(spec) => {
            assert_eq!(spec.raw, raw);
            assert!(spec.flags.iter().all(|f| !f.name.is_empty()));
            // Nothing is dropped: each flag reaches at least one side.
            let server = spec.args_for(Side::Server).len();
            let client = spec.args_for(Side::Client).len();
            let total: usize = spec
                .flags
                .iter()
                .map(|f| 1 + usize::from(f.value.is_some()))
                .sum();
            assert!(server + client >= total);
        }
        Err(e) => {
            let _ = (e.to_string(), e.token(), e.failure());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_strings_never_panic(raw in any::<String>()) {
        check(&raw);
    }

    #[test]
    fn printable_strings_never_panic(raw in "\\PC{0,120}") {
        check(&raw);
    }

    #[test]
    fn token_soups_never_panic(prefix in entry(), body in soup()) {
        check(&format!("{prefix}{body}"));
    }

    #[test]
    fn known_flag_commands_round_trip(
        flags in prop::collection::vec(
            prop::sample::select(&[
                "--model m/x", "--dtype half", "--enable-prefix-caching", "-tp 2",
                "--max_model_len 4096", "--num-prompts 10", "--seed -1", "--host h",
                "--speculative-config '{\"n\": 1}'", "--enforce-eager false", "--x-new 3",
            ][..]),
            0..12,
        )
    ) {
        let raw = format!("vllm bench serve {}", flags.join(" "));
        let spec = parse_perf_command(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let host = flags.iter().filter(|f| f.starts_with("--host")).count();
        prop_assert_eq!(spec.flags.len() + spec.replaced_endpoint_flags.len(), flags.len());
        prop_assert_eq!(spec.replaced_endpoint_flags.len(), host);
        prop_assert!(spec.positionals.is_empty());
    }
}
