//! Run plans: one [`StepPlan`] per task, shared by every variant; only the [`BuildSpec`]
//! differs per variant.
//!
//! Argv tokens may contain placeholders that a backend fills per run, and nothing else changes:
//! [`PYTHON`], [`HOST`], [`PORT`], [`RESULT_DIR`], [`VLLM_SOURCE`], [`DATA_DIR`],
//! [`PERF_RUNNER`].

use serde::{Deserialize, Serialize};

use crate::build::{BuildSpec, PatchSpec};
use crate::failure::Failure;
use crate::settings::{ClientKind, Settings, Timeouts};
use crate::spec::{BenchmarkSpec, EntryPoint, Flag, Mode, Side};
use crate::task::{Task, Variant};

/// The Python interpreter of the prepared environment.
pub const PYTHON: &str = "{PYTHON}";
/// The host the server listens on / the client connects to.
pub const HOST: &str = "{HOST}";
/// The port allocated for this run.
pub const PORT: &str = "{PORT}";
/// The attempt's result directory.
pub const RESULT_DIR: &str = "{RESULT_DIR}";
/// A vLLM source tree at the client build's commit (for `benchmarks/*.py` scripts).
pub const VLLM_SOURCE: &str = "{VLLM_SOURCE}";
/// The directory holding the run's dataset files (the same files for every variant).
pub const DATA_DIR: &str = "{DATA_DIR}";

/// This program, as the native serving client (`{PERF_RUNNER} bench serve …`), filled by
/// backends that can run it next to the server.
pub const PERF_RUNNER: &str = "{PERF_RUNNER}";

/// The result file name the plan asks the tool to write.
pub const RESULT_FILE: &str = "result.json";

/// Flags that request result files; the plan replaces them with its own.
const RESULT_FLAGS: [&str; 5] = [
    "--save-result",
    "--result-dir",
    "--result-filename",
    "--output-json",
    "--save-detailed",
];

/// The GPUs a step needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GpuRequest {
    /// SKU, when the task says; `None` = any.
    pub kind: Option<String>,
    /// How many GPUs in one host.
    pub count: u32,
}

/// A dataset file the step reads; provided at `{DATA_DIR}/name` for every variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DatasetFile {
    /// The flag that names it.
    pub flag: String,
    /// The path as the command wrote it.
    pub original: String,
    /// The file name under `{DATA_DIR}`.
    pub name: String,
}

/// One process to run: the full argv, placeholders included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessPlan {
    /// Program and arguments.
    pub argv: Vec<String>,
}

/// Which build's environment runs the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientBuild {
    /// Each variant's own build (offline modes: the script *is* the engine).
    SameAsVariant,
    /// Always this variant's build (serving: the human build's client for every variant).
    Fixed(Variant),
}

/// Exactly what one job of a task runs. Built once per task and shared by all variants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepPlan {
    /// The benchmark mode.
    pub mode: Mode,
    /// The entry point as the dataset wrote it.
    pub entry: EntryPoint,
    /// The server (serving mode only).
    pub server: Option<ProcessPlan>,
    /// The measured client (or offline script).
    pub client: ProcessPlan,
    /// A warm-up run of the client before anything is measured (serving).
    pub warmup: Option<ProcessPlan>,
    /// Which build runs the client.
    pub client_build: ClientBuild,
    /// Environment variables for the server and the client.
    pub env: Vec<(String, String)>,
    /// Dataset files, the same for every variant.
    pub datasets: Vec<DatasetFile>,
    /// GPUs needed.
    pub gpu: GpuRequest,
    /// Per-phase deadlines.
    pub timeouts: Timeouts,
    /// The result file the client writes under `{RESULT_DIR}`, when the tool can write JSON.
    pub result_file: Option<String>,
    /// Flags the parser did not know; they stay on the client side.
    pub unclassified_flags: Vec<String>,
    /// Flags of the command that the plan replaced (endpoint, result files), as written.
    pub replaced_flags: Vec<String>,
}

impl StepPlan {
    /// sha256 (hex) of the step's canonical JSON; equal steps have equal fingerprints.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        // Serialising plain data to a Vec cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(Sha256::digest(&json))
    }
}

/// The plan of a task: the shared step and one build per variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TaskPlan {
    /// The human commit.
    pub commit: String,
    /// The baseline commit.
    pub parent: String,
    /// The step every variant runs.
    pub step: StepPlan,
    /// sha256 of the step's canonical JSON: the same for every variant, recorded with each run.
    pub step_fingerprint: String,
    /// One build per requested variant, plus the serving client's build when not requested.
    pub builds: Vec<BuildSpec>,
    /// Things a person should know before running it.
    pub warnings: Vec<String>,
}

/// Why a task cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The task has no benchmark command.
    #[error("commit {0} has no perf_command")]
    NoPerfCommand(String),
    /// The command did not parse.
    #[error("commit {commit}: perf_command rejected: {detail}")]
    BadCommand {
        /// The commit.
        commit: String,
        /// Why.
        detail: String,
    },
    /// The input policy refuses the command (it names code, files or settings of the host).
    #[error("commit {commit}: perf_command refused by the input policy: {violation}")]
    Refused {
        /// The commit.
        commit: String,
        /// What the policy refuses, and the fix.
        violation: crate::command::policy::Violation,
    },
    /// The baseline needs a parent commit.
    #[error(
        "commit {0} has no parent commit; add parent_commit (or base_commit) to the row, or \
         pass --vllm-source PATH (a local vLLM clone) to resolve it as COMMIT^"
    )]
    NoParent(String),
    /// The agent variant needs a patch.
    #[error("the agent variant of {0} needs a patch (--patch FILE or a dataset 'patch' field)")]
    NoPatch(String),
}

impl PlanError {
    /// The failure code this error maps to.
    pub fn failure(&self) -> Failure {
        match self {
            PlanError::NoPerfCommand(_) => Failure::NoPerfCommand,
            PlanError::Refused { violation, .. } => violation.code,
            _ => Failure::BadConfig,
        }
    }
}

/// The argv that asks a tool to write its JSON result to `path`, per mode.
pub fn result_args(mode: Mode, path: &str) -> Vec<String> {
    let (dir, file) = path.rsplit_once('/').unwrap_or((".", path));
    match mode {
        Mode::Serving => vec![
            "--save-result".into(),
            "--result-dir".into(),
            dir.into(),
            "--result-filename".into(),
            file.into(),
        ],
        Mode::Throughput | Mode::Latency => vec!["--output-json".into(), path.into()],
        Mode::PrefixCaching | Mode::Other => Vec::new(),
    }
}

/// Plan a task for the given variants. `patch` is the agent patch (required for `Agent`).
pub fn plan_task(
    task: &Task,
    variants: &[Variant],
    settings: &Settings,
    patch: Option<PatchSpec>,
) -> Result<TaskPlan, PlanError> {
    let commit = task.commit.clone();
    if let (None, Some(violation)) = (&task.spec, &task.policy_violation) {
        return Err(PlanError::Refused {
            commit,
            violation: violation.clone(),
        });
    }
    let spec = match (&task.spec, &task.perf_command, &task.command_error) {
        (Some(spec), _, _) => spec,
        (None, None, _) => return Err(PlanError::NoPerfCommand(commit)),
        (None, Some(_), err) => {
            return Err(PlanError::BadCommand {
                commit,
                detail: err.clone().unwrap_or_else(|| "unparsed".into()),
            });
        }
    };
    // Checked at load already; again here for tasks that did not come through a dataset.
    let notes = crate::command::policy::check(spec, &settings.inputs).map_err(|violation| {
        PlanError::Refused {
            commit: commit.clone(),
            violation,
        }
    })?;
    let parent = task
        .parent
        .clone()
        .ok_or_else(|| PlanError::NoParent(commit.clone()))?;
    if variants.contains(&Variant::Agent) && patch.is_none() {
        return Err(PlanError::NoPatch(commit));
    }
    let mut warnings = notes;
    let step = plan_step(task, spec, settings, &mut warnings);
    // The serving client runs from a fixed build, which is prepared even when that variant is
    // not measured.
    let mut with_client = variants.to_vec();
    if let ClientBuild::Fixed(v) = step.client_build {
        if !with_client.contains(&v) {
            with_client.push(v);
            with_client.sort();
            warnings.push(format!(
                "the {v} build is prepared to run the serving client"
            ));
        }
    }
    let builds = with_client
        .iter()
        .map(|&v| {
            settings
                .artifacts
                .build_for(v, &task.commit, &parent, patch.clone())
        })
        .collect();
    let step_fingerprint = step.fingerprint();
    Ok(TaskPlan {
        commit: task.commit.clone(),
        parent,
        step,
        step_fingerprint,
        builds,
        warnings,
    })
}

/// Build the shared step of a task.
pub fn plan_step(
    task: &Task,
    spec: &BenchmarkSpec,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> StepPlan {
    let mode = spec.mode;
    let mut replaced: Vec<String> = spec.replaced_endpoint_flags.iter().map(flag_text).collect();
    let mut datasets = Vec::new();
    let mut client_flags: Vec<Flag> = Vec::new();
    for f in &spec.flags {
        if RESULT_FLAGS.contains(&f.name.as_str()) {
            replaced.push(flag_text(f));
            continue;
        }
        let mut f = f.clone();
        if let Some(ds) = dataset_of(&f) {
            f.value = Some(format!("{DATA_DIR}/{}", ds.name));
            datasets.push(ds);
        }
        client_flags.push(f);
    }
    let flags_for = |side: Side| -> Vec<String> {
        let mut out = Vec::new();
        for f in client_flags
            .iter()
            .filter(|f| f.side == side || f.side == Side::Both)
        {
            out.push(f.name.clone());
            out.extend(f.value.clone());
        }
        out
    };

    let native = mode
        .needs_server()
        .then(|| native_client(spec, &client_flags, settings, warnings))
        .flatten();
    let mut client = match native {
        Some(_) => vec![PERF_RUNNER.into(), "bench".into(), "serve".into()],
        None => client_program(&spec.entry),
    };
    let (server, client_build) = if mode.needs_server() {
        let mut argv = vec![
            PYTHON.to_string(),
            "-m".into(),
            settings.plan.server_module.clone(),
            "--host".into(),
            HOST.into(),
            "--port".into(),
            PORT.into(),
        ];
        argv.extend(flags_for(Side::Server));
        client.extend(["--host".into(), HOST.into(), "--port".into(), PORT.into()]);
        (
            Some(ProcessPlan { argv }),
            ClientBuild::Fixed(Variant::Human),
        )
    } else {
        (None, ClientBuild::SameAsVariant)
    };
    client.extend(native.unwrap_or_default());
    client.extend(flags_for(Side::Client));
    client.extend(spec.positionals.iter().cloned());

    let warmup = (mode.needs_server() && settings.plan.warmup_prompts > 0).then(|| ProcessPlan {
        argv: with_num_prompts(&client, settings.plan.warmup_prompts),
    });
    let result_path = format!("{RESULT_DIR}/{RESULT_FILE}");
    let extra = result_args(mode, &result_path);
    let result_file = (!extra.is_empty()).then(|| RESULT_FILE.to_string());
    client.extend(extra);

    // benchmark_serving.py defaults to ShareGPT (`vllm bench serve` later defaults to random).
    if mode.needs_server()
        && matches!(spec.entry, EntryPoint::Script { .. })
        && datasets.is_empty()
        && spec
            .value_of("--dataset-name")
            .is_none_or(|d| d == "sharegpt")
    {
        warnings.push(
            "the serving client's default dataset is ShareGPT, which needs --dataset-path; the \
             command gives none, so the client may fail (nothing is substituted)"
                .into(),
        );
    }
    let gpu = gpu_request(task, spec, warnings);
    let unclassified: Vec<String> = spec.unclassified().map(|f| f.name.clone()).collect();
    if !unclassified.is_empty() {
        warnings.push(format!(
            "flags not known to the parser stay with the client: {}",
            unclassified.join(", ")
        ));
    }
    StepPlan {
        mode,
        entry: spec.entry.clone(),
        server,
        client: ProcessPlan { argv: client },
        warmup,
        client_build,
        env: spec.env.clone(),
        datasets,
        gpu,
        timeouts: settings.timeouts,
        result_file,
        unclassified_flags: unclassified,
        replaced_flags: replaced,
    }
}

/// The native client's extra flags when it measures this serving step, else `None`; either
/// way a note says which client and why.
fn native_client(
    spec: &BenchmarkSpec,
    client_flags: &[Flag],
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Option<Vec<String>> {
    let engine = |why: &str| format!("serving client: the engine's own ({why})");
    let why_not = match (settings.client.kind, settings.client.backend_runs_native) {
        (ClientKind::Engine, _) => "[client] kind = \"engine\"".to_string(),
        (_, None) => "the backend is not known when planning".to_string(),
        (_, Some(false)) => "the backend cannot run perf-runner's native client".to_string(),
        (ClientKind::Native, Some(true)) => {
            match crate::command::native::native_client_flags(spec, client_flags) {
                Ok(extra) => {
                    warnings.push(
                        "serving client: native (`perf-runner bench serve`), the same program \
                         for every variant"
                            .into(),
                    );
                    return Some(extra);
                }
                Err(e) => e,
            }
        }
    };
    warnings.push(engine(&why_not));
    None
}

fn flag_text(f: &Flag) -> String {
    match &f.value {
        Some(v) => format!("{} {v}", f.name),
        None => f.name.clone(),
    }
}

/// The program part of the client argv for an entry point.
fn client_program(entry: &EntryPoint) -> Vec<String> {
    match entry {
        EntryPoint::Script { path } => {
            let rel = path
                .rfind("benchmarks/")
                .map(|i| &path[i..])
                .unwrap_or(path.as_str());
            vec![PYTHON.into(), format!("{VLLM_SOURCE}/{rel}")]
        }
        EntryPoint::VllmBench { subcommand } => vec![
            PYTHON.into(),
            "-m".into(),
            "vllm.entrypoints.cli.main".into(),
            "bench".into(),
            subcommand.clone(),
        ],
        EntryPoint::ModuleBench { module, subcommand } => vec![
            PYTHON.into(),
            "-m".into(),
            module.clone(),
            "bench".into(),
            subcommand.clone(),
        ],
    }
}

/// A dataset file named by a flag (`--dataset-path`, or an old-style `--dataset PATH`).
fn dataset_of(f: &Flag) -> Option<DatasetFile> {
    let v = f.value.as_deref()?;
    let is_path_flag = f.name == "--dataset-path"
        || (f.name == "--dataset" && (v.contains('/') || v.contains('.')));
    if !is_path_flag {
        return None;
    }
    let name = v.rsplit('/').next().unwrap_or(v).to_string();
    Some(DatasetFile {
        flag: f.name.clone(),
        original: v.to_string(),
        name,
    })
}

/// `argv` with `--num-prompts` set to `n` (added when absent).
fn with_num_prompts(argv: &[String], n: u32) -> Vec<String> {
    let mut out = argv.to_vec();
    match out.iter().position(|a| a == "--num-prompts") {
        Some(i) if i + 1 < out.len() => out[i + 1] = n.to_string(),
        _ => out.extend(["--num-prompts".into(), n.to_string()]),
    }
    out
}

fn gpu_request(task: &Task, spec: &BenchmarkSpec, warnings: &mut Vec<String>) -> GpuRequest {
    let tp = spec.tensor_parallel_size().unwrap_or(1);
    let pp = spec
        .value_of("--pipeline-parallel-size")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(1);
    let needed = tp.saturating_mul(pp).max(1);
    match &task.gpu {
        Some(g) => {
            if needed > g.count {
                warnings.push(format!(
                    "the command needs {needed} GPUs (tensor × pipeline parallel) but gpu_config is {g}"
                ));
            }
            GpuRequest {
                kind: Some(g.kind.clone()),
                count: g.count,
            }
        }
        None => {
            warnings.push(format!(
                "gpu_config is missing: requesting {needed} GPU(s) of any kind, from the command's parallelism"
            ));
            GpuRequest {
                kind: None,
                count: needed,
            }
        }
    }
}
