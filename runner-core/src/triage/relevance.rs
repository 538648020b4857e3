//! The relevance check (warnings only): can the benchmark exercise the change at all?
//!
//! Every changed engine file (tests, docs, examples, benchmarks and CI excluded) is given a
//! scope: one model's implementation (`vllm/model_executor/models/qwen2_5_vl.py`), a feature
//! (speculative decoding, chunked prefill, prefix caching, reasoning, multimodal, LoRA, MoE,
//! tool calling), a quantization method, or none (general code). When every file has a scope
//! and the command exercises none of them, a warning names the files and what would exercise
//! them. Shared files such as `block_manager` are general: they run in every benchmark.

use crate::spec::{BenchmarkSpec, Mode};
use crate::task::Task;

use super::models::{Lookup, ModelInfo};
use super::size::precision;
use super::version::{Version, iso_date};
use super::{Context, Findings};

/// What a changed file is specific to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One model family's implementation (file stem under `vllm/model_executor/models/`).
    Model(String),
    /// Speculative decoding.
    SpecDecode,
    /// Chunked prefill.
    ChunkedPrefill,
    /// Prefix caching.
    PrefixCaching,
    /// Reasoning parsers.
    Reasoning,
    /// Multimodal inputs.
    Multimodal,
    /// LoRA adapters.
    Lora,
    /// Mixture-of-experts layers.
    Moe,
    /// Tool-call parsers.
    ToolCalling,
    /// A quantization method (`fp8`, `awq`, `gptq`, `marlin` …).
    Quantization(String),
}

const NON_MODEL_FILES: &[&str] = &[
    "__init__",
    "utils",
    "interfaces",
    "interfaces_base",
    "registry",
    "adapters",
    "vision",
    "module_mapping",
    "config",
];
const QUANT_METHODS: &[&str] = &[
    "fp8",
    "awq",
    "gptq",
    "marlin",
    "bitsandbytes",
    "gguf",
    "compressed_tensors",
    "modelopt",
    "fbgemm",
    "mxfp4",
    "nvfp4",
    "fp4",
];

/// Whether a path is outside the engine (tests, docs, examples, benchmarks, CI, markdown).
pub fn is_non_engine(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    [
        "tests/",
        "docs/",
        "examples/",
        "benchmarks/",
        ".github/",
        ".buildkite/",
    ]
    .iter()
    .any(|d| p.starts_with(d) || p.contains(&format!("/{d}")))
        || p.ends_with(".md")
        || p.ends_with(".rst")
}

/// The scope of one engine file, if it has one.
pub fn scope_of(path: &str) -> Option<Scope> {
    let p = path.to_ascii_lowercase();
    let stem = p.rsplit('/').next().unwrap_or_default();
    let stem = stem.strip_suffix(".py").unwrap_or(stem);
    if let Some(rest) = p.strip_prefix("vllm/model_executor/models/") {
        if !rest.contains('/') && p.ends_with(".py") && !NON_MODEL_FILES.contains(&stem) {
            return Some(Scope::Model(stem.to_string()));
        }
    }
    if let Some(rest) = p.strip_prefix("vllm/model_executor/layers/quantization/") {
        return QUANT_METHODS
            .iter()
            .find(|m| rest.contains(*m))
            .map(|m| Scope::Quantization(m.to_string()));
    }
    let has = |s: &str| p.contains(s);
    Some(
        if has("spec_decode") || has("speculative") || has("eagle") || has("medusa") {
            Scope::SpecDecode
        } else if has("chunked_prefill") {
            Scope::ChunkedPrefill
        } else if has("prefix_caching") || has("prefix_cache") {
            Scope::PrefixCaching
        } else if has("reasoning") {
            Scope::Reasoning
        } else if has("vllm/multimodal/") {
            Scope::Multimodal
        } else if has("vllm/lora/") {
            Scope::Lora
        } else if has("fused_moe") || has("/moe/") {
            Scope::Moe
        } else if has("tool_parsers") {
            Scope::ToolCalling
        } else {
            return None;
        },
    )
}

/// `LlamaForCausalLM` → `llama`; `Qwen2_5_VLForConditionalGeneration` → `qwen25vl`.
fn arch_key(arch: &str) -> String {
    let base = [
        "ForCausalLM",
        "ForConditionalGeneration",
        "LMHeadModel",
        "Model",
    ]
    .iter()
    .find_map(|s| arch.strip_suffix(s))
    .unwrap_or(arch);
    base.chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase()
}

struct Bench<'a> {
    spec: Option<&'a BenchmarkSpec>,
    info: Option<ModelInfo>,
    model: Option<&'a str>,
    v1_default: bool,
}

impl Bench<'_> {
    fn flag(&self, names: &[&str]) -> bool {
        self.spec
            .is_some_and(|s| names.iter().any(|n| s.has_flag(n)))
    }

    /// `Some(true/false)` when decidable, `None` when the model is unknown.
    fn exercises(&self, scope: &Scope, cx: &Context<'_>) -> Option<bool> {
        Some(match scope {
            Scope::Model(stem) => {
                let arch = &self.info.as_ref()?.arch;
                match cx.facts.arch_modules.get(arch) {
                    Some(mods) => mods.iter().any(|m| m == stem),
                    None => arch_key(arch) == stem.replace('_', ""),
                }
            }
            Scope::SpecDecode => self.flag(&[
                "--speculative-model",
                "--speculative-config",
                "--speculative_config",
                "--num-speculative-tokens",
            ]),
            Scope::ChunkedPrefill => self.v1_default || self.flag(&["--enable-chunked-prefill"]),
            Scope::PrefixCaching => {
                self.v1_default
                    || self.flag(&["--enable-prefix-caching"])
                    || self.spec.is_some_and(|s| s.mode == Mode::PrefixCaching)
            }
            Scope::Reasoning => self.flag(&["--reasoning-parser", "--enable-reasoning"]),
            Scope::Multimodal => self.info.as_ref()?.multimodal,
            Scope::Lora => self.flag(&["--enable-lora", "--lora-modules"]),
            Scope::Moe => self.info.as_ref()?.active_b.is_some(),
            Scope::ToolCalling => self.flag(&["--enable-auto-tool-choice", "--tool-call-parser"]),
            Scope::Quantization(m) => {
                let info = self.info.as_ref()?;
                let basis = precision(self.spec, self.model?, info)
                    .basis
                    .to_ascii_lowercase();
                let quantized = !basis.contains("dtype");
                match m.as_str() {
                    "marlin" => {
                        basis.contains("awq") || basis.contains("gptq") || basis.contains("marlin")
                    }
                    "compressed_tensors" | "modelopt" => quantized,
                    "fp8" => {
                        basis.contains("fp8") || basis.contains("w8a8") || info.dtype_bytes == 1.0
                    }
                    other => basis.contains(other),
                }
            }
        })
    }
}

fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Model(m) => format!("model file {m}.py (another architecture than the benchmark's)"),
        Scope::SpecDecode => {
            "speculative decoding (no --speculative-model/--speculative-config)".into()
        }
        Scope::ChunkedPrefill => "chunked prefill (no --enable-chunked-prefill)".into(),
        Scope::PrefixCaching => "prefix caching (no --enable-prefix-caching)".into(),
        Scope::Reasoning => "reasoning parsers (no --reasoning-parser)".into(),
        Scope::Multimodal => "multimodal inputs (the model is text-only)".into(),
        Scope::Lora => "LoRA (no --enable-lora)".into(),
        Scope::Moe => "MoE layers (the model is dense)".into(),
        Scope::ToolCalling => "tool calling (no --enable-auto-tool-choice)".into(),
        Scope::Quantization(m) => format!("{m} quantization (the benchmark does not use it)"),
    }
}

/// Run the relevance check.
pub(crate) fn check(task: &Task, cx: &Context<'_>, f: &mut Findings) {
    if task.files_changed.is_empty() {
        return;
    }
    let engine: Vec<&String> = task
        .files_changed
        .iter()
        .filter(|p| !is_non_engine(p))
        .collect();
    if engine.is_empty() {
        f.warnings.push(format!(
            "the commit changes no engine code (only tests, docs, benchmarks or CI): {}",
            task.files_changed.join(", ")
        ));
        return;
    }
    let model = task.model();
    let info = model.and_then(|m| match cx.models.lookup(m) {
        Lookup::Known(i) => Some(i),
        _ => None,
    });
    let v1_since = Version(0, 8, 0);
    let v1_default = task
        .date
        .as_deref()
        .and_then(iso_date)
        .zip(cx.facts.release_date(v1_since))
        .is_some_and(|(d, v1)| d >= v1);
    let bench = Bench {
        spec: task.spec.as_ref(),
        info,
        model,
        v1_default,
    };
    let mut unexercised = Vec::new();
    for path in &engine {
        let Some(scope) = scope_of(path) else { return };
        match bench.exercises(&scope, cx) {
            Some(false) => unexercised.push(format!("{path}: {}", describe(&scope))),
            _ => return,
        }
    }
    f.warnings.push(format!(
        "the benchmark may not exercise the change; every changed engine file is specific to \
         something it does not use: {}",
        unexercised.join("; ")
    ));
}
