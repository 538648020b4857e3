//! `perf-runner run` and `perf-runner batch`: plan, record, and run jobs through a backend;
//! `--resume RUN_ID` runs only what is unfinished.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use runner_core::dataset::Dataset;
use runner_core::engine::Engine;
use runner_core::exit;
use runner_core::failure::Failure;
use runner_core::plan::TaskPlan;
use runner_core::record::{RunId, RunStatus, TaskStatus};
use runner_core::session::{self, Choices, Planner, Session, Skip, TaskOutcome};
use runner_core::settings::Settings;
use runner_core::store::{LockError, RunLock, Store};
use runner_core::task::{Task, parse_variant_list};
use runner_core::text::escape as esc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::progress::CliProgress;
use crate::route::{self, Router};
use crate::{backends, datasets};

/// The run's planner: the `auto` router, or plain planning for its one backend.
fn planner(router: &Option<Arc<Router>>) -> &dyn Planner {
    match router {
        Some(r) => r.as_ref(),
        None => &session::Direct,
    }
}

/// Everything a batch was started with; stored with the run so `--resume` redoes the same.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchSpec {
    /// Dataset path (`None` = the embedded example, or `adhoc`).
    pub dataset: Option<PathBuf>,
    /// A single ad-hoc task row (from `run --commit … --perf-command …`).
    pub adhoc: Option<serde_json::Value>,
    /// Only these commits (prefixes), in this order; empty = every task.
    pub commits: Vec<String>,
    /// Backend name, or `auto`.
    pub backend: String,
    /// The configuration profile applied, if any (recorded with the run).
    #[serde(default)]
    pub profile: Option<String>,
    /// Variants, comma-separated.
    pub variants: Option<String>,
    /// Measured repeats per variant.
    pub repeats: u32,
    /// Also run an A/A baseline per repeat.
    pub aa: bool,
    /// Adaptive repeats: `repeats` is the most; stop a task once its verdict is decided.
    #[serde(default)]
    pub adaptive: bool,
    /// Agent patch for single-commit runs.
    pub patch: Option<PathBuf>,
    /// Run tasks triage calls not verifiable.
    pub force: bool,
    /// A skip list: `<commit> <code> <detail>` per line.
    pub skip_list: Option<PathBuf>,
    /// Tasks at once.
    pub concurrency: Option<usize>,
    /// Stop scheduling after this many GPU·hours.
    pub budget_gpu_hours: Option<f64>,
    /// Artifact root.
    pub artifacts: Option<PathBuf>,
    /// Dataset-file directory.
    pub data_dir: Option<PathBuf>,
    /// A predictions file and a vLLM source (paths absolute).
    #[serde(default)]
    pub intake: datasets::Intake,
}

fn load_tasks(spec: &BatchSpec, settings: &Settings) -> Result<(Dataset, Vec<Task>)> {
    let ds = match &spec.adhoc {
        Some(row) => {
            Dataset::from_str_with(&row.to_string(), "adhoc", Path::new("."), &settings.inputs)
        }
        None => datasets::load(spec.dataset.as_deref(), settings, &spec.intake)?,
    };
    if let Some(e) = ds.errors.first().filter(|_| spec.adhoc.is_some()) {
        bail!("{e}");
    }
    let tasks = if spec.commits.is_empty() {
        ds.tasks.clone()
    } else {
        spec.commits
            .iter()
            .map(|c| {
                ds.find(c)
                    .cloned()
                    .with_context(|| format!("in {}", ds.origin))
            })
            .collect::<Result<Vec<_>>>()?
    };
    Ok((ds, tasks))
}

/// What the run's options ask of its tasks.
fn choices(spec: &BatchSpec, settings: &Settings) -> Result<Choices> {
    Ok(Choices {
        variants: spec
            .variants
            .as_deref()
            .map(parse_variant_list)
            .transpose()?,
        repeats: spec.repeats,
        aa: spec.aa,
        patch: spec.patch.clone(),
        force: spec.force,
        skip: match &spec.skip_list {
            Some(p) => session::read_skip_list(p, &settings.limits)?,
            None => Default::default(),
        },
    })
}

/// Say on stderr what planning did with each task.
fn tell(planning: &session::Planning) {
    let short = |c: &str| c[..c.len().min(8)].to_string();
    for o in &planning.outcomes {
        match o {
            TaskOutcome::Planned {
                commit,
                warnings,
                backend,
            } => {
                for w in warnings {
                    errln!("warning {}: {}", short(commit), esc(w));
                }
                if let Some(b) = backend {
                    errln!("task {}: backend {b}", short(commit));
                }
            }
            TaskOutcome::Skipped { commit, why } => match why {
                Skip::NotVerifiable(reason) => errln!(
                    "skip {}: not verifiable: {} (--force runs it anyway)",
                    short(commit),
                    esc(reason)
                ),
                _ => errln!("skip {}: {}", short(commit), esc(&why.to_string())),
            },
            TaskOutcome::Failed {
                commit,
                code,
                detail,
            } => errln!("skip {}: {} [{code}]", short(commit), esc(detail)),
        }
    }
}

/// `run --format json` and `batch --format json`: how the run ended, and its report.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RunJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// The run (`--resume` takes it).
    pub run_id: String,
    /// Where the run stands (`finished`, or `interrupted`).
    pub status: RunStatus,
    /// The process's exit code (see the README's table).
    pub exit_code: i32,
    /// What the engine did: jobs succeeded, failed, not run, attempts, GPU·s.
    pub summary: runner_core::engine::EngineSummary,
    /// Tasks skipped or not plannable.
    pub unplanned_tasks: usize,
    /// The run's report (as `report --format json` gives it).
    pub report: runner_core::report::Report,
}

/// Start a new batch or resume one, then run it.
///
/// One process runs a run at a time: it holds the run's lock in the store until it ends. A
/// `--resume` of a run that a live process holds is refused (exit code 2, naming it); one held
/// by a process that is gone takes the lock over; one held on another host is refused unless
/// `break_lock`.
pub async fn run(
    mut spec: BatchSpec,
    resume: Option<&str>,
    break_lock: bool,
    store_path: &Path,
    settings: &Settings,
    json: bool,
) -> Result<i32> {
    let store = Arc::new(Store::open(store_path)?);
    // Signals stop the run from here on, planning included: tasks not planned yet are
    // recorded as interrupted, and the process ends through the engine's cancellation.
    let cancel = CancellationToken::new();
    crate::signals::spawn_handler(cancel.clone());
    let lock;
    // The backend is made before a run is created or taken up, so that unreadable settings
    // leave no run behind that never ends.
    let unroutable;
    let (run, plans, backend) = match resume {
        Some(id) => {
            let run: RunId = id.parse().map_err(|e: String| anyhow!("--resume: {e}"))?;
            let meta = store.run_meta(&run)?;
            lock = match take_lock(&store, &run, break_lock)? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            let profile = spec.profile.take();
            spec = serde_json::from_value(meta).context("the run's stored options")?;
            if spec.profile != profile {
                // The run keeps its backend; the settings are today's, of this profile.
                errln!(
                    "warning: run {run} was started with profile {}, resumed with {} (its backend stays {})",
                    spec.profile.as_deref().unwrap_or("none"),
                    profile.as_deref().unwrap_or("none"),
                    esc(&spec.backend)
                );
            }
            let (backend, router, settings) =
                match ready_backend(&spec.backend, settings, &cancel).await? {
                    Ok(ready) => ready,
                    Err(code) => return Ok(code),
                };
            let settings = &settings;
            let (_, tasks) = load_tasks(&spec, settings)?;
            let session = Session {
                store: &store,
                run: &run,
                settings,
                planner: planner(&router),
                cancel: &cancel,
            };
            let mut plans = session.resume(&tasks).await?;
            // Tasks a signal kept from being planned when the run started are planned now.
            let more = session
                .plan_interrupted(&tasks, &choices(&spec, settings)?)
                .await?;
            tell(&more);
            unroutable = more.unroutable();
            plans.extend(more.plans);
            errln!("resuming {run}: {} planned task(s)", plans.len());
            store.set_run_status(&run, RunStatus::Running)?;
            (run, plans, backend)
        }
        None => {
            // Stored absolute, so `--resume` from another directory reads the same dataset.
            if let Some(d) = &spec.dataset {
                spec.dataset = Some(std::path::absolute(d).unwrap_or_else(|_| d.clone()));
            }
            let (backend, router, settings) =
                match ready_backend(&spec.backend, settings, &cancel).await? {
                    Ok(ready) => ready,
                    Err(code) => return Ok(code),
                };
            let settings = &settings;
            let (ds, tasks) = load_tasks(&spec, settings)?;
            if cancel.is_cancelled() {
                errln!("interrupted before the run was written");
                return Ok(exit::INTERRUPTED);
            }
            let run = RunId::generate();
            store.create_run(
                &run,
                &spec.backend,
                &ds.origin,
                &serde_json::to_value(&spec)?,
            )?;
            lock = match take_lock(&store, &run, break_lock)? {
                Ok(l) => l,
                Err(code) => return Ok(code),
            };
            errln!(
                "run {run}: {} task(s) from {}",
                tasks.len(),
                esc(&ds.origin)
            );
            let choices = choices(&spec, settings)?;
            let session = Session {
                store: &store,
                run: &run,
                settings,
                planner: planner(&router),
                cancel: &cancel,
            };
            let planning = session.plan(&tasks, &choices).await?;
            tell(&planning);
            unroutable = planning.unroutable();
            (run, planning.plans, backend)
        }
    };
    let cache = backends::cache_dir();
    let data_dir = spec.data_dir.clone().unwrap_or_else(|| cache.join("data"));
    provide_catalogued(&plans, settings, &data_dir);
    let choices = Choices {
        repeats: spec.repeats,
        aa: spec.aa,
        ..Choices::default()
    };
    let opts = session::engine_options(
        settings,
        &choices,
        spec.concurrency,
        spec.budget_gpu_hours,
        spec.adaptive,
        spec.artifacts
            .clone()
            .unwrap_or_else(|| cache.join("artifacts")),
        data_dir,
    );
    let unfinished = store
        .jobs(&run)?
        .iter()
        .filter(|(_, s)| s.needs_resume())
        .count() as u64;
    let progress = Arc::new(CliProgress::new(unfinished));
    let engine = Engine::new(backend, store.clone(), opts)
        .with_progress(progress.clone())
        .with_limits(settings.limits);
    let summary = engine.run(&run, &plans, &cancel).await?;
    progress.finish();
    let status = if summary.cancelled {
        RunStatus::Interrupted
    } else {
        RunStatus::Finished
    };
    store.set_run_status(&run, status)?;
    let unplanned = store
        .tasks(&run)?
        .iter()
        .filter(|t| t.status != TaskStatus::Planned)
        .count();
    lock.release();
    let code = session::exit_code(
        &summary,
        &session::Ending {
            planned: plans.len(),
            unplanned,
            unroutable,
        },
    );
    if summary.cancelled {
        errln!("interrupted: resume with `perf-runner batch --resume {run}`");
    } else if code == exit::BACKEND_UNAVAILABLE {
        errln!("no backend can take any task of this run here (see above)");
    }
    if json {
        let opts = runner_core::report::ReportOptions {
            configured_floor: settings.engine.noise_floor,
            ..runner_core::report::ReportOptions::default()
        };
        let out = RunJson {
            schema_version: 1,
            run_id: run.0.clone(),
            status,
            exit_code: code,
            summary,
            unplanned_tasks: unplanned,
            report: runner_core::report::build(&store, &run, &opts)?,
        };
        outln!("{}", runner_core::text::json_pretty(&out)?);
        return Ok(code);
    }
    print_summary(&store, &run, settings.engine.noise_floor)?;
    if summary.not_needed > 0 {
        outln!(
            "adaptive repeats: {} job(s) not needed (verdicts decided early)",
            summary.not_needed
        );
    }
    outln!(
        "run {run}: {} job(s) succeeded, {} failed, {} not run; {} attempt(s), {:.0} GPU·s{}",
        summary.succeeded,
        summary.failed,
        summary.not_run,
        summary.attempts,
        summary.gpu_seconds,
        if summary.budget_exhausted {
            "; budget exhausted"
        } else {
            ""
        }
    );
    if unplanned > 0 {
        outln!("{unplanned} task(s) skipped or not plannable (see above)");
    }
    Ok(code)
}

/// The run's backend named `name` (with `auto`'s router), checked usable here, and the settings
/// its plans are made for (can it run the native serving client?). `Err(code)`: the command
/// ends with it — the backend is not usable, or a signal came while it was checked (Modal's
/// check may take a minute; nothing was started yet).
async fn ready_backend(
    name: &str,
    settings: &Settings,
    cancel: &CancellationToken,
) -> Result<Result<(Arc<dyn runner_core::Backend>, Option<Arc<Router>>, Settings), i32>> {
    let (backend, router) = route::make(name, settings)?;
    let ok = tokio::select! {
        ok = usable(backend.as_ref()) => ok?,
        _ = cancel.cancelled() => return Ok(Err(exit::INTERRUPTED)),
    };
    if !ok {
        return Ok(Err(exit::BACKEND_UNAVAILABLE));
    }
    let settings = settings.clone().for_backend(&backend.capabilities());
    Ok(Ok((backend, router, settings)))
}

/// Whether the backend can run jobs here; when not, says why on stderr (before any run is
/// written, so that none is left `running`).
async fn usable(backend: &dyn runner_core::Backend) -> Result<bool> {
    let health = backend.check().await?;
    if !health.usable {
        errln!("backend {}: not usable here:", backend.name());
        for c in health.checks.iter().filter(|c| !c.ok) {
            errln!("  {}: {}", esc(&c.name), esc(&c.detail));
        }
        errln!(
            "(`perf-runner doctor --backend {}` shows every check)",
            backend.name()
        );
    }
    Ok(health.usable)
}

/// Copy the catalogued dataset files the plans were given (`--dataset-path FILE` for a
/// command that relied on its client's default) from the dataset mirror into the data dir,
/// once each, checked against their pinned sha256. A file that cannot be provided is said
/// here; the engine then fails its tasks with `dataset_missing`.
fn provide_catalogued(plans: &[TaskPlan], settings: &Settings, data_dir: &Path) {
    let files: BTreeSet<&str> = plans
        .iter()
        .flat_map(|p| &p.step.datasets)
        .filter(|d| d.original == d.name)
        .map(|d| d.name.as_str())
        .collect();
    for file in files {
        let Some(entry) = runner_core::catalogue::by_file(file) else {
            continue;
        };
        match runner_core::catalogue::provide(entry, &settings.datasets, data_dir) {
            Ok(sha) => errln!("dataset {file}: sha256 {sha} (the same file for every variant)"),
            Err(e) => errln!("error: {}", esc(&e)),
        }
    }
}

/// The run's lock, or the exit code of a refusal (already explained on stderr).
fn take_lock(store: &Arc<Store>, run: &RunId, break_lock: bool) -> Result<Result<RunLock, i32>> {
    match store.lock_run(run, break_lock) {
        Ok(lock) => {
            if let Some(h) = &lock.taken_over {
                let why = match h.alive() {
                    None => "as --break-lock asks",
                    Some(_) => "which is no longer running",
                };
                errln!("run {run}: taking the run over from {h}, {why}");
            }
            Ok(Ok(lock))
        }
        Err(LockError::Store(e)) => Err(e.into()),
        Err(e) => {
            errln!("error: {e}");
            Ok(Err(exit::USAGE))
        }
    }
}

fn print_summary(store: &Store, run: &RunId, floor: f64) -> Result<()> {
    use runner_core::report::{ReportOptions, build};
    let opts = ReportOptions {
        configured_floor: floor,
        ..ReportOptions::default()
    };
    let report = build(store, run, &opts)?;
    for t in report.tasks.iter().filter(|t| t.mode.is_some()) {
        let short = &t.commit[..t.commit.len().min(8)];
        let metric = t.primary_metric.as_deref().unwrap_or("?");
        outln!(
            "{short} {} — decides on {metric}{}",
            esc(t.subject.as_deref().unwrap_or("")),
            t.primary_why
                .as_deref()
                .map(|w| format!(" ({})", esc(w)))
                .unwrap_or_default()
        );
        for v in &t.variants {
            let shown = match &v.summary {
                Some(s) => format!("{:.4} [{:.4}, {:.4}] n={}", s.median, s.ci[0], s.ci[1], s.n),
                None => format!("- (n={})", v.samples.len()),
            };
            outln!("  {:<12} {shown}", v.label());
        }
        if let Some(m) = t.metrics.first() {
            for c in &m.comparisons {
                let cmp = &c.comparison;
                let ratio = cmp
                    .ratio
                    .as_ref()
                    .map(|r| format!("{:.3} [{:.3}, {:.3}]", r.value, r.ci[0], r.ci[1]))
                    .unwrap_or_else(|| "-".into());
                let why = cmp
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({})", esc(r)))
                    .unwrap_or_default();
                let scored = if c.scored {
                    ""
                } else {
                    " (unscored: the human speedup did not reproduce)"
                };
                outln!(
                    "  {:<15} {ratio} {}{why}{scored}; noise floor {}",
                    c.pair.label(),
                    cmp.verdict.as_str(),
                    esc(&cmp.noise_floor.to_string())
                );
                if let Some(d) = cmp.rounds_to_decide {
                    let need = match d.rounds {
                        Some(k) => format!(
                            "about {k} paired rounds (--repeats {k}) would decide it as {}",
                            d.toward.as_str()
                        ),
                        None => format!(
                            "more than {} paired rounds would be needed",
                            runner_core::stats::MAX_ROUNDS
                        ),
                    };
                    outln!(
                        "  {:<15} {need}, with a 90 % chance if this estimate and its per-round \
                         spread hold",
                        ""
                    );
                }
            }
        }
        for f in &t.failures {
            let code: Option<Failure> = f.code.parse().ok();
            outln!(
                "  failed {} r{}: {} — {}{}",
                runner_core::report::label(f.variant, f.aa),
                f.repeat,
                f.code,
                code.map(|c| c.describe()).unwrap_or(""),
                f.detail
                    .as_deref()
                    .map(|d| format!(": {}", esc(d.lines().next().unwrap_or(""))))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
