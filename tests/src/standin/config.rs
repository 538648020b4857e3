//! The configuration of one stand-in "build": which version it claims to be, how fast it is and
//! which fault it injects. The binary reads it at start (see [`StandinConfig::load`]).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Environment variable naming a JSON config file; it wins over the file next to the binary.
pub const CONFIG_ENV: &str = "VLLM_STANDIN_CONFIG";
/// Environment variable that overrides [`StandinConfig::fault`] for one run (`none` clears it).
pub const FAULT_ENV: &str = "VLLM_STANDIN_FAULT";
/// Name of the config file looked up next to the binary (how a wheel or image ships a build).
pub const CONFIG_FILE_NAME: &str = "standin-config.json";

/// A fault the stand-in injects, with vLLM-like text (see the crate README for the exact texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// Engine start fails with a Python traceback ending in `RuntimeError: Engine core
    /// initialization failed…`; exit 1 before the server is ready.
    CrashAtStart,
    /// The server (or offline engine) dies abruptly after `fault_after` requests; exit 1.
    CrashMidRun,
    /// Never becomes ready but stays alive (offline benchmarks sleep forever); SIGTERM ends it.
    Hang,
    /// Like [`Fault::Hang`], but SIGTERM and SIGINT are ignored: only SIGKILL ends it.
    HangUnkillable,
    /// `ValueError: Model architectures ['FooForCausalLM'] are not supported for now…`; exit 1.
    UnsupportedArch,
    /// argparse usage and `error: unrecognized arguments: …`; exit 2 (every entry point).
    UnrecognizedArg,
    /// `torch.OutOfMemoryError: CUDA out of memory…` while loading; exit 1.
    Oom,
    /// The first invocation per `state_dir` fails with a connection reset (exit 1); later ones
    /// succeed. Applies to every entry point.
    TransientOnce,
    /// The `bench serve` client dies half-way with a traceback; exit 1 (the server is fine).
    ClientCrash,
    /// Sleep mode: the server exits 1 while asleep, shortly after the first `POST /sleep` that
    /// follows `fault_after` served generation requests.
    DieAsleep,
}

impl Fault {
    /// Every fault, in a stable order.
    pub const ALL: [Fault; 10] = [
        Fault::CrashAtStart,
        Fault::CrashMidRun,
        Fault::Hang,
        Fault::HangUnkillable,
        Fault::UnsupportedArch,
        Fault::UnrecognizedArg,
        Fault::Oom,
        Fault::TransientOnce,
        Fault::ClientCrash,
        Fault::DieAsleep,
    ];

    /// The snake_case name used in JSON and in [`FAULT_ENV`].
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::CrashAtStart => "crash_at_start",
            Fault::CrashMidRun => "crash_mid_run",
            Fault::Hang => "hang",
            Fault::HangUnkillable => "hang_unkillable",
            Fault::UnsupportedArch => "unsupported_arch",
            Fault::UnrecognizedArg => "unrecognized_arg",
            Fault::Oom => "oom",
            Fault::TransientOnce => "transient_once",
            Fault::ClientCrash => "client_crash",
            Fault::DieAsleep => "die_asleep",
        }
    }
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Fault::ALL
            .into_iter()
            .find(|f| f.as_str() == s.trim())
            .ok_or_else(|| format!("unknown stand-in fault {s:?}"))
    }
}

/// One build of the stand-in, as stored in `standin-config.json`. Unknown keys are rejected so a
/// typo in a test does not silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StandinConfig {
    /// The version it reports (`vllm.__version__`, logs); must be PEP 440 for a wheel.
    pub version: String,
    /// Multiplier on the token rate and divisor of the first-token delay (1.25 = 25 % faster).
    pub speed: f64,
    /// Base decode rate of one stream, tokens per second (before `speed`).
    pub tokens_per_s: f64,
    /// Base time to first token in milliseconds (before `speed`), plus the prefill below.
    pub ttft_ms: f64,
    /// Prefill rate, prompt tokens per second, added to the first-token delay.
    pub prefill_tokens_per_s: f64,
    /// Engine start-up time in milliseconds (server readiness delay, offline engine load).
    pub startup_ms: u64,
    /// Relative noise on every delay (0.02 = ±2 %), drawn from a generator seeded by `seed`.
    pub jitter: f64,
    /// Seed of the noise.
    pub seed: u64,
    /// Print the output formats of old vLLM versions (e.g. `Throughput: X requests/s, Y tokens/s`).
    pub old_format: bool,
    /// The injected fault, if any ([`FAULT_ENV`] overrides it).
    pub fault: Option<Fault>,
    /// Requests served before `crash_mid_run` strikes (offline: prompts processed).
    pub fault_after: u64,
    /// Where faults that count invocations keep their state; default: the config file's folder,
    /// else the system temp folder.
    pub state_dir: Option<PathBuf>,
    /// Interval of the server's periodic engine log line (`Avg prompt throughput: …`), ms.
    pub log_interval_ms: u64,
    /// Whether the build has vLLM's sleep mode (`--enable-sleep-mode`; `POST /sleep`,
    /// `POST /wake_up`, `GET /is_sleeping` with `VLLM_SERVER_DEV_MODE=1`). Without it the flag
    /// is an argparse error, as in vLLM builds older than sleep mode.
    pub sleep_mode: bool,
    /// What falling asleep costs, ms.
    pub sleep_ms: u64,
    /// What waking up costs, ms.
    pub wake_ms: u64,
    /// The KV-cache capacity the server's log reports (`GPU KV cache size: N tokens`).
    pub kv_cache_tokens: u64,
}

impl Default for StandinConfig {
    fn default() -> Self {
        StandinConfig {
            version: "0.6.3.dev1+gf508e03".to_string(),
            speed: 1.0,
            tokens_per_s: 400.0,
            ttft_ms: 20.0,
            prefill_tokens_per_s: 200_000.0,
            startup_ms: 300,
            jitter: 0.02,
            seed: 0,
            old_format: false,
            fault: None,
            fault_after: 10,
            state_dir: None,
            log_interval_ms: 1000,
            sleep_mode: true,
            sleep_ms: 20,
            wake_ms: 30,
            kv_cache_tokens: 401_232,
        }
    }
}

impl StandinConfig {
    /// Loads the config the way the binary does: the file named by [`CONFIG_ENV`], else
    /// [`CONFIG_FILE_NAME`] next to `exe`, else defaults; then applies [`FAULT_ENV`]. Returns the
    /// config and the file it came from.
    pub fn load(exe: Option<&Path>) -> Result<(StandinConfig, Option<PathBuf>), String> {
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let beside = exe
            .and_then(|e| e.parent())
            .map(|d| d.join(CONFIG_FILE_NAME));
        let path = match from_env {
            Some(p) => Some(p),
            None => beside.filter(|p| p.is_file()),
        };
        let mut config = match &path {
            Some(p) => StandinConfig::from_file(p)?,
            None => StandinConfig::default(),
        };
        if let Some(v) = std::env::var_os(FAULT_ENV) {
            let v = v.to_string_lossy();
            config.fault = match v.trim() {
                "" | "none" => None,
                name => Some(name.parse()?),
            };
        }
        if config.state_dir.is_none() {
            config.state_dir = path
                .as_ref()
                .and_then(|p| p.parent())
                .map(Path::to_path_buf);
        }
        config.validate()?;
        Ok((config, path))
    }

    /// Reads one config file.
    pub fn from_file(path: &Path) -> Result<StandinConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("bad config {}: {e}", path.display()))
    }

    /// Checks that rates and delays are usable numbers.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("speed", self.speed),
            ("tokens_per_s", self.tokens_per_s),
            ("prefill_tokens_per_s", self.prefill_tokens_per_s),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "config field {name} must be a positive number, got {v}"
                ));
            }
        }
        if !(self.ttft_ms.is_finite() && self.ttft_ms >= 0.0) {
            return Err(format!(
                "config field ttft_ms must be >= 0, got {}",
                self.ttft_ms
            ));
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(format!(
                "config field jitter must be in [0, 1), got {}",
                self.jitter
            ));
        }
        Ok(())
    }

    /// The config as pretty JSON (what a wheel or image ships as `standin-config.json`).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// The folder where counting faults keep state (see [`StandinConfig::state_dir`]).
    pub fn state_dir_or_temp(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(std::env::temp_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_round_trip_through_their_names() {
        for f in Fault::ALL {
            assert_eq!(f.as_str().parse::<Fault>(), Ok(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{}\"", f.as_str()));
        }
        assert!("nope".parse::<Fault>().is_err());
    }

    #[test]
    fn partial_json_keeps_defaults_and_unknown_keys_are_rejected() {
        let c: StandinConfig = serde_json::from_str(r#"{"speed": 1.25}"#).unwrap();
        assert_eq!(c.speed, 1.25);
        assert_eq!(c.tokens_per_s, StandinConfig::default().tokens_per_s);
        assert!(serde_json::from_str::<StandinConfig>(r#"{"sped": 1}"#).is_err());
        let bad = StandinConfig {
            speed: 0.0,
            ..StandinConfig::default()
        };
        assert!(bad.validate().is_err());
    }
}
