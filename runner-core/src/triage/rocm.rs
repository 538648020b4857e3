//! The ROCm check: a commit whose every changed file is specific to AMD ROCm/HIP cannot show
//! its effect on NVIDIA GPUs.
//!
//! A path is split into lower-case alphanumeric parts (`/`, `_`, `-`, `.`, `=`, `,` … separate
//! them, and so does a lower→upper case change: `ROCmFlashAttn` → `rocm`, `flash`, `attn`), and is
//! ROCm-specific when a part is a ROCm word. Whole parts are compared, so `ship`, `chip`,
//! `whip`, `command` or `hipster.py` never match; only `rocm` may appear inside a part.

use crate::failure::Failure;
use crate::task::Task;

use super::{Findings, Reason};

/// Parts that mark a path as ROCm/HIP/AMD-specific.
const ROCM_PARTS: &[&str] = &[
    "hip",
    "hipify",
    "hipblas",
    "hipblaslt",
    "hipcub",
    "hiprand",
    "hipified",
    "amd",
    "amdgpu",
    "amdsmi",
    "aiter",
    "instinct",
    "gfx90a",
    "gfx942",
    "gfx950",
    "gfx1100",
    "rccl",
    "miopen",
];

/// The parts of a path (lower case).
fn parts(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in path.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Whether one path is specific to ROCm, and the word that says so.
pub fn rocm_marker(path: &str) -> Option<String> {
    if path.to_ascii_lowercase().contains("rocm") {
        return Some("rocm".into());
    }
    parts(path)
        .into_iter()
        .find(|p| ROCM_PARTS.contains(&p.as_str()) || is_instinct_sku(p))
}

/// `mi250`, `mi300`, `mi300x`, `mi308x`, `mi325x`, `mi355x` …
fn is_instinct_sku(p: &str) -> bool {
    let Some(rest) = p.strip_prefix("mi") else {
        return false;
    };
    let rest = rest.strip_suffix('x').unwrap_or(rest);
    rest.len() == 3
        && rest.starts_with(['1', '2', '3', '4'])
        && rest.bytes().all(|b| b.is_ascii_digit())
}

/// Run the ROCm check.
pub fn check(task: &Task, f: &mut Findings) {
    if task.files_changed.is_empty() {
        f.not_checked
            .push("ROCm-only changes: the dataset lists no changed files".into());
        return;
    }
    let mut evidence = Vec::new();
    for path in &task.files_changed {
        match rocm_marker(path) {
            Some(m) => evidence.push(format!("{path}: '{m}'")),
            None => return,
        }
    }
    f.reasons.push(
        Reason::blocking(
            Failure::RocmSpecific,
            format!(
                "all {} changed file(s) are specific to AMD ROCm/HIP; NVIDIA GPUs cannot show the change",
                task.files_changed.len()
            ),
            "skip on NVIDIA, or run it on AMD Instinct GPUs (MI300X) with a ROCm backend",
        )
        .with_evidence(evidence),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocm_paths() {
        for p in [
            "vllm/attention/backends/rocm_flash_attn.py",
            "Dockerfile.rocm",
            "csrc/rocm/attention.cu",
            "requirements-rocm.txt",
            "vllm/model_executor/layers/fused_moe/configs/E=8,N=14336,device_name=AMD_Instinct_MI300X.json",
            "csrc/quantization/fp8/amd/quant_utils.cuh",
            "vllm/_custom_ops_hip.py",
            "csrc/hip_compat.h",
            "csrc/kernels/hip/gemm.cu",
            "csrc/kernels/gemm.hip",
            "vllm/platforms/rocm.py",
            "vllm/attention/ops/rocm_aiter_mla.py",
            "vllm/model_executor/layers/aiter_ops.py",
            "tests/kernels/test_MI300_tuning.py",
            "vllm/ROCmFlashAttn.py",
        ] {
            assert!(rocm_marker(p).is_some(), "{p}");
        }
    }

    #[test]
    fn no_false_positives() {
        for p in [
            "vllm/ship_it.py",
            "vllm/chip_info.py",
            "vllm/whip.py",
            "vllm/entrypoints/command.py",
            "docs/hipster.md",
            "vllm/model_executor/layers/fused_moe/configs/E=8,N=14336,device_name=NVIDIA_H100_80GB_HBM3.json",
            "vllm/attention/backends/flash_attn.py",
            "csrc/attention/ck_free.cu",
            "vllm/worker/model_runner.py",
            "vllm/lambda.py",
            "vllm/camd.py",
        ] {
            assert!(rocm_marker(p).is_none(), "{p}");
        }
    }
}
