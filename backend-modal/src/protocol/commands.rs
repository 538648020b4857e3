//! The commands of a sandbox shim (`create`, `exec`, `stop`, `tunnel`, `fetch`, `terminate`),
//! each in an [`Envelope`] with its sequence number, and the values their replies carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ImageRecipe;

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
    /// The regular files directly in a directory of the sandbox, within the caps.
    Fetch {
        /// The directory.
        dir: String,
        /// A file over this size is skipped (not read).
        max_bytes: u64,
        /// The files sent all together stay within this size; the rest are skipped.
        max_total_bytes: u64,
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

/// A file a `fetch` left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkippedFile {
    /// Its name in the directory.
    pub name: String,
    /// Its size, when known.
    #[serde(default)]
    pub size: Option<u64>,
    /// Why it was left out, for people.
    pub reason: String,
}

/// The reply to `fetch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fetched {
    /// The files.
    #[serde(default)]
    pub files: Vec<FetchedFile>,
    /// Files left out (over a cap, unreadable), the first few.
    #[serde(default)]
    pub skipped: Vec<SkippedFile>,
    /// How many more were left out than `skipped` lists.
    #[serde(default)]
    pub skipped_more: u64,
}

/// The reply to `terminate`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TerminateReply {
    /// How long the sandbox lived, seconds.
    #[serde(default)]
    pub seconds: Option<f64>,
}
