//! The `perf-runner` binary: reproduce performance commits of LLM-inference engines.
//!
//! Results go to stdout; logs go to stderr (level from `PERF_RUNNER_LOG`, e.g. `debug`).

mod compare_cmd;
mod datasets;
mod parse_cmd;
mod plan_cmd;
mod settings;
mod tasks_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use runner_core::exit;

/// Reproduce performance commits of LLM-inference engines: baseline vs human vs agent.
#[derive(Debug, Parser)]
#[command(name = "perf-runner", version, about, long_about = None)]
struct Cli {
    /// Config file (default: ./perf-runner.toml when present, over the embedded defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

/// Output formats of listing commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text or table.
    Text,
    /// Alias of `text` for listings.
    Table,
    /// JSON with a `schema_version`.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a dataset and list its tasks (default: the embedded example dataset).
    Tasks {
        /// Dataset file (JSON array or JSONL). Omit for the embedded example.
        dataset: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show the exact run plan of one commit: server/client argv, env, GPUs, builds. Runs nothing.
    Plan {
        /// `[DATASET] COMMIT`: the dataset is optional (embedded example when omitted); the
        /// commit is a full hash or a unique prefix.
        #[arg(num_args = 1..=2, value_name = "[DATASET] COMMIT", required = true)]
        args: Vec<String>,
        /// Variants to plan, comma-separated (baseline,human,agent). Default: baseline,human,
        /// plus agent when a patch is known.
        #[arg(long)]
        variants: Option<String>,
        /// The agent patch (overrides the dataset's `patch` field).
        #[arg(long, value_name = "FILE")]
        patch: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Parse benchmark outputs (text logs or JSON result files) into metrics with units and
    /// provenance, or a failure code with evidence.
    Parse {
        /// Files to parse: captured stdout/logs, `--save-result` or `--output-json` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Benchmark mode: auto, serving, throughput, latency, prefix-caching, other.
        #[arg(long, default_value = "auto")]
        mode: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Compare one metric between two sets of results produced anywhere (vLLM JSON result
    /// files or captured outputs; a directory = its files as repeats).
    Compare {
        /// Base results: a file or a directory of files.
        base: PathBuf,
        /// Other results: a file or a directory of files.
        other: PathBuf,
        /// Metric key (default: the mode's primary metric, e.g. output_throughput_tps).
        #[arg(long)]
        metric: Option<String>,
        /// Relative noise floor the ratio's CI is judged against.
        #[arg(long, default_value_t = 0.02)]
        noise_floor: f64,
        /// Use one value per file even when a file has per-request/per-iteration values.
        #[arg(long)]
        per_run: bool,
        /// Bootstrap seed.
        #[arg(long, default_value_t = runner_core::stats::DEFAULT_SEED)]
        seed: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print the embedded default configuration (TOML).
    Config {
        /// Print the embedded defaults rather than the merged settings.
        #[arg(long)]
        defaults: bool,
    },
}

fn main() -> ExitCode {
    init_tracing();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::USAGE
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let loaded = settings::load(cli.config.as_deref())?;
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    let settings = loaded.settings;
    match cli.command {
        Command::Tasks { dataset, format } => tasks_cmd::run(dataset.as_deref(), format),
        Command::Plan {
            args,
            variants,
            patch,
            format,
        } => plan_cmd::run(
            &args,
            variants.as_deref(),
            patch.as_deref(),
            format,
            &settings,
        ),
        Command::Parse {
            files,
            mode,
            format,
        } => parse_cmd::run(&files, &mode, format),
        Command::Compare {
            base,
            other,
            metric,
            noise_floor,
            per_run,
            seed,
            format,
        } => compare_cmd::run(compare_cmd::Args {
            base,
            other,
            metric,
            noise_floor,
            per_run,
            seed,
            format,
        }),
        Command::Config { defaults } => {
            if defaults {
                print!("{}", runner_core::settings::DEFAULT_TOML);
            } else {
                print!("{}", toml_of(&settings)?);
            }
            Ok(exit::SUCCESS)
        }
    }
}

fn toml_of(settings: &runner_core::settings::Settings) -> anyhow::Result<String> {
    Ok(toml::to_string_pretty(settings)?)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("PERF_RUNNER_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
