//! The JSON-lines protocol between this crate and the shim.
//!
//! Rust writes one [`Request`] line to the shim's stdin and keeps stdin open; later it may
//! write `{"cmd":"cancel"}`, and closing stdin means cancel too. The shim writes one
//! [`Event`] per stdout line and, whatever happens, terminates every sandbox it created before
//! it exits (also on SIGTERM/SIGINT).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version; the shim reports it in its `hello` event.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where a `modal.Image` starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageBase {
    /// `modal.Image.debian_slim(python_version=…)`.
    DebianSlim {
        /// Python series, e.g. `3.12`.
        python_version: String,
    },
    /// `modal.Image.from_registry(reference)`.
    Registry {
        /// Image reference (`repo:tag`).
        reference: String,
    },
    /// `modal.Image.from_id(image_id)`: an image built by an earlier `prepare`.
    FromId {
        /// Modal image id (`im-…`).
        image_id: String,
    },
}

/// One call on a `modal.Image`, applied in order; the shim maps each to the SDK method of
/// the same name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ImageOp {
    /// `.entrypoint(args)` (`[]` clears a registry image's entrypoint).
    Entrypoint {
        /// The entrypoint argv.
        args: Vec<String>,
    },
    /// `.uv_pip_install(*packages, extra_index_url=…, pre=…)`.
    UvPipInstall {
        /// Requirements, wheel URLs or in-image wheel paths.
        packages: Vec<String>,
        /// `--extra-index-url`.
        extra_index_url: Option<String>,
        /// Allow pre-releases (per-commit builds are dev versions).
        pre: bool,
    },
    /// `.add_local_file(local_path, remote_path, copy=…)`.
    AddLocalFile {
        /// Path on this machine.
        local_path: String,
        /// Absolute path in the image.
        remote_path: String,
        /// Bake it into a layer (needed before later build steps use it).
        copy: bool,
    },
    /// `.apt_install(*packages)`.
    AptInstall {
        /// Debian packages.
        packages: Vec<String>,
    },
    /// `.run_commands(*commands)`.
    RunCommands {
        /// Shell commands, one `RUN` each.
        commands: Vec<String>,
    },
    /// `.dockerfile_commands(commands)`.
    DockerfileCommands {
        /// Dockerfile lines.
        commands: Vec<String>,
    },
}

/// A `modal.Image` as a base and the calls that extend it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecipe {
    /// Where it starts.
    pub base: ImageBase,
    /// What is added, in order.
    pub ops: Vec<ImageOp>,
}

/// Build an image (and the agent patch layer on top, as a separate build).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareRequest {
    /// The Modal App the build belongs to.
    pub app: String,
    /// The engine image.
    pub image: ImageRecipe,
    /// The agent patch layer, built on top of `image`; its failure is `patch_failed`.
    pub patch: Option<Vec<ImageOp>>,
}

/// The arguments of `modal.Sandbox.create`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// GPU string, e.g. `H100!:2`.
    pub gpu: String,
    /// Sandbox lifetime, seconds.
    pub timeout_s: u64,
    /// Mount path → Volume name (`Volume.from_name(name, create_if_missing=True)`).
    pub volumes: BTreeMap<String, String>,
    /// Secret names (`Secret.from_name`); their values never pass through this crate.
    pub secrets: Vec<String>,
    /// Environment of every process in the sandbox.
    pub env: BTreeMap<String, String>,
    /// Working directory.
    pub workdir: String,
    /// CPU cores.
    pub cpu: Option<f64>,
    /// Memory, MiB.
    pub memory_mib: Option<u32>,
    /// Tags (run id, commit, variant, attempt).
    pub tags: BTreeMap<String, String>,
}

/// A local file uploaded to a Volume before the sandbox starts (skipped when present).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upload {
    /// Volume name.
    pub volume: String,
    /// Path on this machine.
    pub local_path: String,
    /// Path inside the Volume.
    pub remote_path: String,
}

/// A process run to completion in the sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Argv, placeholders filled for the container.
    pub argv: Vec<String>,
    /// Deadline, seconds.
    pub timeout_s: u64,
}

/// The server, started in the background; ready = probe exits 0 AND server alive AND before
/// the deadline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Argv, placeholders filled for the container.
    pub argv: Vec<String>,
    /// One readiness probe (exit 0 = ready).
    pub probe_argv: Vec<String>,
    /// Deadline for readiness, seconds.
    pub ready_timeout_s: u64,
    /// Pause between probes, seconds.
    pub poll_s: f64,
}

/// Run one step in one sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The Modal App the sandbox belongs to.
    pub app: String,
    /// The image (the prepared engine image, plus the serving client's layer if any).
    pub image: ImageRecipe,
    /// `Sandbox.create` arguments.
    pub sandbox: SandboxSpec,
    /// Dataset uploads.
    pub uploads: Vec<Upload>,
    /// Prints one GPU name per line (`nvidia-smi --query-gpu=name …`).
    pub gpu_query: Vec<String>,
    /// Prints the engine version.
    pub version_query: Vec<String>,
    /// Files that must exist in the container (benchmark scripts); missing = `vllm_version`.
    pub require_files: Vec<String>,
    /// Where the client writes result files.
    pub result_dir: String,
    /// The server (serving modes).
    pub server: Option<ServerSpec>,
    /// The warm-up run.
    pub warmup: Option<ProcessSpec>,
    /// The measured client.
    pub client: ProcessSpec,
    /// Prints `{name: base64}` of the files in `result_dir`.
    pub collect_argv: Vec<String>,
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Report the Python and `modal` versions.
    Check,
    /// Build an image.
    Prepare(PrepareRequest),
    /// Run a step.
    Run(RunRequest),
    /// Build the SDK objects of a prepare and a run without contacting Modal; answer `plan`.
    DryRun {
        /// The image build.
        prepare: PrepareRequest,
        /// The run (its image is the prepared one).
        run: RunRequest,
        /// The builder version to render Dockerfile commands for.
        builder_version: Option<String>,
    },
    /// Stop: terminate the sandbox and exit.
    Cancel,
}

/// An error reported by the shim: the exception's class chain and gRPC status, as raised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The qualified class (`modal.exception.AuthError`, `perf_runner.ServerExited`).
    pub class: String,
    /// The class and its bases, most specific first.
    #[serde(default)]
    pub classes: Vec<String>,
    /// The gRPC status name (`UNAVAILABLE`) when the error carries one.
    #[serde(default)]
    pub grpc_status: Option<String>,
    /// The error text.
    #[serde(default)]
    pub message: String,
    /// Where it happened (`image`, `patch`, `upload`, `sandbox`, `server`, `client` …).
    #[serde(default)]
    pub phase: Option<String>,
}

/// An event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The shim started.
    Hello {
        /// Its protocol version.
        protocol: u32,
    },
    /// A phase started.
    Stage {
        /// Its name.
        stage: String,
        /// Details for people.
        #[serde(default)]
        detail: String,
        /// The sandbox, once created.
        #[serde(default)]
        sandbox_id: Option<String>,
    },
    /// One output line of a process.
    Log {
        /// `server`, `client_stdout`, `client_stderr`, `warmup_stdout`, `warmup_stderr`.
        stream: String,
        /// The line, without its newline.
        line: String,
    },
    /// The GPUs the container got, as the driver names them.
    Gpu {
        /// One name per GPU.
        names: Vec<String>,
    },
    /// The engine version in the container.
    Version {
        /// The version, if it could be read.
        engine_version: Option<String>,
    },
    /// A process exited (the warm-up, or the measured client).
    Exit {
        /// Exit code (`None` = killed).
        code: Option<i32>,
        /// `warmup` or `client`.
        #[serde(default = "client_phase")]
        phase: String,
        /// Wall time, seconds.
        #[serde(default)]
        seconds: f64,
    },
    /// A result file the client wrote.
    ResultFile {
        /// Its file name.
        name: String,
        /// Its bytes, base64.
        content_b64: String,
    },
    /// An image was built.
    Image {
        /// The image (with the patch layer, if any).
        image_id: String,
        /// The image below the patch layer.
        #[serde(default)]
        base_image_id: Option<String>,
        /// Whether Modal had it built already.
        #[serde(default)]
        reused: bool,
    },
    /// The dry run's objects.
    Plan {
        /// What the SDK recorded.
        plan: serde_json::Value,
    },
    /// Versions, for `check`.
    Check {
        /// Python version.
        python: String,
        /// `modal.__version__`.
        modal_version: String,
    },
    /// The sandbox was terminated.
    Terminated {
        /// Which one.
        #[serde(default)]
        sandbox_id: Option<String>,
        /// How long it lived, seconds.
        #[serde(default)]
        seconds: Option<f64>,
    },
    /// The shim stopped on a cancel.
    Cancelled,
    /// Something failed.
    Error(ErrorEvent),
    /// An event this version does not know.
    #[serde(other)]
    Other,
}

fn client_phase() -> String {
    "client".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e: Event = serde_json::from_str(
            r#"{"event":"error","class":"modal.exception.ServiceError","grpc_status":"UNAVAILABLE","message":"x"}"#,
        )
        .unwrap();
        assert!(
            matches!(e, Event::Error(ErrorEvent { ref grpc_status, .. }) if grpc_status.as_deref() == Some("UNAVAILABLE"))
        );
        let e: Event = serde_json::from_str(r#"{"event":"exit","code":3}"#).unwrap();
        assert_eq!(
            e,
            Event::Exit {
                code: Some(3),
                phase: "client".into(),
                seconds: 0.0
            }
        );
        let e: Event = serde_json::from_str(r#"{"event":"new_thing","x":1}"#).unwrap();
        assert_eq!(e, Event::Other);
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"event":"cancelled"}"#).unwrap(),
            Event::Cancelled
        );
    }

    #[test]
    fn requests_are_tagged() {
        let v = serde_json::to_value(Request::Cancel).unwrap();
        assert_eq!(v, serde_json::json!({"cmd": "cancel"}));
        let op = ImageOp::Entrypoint { args: vec![] };
        assert_eq!(
            serde_json::to_value(op).unwrap(),
            serde_json::json!({"op": "entrypoint", "args": []})
        );
    }
}
