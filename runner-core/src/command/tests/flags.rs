//! Flag knowledge, normalisation, sides, values and positionals.

use super::{err, flag, ok, side};
use crate::command::{CommandError, flags};
use crate::spec::Side;

#[test]
fn missing_values_are_errors() {
    let e = err("vllm bench serve --model");
    assert_eq!(
        e,
        CommandError::MissingValue {
            flag: "--model".into(),
            next: None
        }
    );
    assert!(e.to_string().contains("'--model'"));
    let e = err("vllm bench serve --model --dtype half");
    assert_eq!(e.token(), Some("--model"));
    assert!(e.to_string().contains("'--dtype'"));
    assert_eq!(err("vllm bench serve --model=").token(), Some("--model="));
    assert_eq!(err("vllm bench serve --model x -tp").token(), Some("-tp"));
}

#[test]
fn switches_values_and_short_forms() {
    let spec = ok("vllm bench serve --model x --enable-chunked-prefill False \
                   --no-enable-prefix-caching -O3 -pp 2 -q awq --compilation-config.level=3 \
                   --disable-log-stats=true --enforce-eager");
    assert_eq!(spec.value_of("--enable-chunked-prefill"), Some("False"));
    assert_eq!(side(&spec, "--no-enable-prefix-caching"), Side::Server);
    assert_eq!(spec.value_of("-O"), Some("3"));
    assert_eq!(side(&spec, "-O"), Side::Server);
    assert_eq!(spec.value_of("--pipeline-parallel-size"), Some("2"));
    assert_eq!(spec.value_of("--quantization"), Some("awq"));
    assert_eq!(spec.value_of("--compilation-config.level"), Some("3"));
    assert_eq!(side(&spec, "--compilation-config.level"), Side::Server);
    assert_eq!(spec.value_of("--disable-log-stats"), Some("true"));
    assert!(spec.flags.iter().all(|f| f.known));
}

#[test]
fn server_client_and_both_sides() {
    let spec = ok(
        "vllm bench serve --model m --tokenizer t --tokenizer-mode slow \
                   --served-model-name s --dtype bfloat16 --max-model-len 8192 \
                   --gpu-memory-utilization 0.9 --kv-cache-dtype fp8 --max-num-seqs 256 \
                   --max-num-batched-tokens 8192 --block-size 16 --swap-space 4 \
                   --load-format dummy --distributed-executor-backend mp \
                   --use-v2-block-manager --num-scheduler-steps 8 --endpoint /v1/completions \
                   --request-rate 10 --max-concurrency 8 --percentile-metrics ttft,tpot \
                   --ignore-eos --save-result --result-dir /tmp/r --some-new-flag 7",
    );
    for name in [
        "--model",
        "--tokenizer",
        "--tokenizer-mode",
        "--served-model-name",
    ] {
        assert_eq!(side(&spec, name), Side::Both, "{name}");
    }
    for name in [
        "--dtype",
        "--max-model-len",
        "--gpu-memory-utilization",
        "--kv-cache-dtype",
        "--max-num-seqs",
        "--max-num-batched-tokens",
        "--block-size",
        "--swap-space",
        "--load-format",
        "--distributed-executor-backend",
        "--use-v2-block-manager",
        "--num-scheduler-steps",
    ] {
        assert_eq!(side(&spec, name), Side::Server, "{name}");
    }
    for name in [
        "--endpoint",
        "--request-rate",
        "--max-concurrency",
        "--percentile-metrics",
        "--ignore-eos",
        "--save-result",
        "--result-dir",
        "--some-new-flag",
    ] {
        assert_eq!(side(&spec, name), Side::Client, "{name}");
    }
    assert!(!flag(&spec, "--some-new-flag").known);
}

#[test]
fn lora_modules_side_depends_on_the_value() {
    let spec = ok("vllm bench serve --model m --enable-lora --lora-modules sql=/loras/sql");
    assert_eq!(side(&spec, "--lora-modules"), Side::Server);
    let spec = ok("python benchmarks/benchmark_serving.py --model m --lora-modules sql");
    assert_eq!(side(&spec, "--lora-modules"), Side::Client);
}

#[test]
fn endpoint_flags_stay_in_offline_modes() {
    let spec = ok("vllm bench latency --model m --host 0.0.0.0 --base-url http://x:1");
    assert!(spec.replaced_endpoint_flags.is_empty());
    assert_eq!(spec.value_of("--host"), Some("0.0.0.0"));
    let spec = ok("python benchmarks/benchmark_serving.py --model m --base-url http://h:8000");
    assert_eq!(spec.replaced_endpoint_flags.len(), 1);
    assert!(spec.flags.iter().all(|f| f.name != "--base-url"));
}

#[test]
fn unknown_flags_take_a_value_only_when_one_follows() {
    let spec = ok("vllm bench serve --model m --x-a --x-b v --x-c -1 --x-d");
    let got: Vec<_> = spec
        .flags
        .iter()
        .map(|f| (f.name.as_str(), f.value.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("--model", Some("m")),
            ("--x-a", None),
            ("--x-b", Some("v")),
            ("--x-c", Some("-1")),
            ("--x-d", None)
        ]
    );
}

#[test]
fn positionals() {
    let spec = ok("python benchmarks/benchmark_throughput.py --model m pos1 pos2");
    assert_eq!(spec.positionals, ["pos1", "pos2"]);
    let spec = ok("python benchmarks/kernels/benchmark_moe.py --batch-size 1 2 4");
    assert_eq!(spec.value_of("--batch-size"), Some("1"));
    assert_eq!(spec.positionals, ["2", "4"]);
    let spec = ok("vllm bench serve --model m --goodput ttft:500 tpot:50");
    assert_eq!(spec.positionals, ["tpot:50"]);
    let spec = ok("python benchmarks/x.py --a 1 -- -b c");
    assert_eq!(spec.positionals, ["--", "-b", "c"]);
    let e = err("python benchmarks/kernels/benchmark_moe.py --batch-size 1 2 --tp-size 2");
    assert!(
        matches!(&e, CommandError::Unsupported { token, .. } if token == "2"),
        "{e:?}"
    );
    let e = err("vllm bench serve --model m --cuda-graph-sizes 1 2");
    assert!(
        matches!(&e, CommandError::Unsupported { token, .. } if token == "2"),
        "{e:?}"
    );
    assert!(e.to_string().contains("--cuda-graph-sizes"));
}

#[test]
fn flag_tables() {
    use flags::{Arity, Class, flag_info, normalise};
    assert_eq!(flag_info("--model").map(|i| i.class), Some(Class::Both));
    assert_eq!(
        flag_info("--enforce-eager").map(|i| i.arity),
        Some(Arity::Switch)
    );
    assert_eq!(
        flag_info("--no-enforce-eager").map(|i| i.arity),
        Some(Arity::Switch)
    );
    assert_eq!(flag_info("--no-model"), None);
    assert_eq!(flag_info("--port").map(|i| i.class), Some(Class::Endpoint));
    assert_eq!(normalise("-tp").0, "--tensor-parallel-size");
    assert_eq!(normalise("--max_num_seqs").0, "--max-num-seqs");
    assert_eq!(normalise("--tp_size"), ("--tp_size".to_string(), None));
    assert_eq!(normalise("--sort").1.map(|i| i.arity), Some(Arity::Switch));
}
