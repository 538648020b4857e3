//! The `perf-runner` binary: reproduce performance commits of LLM-inference engines.
//!
//! Results go to stdout; logs go to stderr (level from `PERF_RUNNER_LOG`, e.g. `debug`).

#[macro_use]
mod say;

mod backends;
mod batch_cmd;
mod bench;
mod compare_cmd;
mod datasets;
mod doctor_cmd;
mod errors;
mod parse_cmd;
mod plan_cmd;
mod progress;
mod ranges;
mod report_cmd;
mod route;
mod runs_cmd;
mod schema_cmd;
mod settings;
mod shell_cmd;
mod signals;
mod tasks_cmd;
mod triage_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use runner_core::exit;
use runner_core::text::escape_lines;

/// Reproduce performance commits of LLM-inference engines: baseline vs human vs agent.
#[derive(Debug, Parser)]
#[command(
    name = "perf-runner",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("PERF_RUNNER_GIT_COMMIT"), ")"),
    about,
    long_about = None
)]
struct Cli {
    /// Config file over the embedded defaults. Default: $PERF_RUNNER_CONFIG, else
    /// ./perf-runner.toml when present, else the user's config dir, perf-runner/config.toml.
    #[arg(long, global = true, value_name = "FILE", env = "PERF_RUNNER_CONFIG")]
    config: Option<PathBuf>,

    /// The profile (`[profile.NAME]` of the configuration) applied over the settings; without
    /// it, `default` when the configuration has one.
    #[arg(long, global = true, value_name = "NAME", env = "PERF_RUNNER_PROFILE")]
    profile: Option<String>,

    /// Results store (SQLite). Default: $PERF_RUNNER_STORE, else the user's data dir,
    /// perf-runner/results.sqlite.
    #[arg(long, global = true, value_name = "PATH", env = "PERF_RUNNER_STORE")]
    store: Option<PathBuf>,

    /// More log lines on stderr (-v info, -vv debug, -vvv trace). PERF_RUNNER_LOG (or
    /// RUST_LOG) wins when set.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Colour on stderr: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        value_name = "WHEN"
    )]
    color: ColorWhen,

    #[command(subcommand)]
    command: Command,
}

/// Options shared by `run` and `batch`.
#[derive(Debug, Clone, Args)]
struct RunOpts {
    /// What the end of the run prints on stdout: text (per task medians, ratios with CIs,
    /// verdicts, failures) or json (the run's summary and its whole report).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Where the jobs run (`perf-runner doctor` says what each backend needs here); `auto`:
    /// per task, the first backend of the setting `auto.order` that can take it. Default: the
    /// setting `backend` (of the profile, if one applies).
    #[arg(long, value_parser = backends::run_parser())]
    backend: Option<String>,
    /// Variants, comma-separated (baseline,human,agent). Default: baseline,human (+agent with
    /// a patch).
    #[arg(long)]
    variants: Option<String>,
    /// Measured repeats per variant, interleaved inside one GPU lease, 1 to 1000 (default:
    /// settings).
    #[arg(long, allow_negative_numbers = true, value_parser = ranges::repeats())]
    repeats: Option<u32>,
    /// Also run the baseline a second time per repeat (A/A) to measure the noise floor.
    #[arg(long)]
    aa: bool,
    /// Adaptive repeats: --repeats becomes the most per variant (default 20); a task stops
    /// repeating once human vs baseline is decided on its primary metric.
    #[arg(long)]
    adaptive: bool,
    /// Agent patch (applied to the baseline build).
    #[arg(long, value_name = "FILE")]
    patch: Option<PathBuf>,
    /// Artifact root (logs, result files, plans). Default: the cache dir.
    #[arg(long, value_name = "DIR")]
    artifacts: Option<PathBuf>,
    /// Where dataset files are provided to every variant. Default: the cache dir.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Stop scheduling new jobs once this many GPU·hours were spent (a finite number > 0).
    #[arg(long, allow_negative_numbers = true, value_parser = ranges::budget_gpu_hours)]
    budget_gpu_hours: Option<f64>,
    #[command(flatten)]
    intake: datasets::Intake,
}

/// When stderr gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    /// On a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorWhen {
    /// Whether stderr gets colour.
    pub fn on_stderr(self) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stderr())
            }
        }
    }
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
        #[command(flatten)]
        intake: datasets::Intake,
    },
    /// Say, before any GPU is rented, whether each commit can be verified and why.
    Triage(triage_cmd::Args),
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
        /// Also show what this backend would build, without contacting it, as JSON (`modal`:
        /// the real SDK objects: image recipe, GPU, volumes, secrets, timeouts).
        #[arg(long, value_parser = backends::dry_run_parser())]
        backend: Option<String>,
        #[command(flatten)]
        intake: datasets::Intake,
    },
    /// Reproduce one commit: its benchmark on the baseline, the human commit and optionally
    /// an agent patch. `[DATASET] COMMIT`, or an ad-hoc commit with --commit/--perf-command.
    Run {
        /// `[DATASET] COMMIT` (dataset optional: the embedded example).
        #[arg(num_args = 0..=2, value_name = "[DATASET] COMMIT")]
        args: Vec<String>,
        /// Ad-hoc: the commit (needs --parent and --perf-command).
        #[arg(long, conflicts_with = "args")]
        commit: Option<String>,
        /// Ad-hoc: the parent commit.
        #[arg(long, requires = "commit")]
        parent: Option<String>,
        /// Ad-hoc: the benchmark command.
        #[arg(long, requires = "commit")]
        perf_command: Option<String>,
        /// Ad-hoc: GPUs, e.g. H100:2.
        #[arg(long, requires = "commit")]
        gpu: Option<String>,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// Reproduce every task of a dataset (or resume a run): plans, records and runs jobs.
    Batch {
        /// Dataset file (omit for the embedded example).
        dataset: Option<PathBuf>,
        /// Resume a run: only unfinished or transiently failed jobs run.
        #[arg(long, value_name = "RUN_ID")]
        resume: Option<String>,
        /// Tasks at once (each still needs its GPUs), 1 to 256.
        #[arg(long, allow_negative_numbers = true, value_parser = ranges::concurrency())]
        concurrency: Option<usize>,
        /// Run tasks that the skip list names.
        #[arg(long)]
        force: bool,
        /// Skip list: one `<commit> <code> <detail>` per line.
        #[arg(long, value_name = "FILE")]
        skip_list: Option<PathBuf>,
        /// With --resume: take the run over even though a process on another host holds it
        /// (that host's process cannot be checked from here; make sure it is gone).
        #[arg(long, requires = "resume")]
        break_lock: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// What each backend needs on this host (GPUs, drivers, tools, services, disk), present or
    /// not. Exit 0 when at least one checked backend is usable, 5 when none is.
    Doctor {
        /// Only this backend.
        #[arg(long, value_parser = backends::parser())]
        backend: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Stop leftovers of runs (processes, containers), found by their run-id label.
    #[command(after_help = backends::gc_help())]
    Gc {
        /// Only this run's leftovers (default: every perf-runner leftover).
        run_id: Option<String>,
        /// Seconds between SIGTERM and SIGKILL, 0 to 3600.
        #[arg(long, default_value_t = 10, allow_negative_numbers = true, value_parser = ranges::grace_s())]
        grace_s: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// List runs in the results store.
    Runs {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
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
    Compare(compare_cmd::Args),
    /// Report a stored run: medians with CIs, ratios and verdicts per variant, validity,
    /// failures, skipped tasks and cost, as markdown, JSON or a self-contained HTML page; or
    /// flat tables for pandas: the long table (csv, jsonl) or the ISO-Bench-style wide view
    /// (wide-csv, wide-jsonl).
    Report {
        /// The run id (see `perf-runner runs`).
        run_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: report_cmd::ReportFormat,
        /// Write report.<format> here (and, for serving tasks, one vLLM-schema JSON per
        /// variant under DIR/vllm/) instead of printing the report.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Relative noise floor where no A/A measurement exists, a fraction in [0, 1)
        /// (default: settings' engine.noise_floor).
        #[arg(long, allow_negative_numbers = true, value_parser = ranges::noise_floor)]
        noise_floor: Option<f64>,
        /// Judge against the configured floor even where the run has A/A repeats.
        #[arg(long)]
        no_aa_floor: bool,
        /// Bootstrap seed.
        #[arg(long, default_value_t = runner_core::stats::DEFAULT_SEED)]
        seed: u64,
        /// The metric the tables and verdicts use (e.g. ttft_p99_ms) instead of each task's
        /// primary metric.
        #[arg(long, value_name = "KEY")]
        metric: Option<String>,
    },
    /// Print the JSON Schema of a JSON output (`perf-runner schema report`), or list them.
    Schema {
        /// The output; omit to list the names.
        name: Option<String>,
    },
    /// Benchmark clients of perf-runner's own (`bench serve`: a native `vllm bench serve`).
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `perf-runner completions bash > /etc/bash_completion.d/perf-runner`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `perf-runner man > perf-runner.1`.
    Man,
    /// Print the merged configuration (TOML) with the profile applied and where each value
    /// came from, or the embedded defaults.
    Config {
        /// Print the embedded defaults (core's and every backend's section) rather than the
        /// merged settings.
        #[arg(long)]
        defaults: bool,
    },
}

fn main() -> ExitCode {
    // Results are often piped (`| head`): a closed pipe ends the process quietly, as for any
    // Unix tool, instead of a panic on the next print.
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
    init_tracing(&cli);
    // Records and reports name the program that wrote them.
    runner_core::provenance::set_program(env!("CARGO_PKG_VERSION"), env!("PERF_RUNNER_GIT_COMMIT"));
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // Errors often quote dataset values, paths and logs: never raw.
            eprintln!("error: {}", escape_lines(&errors::message(&e)));
            errors::exit_code(&e)
        }
    };
    ExitCode::from(code as u8)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    // Generated from the command line itself: no configuration needed.
    match &cli.command {
        Command::Completions { shell } => return shell_cmd::completions::<Cli>(*shell),
        Command::Man => return shell_cmd::man::<Cli>(),
        Command::Schema { name } => return schema_cmd::run(name.as_deref()),
        _ => {}
    }
    let loaded = settings::load(cli.config.as_deref(), cli.profile.as_deref())?;
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    for section in &loaded.unknown_sections {
        tracing::warn!(
            key = %section,
            backends = %backends::names().join(", "),
            "unknown configuration key ignored: no setting and no backend has this section"
        );
    }
    let settings = loaded.settings.clone();
    let store = cli
        .store
        .clone()
        .unwrap_or_else(runner_core::store::Store::default_path);
    match cli.command {
        Command::Tasks {
            dataset,
            format,
            intake,
        } => tasks_cmd::run(dataset.as_deref(), format, &settings, &intake),
        Command::Plan {
            args,
            variants,
            patch,
            format,
            backend,
            intake,
        } => match backend.as_deref() {
            Some(name) => block_on(plan_cmd::dry_run(
                backends::find(name)?,
                &args,
                variants.as_deref(),
                patch.as_deref(),
                &settings,
                &intake,
            )),
            None => plan_cmd::run(
                &args,
                variants.as_deref(),
                patch.as_deref(),
                format,
                &settings,
                &intake,
            ),
        },
        Command::Run {
            args,
            commit,
            parent,
            perf_command,
            gpu,
            opts,
        } => {
            let mut spec = batch_spec(&opts, &loaded);
            match (commit, args.as_slice()) {
                (Some(c), _) => {
                    spec.adhoc = Some(serde_json::json!({
                        "commit_hash": c, "parent_commit": parent,
                        "perf_command": perf_command, "gpu_config": gpu,
                    }));
                    spec.commits = vec![c];
                }
                (None, [c]) => spec.commits = vec![c.clone()],
                (None, [d, c]) => {
                    spec.dataset = Some(PathBuf::from(d));
                    spec.commits = vec![c.clone()];
                }
                _ => anyhow::bail!(
                    "run takes [DATASET] COMMIT, or --commit SHA --parent SHA --perf-command '…'"
                ),
            }
            block_on(batch_cmd::run(
                spec,
                None,
                false,
                &store,
                &settings,
                opts.format == Format::Json,
            ))
        }
        Command::Batch {
            dataset,
            resume,
            concurrency,
            force,
            skip_list,
            break_lock,
            opts,
        } => {
            let mut spec = batch_spec(&opts, &loaded);
            spec.dataset = dataset;
            spec.concurrency = concurrency;
            spec.force = force;
            spec.skip_list = skip_list;
            block_on(batch_cmd::run(
                spec,
                resume.as_deref(),
                break_lock,
                &store,
                &settings,
                opts.format == Format::Json,
            ))
        }
        Command::Triage(args) => block_on(triage_cmd::run(args, &settings)),
        Command::Doctor { backend, format } => {
            block_on(doctor_cmd::doctor(&settings, backend.as_deref(), format))
        }
        Command::Gc {
            run_id,
            grace_s,
            format,
        } => block_on(doctor_cmd::gc(
            &settings,
            run_id.as_deref(),
            grace_s,
            format,
        )),
        Command::Runs { format } => runs_cmd::run(&store, format),
        Command::Parse {
            files,
            mode,
            format,
        } => parse_cmd::run(&files, &mode, format, &settings.limits),
        Command::Compare(args) => compare_cmd::run(args, &settings.limits),
        Command::Report {
            run_id,
            format,
            out,
            noise_floor,
            no_aa_floor,
            seed,
            metric,
        } => report_cmd::run(report_cmd::Args {
            run_id,
            format,
            out,
            store: Some(store),
            noise_floor: noise_floor.or(Some(settings.engine.noise_floor)),
            no_aa_floor,
            seed,
            metric,
        }),
        Command::Schema { name } => schema_cmd::run(name.as_deref()),
        Command::Bench(cmd) => block_on(bench::run(cmd)),
        Command::Completions { shell } => shell_cmd::completions::<Cli>(shell),
        Command::Man => shell_cmd::man::<Cli>(),
        Command::Config { defaults } => {
            if defaults {
                print!("{}", backends::default_toml());
            } else {
                print!("{}", settings::describe(&loaded)?);
            }
            Ok(exit::SUCCESS)
        }
    }
}

fn batch_spec(o: &RunOpts, loaded: &settings::Loaded) -> batch_cmd::BatchSpec {
    let settings = &loaded.settings;
    batch_cmd::BatchSpec {
        backend: o
            .backend
            .clone()
            .unwrap_or_else(|| settings.backend.clone()),
        profile: loaded.profile.clone(),
        variants: o.variants.clone(),
        repeats: o
            .repeats
            .unwrap_or(if o.adaptive {
                20
            } else {
                settings.plan.repeats
            })
            .max(1),
        aa: o.aa,
        adaptive: o.adaptive,
        patch: o.patch.clone(),
        artifacts: o.artifacts.clone(),
        data_dir: o.data_dir.clone(),
        budget_gpu_hours: o.budget_gpu_hours,
        intake: o.intake.absolute(),
        ..batch_cmd::BatchSpec::default()
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<i32>>>(f: F) -> anyhow::Result<i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Logs to stderr, one line per event: field values (often dataset strings, paths, log
/// excerpts) are shown through [`runner_core::text::escape`], so no control, bidi or invisible
/// character reaches the terminal raw and no value can start a line of its own.
fn init_tracing(cli: &Cli) {
    use std::fmt::Write as _;
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::field::MakeExt;
    use tracing_subscriber::fmt::format::{Writer, debug_fn};

    let fields = debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let mut text = String::new();
            let _ = write!(text, "{value:?}");
            let text = runner_core::text::escape(&text);
            match field.name() {
                "message" => write!(w, "{text}"),
                name => write!(w, "{name}={text}"),
            }
        },
    )
    .delimited(" ");
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_env("PERF_RUNNER_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(level));
    let color = cli.color.on_stderr();
    say::set_color(color);
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::LogWriter)
        // Colours only for a terminal (or --color always): logs kept in a file stay plain.
        .with_ansi(color)
        .with_target(false)
        .fmt_fields(fields)
        .init();
}
