//! `perf-runner plan`: the exact plan of one commit, without running anything.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use runner_core::build::Artifact;
use runner_core::plan::{ClientBuild, PlanError, TaskPlan, plan_task};
use runner_core::settings::Settings;
use runner_core::task::{Variant, parse_variant_list};
use runner_core::text::escape as esc;
use runner_core::{Task, exit, text};

use crate::backends::{self, Registered};
use crate::{Format, datasets};

/// The JSON schema version of `plan --format json`.
pub const SCHEMA_VERSION: u32 = 1;

/// The task and its plan for `[DATASET] COMMIT` (shared by `plan` and the dry runs).
/// A task that cannot be planned is a [`runner_core::plan::PlanError`] inside the error.
fn plan_of(
    args: &[String],
    variants: Option<&str>,
    patch: Option<&Path>,
    settings: &Settings,
    intake: &datasets::Intake,
) -> Result<(Task, TaskPlan)> {
    let (dataset, commit) = match args {
        [commit] => (None, commit),
        [dataset, commit] => (Some(PathBuf::from(dataset)), commit),
        _ => bail!("plan takes [DATASET] COMMIT"),
    };
    let ds = datasets::load(dataset.as_deref(), settings, intake)?;
    let mut task = ds
        .find(commit)
        .with_context(|| format!("in {}", ds.origin))?
        .clone();
    runner_core::catalogue::inject(&mut task, &settings.datasets);
    let patch_path = patch.map(Path::to_path_buf).or_else(|| task.patch.clone());
    let variants = match variants {
        Some(v) => parse_variant_list(v).context("--variants")?,
        None if patch_path.is_some() => Variant::ALL.to_vec(),
        None => vec![Variant::Baseline, Variant::Human],
    };
    let patch_spec = match &patch_path {
        Some(p) if variants.contains(&Variant::Agent) => {
            Some(runner_core::session::patch_spec(p, &settings.limits)?)
        }
        _ => None,
    };
    let plan = plan_task(&task, &variants, settings, patch_spec)?;
    Ok((task, plan))
}

/// A plan error is the task's failure (exit 4); anything else is an error.
fn planned(r: Result<(Task, TaskPlan)>) -> Result<Option<(Task, TaskPlan)>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(e) => match e.downcast_ref::<PlanError>() {
            Some(pe) => {
                eprintln!(
                    "error: {} [{}]",
                    text::escape_lines(&pe.to_string()),
                    pe.failure()
                );
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// `plan --backend NAME`: what the backend would be asked to build and run, per build, without
/// contacting it (Modal: made by the real SDK).
pub async fn dry_run(
    backend: &Registered,
    args: &[String],
    variants: Option<&str>,
    patch: Option<&Path>,
    settings: &Settings,
    intake: &datasets::Intake,
) -> Result<i32> {
    let Some(dry_run) = backend.dry_run else {
        bail!(
            "--backend {}: this backend has no dry run to show",
            backend.name
        );
    };
    let section = backends::section(backend, settings)?;
    // Planned for this backend: its capabilities decide the serving client.
    let caps = (backend.make)(&section, &settings.limits)?.capabilities();
    let settings = &settings.clone().for_backend(&caps);
    let Some((_, plan)) = planned(plan_of(args, variants, patch, settings, intake))? else {
        return Ok(exit::TASKS_FAILED);
    };
    let shown = dry_run(&section, &plan).await?;
    let out = PlanBackendJson {
        schema_version: SCHEMA_VERSION,
        backend: backend.name.to_string(),
        builds: plan
            .builds
            .iter()
            .zip(shown)
            .map(|(b, dry_run)| DryRunJson {
                variant: b.variant,
                dry_run,
            })
            .collect(),
        plan,
    };
    println!("{}", text::json_pretty(&out)?);
    Ok(exit::SUCCESS)
}

pub fn run(
    args: &[String],
    variants: Option<&str>,
    patch: Option<&Path>,
    format: Format,
    settings: &Settings,
    intake: &datasets::Intake,
) -> Result<i32> {
    // Shown as the default backend (local) runs it: it runs the native serving client.
    let local = runner_core::backend::Capabilities {
        native_client: true,
        ..Default::default()
    };
    let settings = &settings.clone().for_backend(&local);
    let Some((task, plan)) = planned(plan_of(args, variants, patch, settings, intake))? else {
        return Ok(exit::TASKS_FAILED);
    };
    let task = &task;
    let route = route_of(&plan, settings)?;
    match format {
        Format::Json => {
            let out = PlanJson {
                schema_version: SCHEMA_VERSION,
                task: PlanTaskJson::of(task),
                plan,
                route: route.as_ref().map(crate::route::Route::to_json),
            };
            println!("{}", text::json_pretty(&out)?);
            return Ok(exit::SUCCESS);
        }
        Format::Text | Format::Table => {
            print_text(task, &plan);
            print_servers(&plan, settings);
            if let Some(r) = &route {
                match r.backend() {
                    Some(b) => println!("backend   auto: {b}"),
                    None => println!("backend   auto: none: not verifiable here"),
                }
                for line in r.lines() {
                    println!("          {}", esc(&line));
                }
            }
        }
    }
    Ok(exit::SUCCESS)
}

/// With `backend = "auto"`: which backend would take the plan's task, and why the others would
/// not (every backend is asked).
fn route_of(plan: &TaskPlan, settings: &Settings) -> Result<Option<crate::route::Route>> {
    if settings.backend != runner_core::settings::AUTO_BACKEND {
        return Ok(None);
    }
    let router = crate::route::Router::new(settings)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(Some(rt.block_on(router.route(&plan.step.gpu, true))))
}

/// `plan --format json`.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PlanJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// The task as the dataset gives it.
    pub task: PlanTaskJson,
    /// The plan: one shared step and one build per variant.
    pub plan: TaskPlan,
    /// With `backend = "auto"`: the backend that would take it, and every backend's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::route::RouteJson>,
}

/// The task of [`PlanJson`].
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PlanTaskJson {
    /// Dataset line.
    pub line: usize,
    /// The commit hash: whole, unless the dataset gave a prefix that no `--vllm-source` clone
    /// resolved.
    pub commit: String,
    /// Parent commit (the baseline).
    pub parent: Option<String>,
    /// Commit subject.
    pub subject: Option<String>,
    /// The benchmark command as the dataset gives it.
    pub perf_command: Option<String>,
    /// Models the row names.
    pub models: Vec<String>,
    /// GPUs, as `KIND:COUNT`.
    pub gpu_config: Option<String>,
    /// The pull request, when the row names one.
    pub pr_url: Option<String>,
}

impl PlanTaskJson {
    fn of(t: &Task) -> PlanTaskJson {
        PlanTaskJson {
            line: t.source_line,
            commit: t.commit.clone(),
            parent: t.parent.clone(),
            subject: t.subject.clone(),
            perf_command: t.perf_command.clone(),
            models: t.models.clone(),
            gpu_config: t.gpu.as_ref().map(ToString::to_string),
            pr_url: t.pr_url.clone(),
        }
    }
}

/// `plan --backend NAME --format json`: the plan with what the backend would run per build.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct PlanBackendJson {
    /// The version of this document's shape.
    pub schema_version: u32,
    /// The backend.
    pub backend: String,
    /// The plan, for that backend.
    pub plan: TaskPlan,
    /// Per build, the backend's dry run (its own shape: commands, image recipe, allocation).
    pub builds: Vec<DryRunJson>,
}

/// One build's dry run.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct DryRunJson {
    /// The variant.
    pub variant: Variant,
    /// What the backend would do, in its own shape.
    pub dry_run: serde_json::Value,
}

/// The argv as one shell-quoted line, escaped (it may carry dataset text).
fn argv_text(argv: &[String]) -> String {
    let joined =
        shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
    esc(&joined).into_owned()
}

/// How the task's servers would run (serving steps): warm servers or a restart per job.
fn print_servers(plan: &TaskPlan, settings: &Settings) {
    if plan.step.server.is_none() {
        return;
    }
    let e = &settings.engine;
    match e.servers {
        runner_core::settings::Servers::Warm => println!(
            "servers   warm: one server per build, started once{} and switched with sleep mode ({} and {}=1) between jobs; rounds rotate; a build without sleep mode gets a server per job (engine.servers)",
            if e.burn_in { " with a burn-in run" } else { "" },
            runner_core::stepkit::warm::SLEEP_FLAG,
            runner_core::stepkit::warm::DEV_MODE_ENV,
        ),
        runner_core::settings::Servers::Restart => {
            println!(
                "servers   restart: a fresh server for every job (engine.servers); rounds rotate"
            )
        }
    }
}

fn print_text(task: &Task, plan: &TaskPlan) {
    let step = &plan.step;
    println!(
        "commit    {}  {}",
        esc(&plan.commit),
        esc(task.subject.as_deref().unwrap_or(""))
    );
    println!("parent    {}", esc(&plan.parent));
    println!(
        "command   {}",
        esc(task.perf_command.as_deref().unwrap_or(""))
    );
    println!("mode      {}", step.mode);
    let kind = esc(step.gpu.kind.as_deref().unwrap_or("any"));
    println!("gpus      {} × {kind}", step.gpu.count);
    for (k, v) in &step.env {
        println!("env       {}={}", esc(k), esc(v));
    }
    if let Some(server) = &step.server {
        println!("server    {}", argv_text(&server.argv));
    }
    if let Some(w) = &step.warmup {
        println!("warm-up   {}", argv_text(&w.argv));
    }
    println!("client    {}", argv_text(&step.client.argv));
    match step.client_build {
        ClientBuild::Fixed(v) => println!("          (run from the {v} build for every variant)"),
        ClientBuild::SameAsVariant => println!("          (run from each variant's own build)"),
    }
    for d in &step.datasets {
        println!(
            "dataset   {} {} → {{DATA_DIR}}/{}",
            esc(&d.flag),
            esc(&d.original),
            esc(&d.name)
        );
    }
    if let Some(r) = &step.result_file {
        println!("result    {{RESULT_DIR}}/{} (JSON)", esc(r));
    }
    for r in &step.replaced_flags {
        println!("replaced  {}", esc(&r.to_string()));
    }
    let t = &step.timeouts;
    println!(
        "timeouts  prepare {}s, server ready {}s, benchmark {}s",
        t.prepare_s, t.server_ready_s, t.benchmark_s
    );
    println!(
        "step      sha256 {} (one step, shared by every variant)",
        plan.step_fingerprint
    );
    println!("builds");
    for b in &plan.builds {
        println!(
            "  {:<9} {}  identity {}",
            b.variant.as_str(),
            esc(&b.commit),
            esc(&b.identity)
        );
        for a in &b.artifacts {
            let line = match a {
                Artifact::WheelIndex { url } => format!("wheel index {url}"),
                Artifact::Wheel { location } => format!("wheel {location}"),
                Artifact::Image { reference } => format!("image {reference}"),
                Artifact::Source { repo } => format!("source build from {repo}"),
            };
            println!("            {}", esc(&line));
        }
        if let Some(p) = &b.patch {
            let sha = p.sha256.as_deref().unwrap_or("?");
            println!("            + patch {} (sha256 {})", esc(&p.path), esc(sha));
        }
    }
    for w in &plan.warnings {
        println!("warning   {}", esc(&w.to_string()));
    }
}
