//! The knobs of the Modal backend ([`ModalConfig`]), the GPU price table and [`cost_usd`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A Modal Volume and where it is mounted in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeMount {
    /// The Volume's name (created on first use).
    pub name: String,
    /// The absolute mount path in the container.
    pub path: String,
}

/// The `[modal]` section of perf-runner's embedded defaults: every key is optional (the values
/// of [`ModalConfig::default`] apply); the commented keys are the ones most users set.
pub const DEFAULT_TOML: &str = r#"[modal]
# python = "python3"                # the local interpreter with the modal SDK
# app_name = "perf-runner"
# default_gpu = "H100"              # when a task names no GPU kind
# pin_sku = true                    # H100! : Modal may not substitute another SKU
# secrets = ["huggingface"]         # Modal Secrets (HF_TOKEN)
# images = { "f508e03e7f2d" = "vllm/vllm-openai:v0.6.3" }   # commit prefix (>= 7) -> image
"#;

/// Configuration of [`crate::ModalBackend`], read from the `[modal]` settings section. Every
/// field has a default (`#[serde(default)]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModalConfig {
    /// The local Python interpreter that has the `modal` SDK installed.
    pub python: PathBuf,
    /// A shim script to run instead of the embedded one (tests and debugging).
    pub shim_override: Option<PathBuf>,
    /// Where the embedded shim is written (content-addressed); `None` = `$XDG_CACHE_HOME` or
    /// `~/.cache`, then the temp dir, each with `perf-runner/modal-shim`.
    pub cache_dir: Option<PathBuf>,
    /// The Modal App the sandboxes and image builds belong to (created if missing).
    pub app_name: String,
    /// The GPU kind asked for when the task names none.
    pub default_gpu: String,
    /// Pin the SKU (`H100!`) so Modal cannot swap it for another (e.g. H100 → H200).
    pub pin_sku: bool,
    /// Task GPU kinds → Modal GPU types (`H100-80GB` → `H100`).
    pub gpu_aliases: BTreeMap<String, String>,
    /// The Modal GPU types this backend may ask for, with the most per container.
    pub gpu_max: BTreeMap<String, u32>,
    /// The Hugging Face cache Volume (`HF_HOME` points at its mount path).
    pub hf_cache: VolumeMount,
    /// The datasets Volume: dataset files are uploaded there, content-addressed.
    pub datasets: VolumeMount,
    /// Modal Secrets injected as environment variables (`huggingface` holds `HF_TOKEN`).
    pub secrets: Vec<String>,
    /// Python of the slim image that per-commit wheels are installed into.
    pub python_version: String,
    /// Packages installed with the engine (same resolution), e.g. `pandas`.
    pub extra_pip: Vec<String>,
    /// Prefer a container image over wheels when a build has both.
    pub prefer_image: bool,
    /// Registry images by commit (full hash or a prefix of 7+), e.g. a release commit →
    /// `vllm/vllm-openai:v0.6.3`; tried before the build's own artifacts.
    pub images: BTreeMap<String, String>,
    /// The Python in the container (`{PYTHON}` of the engine).
    pub container_python: String,
    /// The port the server listens on inside the container.
    pub port: u16,
    /// Working directory in the container; results go to `<workdir>/results`.
    pub workdir: String,
    /// Raw-file URL template for `benchmarks/*.py` at a commit (`{commit}`, `{path}`), fetched
    /// into the image at build time; `None` = no `{VLLM_SOURCE}`.
    pub vllm_source: Option<String>,
    /// The files fetched from `vllm_source` (best effort).
    pub script_files: Vec<String>,
    /// CPU cores requested per container (`None` = Modal's default).
    pub cpu: Option<f64>,
    /// Memory requested per container, MiB (`None` = Modal's default).
    pub memory_mib: Option<u32>,
    /// Sandbox lifetime beyond server-ready + warm-up + benchmark deadlines, seconds.
    pub sandbox_slack_s: u64,
    /// The longest sandbox lifetime asked for, seconds (Modal's limit is 24 h).
    pub max_sandbox_s: u64,
    /// How often the step kit probes the server's `/health` (through the tunnel), seconds.
    pub health_poll_s: f64,
    /// Between SIGTERM and SIGKILL when the step kit stops the server in the sandbox, ms.
    pub stop_grace_ms: u64,
    /// After a cancel (or, for a sandbox shim, after its stdin was closed), how long the shim
    /// gets to terminate its sandbox before SIGTERM, ms. A well-behaved shim exits as soon as its
    /// sandbox is terminated; the grace covers a cancel
    /// that lands while Modal is still creating the sandbox (the shim waits for it, up to
    /// 120 s, to terminate it). A shim killed anyway leaves its sandbox to its own timeout.
    pub cancel_grace_ms: u64,
    /// After SIGTERM, how long before SIGKILL, ms.
    pub kill_grace_ms: u64,
    /// The image builder version shown by the dry run (`None` = `MODAL_IMAGE_BUILDER_VERSION`,
    /// the SDK config, or the newest the SDK supports).
    pub image_builder_version: Option<String>,
    /// $ per GPU-hour by Modal GPU type; kinds not listed keep [`DEFAULT_PRICES`].
    pub prices: BTreeMap<String, f64>,
}

/// Modal's list prices, $ per GPU-hour (modal.com/pricing, 2025); override in `[modal.prices]`.
pub const DEFAULT_PRICES: [(&str, f64); 10] = [
    ("B200", 6.25),
    ("H200", 4.54),
    ("H100", 3.95),
    ("A100-80GB", 2.50),
    ("A100", 2.10),
    ("A100-40GB", 2.10),
    ("L40S", 1.95),
    ("A10G", 1.10),
    ("L4", 0.80),
    ("T4", 0.59),
];

/// The benchmark scripts fetched from `vllm_source` (the local backend's list).
pub const DEFAULT_SCRIPT_FILES: [&str; 10] = [
    "benchmarks/benchmark_serving.py",
    "benchmarks/benchmark_throughput.py",
    "benchmarks/benchmark_latency.py",
    "benchmarks/benchmark_prefix_caching.py",
    "benchmarks/backend_request_func.py",
    "benchmarks/benchmark_utils.py",
    "benchmarks/benchmark_dataset.py",
    "benchmarks/benchmark_serving_structured_output.py",
    "benchmarks/benchmark_prioritization.py",
    "benchmarks/benchmark_long_document_qa_throughput.py",
];

impl Default for ModalConfig {
    fn default() -> Self {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        ModalConfig {
            python: PathBuf::from("python3"),
            shim_override: None,
            cache_dir: None,
            app_name: "perf-runner".into(),
            default_gpu: "H100".into(),
            pin_sku: true,
            gpu_aliases: map(&[("H100-80GB", "H100"), ("H100-SXM", "H100"), ("A10", "A10G")]),
            gpu_max: [
                ("B200", 8),
                ("H200", 8),
                ("H100", 8),
                ("A100-80GB", 8),
                ("A100", 8),
                ("A100-40GB", 8),
                ("L40S", 4),
                ("A10G", 4),
                ("L4", 8),
                ("T4", 8),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            hf_cache: VolumeMount {
                name: "perf-runner-hf-cache".into(),
                path: "/root/.cache/huggingface".into(),
            },
            datasets: VolumeMount {
                name: "perf-runner-datasets".into(),
                path: "/datasets".into(),
            },
            secrets: vec!["huggingface".into()],
            python_version: "3.12".into(),
            extra_pip: Vec::new(),
            prefer_image: false,
            images: BTreeMap::new(),
            container_python: "python3".into(),
            port: 8000,
            workdir: "/tmp/perf-runner".into(),
            vllm_source: Some(
                "https://raw.githubusercontent.com/vllm-project/vllm/{commit}/{path}".into(),
            ),
            script_files: DEFAULT_SCRIPT_FILES.iter().map(|s| s.to_string()).collect(),
            cpu: None,
            memory_mib: None,
            sandbox_slack_s: 900,
            max_sandbox_s: 86_400,
            health_poll_s: 2.0,
            stop_grace_ms: 10_000,
            cancel_grace_ms: 200_000,
            kill_grace_ms: 5_000,
            image_builder_version: None,
            prices: DEFAULT_PRICES
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

impl ModalConfig {
    /// The Modal GPU type for a task's kind (`None` = the default kind), or why Modal has none.
    pub fn modal_gpu_type(&self, kind: Option<&str>) -> Result<String, String> {
        let asked = kind
            .unwrap_or(&self.default_gpu)
            .trim()
            .to_ascii_uppercase();
        let asked = asked.trim_end_matches('!').to_string();
        let modal = self
            .gpu_aliases
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&asked))
            .map(|(_, v)| v.to_ascii_uppercase())
            .unwrap_or(asked);
        if self.gpu_max.keys().any(|k| k.eq_ignore_ascii_case(&modal)) {
            Ok(modal)
        } else {
            Err(format!(
                "Modal offers no {modal} GPU here (configured kinds: {}; map others with \
                 [modal.gpu_aliases])",
                self.gpu_max.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// The GPU string given to Modal: `H100!` / `H100!:2` when pinned, `H100` / `H100:2`
    /// otherwise.
    pub fn gpu_string(&self, modal_type: &str, count: u32) -> String {
        let pin = if self.pin_sku { "!" } else { "" };
        match count {
            0 | 1 => format!("{modal_type}{pin}"),
            n => format!("{modal_type}{pin}:{n}"),
        }
    }

    /// The price of one GPU-hour of a kind, if known.
    pub fn price_per_gpu_hour(&self, gpu_kind: &str) -> Option<f64> {
        let kind = self
            .modal_gpu_type(Some(gpu_kind))
            .unwrap_or_else(|_| gpu_kind.to_ascii_uppercase());
        let configured = self
            .prices
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&kind))
            .map(|(_, v)| *v);
        let default = || {
            DEFAULT_PRICES
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&kind))
                .map(|(_, v)| *v)
        };
        configured
            .or_else(default)
            .filter(|p| p.is_finite() && *p >= 0.0)
    }

    /// What `count` GPUs of `gpu_kind` cost for `seconds`, by this config's price table.
    pub fn cost_usd(&self, gpu_kind: &str, count: u32, seconds: f64) -> Option<f64> {
        if !seconds.is_finite() || seconds < 0.0 {
            return None;
        }
        let price = self.price_per_gpu_hour(gpu_kind)?;
        Some(price * f64::from(count.max(1)) * seconds / 3600.0)
    }

    /// The directory the embedded shim is written to.
    pub fn shim_dir(&self) -> PathBuf {
        let base = self.cache_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("perf-runner")
        });
        base.join("modal-shim")
    }

    /// The grace given to the shim after a cancel.
    pub fn cancel_grace(&self) -> Duration {
        Duration::from_millis(self.cancel_grace_ms)
    }

    /// The grace between SIGTERM and SIGKILL of a process in the sandbox.
    pub fn stop_grace(&self) -> Duration {
        Duration::from_millis(self.stop_grace_ms)
    }

    /// The grace between SIGTERM and SIGKILL of the shim.
    pub fn kill_grace(&self) -> Duration {
        Duration::from_millis(self.kill_grace_ms)
    }

    /// The configured registry image of a commit, if any.
    pub fn image_for_commit(&self, commit: &str) -> Option<&str> {
        self.images
            .iter()
            .find(|(k, _)| {
                let k = k.trim();
                k.len() >= 7
                    && (commit.starts_with(k) || (k.starts_with(commit) && commit.len() >= 7))
            })
            .map(|(_, v)| v.as_str())
    }
}

/// What `count` GPUs of `gpu_kind` cost for `seconds` at Modal's default list prices
/// ([`DEFAULT_PRICES`]); `None` for an unknown kind or a negative time.
pub fn cost_usd(gpu_kind: &str, count: u32, seconds: f64) -> Option<f64> {
    ModalConfig::default().cost_usd(gpu_kind, count, seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_strings_are_pinned_by_default() {
        let c = ModalConfig::default();
        let t = c.modal_gpu_type(Some("h100")).unwrap();
        assert_eq!(c.gpu_string(&t, 1), "H100!");
        assert_eq!(c.gpu_string(&t, 2), "H100!:2");
        assert_eq!(c.modal_gpu_type(None).unwrap(), "H100");
        assert_eq!(c.modal_gpu_type(Some("H100-80GB")).unwrap(), "H100");
        let unpinned = ModalConfig {
            pin_sku: false,
            ..ModalConfig::default()
        };
        assert_eq!(unpinned.gpu_string("A100-80GB", 4), "A100-80GB:4");
        let e = c.modal_gpu_type(Some("MI300X")).unwrap_err();
        assert!(e.contains("MI300X") && e.contains("H100"), "{e}");
    }

    #[test]
    fn costs_follow_the_price_table() {
        let h = cost_usd("H100", 2, 1800.0).unwrap();
        assert!((h - 3.95).abs() < 1e-9, "{h}");
        assert!(cost_usd("H100-80GB", 1, 3600.0).is_some());
        assert_eq!(cost_usd("MI300X", 1, 10.0), None);
        assert_eq!(cost_usd("H100", 1, -1.0), None);
        assert_eq!(cost_usd("T4", 1, 0.0), Some(0.0));
        let mut c = ModalConfig::default();
        c.prices.insert("H100".into(), 1.0);
        assert_eq!(c.cost_usd("h100", 4, 3600.0), Some(4.0));
    }

    #[test]
    fn partial_settings_keep_the_defaults() {
        let c: ModalConfig = serde_json::from_value(serde_json::json!({
            "pin_sku": false,
            "hf_cache": {"name": "hf", "path": "/hf"},
            "prices": {"H100": 2.0},
        }))
        .unwrap();
        assert!(!c.pin_sku);
        assert_eq!(c.hf_cache.path, "/hf");
        assert_eq!(c.secrets, ["huggingface"]);
        assert_eq!(c.cost_usd("H100", 1, 3600.0), Some(2.0));
        assert_eq!(
            c.cost_usd("T4", 1, 3600.0),
            Some(0.59),
            "unlisted kinds keep list prices"
        );
    }

    #[test]
    fn images_by_commit_prefix() {
        let mut c = ModalConfig::default();
        c.images
            .insert("abcdef1".into(), "vllm/vllm-openai:v0.6.3".into());
        assert_eq!(
            c.image_for_commit("abcdef1234567890"),
            Some("vllm/vllm-openai:v0.6.3")
        );
        assert_eq!(c.image_for_commit("abcdef0"), None);
    }
}
