//! GPU discovery with `nvidia-smi` and SKU matching.
//!
//! Every function takes the `nvidia-smi` program to run (a name looked up on `PATH`, or a
//! path), so a backend can point it at a wrapper (a remote engine's host) and tests at a fake.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::backend::GpuDevice;

/// The arguments of the discovery query.
pub const QUERY_ARGS: [&str; 2] = [
    "--query-gpu=index,uuid,name,memory.total,memory.used",
    "--format=csv,noheader,nounits",
];

/// How long one `nvidia-smi` call may take.
const SMI_TIMEOUT: Duration = Duration::from_secs(30);

/// One GPU as `nvidia-smi` reports it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuStatus {
    /// The device (memory total 0 when the driver says `[N/A]`).
    pub device: GpuDevice,
    /// Memory in use, MiB (`None` for `[N/A]`).
    pub memory_used_mib: Option<u64>,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// The program is not there.
    NotFound(String),
    /// It ran and failed (no driver, no devices …), with its output.
    Failed(String),
}

impl std::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiscoveryError::NotFound(m) => write!(f, "nvidia-smi not found: {m}"),
            DiscoveryError::Failed(m) => write!(f, "nvidia-smi failed: {m}"),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// Parse the CSV of [`QUERY_ARGS`]. Lines that are not a GPU (`No devices were found`, blank,
/// garbled) are skipped; commas inside a name are tolerated; `[N/A]` and unit suffixes are
/// understood.
pub fn parse_query(text: &str) -> Vec<GpuStatus> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() < 5 {
            if !line.trim().is_empty() {
                tracing::debug!(line, "nvidia-smi: not a GPU line");
            }
            continue;
        }
        let Ok(index) = fields[0].parse::<u32>() else {
            tracing::debug!(line, "nvidia-smi: no index");
            continue;
        };
        let n = fields.len();
        let name = fields[2..n - 2].join(",");
        out.push(GpuStatus {
            device: GpuDevice {
                index,
                uuid: fields[1].to_string(),
                name,
                memory_mib: mib(fields[n - 2]).unwrap_or(0),
            },
            memory_used_mib: mib(fields[n - 1]),
        });
    }
    out
}

/// A MiB figure: `81559`, `81559 MiB`; `[N/A]`, `[Not Supported]` → `None`.
fn mib(s: &str) -> Option<u64> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Whether a product name is of a SKU: every `-`-separated part of the kind must begin a word
/// of the name, case-insensitively (`H100` ⊂ `NVIDIA H100 80GB HBM3`, `A100-80GB` ⊂
/// `NVIDIA A100-SXM4-80GB`, but `H100` ⊄ `NVIDIA GH200`). `None` matches any GPU.
pub fn matches_kind(name: &str, kind: Option<&str>) -> bool {
    let Some(kind) = kind.map(str::trim).filter(|k| !k.is_empty()) else {
        return true;
    };
    let words: Vec<String> = name
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    let mut parts = kind.split('-').map(str::to_ascii_uppercase);
    let Some(first) = parts.next() else {
        return true;
    };
    // The model word must be exact (A10 is not A100); qualifiers may be prefixes (SXM ⊂ SXM4).
    words.contains(&first) && parts.all(|p| p.is_empty() || words.iter().any(|w| w.starts_with(&p)))
}

/// The SKU word of a product name (`NVIDIA H100 80GB HBM3` → `H100`, `Tesla T4` → `T4`).
pub fn sku(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let first = match words.first() {
        Some(w) if w.eq_ignore_ascii_case("nvidia") || w.eq_ignore_ascii_case("tesla") => {
            words.get(1)
        }
        other => other,
    };
    first
        .map(|w| w.split('-').next().unwrap_or(w).to_ascii_uppercase())
        .unwrap_or_else(|| "UNKNOWN".into())
}

/// Run a query with `nvidia-smi` (async, bounded).
pub async fn query(nvidia_smi: &Path) -> Result<Vec<GpuStatus>, DiscoveryError> {
    let out = smi(nvidia_smi, &QUERY_ARGS).await?;
    Ok(parse_query(&out))
}

/// The driver version, if `nvidia-smi` answers.
pub async fn driver_version(nvidia_smi: &Path) -> Option<String> {
    let out = smi(
        nvidia_smi,
        &["--query-gpu=driver_version", "--format=csv,noheader"],
    )
    .await
    .ok()?;
    out.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
}

/// The plain `nvidia-smi` report, for artifacts.
pub async fn report(nvidia_smi: &Path) -> Result<String, DiscoveryError> {
    smi(nvidia_smi, &[]).await
}

/// Discovery for sync callers (`capabilities`).
pub fn query_blocking(nvidia_smi: &Path) -> Result<Vec<GpuStatus>, DiscoveryError> {
    let out = std::process::Command::new(nvidia_smi)
        .args(QUERY_ARGS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DiscoveryError::NotFound(format!("{}: {e}", nvidia_smi.display())))?;
    if !out.status.success() {
        return Err(DiscoveryError::Failed(
            String::from_utf8_lossy(&out.stdout).trim().to_string()
                + String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(parse_query(&String::from_utf8_lossy(&out.stdout)))
}

async fn smi(nvidia_smi: &Path, args: &[&str]) -> Result<String, DiscoveryError> {
    let mut cmd = tokio::process::Command::new(nvidia_smi);
    cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
    let out = match tokio::time::timeout(SMI_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            return Err(DiscoveryError::NotFound(format!(
                "{}: {e}",
                nvidia_smi.display()
            )));
        }
        Err(_) => {
            return Err(DiscoveryError::Failed(format!(
                "no answer in {SMI_TIMEOUT:?}"
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(DiscoveryError::Failed(format!(
            "{}: {} {}",
            out.status,
            stdout.trim(),
            stderr.trim()
        )));
    }
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "0, GPU-5e2a1f0c-7c1f-2b4e-9d1b-1a2b3c4d5e6f, NVIDIA H100 80GB HBM3, 81559, 4\n\
1, GPU-0b6e8f3a-1111-2222-3333-444455556666, NVIDIA H100 80GB HBM3, 81559, 71234\n";

    #[test]
    fn parses_real_output() {
        let g = parse_query(REAL);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].device.index, 0);
        assert_eq!(g[0].device.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(g[0].device.memory_mib, 81559);
        assert_eq!(g[1].memory_used_mib, Some(71234));
        assert!(g[1].device.uuid.starts_with("GPU-0b6e"));
    }

    #[test]
    fn parses_an_h200_host() {
        // Captured on an H200 host (driver 580.159.04).
        let g =
            parse_query("0, GPU-4514eb23-813b-e9d6-6a00-c5b840b09f6b, NVIDIA H200, 143771, 0\n");
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].device.name, "NVIDIA H200");
        assert_eq!(g[0].device.memory_mib, 143771);
        assert_eq!(g[0].memory_used_mib, Some(0));
        assert!(matches_kind(&g[0].device.name, Some("H200")));
        assert!(!matches_kind(&g[0].device.name, Some("H100")));
    }

    #[test]
    fn tolerates_na_spacing_units_and_junk() {
        let text = "No devices were found\n\n  3 ,GPU-x,   NVIDIA A100-SXM4-80GB  ,[N/A],   [N/A]  \n\
garbage line\nx, GPU-y, name, 1, 2\n4, GPU-z, Weird, Name, With Commas, 16384 MiB, 12 MiB\n";
        let g = parse_query(text);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].device.index, 3);
        assert_eq!(g[0].device.name, "NVIDIA A100-SXM4-80GB");
        assert_eq!(g[0].device.memory_mib, 0);
        assert_eq!(g[0].memory_used_mib, None);
        assert_eq!(g[1].device.name, "Weird,Name,With Commas");
        assert_eq!(g[1].device.memory_mib, 16384);
        assert_eq!(g[1].memory_used_mib, Some(12));
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn skus_from_names() {
        assert_eq!(sku("NVIDIA H100 80GB HBM3"), "H100");
        assert_eq!(sku("NVIDIA A100-SXM4-80GB"), "A100");
        assert_eq!(sku("Tesla T4"), "T4");
        assert_eq!(sku("NVIDIA H200"), "H200");
        assert_eq!(sku(""), "UNKNOWN");
    }

    #[test]
    fn kinds_match_skus() {
        let h100 = "NVIDIA H100 80GB HBM3";
        assert!(matches_kind(h100, None));
        assert!(matches_kind(h100, Some("H100")));
        assert!(matches_kind(h100, Some("h100")));
        assert!(matches_kind(h100, Some("H100-80GB")));
        assert!(!matches_kind(h100, Some("H200")));
        assert!(!matches_kind("NVIDIA GH200 480GB", Some("H200")));
        assert!(matches_kind("NVIDIA A100-SXM4-80GB", Some("A100-80GB")));
        assert!(matches_kind("NVIDIA A100-SXM4-80GB", Some("A100-SXM")));
        assert!(!matches_kind("NVIDIA A100-SXM4-80GB", Some("A10")));
        assert!(!matches_kind("NVIDIA A100-PCIE-40GB", Some("A100-80GB")));
        assert!(matches_kind("NVIDIA H100 PCIe", Some("H100-PCIE")));
        assert!(matches_kind("NVIDIA L40S", Some("L40S")));
    }
}
