//! The ONE table that turns an error reported by the shim into a [`Failure`].
//!
//! The shim reports what Python raised — the class chain (most specific first), the gRPC status
//! when the error carries one, the phase — and decides nothing. The rules, in order:
//!
//! 1. a spend/billing limit in the message → `bad_config` (permanent: the account must change);
//! 2. `ImageBuildError`: in the patch layer → `patch_failed`; "terminated due to external
//!    shut-down" → `infra_transient`; "timed out" → `timeout`; otherwise the build's artifact
//!    does not install → `no_wheel` / `no_image` (the caller says which); `NotFoundError` while
//!    loading the image → `no_image`;
//! 3. the gRPC status: the set Modal's own client retries (`UNAVAILABLE`, `INTERNAL`,
//!    `UNKNOWN`, `DEADLINE_EXCEEDED`, `CANCELLED`, see `RETRYABLE_GRPC_STATUS_CODES` in
//!    `modal/_utils/grpc_utils.py`) and `RESOURCE_EXHAUSTED` (rate limits) → `infra_transient`;
//!    auth, permission, not-found, invalid-argument, precondition → `bad_config`;
//! 4. the class chain against [`CLASS_TABLE`] (first hit wins, so a subclass listed before its
//!    base overrides it);
//! 5. transport words in the message (stream reset, connection reset, HTTP 5xx) →
//!    `infra_transient`;
//! 6. anything else → `unknown`.

use runner_core::Failure;

use crate::protocol::ErrorEvent;

/// gRPC statuses that are transient: Modal's client retries the first five itself; the last
/// one is a rate limit (spend limits are caught earlier by their message).
pub const TRANSIENT_GRPC: [&str; 6] = [
    "UNAVAILABLE",
    "INTERNAL",
    "UNKNOWN",
    "DEADLINE_EXCEEDED",
    "CANCELLED",
    "RESOURCE_EXHAUSTED",
];

/// gRPC statuses that are permanent: the configuration (token, workspace, names, arguments)
/// must change.
pub const PERMANENT_GRPC: [&str; 8] = [
    "UNAUTHENTICATED",
    "PERMISSION_DENIED",
    "NOT_FOUND",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "ALREADY_EXISTS",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
];

/// Qualified exception class → failure, most specific classes first.
pub const CLASS_TABLE: [(&str, Failure); 39] = [
    // The shim's own conditions (the step's are the step kit's, not the shim's).
    ("perf_runner.Cancelled", Failure::Cancelled),
    ("perf_runner.PatchFailed", Failure::PatchFailed),
    ("perf_runner.BadRequest", Failure::BadConfig),
    // A shim of another protocol version (a stale `shim_override`): fixing it is configuration.
    ("perf_runner.ProtocolMismatch", Failure::BadConfig),
    // A reply line over the bound (see `sandbox`): a broken shim, not a transient condition.
    ("perf_runner.ReplyTooLong", Failure::Unknown),
    // Timeouts of the work itself; upload/stream timeouts are infrastructure.
    ("modal.exception.SandboxTimeoutError", Failure::Timeout),
    ("modal.exception.ExecTimeoutError", Failure::Timeout),
    ("modal.exception.FunctionTimeoutError", Failure::Timeout),
    (
        "modal.exception.VolumeUploadTimeoutError",
        Failure::InfraTransient,
    ),
    (
        "modal.exception.MountUploadTimeoutError",
        Failure::InfraTransient,
    ),
    (
        "modal.exception.InteractiveTimeoutError",
        Failure::InfraTransient,
    ),
    (
        "modal.exception.OutputExpiredError",
        Failure::InfraTransient,
    ),
    ("modal.exception.TimeoutError", Failure::Timeout),
    // Modal says: retry.
    ("modal.exception.InternalFailure", Failure::InfraTransient),
    ("modal.exception.ServiceError", Failure::InfraTransient),
    ("modal.exception.InternalError", Failure::InfraTransient),
    ("modal.exception.ConnectionError", Failure::InfraTransient),
    (
        "modal.exception.SandboxTerminatedError",
        Failure::InfraTransient,
    ),
    ("modal.exception.ClientClosed", Failure::InfraTransient),
    (
        "modal.exception.ResourceExhaustedError",
        Failure::InfraTransient,
    ),
    // Modal says: your request or account is wrong.
    ("modal.exception.AuthError", Failure::BadConfig),
    ("modal.exception.PermissionDeniedError", Failure::BadConfig),
    ("modal.exception.NotFoundError", Failure::BadConfig),
    ("modal.exception.AlreadyExistsError", Failure::BadConfig),
    ("modal.exception.InvalidError", Failure::BadConfig),
    ("modal.exception.UnimplementedError", Failure::BadConfig),
    ("modal.exception.VersionError", Failure::EnvironmentBroken),
    ("modal.exception.ImageBuildError", Failure::NoImage),
    ("modal.exception.RemoteError", Failure::Unknown),
    // Transport below the SDK.
    (
        "grpclib.exceptions.StreamTerminatedError",
        Failure::InfraTransient,
    ),
    ("h2.exceptions.StreamClosedError", Failure::InfraTransient),
    ("h2.exceptions.ProtocolError", Failure::InfraTransient),
    ("builtins.ConnectionError", Failure::InfraTransient),
    ("builtins.TimeoutError", Failure::InfraTransient),
    (
        "aiohttp.client_exceptions.ClientError",
        Failure::InfraTransient,
    ),
    // This machine.
    ("builtins.ImportError", Failure::EnvironmentBroken),
    ("builtins.FileNotFoundError", Failure::BadConfig),
    ("builtins.PermissionError", Failure::EnvironmentBroken),
    ("builtins.OSError", Failure::InfraTransient),
];

const SPEND_WORDS: [&str; 5] = [
    "spend limit",
    "spending limit",
    "billing",
    "budget",
    "payment",
];

const TRANSPORT_WORDS: [&str; 9] = [
    "stream reset",
    "rst_stream",
    "connection reset",
    "connection refused",
    "502 bad gateway",
    "503 service unavailable",
    "504 gateway",
    "http 500",
    "internal server error",
];

/// What a failing image build means when nothing more specific is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildArtifact {
    /// A wheel install failed: `no_wheel`.
    Wheel,
    /// A registry image failed: `no_image`.
    Image,
}

/// The failure of an error event, with the rule that decided it.
pub fn classify(e: &ErrorEvent, artifact: Option<BuildArtifact>) -> (Failure, &'static str) {
    let msg = e.message.to_ascii_lowercase();
    let has = |c: &str| e.class == c || e.classes.iter().any(|x| x == c);
    if SPEND_WORDS.iter().any(|w| msg.contains(w)) {
        return (Failure::BadConfig, "a spend or billing limit");
    }
    let phase = e.phase.as_deref().unwrap_or("");
    if has("modal.exception.ImageBuildError") {
        if phase == "patch" {
            return (Failure::PatchFailed, "the agent patch layer did not build");
        }
        if msg.contains("terminated due to external shut-down") {
            return (Failure::InfraTransient, "the image build was shut down");
        }
        if msg.contains("timed out") {
            return (Failure::Timeout, "the image build timed out");
        }
        return match artifact {
            Some(BuildArtifact::Wheel) => (Failure::NoWheel, "the wheel did not install"),
            _ => (Failure::NoImage, "the image did not build"),
        };
    }
    if phase == "image" && has("modal.exception.NotFoundError") {
        return (Failure::NoImage, "the image was not found");
    }
    if let Some(status) = e.grpc_status.as_deref() {
        let status = status.trim().to_ascii_uppercase();
        let status = status.strip_prefix("STATUS.").unwrap_or(&status);
        if TRANSIENT_GRPC.contains(&status) {
            return (Failure::InfraTransient, "a gRPC status Modal retries");
        }
        if PERMANENT_GRPC.contains(&status) {
            return (Failure::BadConfig, "a gRPC status that retrying cannot fix");
        }
    }
    let chain = std::iter::once(e.class.as_str()).chain(e.classes.iter().map(String::as_str));
    for class in chain {
        if let Some((_, f)) = CLASS_TABLE.iter().find(|(c, _)| *c == class) {
            return (*f, "the exception class");
        }
    }
    if TRANSPORT_WORDS.iter().any(|w| msg.contains(w)) {
        return (
            Failure::InfraTransient,
            "a transport failure in the message",
        );
    }
    (Failure::Unknown, "nothing matched")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(class: &str, bases: &[&str], grpc: Option<&str>, msg: &str, phase: &str) -> ErrorEvent {
        let mut classes = vec![class.to_string()];
        classes.extend(bases.iter().map(|s| s.to_string()));
        ErrorEvent {
            class: class.into(),
            classes,
            grpc_status: grpc.map(String::from),
            message: msg.into(),
            phase: Some(phase.into()),
        }
    }

    fn f(e: &ErrorEvent) -> Failure {
        classify(e, None).0
    }

    #[test]
    fn modal_retryable_grpc_statuses_are_transient() {
        for s in [
            "UNAVAILABLE",
            "INTERNAL",
            "UNKNOWN",
            "DEADLINE_EXCEEDED",
            "CANCELLED",
        ] {
            let e = ev("modal.exception.ServiceError", &[], Some(s), "x", "sandbox");
            assert_eq!(f(&e), Failure::InfraTransient, "{s}");
        }
        let raw = ev(
            "grpclib.exceptions.GRPCError",
            &[],
            Some("Status.UNAVAILABLE"),
            "",
            "",
        );
        assert_eq!(f(&raw), Failure::InfraTransient);
        let e = ev(
            "modal.exception.InternalFailure",
            &["modal.exception.Error"],
            None,
            "",
            "",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        let e = ev(
            "modal.exception.SandboxTerminatedError",
            &[],
            None,
            "preempted",
            "client",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        let reset = ev(
            "builtins.ConnectionResetError",
            &["builtins.ConnectionError", "builtins.OSError"],
            None,
            "",
            "",
        );
        assert_eq!(f(&reset), Failure::InfraTransient);
        let e = ev(
            "builtins.RuntimeError",
            &[],
            None,
            "HTTP 503 Service Unavailable on sandbox create",
            "sandbox",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        let e = ev(
            "grpclib.exceptions.StreamTerminatedError",
            &[],
            None,
            "",
            "",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
    }

    #[test]
    fn account_and_request_errors_are_permanent() {
        let e = ev(
            "modal.exception.AuthError",
            &[],
            Some("UNAUTHENTICATED"),
            "bad token",
            "sandbox",
        );
        assert_eq!(f(&e), Failure::BadConfig);
        let e = ev(
            "modal.exception.ConflictError",
            &["modal.exception.InvalidError"],
            None,
            "",
            "",
        );
        assert_eq!(f(&e), Failure::BadConfig);
        let e = ev(
            "modal.exception.NotFoundError",
            &[],
            Some("NOT_FOUND"),
            "Secret 'huggingface' not found",
            "sandbox",
        );
        assert_eq!(f(&e), Failure::BadConfig);
        let e = ev(
            "modal.exception.ResourceExhaustedError",
            &[],
            Some("RESOURCE_EXHAUSTED"),
            "workspace spend limit reached",
            "sandbox",
        );
        assert_eq!(f(&e), Failure::BadConfig);
        let e = ev(
            "modal.exception.ResourceExhaustedError",
            &[],
            Some("RESOURCE_EXHAUSTED"),
            "rate limited",
            "sandbox",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        let e = ev(
            "builtins.ModuleNotFoundError",
            &["builtins.ImportError"],
            None,
            "No module named 'modal'",
            "shim",
        );
        assert_eq!(f(&e), Failure::EnvironmentBroken);
    }

    #[test]
    fn timeouts_and_builds() {
        let e = ev(
            "modal.exception.SandboxTimeoutError",
            &["modal.exception.TimeoutError"],
            None,
            "",
            "client",
        );
        assert_eq!(f(&e), Failure::Timeout);
        let e = ev(
            "modal.exception.VolumeUploadTimeoutError",
            &["modal.exception.TimeoutError"],
            None,
            "",
            "upload",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        // A process the sandbox's end took with it.
        let e = ev(
            "modal.exception.SandboxTerminatedError",
            &["modal.exception.Error"],
            None,
            "",
            "exec",
        );
        assert_eq!(f(&e), Failure::InfraTransient);
        let b = ev(
            "modal.exception.ImageBuildError",
            &["modal.exception.RemoteError"],
            None,
            "Image build for im-1 failed",
            "image",
        );
        assert_eq!(classify(&b, Some(BuildArtifact::Wheel)).0, Failure::NoWheel);
        assert_eq!(classify(&b, Some(BuildArtifact::Image)).0, Failure::NoImage);
        let p = ErrorEvent {
            phase: Some("patch".into()),
            ..b.clone()
        };
        assert_eq!(
            classify(&p, Some(BuildArtifact::Wheel)).0,
            Failure::PatchFailed
        );
        let t = ErrorEvent {
            message: "terminated due to external shut-down. Please try again.".into(),
            ..b
        };
        assert_eq!(f(&t), Failure::InfraTransient);
        let e = ev("builtins.ValueError", &[], None, "what", "client");
        assert_eq!(f(&e), Failure::Unknown);
    }
}
