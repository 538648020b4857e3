//! Unit tests of perf-command parsing with real-world commands.

use super::*;
use crate::spec::{EntryPoint, Flag, Mode, Side};

mod flags;
mod policy;
mod props;
mod syntax;

pub(super) fn ok(cmd: &str) -> BenchmarkSpec {
    parse_perf_command(cmd).unwrap_or_else(|e| panic!("{cmd:?} was rejected: {e}"))
}

pub(super) fn err(cmd: &str) -> CommandError {
    match parse_perf_command(cmd) {
        Ok(spec) => panic!("{cmd:?} was accepted: {spec:?}"),
        Err(e) => e,
    }
}

pub(super) fn flag<'a>(spec: &'a BenchmarkSpec, name: &str) -> &'a Flag {
    spec.flags
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", spec.flags))
}

pub(super) fn side(spec: &BenchmarkSpec, name: &str) -> Side {
    flag(spec, name).side
}

pub(super) fn words(raw: &str) -> Vec<String> {
    tokenize(raw).unwrap().into_iter().map(|w| w.text).collect()
}
#[test]
fn serving_command_is_split_into_exact_server_and_client_argv() {
    let raw = "python benchmarks/benchmark_serving.py --model meta-llama/Llama-3.1-8B-Instruct \
               --dataset-name sharegpt --dataset-path ShareGPT_V3_unfiltered_cleaned_split.json \
               --num-prompts 1000 --enable-prefix-caching --tensor-parallel-size 2";
    let spec = ok(raw);
    assert_eq!(spec.raw, raw);
    assert_eq!(spec.mode, Mode::Serving);
    assert_eq!(
        spec.entry,
        EntryPoint::Script {
            path: "benchmarks/benchmark_serving.py".into()
        }
    );
    assert_eq!(
        spec.args_for(Side::Server),
        [
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--enable-prefix-caching",
            "--tensor-parallel-size",
            "2"
        ]
    );
    assert_eq!(
        spec.args_for(Side::Client),
        [
            "--model",
            "meta-llama/Llama-3.1-8B-Instruct",
            "--dataset-name",
            "sharegpt",
            "--dataset-path",
            "ShareGPT_V3_unfiltered_cleaned_split.json",
            "--num-prompts",
            "1000"
        ]
    );
    assert!(spec.flags.iter().all(|f| f.known));
    assert_eq!(spec.tensor_parallel_size(), Some(2));
}

#[test]
fn throughput_command_keeps_every_flag_on_the_client() {
    let spec = ok(
        "python3 benchmarks/benchmark_throughput.py --model Qwen/Qwen2.5-7B-Instruct \
                   --input-len 1000 --output-len 100 --num-prompts 200 --enforce-eager",
    );
    assert_eq!(spec.mode, Mode::Throughput);
    assert_eq!(spec.flags.len(), 5);
    assert!(spec.flags.iter().all(|f| f.side == Side::Client && f.known));
    assert_eq!(flag(&spec, "--enforce-eager").value, None);
    assert_eq!(spec.value_of("--input-len"), Some("1000"));
}

#[test]
fn latency_command_expands_short_tp() {
    let spec = ok(
        "python benchmarks/benchmark_latency.py --model meta-llama/Meta-Llama-3-8B \
                   --batch-size 8 --input-len 128 --output-len 256 --num-iters 10 -tp 1",
    );
    assert_eq!(spec.mode, Mode::Latency);
    assert_eq!(spec.value_of("--tensor-parallel-size"), Some("1"));
    assert_eq!(spec.value_of("--num-iters"), Some("10"));
    assert!(!spec.has_flag("-tp"));
}

#[test]
fn vllm_bench_serve_with_env_replaces_the_endpoint() {
    let spec = ok(
        "VLLM_USE_V1=1 VLLM_ATTENTION_BACKEND=FLASHINFER vllm bench serve \
                   --model Qwen/Qwen3-30B-A3B --dataset-name random --random-input-len 2048 \
                   --random-output-len 128 --num-prompts 200 --host 0.0.0.0 --port 8000",
    );
    assert_eq!(
        spec.env,
        [
            ("VLLM_USE_V1".to_string(), "1".to_string()),
            (
                "VLLM_ATTENTION_BACKEND".to_string(),
                "FLASHINFER".to_string()
            )
        ]
    );
    assert_eq!(
        spec.entry,
        EntryPoint::VllmBench {
            subcommand: "serve".into()
        }
    );
    assert_eq!(spec.mode, Mode::Serving);
    assert!(!spec.has_flag("--host") && !spec.has_flag("--port"));
    let replaced: Vec<_> = spec
        .replaced_endpoint_flags
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_deref()))
        .collect();
    assert_eq!(
        replaced,
        [("--host", Some("0.0.0.0")), ("--port", Some("8000"))]
    );
    assert_eq!(
        spec.args_for(Side::Server),
        ["--model", "Qwen/Qwen3-30B-A3B"]
    );
}

#[test]
fn prefix_caching_command() {
    let spec = ok("python benchmarks/benchmark_prefix_caching.py \
                   --model neuralmagic/Meta-Llama-3-8B-Instruct-FP8 --enable-prefix-caching \
                   --num-prompts 1 --repeat-count 100 --input-length-range 128:256");
    assert_eq!(spec.mode, Mode::PrefixCaching);
    assert_eq!(spec.value_of("--input-length-range"), Some("128:256"));
    assert!(spec.flags.iter().all(|f| f.side == Side::Client && f.known));
}

#[test]
fn speculative_flags_go_to_the_server_and_ngram_is_a_real_value() {
    for quoted in ["'[ngram]'", "[ngram]", "\"[ngram]\""] {
        let spec = ok(&format!(
            "python benchmarks/benchmark_serving.py --backend vllm \
             --model deepseek-ai/DeepSeek-V2-Lite-Chat --trust-remote-code \
             --speculative-model {quoted} --num-speculative-tokens 5 \
             --ngram-prompt-lookup-max 4 --dataset-name random"
        ));
        assert_eq!(spec.value_of("--speculative-model"), Some("[ngram]"));
        assert_eq!(side(&spec, "--speculative-model"), Side::Server);
        assert_eq!(side(&spec, "--num-speculative-tokens"), Side::Server);
        assert_eq!(side(&spec, "--ngram-prompt-lookup-max"), Side::Server);
        assert_eq!(side(&spec, "--trust-remote-code"), Side::Both);
        assert_eq!(side(&spec, "--backend"), Side::Client);
        assert_eq!(side(&spec, "--dataset-name"), Side::Client);
    }
}

#[test]
fn module_bench_latency() {
    let spec = ok(
        "python -m vllm.entrypoints.cli.main bench latency --model facebook/opt-125m \
                   --output-json /tmp/x.json",
    );
    assert_eq!(
        spec.entry,
        EntryPoint::ModuleBench {
            module: "vllm.entrypoints.cli.main".into(),
            subcommand: "latency".into()
        }
    );
    assert_eq!(spec.mode, Mode::Latency);
    assert_eq!(spec.value_of("--output-json"), Some("/tmp/x.json"));
    assert!(spec.entry.needs_bench_cli());
}

#[test]
fn kernel_script_is_other_mode_with_unknown_flags_kept() {
    let spec = ok("python benchmarks/kernels/benchmark_moe.py \
                   --model mistralai/Mixtral-8x7B-Instruct-v0.1 --tp-size 2");
    assert_eq!(spec.mode, Mode::Other);
    let tp = flag(&spec, "--tp-size");
    assert_eq!(
        (tp.value.as_deref(), tp.known, tp.side),
        (Some("2"), false, Side::Client)
    );
    assert_eq!(spec.unclassified().count(), 1);
}

#[test]
fn underscores_are_normalised_for_known_flags() {
    let spec = ok("vllm bench throughput --model x --max_model_len 4096 --my_own_flag 3");
    assert_eq!(spec.mode, Mode::Throughput);
    assert_eq!(spec.value_of("--max-model-len"), Some("4096"));
    assert!(flag(&spec, "--my_own_flag").value.as_deref() == Some("3"));
    assert!(!flag(&spec, "--my_own_flag").known);
}

#[test]
fn entry_point_variants() {
    let cases = [
        ("python3.10 benchmarks/benchmark_serving.py", Mode::Serving),
        (
            "/usr/bin/python3 benchmarks/benchmark_latency.py",
            Mode::Latency,
        ),
        (
            "python -u vllm/benchmarks/benchmark_throughput.py",
            Mode::Throughput,
        ),
        (
            "python ./benchmarks/benchmark_prefix_caching.py",
            Mode::PrefixCaching,
        ),
        (
            "python benchmarks/benchmark_serving_structured_output.py",
            Mode::Serving,
        ),
        (
            "python benchmarks/benchmark_long_document_qa_throughput.py",
            Mode::Other,
        ),
        (
            "python benchmarks/cutlass_benchmarks/w8a8_benchmarks.py",
            Mode::Other,
        ),
        ("vllm bench latency", Mode::Latency),
        ("/opt/venv/bin/vllm bench serve", Mode::Serving),
        (
            "python3 -m vllm.entrypoints.cli.main bench throughput",
            Mode::Throughput,
        ),
        (
            "env VLLM_USE_V1=0 python benchmarks/benchmark_serving.py",
            Mode::Serving,
        ),
    ];
    for (cmd, mode) in cases {
        assert_eq!(ok(cmd).mode, mode, "{cmd}");
    }
}

#[test]
fn unknown_entry_points_are_named() {
    let cases = [
        ("pytest tests/test_x.py", "pytest"),
        ("vllm serve meta-llama/Llama-3.1-8B", "vllm serve"),
        ("vllm bench sweep --x 1", "vllm bench sweep"),
        ("vllm bench", "vllm bench"),
        (
            "python examples/offline_inference.py",
            "examples/offline_inference.py",
        ),
        ("python -c 'print(1)'", "python -c"),
        (
            "python -m vllm.entrypoints.openai.api_server --model x",
            "python -m vllm.entrypoints.openai.api_server",
        ),
        ("python", "python"),
        ("VLLM_USE_V1=1", "VLLM_USE_V1=1"),
        (
            "python -m vllm.entrypoints.cli.main serve m",
            "python -m vllm.entrypoints.cli.main serve",
        ),
        (
            "python benchmark_serving.py --model m",
            "benchmark_serving.py",
        ),
        ("time python benchmarks/benchmark_serving.py", "time"),
        ("'FOO=1' python benchmarks/benchmark_serving.py", "FOO=1"),
    ];
    for (cmd, token) in cases {
        let e = err(cmd);
        assert!(
            matches!(&e, CommandError::UnknownEntryPoint { token: t } if t == token),
            "{cmd}: {e:?}"
        );
        assert!(
            e.to_string()
                .contains("vllm bench {serve,throughput,latency}")
        );
    }
}

#[test]
fn empty_commands() {
    for cmd in ["", "   ", "\n\t"] {
        let e = err(cmd);
        assert_eq!(e, CommandError::Empty);
        assert_eq!(e.failure(), Failure::NoPerfCommand);
        assert_eq!(e.token(), None);
    }
}

#[test]
fn env_options_are_rejected() {
    let e = err("env -i python benchmarks/benchmark_serving.py");
    assert_eq!(e.token(), Some("-i"));
    let spec = ok("CUDA_VISIBLE_DEVICES=0,1 FOO='a b' python benchmarks/benchmark_latency.py");
    assert_eq!(spec.env[1], ("FOO".into(), "a b".into()));
}
