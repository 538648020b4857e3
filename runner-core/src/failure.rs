//! The closed failure taxonomy shared by every crate.
//!
//! Every way a reproduction can fail maps to exactly one [`Failure`] code. Codes are stable
//! snake_case strings (they go into records, reports and skip lists), and [`Failure::is_transient`]
//! is the one place that decides what may be retried.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a task, variant or attempt could not produce trustworthy numbers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The benchmark ran but printed nothing parsable and no known failure signature matched.
    NoMetrics,
    /// The inference server died or never became ready.
    ServerFailed,
    /// A phase ran past its deadline.
    Timeout,
    /// The GPU ran out of memory.
    Oom,
    /// The engine version lacks a flag, module, env var or CLI the command needs.
    VllmVersion,
    /// The engine version does not support the model's architecture.
    ModelUnsupported,
    /// The model repository is gated, missing or needs a token.
    ModelAccess,
    /// A dataset file the benchmark needs is missing.
    DatasetMissing,
    /// The Python environment is broken (missing native extension, conflicting packages).
    EnvironmentBroken,
    /// A disk filled up.
    DiskFull,
    /// No prebuilt wheel exists for the commit.
    NoWheel,
    /// No container image exists for the commit.
    NoImage,
    /// Infrastructure failed in a way that may succeed on retry (network, registry 5xx, 429 …).
    InfraTransient,
    /// The agent patch did not apply completely.
    PatchFailed,
    /// The change touches native code and needs a source build.
    NeedsCompile,
    /// The task's configuration is wrong (placeholders, shell operators, impossible flags).
    BadConfig,
    /// Every change is specific to AMD ROCm hardware.
    RocmSpecific,
    /// The model does not fit on the GPUs the task has.
    ModelTooLarge,
    /// The task has no benchmark command.
    NoPerfCommand,
    /// The run was cancelled (Ctrl-C, SIGTERM, budget).
    Cancelled,
    /// Nothing more specific is known.
    Unknown,
}

impl Failure {
    /// Every code, in declaration order.
    pub const ALL: [Failure; 21] = [
        Failure::NoMetrics,
        Failure::ServerFailed,
        Failure::Timeout,
        Failure::Oom,
        Failure::VllmVersion,
        Failure::ModelUnsupported,
        Failure::ModelAccess,
        Failure::DatasetMissing,
        Failure::EnvironmentBroken,
        Failure::DiskFull,
        Failure::NoWheel,
        Failure::NoImage,
        Failure::InfraTransient,
        Failure::PatchFailed,
        Failure::NeedsCompile,
        Failure::BadConfig,
        Failure::RocmSpecific,
        Failure::ModelTooLarge,
        Failure::NoPerfCommand,
        Failure::Cancelled,
        Failure::Unknown,
    ];

    /// The stable snake_case code used in records, reports and skip lists.
    pub fn code(self) -> &'static str {
        match self {
            Failure::NoMetrics => "no_metrics",
            Failure::ServerFailed => "server_failed",
            Failure::Timeout => "timeout",
            Failure::Oom => "oom",
            Failure::VllmVersion => "vllm_version",
            Failure::ModelUnsupported => "model_unsupported",
            Failure::ModelAccess => "model_access",
            Failure::DatasetMissing => "dataset_missing",
            Failure::EnvironmentBroken => "environment_broken",
            Failure::DiskFull => "disk_full",
            Failure::NoWheel => "no_wheel",
            Failure::NoImage => "no_image",
            Failure::InfraTransient => "infra_transient",
            Failure::PatchFailed => "patch_failed",
            Failure::NeedsCompile => "needs_compile",
            Failure::BadConfig => "bad_config",
            Failure::RocmSpecific => "rocm_specific",
            Failure::ModelTooLarge => "model_too_large",
            Failure::NoPerfCommand => "no_perf_command",
            Failure::Cancelled => "cancelled",
            Failure::Unknown => "unknown",
        }
    }

    /// Whether retrying the same work may succeed. Only infrastructure hiccups are transient;
    /// a benchmark that ran and produced numbers, or failed deterministically, never is.
    pub fn is_transient(self) -> bool {
        matches!(self, Failure::InfraTransient)
    }

    /// A one-line human explanation of the code, used in reports.
    pub fn describe(self) -> &'static str {
        match self {
            Failure::NoMetrics => "the benchmark printed no parsable metrics",
            Failure::ServerFailed => "the inference server died or never became ready",
            Failure::Timeout => "a phase ran past its deadline",
            Failure::Oom => "the GPU ran out of memory",
            Failure::VllmVersion => "the engine version lacks something the command needs",
            Failure::ModelUnsupported => "the engine version does not support the model",
            Failure::ModelAccess => "the model repository is gated, missing or needs a token",
            Failure::DatasetMissing => "a dataset file the benchmark needs is missing",
            Failure::EnvironmentBroken => "the Python environment is broken",
            Failure::DiskFull => "a disk filled up",
            Failure::NoWheel => "no prebuilt wheel exists for the commit",
            Failure::NoImage => "no container image exists for the commit",
            Failure::InfraTransient => "transient infrastructure failure",
            Failure::PatchFailed => "the patch did not apply completely",
            Failure::NeedsCompile => "the change touches native code and needs a source build",
            Failure::BadConfig => "the task's configuration is wrong",
            Failure::RocmSpecific => "the change only affects AMD ROCm hardware",
            Failure::ModelTooLarge => "the model does not fit on the task's GPUs",
            Failure::NoPerfCommand => "the task has no benchmark command",
            Failure::Cancelled => "the run was cancelled",
            Failure::Unknown => "unknown failure",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Error returned when a string is not a known failure code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure code '{0}' (expected one of: {codes})", codes = all_codes())]
pub struct UnknownFailureCode(pub String);

fn all_codes() -> String {
    Failure::ALL
        .iter()
        .map(|f| f.code())
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Failure {
    type Err = UnknownFailureCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Failure::ALL
            .iter()
            .copied()
            .find(|f| f.code() == wanted)
            .ok_or_else(|| UnknownFailureCode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for f in Failure::ALL {
            assert!(seen.insert(f.code()), "duplicate code {}", f.code());
            assert_eq!(f.code().parse::<Failure>().unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.code()));
        }
    }

    #[test]
    fn only_infra_is_transient() {
        let transient: Vec<_> = Failure::ALL.iter().filter(|f| f.is_transient()).collect();
        assert_eq!(transient, vec![&Failure::InfraTransient]);
    }

    #[test]
    fn unknown_code_lists_accepted_ones() {
        let err = "nope".parse::<Failure>().unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("no_metrics") && err.contains("unknown"));
    }
}
