//! Recognising placeholders that were never filled in: `MODEL`, `<model>`, `${MODEL}`, `$BS`,
//! `{model}`, `[--enforce-eager]`, `[OPTIONS]`, `...`, `/path/to/…`.

use std::sync::OnceLock;

use regex::Regex;

use super::CommandError;
use super::tokenize::Word;

/// All-caps words that are real values, not shell-variable-like placeholders: attention
/// backends (`VLLM_ATTENTION_BACKEND=FLASH_ATTN`, `--attention-backend FLASHINFER`), log
/// levels, and dtype/quantization/hardware names that appear in labels and metadata
/// (whitespace-separated).
pub const REAL_CAPS_VALUES: &str = "\
    FLASH_ATTN FLASH_ATTN_VLLM_V1 FLASH_ATTN_MLA FLASHINFER FLASHINFER_VLLM_V1 FLASHINFER_MLA \
    FLASHMLA FLASHMLA_VLLM_V1 XFORMERS TORCH_SDPA TORCH_SDPA_VLLM_V1 ROCM_FLASH ROCM_ATTN \
    ROCM_ATTN_VLLM_V1 ROCM_AITER_FA ROCM_AITER_MLA ROCM_AITER_MLA_VLLM_V1 \
    ROCM_AITER_UNIFIED_ATTN TRITON_ATTN TRITON_ATTN_VLLM_V1 TRITON_MLA TRITON_MLA_VLLM_V1 \
    CUTLASS_MLA CUTLASS_MLA_VLLM_V1 FLEX_ATTENTION TREE_ATTN PALLAS PALLAS_VLLM_V1 IPEX IPEX_V1 \
    CPU_ATTN NO_ATTENTION DUAL_CHUNK_FLASH_ATTN DIFFERENTIAL_FLASH_ATTN BLOCK_SPARSE_FLASH_ATTN \
    HPU_ATTN OPENVINO TRITON CUDA ROCM TPU CPU GPU XPU HPU NCCL GLOO TRUE FALSE NONE DEBUG INFO \
    WARNING ERROR CRITICAL FP8 FP16 BF16 FP32 INT8 INT4 W8A8 W4A16 W8A16 AWQ GPTQ MLA MOE LORA \
    V0 V1";

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("the placeholder patterns are valid"))
}

/// `$X`, `${X}`, `$1`, `$@`, `$(…)` (single-quoted text a shell would not expand is still a
/// placeholder: no benchmark takes a literal `$MODEL`).
fn has_shell_variable(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"\$[A-Za-z_0-9{(@*#?!]").is_match(text)
}

/// `<model>`, `{model}`, `...`, `…`, `/path/to/…`.
fn has_usage_syntax(text: &str) -> bool {
    static ANGLE: OnceLock<Regex> = OnceLock::new();
    static BRACE: OnceLock<Regex> = OnceLock::new();
    regex(&ANGLE, r"<[^<>]+>").is_match(text)
        || regex(&BRACE, r"\{[A-Za-z_][A-Za-z0-9_]*\}").is_match(text)
        || text.contains("...")
        || text.contains('…')
        || text.to_ascii_lowercase().contains("path/to/")
}

/// `MODEL`, `BS`, `N`, `INPUT_LEN`, `NUM_PROMPTS` (but not `H100`, nor an allow-listed value).
fn is_caps_variable(text: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^[A-Z](?:[A-Z_][A-Z0-9_]*)?$").is_match(text)
        && !REAL_CAPS_VALUES.split_ascii_whitespace().any(|v| v == text)
}

/// `[--enforce-eager]`, `[-tp`, `[OPTIONS]`, `[...]`, a lone `[` or `]` — but not a real value
/// such as `[ngram]` or a JSON list.
fn is_optional_syntax(word: &Word) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let text = word.text.as_str();
    (!word.quoted && (text == "[" || text == "]"))
        || text.starts_with("[-")
        || regex(&RE, r"^\[[A-Z][A-Z0-9_ ]*\]$").is_match(text)
}

/// Whether `text` of a flag value or positional is a placeholder.
pub fn is_placeholder(word: &Word) -> bool {
    let text = word.text.as_str();
    has_shell_variable(text)
        || has_usage_syntax(text)
        || is_caps_variable(text)
        || is_optional_syntax(word)
}

fn placeholder(token: &str) -> CommandError {
    CommandError::Placeholder {
        token: token.to_string(),
    }
}

/// Reject a flag value or positional that is a placeholder.
pub fn check_value(word: &Word) -> Result<(), CommandError> {
    if is_placeholder(word) {
        return Err(placeholder(&word.text));
    }
    Ok(())
}

/// Reject a value given as `--flag=value` that is a placeholder.
pub fn check_attached(value: &str, quoted: bool) -> Result<(), CommandError> {
    let word = Word {
        text: value.to_string(),
        quoted,
        bare_prefix: 0,
    };
    check_value(&word)
}

/// Reject a flag name with usage syntax in it (`--trust-remote-code]`, `--<flag>`, `--$X`).
pub fn check_flag_name(name: &str) -> Result<(), CommandError> {
    if name.contains(['[', ']', '<', '>', '{', '}', '$']) || name.contains("...") {
        return Err(placeholder(name));
    }
    Ok(())
}

/// Reject the value of a leading `VAR=value` assignment that is a placeholder. All-caps values
/// are allowed here (`VLLM_ATTENTION_BACKEND=FLASH_ATTN`, `VLLM_LOGGING_LEVEL=DEBUG`): env
/// values are enumerations far more often than placeholders.
pub fn check_env_value(name: &str, value: &str) -> Result<(), CommandError> {
    if has_shell_variable(value) || has_usage_syntax(value) {
        return Err(placeholder(&format!("{name}={value}")));
    }
    Ok(())
}
