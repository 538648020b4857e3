//! A benchmark command, parsed: what the dataset's `perf_command` asks for, split into the
//! exact server and client argv. Produced by [`crate::command::parse_perf_command`]; no shell
//! ever runs a dataset string.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The benchmark mode, decided by the command's entry point (a dataset's `benchmark_mode` is
/// only advisory).
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
pub enum Mode {
    /// Online serving: a server plus a load-generating client.
    Serving,
    /// Offline throughput: the script drives the engine.
    Throughput,
    /// Offline latency of one batch.
    Latency,
    /// Offline prefix-caching benchmark.
    PrefixCaching,
    /// Another `benchmarks/*.py` script.
    Other,
}

impl Mode {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Serving => "serving",
            Mode::Throughput => "throughput",
            Mode::Latency => "latency",
            Mode::PrefixCaching => "prefix_caching",
            Mode::Other => "other",
        }
    }

    /// Whether the mode needs a separately started inference server.
    pub fn needs_server(self) -> bool {
        matches!(self, Mode::Serving)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the benchmark is invoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryPoint {
    /// `python benchmarks/benchmark_serving.py …` (path as written, e.g.
    /// `benchmarks/benchmark_serving.py` or `vllm/benchmarks/benchmark_latency.py`).
    Script {
        /// Script path as written in the command.
        path: String,
    },
    /// `vllm bench <subcommand>`.
    VllmBench {
        /// `serve`, `throughput` or `latency`.
        subcommand: String,
    },
    /// `python -m <module> bench <subcommand>`, e.g. `vllm.entrypoints.cli.main`.
    ModuleBench {
        /// The module given to `-m`.
        module: String,
        /// `serve`, `throughput` or `latency`.
        subcommand: String,
    },
}

impl EntryPoint {
    /// Whether this entry point needs the `vllm bench` CLI (vLLM ≥ ~0.8).
    pub fn needs_bench_cli(&self) -> bool {
        !matches!(self, EntryPoint::Script { .. })
    }
}

/// Which process a flag belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Only the inference server takes it (serving mode).
    Server,
    /// Only the benchmark client/script takes it.
    Client,
    /// Both take it (e.g. `--model`, `--tokenizer`, `--trust-remote-code` in serving mode).
    Both,
}

/// One flag of the command, as written, with where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Normalised long name with dashes, e.g. `--max-model-len` (from `--max_model_len` too).
    pub name: String,
    /// The value, if the flag took one (`--x=v` and `--x v` both give `Some("v")`).
    pub value: Option<String>,
    /// Where it goes.
    pub side: Side,
    /// Whether the parser knows this flag; unknown flags stay on the client side and are
    /// reported, never dropped.
    pub known: bool,
}

/// A parsed `perf_command`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchmarkSpec {
    /// The command exactly as the dataset gave it.
    pub raw: String,
    /// Leading `VAR=value` assignments, in order.
    pub env: Vec<(String, String)>,
    /// How the benchmark is invoked.
    pub entry: EntryPoint,
    /// The mode the entry point implies.
    pub mode: Mode,
    /// Every flag in command order (endpoint flags excluded, see `replaced_endpoint_flags`).
    pub flags: Vec<Flag>,
    /// Positional arguments after the entry point (rare; kept for the client).
    pub positionals: Vec<String>,
    /// `--host`, `--port`, `--base-url` … that were removed because the run allocates the
    /// endpoint; kept here so the plan can show what was replaced.
    pub replaced_endpoint_flags: Vec<Flag>,
}

impl BenchmarkSpec {
    /// The first value of a flag (by normalised name, e.g. `--model`).
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value.as_deref())
    }

    /// Whether the flag is present (with or without a value).
    pub fn has_flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f.name == name)
    }

    /// The model the command benchmarks (`--model`), if given.
    pub fn model(&self) -> Option<&str> {
        self.value_of("--model")
    }

    /// Tensor-parallel size (`--tensor-parallel-size`/`-tp`), if given and numeric.
    pub fn tensor_parallel_size(&self) -> Option<u32> {
        self.value_of("--tensor-parallel-size")
            .and_then(|v| v.parse().ok())
    }

    /// Flags the parser does not know (they stay with the client and are reported).
    pub fn unclassified(&self) -> impl Iterator<Item = &Flag> {
        self.flags.iter().filter(|f| !f.known)
    }

    /// Argv tokens of the flags destined for `side` (a `Both` flag goes to either side).
    pub fn args_for(&self, side: Side) -> Vec<String> {
        let mut out = Vec::new();
        for f in &self.flags {
            let wanted = f.side == side || f.side == Side::Both;
            if wanted {
                out.push(f.name.clone());
                if let Some(v) = &f.value {
                    out.push(v.clone());
                }
            }
        }
        out
    }
}
