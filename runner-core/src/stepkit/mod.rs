//! The step kit: what every backend shares to run one step of a [`StepPlan`].
//!
//! - [`placeholders`]: the argv placeholders (`{PYTHON}`, `{PORT}` …) as a type, one
//!   [`Values::fill`] and one error rule — a placeholder with no value is an error whose
//!   [`Failure`] code depends only on the placeholder's kind.
//! - [`layout`]: the files of an attempt ([`AttemptFiles`]). Backends write through it and the
//!   engine reads through it; no other code names those files.
//! - [`lifecycle`]: the one step lifecycle — start the server, wait until it is ready, warm up,
//!   run the measured client, stop everything — driven through a backend's primitives
//!   ([`StepRuntime`] starts processes, [`Running`] is one of them).
//! - [`warm`]: warm servers — one server per build and task, switched with vLLM's sleep mode
//!   between jobs through the same pieces.
//!
//! [`StepPlan`]: crate::plan::StepPlan
//! [`Failure`]: crate::failure::Failure

pub mod host_cpu;
pub mod layout;
pub mod lifecycle;
pub mod placeholders;
mod probe;
pub mod runtime;
mod server;
pub mod warm;

pub use layout::{AttemptFiles, Output};
pub use lifecycle::{StepPolicy, run_step};
pub use placeholders::{FillError, Filled, Placeholder, ScriptCheck, SourceTree, Values};
pub use runtime::{Endpoint, Exit, Launch, Role, Running, StepRuntime};
pub use warm::{Switch, WarmKit, WarmServer, run_warm, sleep_step};
