//! Whether perf-runner's native serving client (`perf-runner bench serve`) can stand in for a
//! serving command's client: every client flag must be one it takes, with a value it takes.
//! Anything else keeps the engine's client, and the plan says why.

use crate::spec::{BenchmarkSpec, EntryPoint, Flag, Side};

/// Flags the native client takes with a value.
const VALUE_FLAGS: &[&str] = &[
    "--backend",
    "--endpoint",
    "--model",
    "--served-model-name",
    "--tokenizer",
    "--tokenizer-mode",
    "--dataset-name",
    "--dataset-path",
    "--num-prompts",
    "--input-len",
    "--output-len",
    "--random-input-len",
    "--random-output-len",
    "--random-range-ratio",
    "--random-prefix-len",
    "--sharegpt-output-len",
    "--request-rate",
    "--burstiness",
    "--max-concurrency",
    "--seed",
    "--num-warmups",
    "--ready-check-timeout-sec",
    "--percentile-metrics",
    "--metric-percentiles",
    "--goodput",
    "--temperature",
    "--top-p",
    "--top-k",
    "--min-p",
    "--extra-body",
    "--header",
    "--metadata",
    "--label",
    "--result-dir",
    "--result-filename",
];

/// Flags the native client takes without a value.
const SWITCHES: &[&str] = &[
    "--trust-remote-code",
    "--ignore-eos",
    "--save-result",
    "--save-detailed",
    "--disable-tqdm",
];

/// `--backend` values it speaks.
const BACKENDS: &[&str] = &["openai", "openai-chat", "vllm"];

/// `--dataset-name` values it reads.
const DATASETS: &[&str] = &["random", "sharegpt"];

/// Whether the command's serving client can be the native one. `Ok` holds the flags to add so
/// that the native client means what the engine's would (the defaults of
/// `benchmark_serving.py` differ from `vllm bench serve`'s); `Err` says why not.
pub fn native_client_flags(spec: &BenchmarkSpec, client: &[Flag]) -> Result<Vec<String>, String> {
    let script = match &spec.entry {
        EntryPoint::VllmBench { subcommand } | EntryPoint::ModuleBench { subcommand, .. }
            if subcommand == "serve" =>
        {
            false
        }
        EntryPoint::Script { path } if path.ends_with("benchmark_serving.py") => true,
        other => return Err(format!("the entry point {other:?} is not a serving client")),
    };
    if let Some(p) = spec.positionals.first() {
        return Err(format!("it has a positional argument ({p:?})"));
    }
    for f in client
        .iter()
        .filter(|f| matches!(f.side, Side::Client | Side::Both))
    {
        let name = f.name.as_str();
        let ok = match &f.value {
            Some(_) => VALUE_FLAGS.contains(&name),
            None => SWITCHES.contains(&name),
        };
        if !ok {
            return Err(format!("the native client does not take {name}"));
        }
        let v = f.value.as_deref().unwrap_or("");
        if name == "--backend" && !BACKENDS.contains(&v) {
            return Err(format!("--backend {v} is not one it speaks"));
        }
        if name == "--dataset-name" && !DATASETS.contains(&v) {
            return Err(format!("--dataset-name {v} is not one it reads"));
        }
    }
    let has = |n: &str| client.iter().any(|f| f.name == n);
    let dataset = client
        .iter()
        .find(|f| f.name == "--dataset-name")
        .and_then(|f| f.value.as_deref());
    let mut extra = Vec::new();
    if script {
        // benchmark_serving.py's defaults.
        if !has("--backend") {
            extra.extend(["--backend".to_string(), "vllm".to_string()]);
        }
        if dataset.is_none() {
            extra.extend(["--dataset-name".to_string(), "sharegpt".to_string()]);
        }
    }
    let sharegpt = dataset == Some("sharegpt") || (script && dataset.is_none());
    if sharegpt && !has("--dataset-path") {
        return Err("sharegpt needs --dataset-path".into());
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse_perf_command;

    fn check(cmd: &str) -> Result<Vec<String>, String> {
        let spec = parse_perf_command(cmd).unwrap();
        native_client_flags(&spec, &spec.flags)
    }

    #[test]
    fn supported_commands_and_the_reasons_others_are_not() {
        assert_eq!(
            check(
                "vllm bench serve --model m --dataset-name random --random-input-len 512 \
                 --request-rate 10 --ignore-eos --percentile-metrics ttft,tpot --num-prompts 9"
            ),
            Ok(vec![])
        );
        assert_eq!(
            check("python benchmarks/benchmark_serving.py --model m --dataset-path d.json"),
            Ok(["--backend", "vllm", "--dataset-name", "sharegpt"]
                .map(String::from)
                .to_vec())
        );
        assert!(
            check("vllm bench serve --model m --dataset-name sonnet --dataset-path s.txt")
                .unwrap_err()
                .contains("sonnet")
        );
        assert!(
            check("vllm bench serve --model m --backend tgi")
                .unwrap_err()
                .contains("tgi")
        );
        assert!(
            check("vllm bench serve --model m --ramp-up-strategy linear")
                .unwrap_err()
                .contains("--ramp-up-strategy")
        );
        assert!(
            check("python benchmarks/benchmark_serving.py --model m")
                .unwrap_err()
                .contains("--dataset-path")
        );
        assert!(check("vllm bench throughput --model m").is_err());
    }
}
