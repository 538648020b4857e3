//! What the parser knows about flags: whether each takes a value and which process it belongs
//! to. Built from vLLM's `EngineArgs.add_cli_args`, the OpenAI server's frontend arguments and
//! the argparse of `benchmarks/benchmark_{serving,throughput,latency,prefix_caching}.py` and
//! `vllm bench {serve,throughput,latency}`, across vLLM versions (flags removed in later
//! versions are kept: old commits use them).

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly one value (`--model x`, `--model=x`).
    Value,
    /// One or more values (`nargs='+'`, e.g. `--goodput ttft:500 tpot:50`).
    Many,
    /// A switch; it may be followed by a literal `true`/`false` (vLLM's `StoreBoolean` with
    /// `nargs='?'`), which it then takes as its value.
    Switch,
}

/// Which process a flag belongs to in serving mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The inference server (engine and API-server arguments).
    Server,
    /// The benchmark client.
    Client,
    /// Both (`--model`, `--tokenizer`, `--trust-remote-code` …).
    Both,
    /// The server's address (`--host`, `--port`, `--base-url`): the run allocates it.
    Endpoint,
}

/// What the parser knows about one flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagInfo {
    /// Whether it takes a value.
    pub arity: Arity,
    /// Where it goes in serving mode.
    pub class: Class,
}

/// Engine and API-server flags that take one value.
const SERVER_VALUE: &str = "\
    --additional-config --allowed-local-media-path --allowed-origins --allowed-headers \
    --allowed-methods --api-key --api-server-count --attention-backend --block-size \
    --chat-template --chat-template-content-format --code-revision --collect-detailed-traces \
    --compilation-config -O --config --config-format --cpu-offload-gb --data-parallel-address \
    --data-parallel-backend --data-parallel-rpc-port --data-parallel-size \
    --data-parallel-size-local --data-parallel-start-rank --device --download-dir \
    --distributed-executor-backend --dtype --eplb-config --eplb-log-balancedness \
    --eplb-step-interval --eplb-window-size --generation-config --guided-decoding-backend \
    --hf-config-path --hf-overrides --hf-token --ignore-patterns --kv-cache-dtype \
    --kv-cache-memory --kv-events-config --kv-offloading-backend --kv-offloading-size \
    --kv-transfer-config --limit-mm-per-prompt --load-format --logits-processor-pattern \
    --logits-processors --logprobs-mode --long-lora-scaling-factors \
    --long-prefill-token-threshold --lora-dtype --lora-extra-vocab-size \
    --max-context-len-to-capture --max-cpu-loras --max-log-len --max-logprobs \
    --max-long-partial-prefills --max-lora-rank --max-loras --max-model-len \
    --max-num-batched-tokens --max-num-partial-prefills --max-num-seqs \
    --max-parallel-loading-workers --max-prompt-adapter-token --max-prompt-adapters \
    --max-seq-len-to-capture --mm-encoder-tp-mode --mm-processor-cache-gb --mm-processor-kwargs \
    --model-impl --model-loader-extra-config --multi-step-stream-outputs \
    --ngram-prompt-lookup-max --ngram-prompt-lookup-min --num-gpu-blocks-override \
    --num-lookahead-slots --num-redundant-experts --num-scheduler-steps --num-speculative-tokens \
    --otlp-traces-endpoint --override-generation-config --override-neuron-config \
    --override-pooler-config --pipeline-parallel-size --preemption-mode \
    --prefix-caching-hash-algo --pt-load-map-location --qlora-adapter-name-or-path \
    --quantization --quantization-param-path --reasoning-parser --response-role --revision \
    --rope-scaling --rope-theta --root-path --scheduler-cls --scheduler-delay-factor \
    --scheduling-policy --show-hidden-metrics-for-version --spec-decoding-acceptance-method \
    --speculative-config --speculative-disable-by-batch-size \
    --speculative-draft-tensor-parallel-size --speculative-max-model-len --speculative-model \
    --speculative-model-quantization --ssl-ca-certs --ssl-cert-reqs --ssl-certfile --ssl-keyfile \
    --structured-outputs-config --swap-space --tensor-parallel-size \
    --tokenizer-pool-extra-config --tokenizer-pool-size --tokenizer-pool-type \
    --tokenizer-revision --tool-call-parser --tool-parser-plugin \
    --typical-acceptance-sampler-posterior-alpha \
    --typical-acceptance-sampler-posterior-threshold --uds --uvicorn-log-level --worker-cls \
    --worker-extension-cls --gpu-memory-utilization";

/// Engine and API-server switches.
const SERVER_SWITCH: &str = "\
    --async-scheduling --calculate-kv-scales --disable-async-output-proc --disable-cascade-attn \
    --disable-chunked-mm-input --disable-custom-all-reduce --disable-fastapi-docs \
    --disable-frontend-multiprocessing --disable-hybrid-kv-cache-manager --disable-log-requests \
    --disable-log-stats --disable-logprobs-during-spec-decoding --disable-mm-preprocessor-cache \
    --disable-sliding-window --disable-uvicorn-access-log --enable-auto-tool-choice \
    --enable-chunked-prefill --enable-dbo --enable-eplb --enable-expert-parallel \
    --enable-force-include-usage --enable-lora --enable-lora-bias --enable-log-requests \
    --enable-multimodal-encoder-data-parallel --enable-prefix-caching --enable-prompt-adapter \
    --enable-prompt-embeds --enable-prompt-tokens-details --enable-reasoning \
    --enable-request-id-headers --enable-server-load-tracking --enable-sleep-mode \
    --enforce-eager --fully-sharded-loras --headless --kv-sharing-fast-prefill \
    --ray-workers-use-nsight --return-tokens-as-token-ids --skip-tokenizer-init \
    --speculative-disable-mqa-scorer --use-tqdm-on-load --use-v2-block-manager --worker-use-ray";

/// Engine/server flags with several values.
const SERVER_MANY: &str = "\
    --cuda-graph-sizes --middleware --prompt-adapters";

/// Flags both the server and the benchmark client take.
const BOTH_VALUE: &str = "\
    --model --tokenizer --tokenizer-mode --seed";
/// Switches both the server and the client take.
const BOTH_SWITCH: &str = "\
    --trust-remote-code";
/// Several-valued flags both take.
const BOTH_MANY: &str = "\
    --served-model-name --lora-modules";

/// Benchmark-client flags that take one value.
const CLIENT_VALUE: &str = "\
    --backend --batch-size --best-of --burstiness --custom-output-len --dataset --dataset-name \
    --dataset-path --endpoint --endpoint-type --hf-max-batch-size --hf-output-len --hf-split \
    --hf-subset --input-len --input-length-range --label --logprobs --lora-path \
    --max-concurrency --metric-percentiles --min-p --n --num-iters --num-iters-warmup \
    --num-prompts --num-warmups --output-json --output-len --percentile-metrics --prefix-len \
    --profile-result-dir --ramp-up-end-rps --ramp-up-start-rps --ramp-up-strategy \
    --random-batch-size --random-input-len --random-output-len --random-prefix-len \
    --random-range-ratio --range-ratio --ready-check-timeout-sec --repeat-count \
    --request-id-prefix --request-rate --result-dir --result-filename --sharegpt-output-len \
    --sonnet-input-len --sonnet-output-len --sonnet-prefix-len --temperature --top-k --top-p";

/// Benchmark-client switches.
const CLIENT_SWITCH: &str = "\
    --append-result --async-engine --custom-skip-chat-template --disable-detokenize \
    --disable-shuffle --disable-tqdm --ignore-eos --no-stream --profile --save-detailed \
    --save-result --sort --use-beam-search";

/// Several-valued client flags.
const CLIENT_MANY: &str = "\
    --goodput --metadata --header";

/// The server's address: replaced by the run's own endpoint in serving mode.
const ENDPOINT: &str = "\
    --host --port --base-url";

/// Short aliases vLLM defines, with their long names.
pub const ALIASES: &[(&str, &str)] = &[
    ("-tp", "--tensor-parallel-size"),
    ("-pp", "--pipeline-parallel-size"),
    ("-dp", "--data-parallel-size"),
    ("-dpl", "--data-parallel-size-local"),
    ("-q", "--quantization"),
];

/// What the parser knows about `name`, a flag exactly as spelled (dashes, no `=value`).
///
/// `--no-X` is known when `--X` is a known switch (`BooleanOptionalAction`). Use
/// [`normalise`] first to accept underscores and short aliases.
pub fn flag_info(name: &str) -> Option<FlagInfo> {
    let found = table().get(name).copied();
    found.or_else(|| {
        let positive = format!("--{}", name.strip_prefix("--no-")?);
        flag_info(&positive).filter(|i| i.arity == Arity::Switch)
    })
}

/// Every known flag, indexed once (the first group naming a flag wins).
fn table() -> &'static std::collections::HashMap<&'static str, FlagInfo> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<&'static str, FlagInfo>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let groups: [(&'static str, Arity, Class); 10] = [
            (SERVER_VALUE, Arity::Value, Class::Server),
            (SERVER_SWITCH, Arity::Switch, Class::Server),
            (SERVER_MANY, Arity::Many, Class::Server),
            (BOTH_VALUE, Arity::Value, Class::Both),
            (BOTH_SWITCH, Arity::Switch, Class::Both),
            (BOTH_MANY, Arity::Many, Class::Both),
            (CLIENT_VALUE, Arity::Value, Class::Client),
            (CLIENT_SWITCH, Arity::Switch, Class::Client),
            (CLIENT_MANY, Arity::Many, Class::Client),
            (ENDPOINT, Arity::Value, Class::Endpoint),
        ];
        let mut map = std::collections::HashMap::new();
        for (names, arity, class) in groups {
            for n in names.split_ascii_whitespace() {
                map.entry(n).or_insert(FlagInfo { arity, class });
            }
        }
        map
    })
}

/// The canonical spelling of a flag and what is known about it: short aliases are expanded
/// (`-tp` → `--tensor-parallel-size`), underscores become dashes when that names a known flag
/// (`--max_model_len` → `--max-model-len`), and a dotted sub-key of a known JSON flag
/// (`--compilation-config.level`) keeps its key. Unknown flags keep their spelling.
pub fn normalise(name: &str) -> (String, Option<FlagInfo>) {
    if let Some(&(_, long)) = ALIASES.iter().find(|(short, _)| *short == name) {
        return (long.to_string(), flag_info(long));
    }
    if let Some(info) = flag_info(name) {
        return (name.to_string(), Some(info));
    }
    if !name.starts_with("--") {
        return (name.to_string(), None);
    }
    let (base, key) = match name.split_once('.') {
        Some((base, key)) => (base, Some(key)),
        None => (name, None),
    };
    let dashed = base.replace('_', "-");
    match (flag_info(&dashed), key) {
        (Some(info), None) => (dashed, Some(info)),
        (Some(info), Some(key)) if info.arity == Arity::Value => {
            (format!("{dashed}.{key}"), Some(info))
        }
        _ => (name.to_string(), None),
    }
}
