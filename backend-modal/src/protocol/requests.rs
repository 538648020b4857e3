//! The one-request lines (`check`, `prepare`, `dry_run`, `cancel`) and the image recipes they
//! carry (a sandbox's `create` carries a recipe too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::CreateRequest;

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
