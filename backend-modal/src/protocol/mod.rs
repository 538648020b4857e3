//! The JSON-lines protocol between this crate and the shim (version 3: sandbox exec).
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
//!     own (`setsid`), with the sandbox's environment and secrets; replies once Modal took
//!     it (it may not have started yet). Its output comes as [`Event::Output`] lines
//!     (`stdout`/`stderr`; a line over 64 KiB is cut there, `cut` says how many bytes were
//!     dropped), then exactly one [`Event::Exit`] after its last output line.
//!   - `stop {id, grace_s}`: SIGTERM to the process's group, `grace_s` for it to go, then
//!     SIGKILL; replies once its exit event was sent, fails when it was not. A stop right
//!     after an `exec` waits (bounded) for the process to have started.
//!   - `tunnel {port}`: where this machine reaches the sandbox's `port` (Modal's TLS tunnel,
//!     relayed as plain HTTP on a local port of the shim so that the runner's probe can speak
//!     to it); replies `{host, port, url}`.
//!   - `fetch {dir, max_bytes, max_total_bytes}`: the regular files directly in `dir`, each
//!     at most `max_bytes` and all together at most `max_total_bytes` (sizes are checked
//!     before anything is read); replies `{files: [{name, content_b64}], skipped: [{name,
//!     size, reason}], skipped_more}` — what was left out, and why.
//!   - `terminate`: terminate the sandbox; replies `{seconds}` (its lifetime).
//!
//!   Closing stdin, or SIGTERM/SIGINT/SIGHUP, terminates every sandbox the shim created, and the
//!   shim exits.
//!
//! The shim writes a reply's `seq` before its value. Every line is read up to a bound (see
//! `sandbox`): what the shim forwards comes from the sandbox, where an agent patch runs.
//!
//! Exits are pushed, so "has it ended?" and "wait for it" are answered on this side without a
//! round trip. The shim decides nothing about the step — readiness, warm-up policy, phase
//! timeouts and failure codes are the step kit's (`runner_core::stepkit::run_step`); it reports
//! errors as raised ([`ErrorEvent`]), and `classify.rs` turns them into failures.

use serde::{Deserialize, Serialize};

mod commands;
mod requests;

pub use commands::*;
pub use requests::*;

/// The protocol version; the shim reports it in its `hello` event.
pub const PROTOCOL_VERSION: u32 = 3;

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
        /// The line, without its newline (its first 64 KiB).
        line: String,
        /// How many bytes of the line were dropped (0: it is whole).
        #[serde(default)]
        cut: u64,
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
        let e: Event =
            serde_json::from_str(r#"{"event":"output","id":"c","stream":"stdout","line":"x"}"#)
                .unwrap();
        assert!(
            matches!(e, Event::Output { cut: 0, .. }),
            "cut defaults to 0"
        );
        let f: Fetched = serde_json::from_str(
            r#"{"files":[],"skipped":[{"name":"r.json","size":9,"reason":"over the cap"}]}"#,
        )
        .unwrap();
        assert_eq!((f.skipped[0].size, f.skipped_more), (Some(9), 0));
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
