//! Tokenizing, shell operators and placeholders.

use super::{err, ok, side, words};
use crate::command::{CommandError, tokenize};
use crate::failure::Failure;
use crate::spec::Side;

#[test]
fn shell_operators_are_rejected_by_name() {
    let cases = [
        ("cd vllm && python benchmarks/benchmark_latency.py", "&&"),
        (
            "python benchmarks/benchmark_latency.py --model x 2>&1 | tee log",
            "2>&1",
        ),
        (
            "python benchmarks/benchmark_latency.py --model x | tee log",
            "|",
        ),
        ("python benchmarks/benchmark_latency.py; echo done", ";"),
        ("false || python benchmarks/benchmark_latency.py", "||"),
        ("python benchmarks/benchmark_latency.py > out.txt", ">"),
        ("python benchmarks/benchmark_latency.py >> out.txt", ">>"),
        ("python benchmarks/benchmark_latency.py < in.txt", "<"),
        ("python benchmarks/benchmark_latency.py &", "&"),
        (
            "python benchmarks/benchmark_latency.py --model `cat m`",
            "`",
        ),
        (
            "python benchmarks/benchmark_latency.py --model $(cat m)",
            "$(",
        ),
        (
            "python benchmarks/benchmark_latency.py --model \"$(cat m)\"",
            "$(",
        ),
        ("(python benchmarks/benchmark_latency.py)", "("),
        ("python benchmarks/benchmark_latency.py # comment", "#"),
        (
            "python benchmarks/benchmark_latency.py\npython benchmarks/x.py",
            "newline",
        ),
        (
            "python benchmarks/benchmark_latency.py --model x&>log",
            "&>",
        ),
    ];
    for (cmd, op) in cases {
        let e = err(cmd);
        assert_eq!(
            e,
            CommandError::ShellOperator {
                operator: op.into()
            },
            "{cmd}"
        );
        assert!(e.to_string().contains(&format!("'{op}'")));
        assert_eq!(e.failure(), Failure::BadConfig);
    }
}

#[test]
fn quoted_operators_are_values() {
    let spec = ok("vllm bench serve --model x --speculative-config \
                   '{\"method\": \"ngram\", \"num_speculative_tokens\": 5}' \
                   --label \"a && b | c; d > e\" --metadata k=a\\&b");
    assert_eq!(
        spec.value_of("--speculative-config"),
        Some("{\"method\": \"ngram\", \"num_speculative_tokens\": 5}")
    );
    assert_eq!(side(&spec, "--speculative-config"), Side::Server);
    assert_eq!(spec.value_of("--label"), Some("a && b | c; d > e"));
    assert_eq!(spec.value_of("--metadata"), Some("k=a&b"));
}

#[test]
fn tokenizer_quotes_escapes_and_continuations() {
    assert_eq!(words("a 'b c' \"d e\" f\\ g"), ["a", "b c", "d e", "f g"]);
    assert_eq!(words("--x='{\"a\": 1}'"), ["--x={\"a\": 1}"]);
    assert_eq!(words("a \\\n  b \\\r\n c"), ["a", "b", "c"]);
    assert_eq!(words("\"a\\\"b\\\\c\\d\""), ["a\"b\\c\\d"]);
    assert_eq!(words("'' x"), ["", "x"]);
    assert_eq!(words("a'b'\"c\"d"), ["abcd"]);
    assert_eq!(words("  a\tb  \n"), ["a", "b"]);
    let w = &tokenize("X='a b'").unwrap()[0];
    assert_eq!(
        (w.text.as_str(), w.quoted, w.bare_prefix),
        ("X=a b", true, 2)
    );
}

#[test]
fn tokenizer_errors() {
    for (cmd, token) in [("a 'b", "'b"), ("a \"b", "\"b"), ("a \\", "\\")] {
        let e = tokenize(cmd).unwrap_err();
        assert!(
            matches!(&e, CommandError::Invalid { token: t, .. } if t == token),
            "{e:?}"
        );
    }
}

#[test]
fn placeholders_are_rejected_by_name() {
    let base = "python benchmarks/benchmark_serving.py";
    let cases = [
        ("--model MODEL --num-prompts N", "MODEL"),
        ("--model x --num-prompts N", "N"),
        ("--model <model> --num-prompts 5", "<model>"),
        ("--model '<model>'", "<model>"),
        ("--model <path to model>", "<path to model>"),
        ("--model ${MODEL}", "${MODEL}"),
        ("--model $MODEL", "$MODEL"),
        ("--model '$MODEL'", "$MODEL"),
        ("--model {model}", "{model}"),
        ("--model x [--enforce-eager]", "[--enforce-eager]"),
        ("--model x [OPTIONS]", "[OPTIONS]"),
        ("--model x ...", "..."),
        ("--model meta-llama/...", "meta-llama/..."),
        ("--model x --batch-size BS --input-len INPUT_LEN", "BS"),
        ("--model x --num-prompts NUM_PROMPTS", "NUM_PROMPTS"),
        ("--model=MODEL", "MODEL"),
        (
            "--model x --dataset-path /path/to/sharegpt.json",
            "/path/to/sharegpt.json",
        ),
        ("--model x [ --enforce-eager ]", "["),
        ("--model x -tp TP", "TP"),
        ("--model x MODEL", "MODEL"),
    ];
    for (args, token) in cases {
        let cmd = format!("{base} {args}");
        let e = err(&cmd);
        assert_eq!(
            e,
            CommandError::Placeholder {
                token: token.into()
            },
            "{cmd}"
        );
        assert!(e.to_string().contains(&format!("'{token}'")));
    }
    let e = err("MODEL=$M python benchmarks/benchmark_serving.py");
    assert_eq!(e.token(), Some("MODEL=$M"));
    let e = err("python benchmarks/benchmark_serving.py --<flag> 1");
    assert_eq!(e.token(), Some("<flag>"));
    let e = err("python benchmarks/benchmark_serving.py '--<flag>' 1");
    assert_eq!(e.token(), Some("--<flag>"));
    let e = err("python benchmarks/benchmark_serving.py --trust-remote-code] 1");
    assert_eq!(e.token(), Some("--trust-remote-code]"));
}

#[test]
fn real_values_are_not_placeholders() {
    let spec = ok(
        "VLLM_ATTENTION_BACKEND=FLASH_ATTN VLLM_LOGGING_LEVEL=DEBUG \
                   python benchmarks/benchmark_serving.py --model Qwen/Qwen2.5-7B \
                   --dtype float16 --quantization fp8 --dataset-name sharegpt \
                   --attention-backend XFORMERS --label H100 --kv-cache-dtype fp8_e4m3 \
                   --hf-overrides '{\"max_position_embeddings\": 4096}' --seed -1 \
                   --request-rate inf --compilation-config '[1, 2]' --input-len 1024",
    );
    assert_eq!(spec.env[0].1, "FLASH_ATTN");
    assert_eq!(spec.value_of("--attention-backend"), Some("XFORMERS"));
    assert_eq!(spec.value_of("--seed"), Some("-1"));
    assert_eq!(side(&spec, "--seed"), Side::Both);
    assert_eq!(spec.value_of("--label"), Some("H100"));
}

#[test]
fn overlong_commands_are_refused_with_length_and_cap() {
    let base = "python benchmarks/benchmark_serving.py --model m";
    let pad = " --num-prompts 1";
    let at_cap = format!(
        "{base}{}",
        pad.repeat((crate::command::MAX_PERF_COMMAND_BYTES - base.len()) / pad.len())
    );
    assert!(at_cap.len() <= crate::command::MAX_PERF_COMMAND_BYTES);
    ok(&at_cap);
    let long = format!(
        "{base}{}",
        " x".repeat(crate::command::MAX_PERF_COMMAND_BYTES)
    );
    let e = err(&long);
    assert_eq!(
        e,
        CommandError::TooLong {
            len: long.len(),
            cap: crate::command::MAX_PERF_COMMAND_BYTES
        }
    );
    assert_eq!(e.failure(), Failure::BadConfig);
    let msg = e.to_string();
    assert!(
        msg.contains(&long.len().to_string()) && msg.contains("65536"),
        "{msg}"
    );
}
