//! The JSON-lines protocol between this crate and the shim (version 2: sandbox exec).
//!
//! The shim runs in one of two ways, chosen by its first stdin line:
//!
//! - **One request** ([`Request`]: `check`, `prepare`, `dry_run`): the shim answers with events
//!   and exits. A later `{"cmd":"cancel"}` line, or closing stdin, cancels it.
//! - **A sandbox** (first line a [`Command::Create`]): one long-lived shim per attempt. Rust
//!   sends [`Command`]s, each wrapped in an [`Envelope`] with a sequence number `seq`, and the
//!   shim answers each with [`Event::Reply`] (or [`Event::Failed`]) carrying the same `seq`.
//!   Commands run concurrently; their replies may come in any order.
//!   - `create`: upload datasets, build the job's image layers, `Sandbox.create("sleep",
//!     "infinity", gpu=…, encrypted_ports=[server port], …)`; replies `{sandbox_id}`.
//!   - `exec {id, argv, workdir}`: start a process in the sandbox, in a process group of its
//!     own (`setsid`), with the sandbox's environment and secrets; replies once it
//!     runs. Its output comes as [`Event::Output`] lines (`stdout`/`stderr`), then exactly one
//!     [`Event::Exit`] after its last output line.
//!   - `stop {id, grace_s}`: SIGTERM to the process's group, `grace_s` for it to go, then
//!     SIGKILL; replies once its exit event was sent.
//!   - `tunnel {port}`: where this machine reaches the sandbox's `port` (Modal's TLS tunnel,
//!     relayed as plain HTTP on a local port of the shim so that the runner's probe can speak
//!     to it); replies `{host, port, url}`.
//!   - `fetch {dir}`: the regular files directly in `dir`; replies `{files: [{name,
//!     content_b64}]}`.
//!   - `terminate`: terminate the sandbox; replies `{seconds}` (its lifetime).
//!
//!   Closing stdin, or SIGTERM/SIGINT/SIGHUP, terminates every sandbox the shim created, and the
//!   shim exits.
//!
//! Exits are pushed, so "has it ended?" and "wait for it" are answered on this side without a
//! round trip. The shim decides nothing about the step — readiness, warm-up policy, phase
//! timeouts and failure codes are the step kit's (`runner_core::stepkit::run_step`); it reports
//! errors as raised ([`ErrorEvent`]), and `classify.rs` turns them into failures.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The protocol version; the shim reports it in its `hello` event.
pub const PROTOCOL_VERSION: u32 = 2;

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
    /// Ports served through Modal's TLS tunnels (`encrypted_ports`): the server's.
    #[serde(default)]
    pub encrypted_ports: Vec<u16>,
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

/// Create the attempt's sandbox: the first command of a sandbox shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    /// The Modal App the sandbox belongs to.
    pub app: String,
    /// The image (the prepared engine image, plus the serving client's layer if any).
    pub image: ImageRecipe,
    /// `Sandbox.create` arguments.
    pub sandbox: SandboxSpec,
    /// Dataset uploads, done before the sandbox is created.
    pub uploads: Vec<Upload>,
}

/// A command to a sandbox shim (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Create the sandbox.
    Create(Box<CreateRequest>),
    /// Start a process in the sandbox.
    Exec {
        /// The process's id, chosen by this side (unique in the shim).
        id: String,
        /// Its argv, placeholders filled for the container.
        argv: Vec<String>,
        /// Its working directory.
        #[serde(default)]
        workdir: Option<String>,
    },
    /// Stop a process and its group: SIGTERM, `grace_s`, SIGKILL.
    Stop {
        /// The process's id.
        id: String,
        /// Seconds between SIGTERM and SIGKILL.
        grace_s: f64,
    },
    /// Where this machine reaches a port of the sandbox.
    Tunnel {
        /// The port inside the sandbox (one of `encrypted_ports`).
        port: u16,
    },
    /// The regular files directly in a directory of the sandbox.
    Fetch {
        /// The directory.
        dir: String,
    },
    /// Terminate the sandbox.
    Terminate,
}

/// A command line: the command and its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Echoed by the reply.
    pub seq: u64,
    /// The command.
    #[serde(flatten)]
    pub command: Command,
}

/// The reply to `create`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The sandbox's id (`sb-…`).
    pub sandbox_id: String,
}

/// The reply to `tunnel`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TunnelReply {
    /// Where the runner connects (plain HTTP).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The public address behind it, for the record.
    #[serde(default)]
    pub url: Option<String>,
}

/// One file of a `fetch` reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FetchedFile {
    /// Its name in the directory.
    pub name: String,
    /// Its bytes, base64.
    pub content_b64: String,
}

/// The reply to `fetch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    /// The files.
    #[serde(default)]
    pub files: Vec<FetchedFile>,
}

/// The reply to `terminate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminateReply {
    /// How long the sandbox lived, seconds.
    #[serde(default)]
    pub seconds: Option<f64>,
}

/// A one-request line (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Report the Python and `modal` versions.
    Check,
    /// Build an image.
    Prepare(PrepareRequest),
    /// Build the SDK objects of a prepare and a sandbox without contacting Modal; answer
    /// `plan`.
    DryRun {
        /// The image build.
        prepare: PrepareRequest,
        /// The sandbox (its image is the prepared one).
        run: Box<CreateRequest>,
        /// The processes the step would run, by role (`{"server": {"argv": […]}}`), shown in
        /// the plan.
        processes: BTreeMap<String, serde_json::Value>,
        /// The builder version to render Dockerfile commands for.
        builder_version: Option<String>,
    },
    /// Stop: end what was started and exit.
    Cancel,
}

/// An error reported by the shim: the exception's class chain and gRPC status, as raised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The qualified class (`modal.exception.AuthError`, `perf_runner.MissingScript`).
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
    /// Where it happened (`image`, `patch`, `upload`, `sandbox`, `exec`, `tunnel` …).
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
    /// Progress, for people.
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
    /// A command succeeded.
    Reply {
        /// The command's `seq`.
        seq: u64,
        /// What it answers (see the reply types).
        #[serde(default)]
        value: serde_json::Value,
    },
    /// A command failed.
    Failed {
        /// The command's `seq`.
        seq: u64,
        /// What was raised.
        error: ErrorEvent,
    },
    /// One output line of a process.
    Output {
        /// The process's id.
        id: String,
        /// `stdout` or `stderr`.
        stream: String,
        /// The line, without its newline.
        line: String,
    },
    /// A process ended (after its last output line).
    Exit {
        /// The process's id.
        id: String,
        /// Its exit code (`None`: killed, or lost).
        #[serde(default)]
        code: Option<i32>,
        /// The signal that ended it, when known.
        #[serde(default)]
        signal: Option<i32>,
        /// Why the shim lost track of it (the sandbox ended, a transport error …).
        #[serde(default)]
        error: Option<ErrorEvent>,
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
    /// A sandbox was terminated.
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
    /// Something failed outside any command (a one-request run, or the shim itself).
    Error(ErrorEvent),
    /// An event this version does not know.
    #[serde(other)]
    Other,
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
        let e: Event = serde_json::from_str(r#"{"event":"exit","id":"p1","code":3}"#).unwrap();
        assert_eq!(
            e,
            Event::Exit {
                id: "p1".into(),
                code: Some(3),
                signal: None,
                error: None
            }
        );
        let e: Event =
            serde_json::from_str(r#"{"event":"reply","seq":7,"value":{"sandbox_id":"sb-1"}}"#)
                .unwrap();
        let Event::Reply { seq: 7, value } = e else {
            panic!("{e:?}")
        };
        let c: Created = serde_json::from_value(value).unwrap();
        assert_eq!(c.sandbox_id, "sb-1");
        let e: Event = serde_json::from_str(r#"{"event":"new_thing","x":1}"#).unwrap();
        assert_eq!(e, Event::Other);
        assert_eq!(
            serde_json::from_str::<Event>(r#"{"event":"cancelled"}"#).unwrap(),
            Event::Cancelled
        );
    }

    #[test]
    fn commands_are_tagged_and_numbered() {
        let v = serde_json::to_value(Request::Cancel).unwrap();
        assert_eq!(v, serde_json::json!({"cmd": "cancel"}));
        let op = ImageOp::Entrypoint { args: vec![] };
        assert_eq!(
            serde_json::to_value(op).unwrap(),
            serde_json::json!({"op": "entrypoint", "args": []})
        );
        let line = Envelope {
            seq: 3,
            command: Command::Stop {
                id: "server-1".into(),
                grace_s: 2.5,
            },
        };
        assert_eq!(
            serde_json::to_value(&line).unwrap(),
            serde_json::json!({"seq": 3, "cmd": "stop", "id": "server-1", "grace_s": 2.5})
        );
        let back: Envelope = serde_json::from_str(r#"{"seq":1,"cmd":"terminate"}"#).unwrap();
        assert_eq!(back.command, Command::Terminate);
    }
}
