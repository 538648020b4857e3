//! The size check: does the model exist, and do its weights fit the GPUs the engine uses with
//! room for the KV cache?
//!
//! Weights = parameters × bytes per parameter (from the checkpoint, `--quantization`, the
//! name's `FP8`/`AWQ`/`w4a16` … markers, or `--dtype`). Usable memory = `--gpu-memory-utilization`
//! (default 0.9) × per-GPU memory × the GPUs the engine uses (tensor × pipeline parallel).
//! It fits when usable − weights − overhead ≥ the configured KV-cache minimum, per GPU.

use crate::failure::Failure;
use crate::gpu::{GpuSpec, sku_memory_gib};
use crate::spec::{BenchmarkSpec, Mode};
use crate::task::Task;

use super::models::{Lookup, ModelInfo, contains_part, split_name};
use super::{Context, Findings, Reason};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Bytes per parameter, and what decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// Bytes per parameter.
    pub bytes: f64,
    /// Why (`--quantization awq`, `name marker 'fp8'`, `--dtype float32`, `checkpoint`).
    pub basis: String,
}

const QUANT_1_BYTE: &[&str] = &[
    "fp8",
    "fbgemm_fp8",
    "ptpc_fp8",
    "modelopt",
    "experts_int8",
    "deepspeedfp",
    "tpu_int8",
];
const QUANT_HALF_BYTE: &[&str] = &[
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "gptq_marlin_24",
    "marlin",
    "squeezellm",
    "bitsandbytes",
    "gguf",
    "qqq",
    "hqq",
    "mxfp4",
    "modelopt_fp4",
    "nvfp4",
    "moe_wna16",
];
const NAME_1_BYTE: &[&str] = &[
    "fp8",
    "fp8-dynamic",
    "w8a8",
    "w8a16",
    "int8",
    "8bit",
    "fbgemm-fp8",
];
const NAME_HALF_BYTE: &[&str] = &[
    "awq", "gptq", "int4", "w4a16", "w4a8", "4bit", "bnb-4bit", "nvfp4", "fp4", "mxfp4", "gguf",
];

/// The precision the engine loads the weights in.
pub fn precision(spec: Option<&BenchmarkSpec>, model: &str, info: &ModelInfo) -> Precision {
    let p = |bytes: f64, basis: String| Precision { bytes, basis };
    if info.dtype_bytes < 2.0 {
        return p(
            info.dtype_bytes,
            format!("checkpoint stored at {} byte(s)/param", info.dtype_bytes),
        );
    }
    if let Some(q) = spec.and_then(|s| s.value_of("--quantization")) {
        let q = q.to_ascii_lowercase().replace('-', "_");
        if QUANT_1_BYTE.contains(&q.as_str()) {
            return p(1.0, format!("--quantization {q}"));
        }
        if QUANT_HALF_BYTE.contains(&q.as_str()) {
            return p(0.5, format!("--quantization {q}"));
        }
        if q == "aqlm" {
            return p(0.25, format!("--quantization {q}"));
        }
    }
    let (_, repo) = split_name(model);
    if let Some(m) = NAME_HALF_BYTE.iter().find(|m| contains_part(&repo, m)) {
        return p(0.5, format!("name marker '{m}'"));
    }
    if let Some(m) = NAME_1_BYTE.iter().find(|m| contains_part(&repo, m)) {
        return p(1.0, format!("name marker '{m}'"));
    }
    match spec
        .and_then(|s| s.value_of("--dtype"))
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("float32" | "float") => p(4.0, "--dtype float32".into()),
        Some(d @ ("float16" | "half" | "bfloat16")) => p(2.0, format!("--dtype {d}")),
        _ => p(info.dtype_bytes, "checkpoint dtype (--dtype auto)".into()),
    }
}

fn parse_count(spec: Option<&BenchmarkSpec>, name: &str) -> u32 {
    spec.and_then(|s| s.value_of(name))
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// Run the size check.
pub(crate) fn check(task: &Task, cx: &Context<'_>, f: &mut Findings) {
    let policy = &cx.opts.memory;
    let spec = task.spec.as_ref();
    let gpu: GpuSpec = match &task.gpu {
        Some(g) => g.clone(),
        None => {
            f.warnings.push(format!(
                "no gpu_config: assuming the largest single node, {}",
                policy.default_gpu
            ));
            policy.default_gpu.clone()
        }
    };
    let (tp, pp, dp) = (
        parse_count(spec, "--tensor-parallel-size"),
        parse_count(spec, "--pipeline-parallel-size"),
        parse_count(spec, "--data-parallel-size"),
    );
    let engine_gpus = tp.saturating_mul(pp);
    let needed = engine_gpus.saturating_mul(dp);
    if needed > gpu.count {
        f.reasons.push(
            Reason::blocking(
                Failure::BadConfig,
                format!(
                    "the command needs {needed} GPUs (tensor {tp} × pipeline {pp} × data {dp}) \
                     but the task has {gpu}"
                ),
                format!(
                    "set gpu_config to {}:{needed} or lower the parallelism",
                    gpu.kind
                ),
            )
            .with_evidence([format!("gpu_config {gpu}")]),
        );
        return;
    }
    if spec.is_some_and(|s| s.mode == Mode::Other) {
        f.not_checked.push(
            "model size: an unknown benchmark script may not load the model's weights (kernel \
             benchmarks read only its config)"
                .into(),
        );
        return;
    }
    let Some(model) = task.model() else {
        f.not_checked.push("model size: no model named".into());
        return;
    };
    let info = match cx.models.lookup(model) {
        Lookup::Known(info) => info,
        Lookup::Impossible {
            family,
            size,
            released,
            official,
        } => {
            let detail = format!(
                "{model}: the {family} family has no {size} model (released: {})",
                released.join(", ")
            );
            if official {
                f.reasons.push(
                    Reason::blocking(
                        Failure::BadConfig,
                        detail,
                        "use the model id the PR benchmarked (check the size in the name)",
                    )
                    .with_evidence([format!("model table: family {family}")]),
                );
            } else {
                f.warnings
                    .push(format!("{detail}; a community model, size not checked"));
                f.not_checked
                    .push(format!("model size: {model} is not in the table"));
            }
            return;
        }
        Lookup::Unknown => {
            f.warnings.push(format!(
                "model {model} is not in the model table; its size was not checked (add it with \
                 an extra model entry)"
            ));
            f.not_checked
                .push(format!("model size: {model} is not in the table"));
            return;
        }
    };
    let Some(per_gpu) = sku_memory_gib(&gpu.kind) else {
        f.not_checked.push(format!(
            "model size: memory of GPU kind {} is unknown",
            gpu.kind
        ));
        return;
    };
    let util = spec
        .and_then(|s| s.value_of("--gpu-memory-utilization"))
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|u| *u > 0.0 && *u <= 1.0)
        .unwrap_or(policy.default_utilization);
    let prec = precision(spec, model, &info);
    let weights = info.params_b * 1e9 * prec.bytes / GIB;
    let fits = |n: u32, per_gpu: f64| {
        let usable = util * per_gpu * f64::from(n);
        usable - weights - policy.overhead_gib_per_gpu * f64::from(n)
            >= policy.min_kv_gib_per_gpu * f64::from(n)
    };
    let usable = util * per_gpu * f64::from(engine_gpus);
    let evidence = vec![
        format!("{model}: {:.1} B params ({})", info.params_b, info.basis),
        format!("precision {} byte(s)/param ({})", prec.bytes, prec.basis),
        format!("weights {weights:.1} GiB"),
        format!(
            "usable {usable:.1} GiB = {util} × {per_gpu} GiB × {engine_gpus} GPU(s) of {gpu} \
             (tensor {tp} × pipeline {pp})"
        ),
        format!(
            "needs per GPU: {} GiB overhead + {} GiB KV cache",
            policy.overhead_gib_per_gpu, policy.min_kv_gib_per_gpu
        ),
    ];
    if fits(engine_gpus, per_gpu) {
        let free = usable - weights;
        if free < 0.15 * usable {
            f.warnings.push(format!(
                "{model} leaves only {free:.1} GiB of {usable:.1} GiB for KV cache and \
                 activations; long contexts may need a smaller --max-model-len"
            ));
        }
        return;
    }
    // The smallest single node that fits: more of the same GPUs, else bigger ones.
    let node = [2u32, 4, 8]
        .into_iter()
        .filter(|n| *n > engine_gpus && n * pp <= 8)
        .map(|n| (gpu.kind.clone(), n, per_gpu))
        .chain(["H200", "B200"].into_iter().flat_map(|k| {
            let mem = sku_memory_gib(k).unwrap_or(0.0);
            [1u32, 2, 4, 8]
                .into_iter()
                .filter(move |n| n * pp <= 8)
                .map(move |n| (k.to_string(), n, mem))
        }))
        .find(|(_, n, mem)| *mem >= per_gpu && fits(*n, *mem));
    let fix = match node {
        Some((kind, n, _)) if kind == gpu.kind && n * pp <= gpu.count => {
            format!("add --tensor-parallel-size {n} (the task has {gpu})")
        }
        Some((kind, n, _)) => {
            format!(
                "use gpu_config {kind}:{} with --tensor-parallel-size {n}",
                n * pp
            )
        }
        None => "use larger GPUs (H200/B200) or a quantized (FP8) checkpoint".into(),
    };
    f.reasons.push(
        Reason::blocking(
            Failure::ModelTooLarge,
            format!(
                "{model} needs {weights:.1} GiB of weights; {engine_gpus} × {} at utilization \
                 {util} gives {usable:.1} GiB, too little with KV-cache room",
                gpu.kind
            ),
            fix,
        )
        .with_evidence(evidence),
    );
}
