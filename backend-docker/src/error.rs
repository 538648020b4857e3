//! Classification of Docker Engine errors into the failure taxonomy.
//!
//! Every bollard call is wrapped with what it was doing (`failed to create container 'x': …`).
//! 5xx, 429, connection resets, a vanished socket and request timeouts are `infra_transient`; a
//! missing image is `no_image`; a full disk is `disk_full`; an engine without the GPU driver
//! is `bad_config`.

use bollard::errors::Error as DockerError;
use runner_core::{BackendError, Failure};

use crate::NAME;

/// What kind of object a failed call was about; it decides what a 404 means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// An image: 404 means the image does not exist.
    Image,
    /// A container or the engine itself: 404 means something removed it under us.
    Container,
}

/// Messages of registries and the engine that mean "this image does not exist".
const NO_IMAGE: [&str; 7] = [
    "manifest unknown",
    "not found",
    "pull access denied",
    "repository does not exist",
    "no such image",
    "name unknown",
    "does not exist",
];

/// Messages that mean "try again later".
const TRANSIENT: [&str; 16] = [
    "toomanyrequests",
    "too many requests",
    "connection reset",
    "connection refused",
    "broken pipe",
    "timeout",
    "timed out",
    "i/o timeout",
    "tls handshake",
    "temporary failure",
    "service unavailable",
    "bad gateway",
    "gateway timeout",
    "internal server error",
    "unexpected eof",
    "no such host",
];

/// The failure a message from the engine or a registry stands for, if it is recognisable.
pub(crate) fn classify_text(message: &str, subject: Subject) -> Option<Failure> {
    let m = message.to_ascii_lowercase();
    if m.contains("no space left on device") {
        return Some(Failure::DiskFull);
    }
    if m.contains("could not select device driver") || m.contains("unknown or invalid runtime") {
        return Some(Failure::BadConfig);
    }
    if TRANSIENT.iter().any(|t| m.contains(t)) || has_status(&m, &["429", "500", "502", "503"]) {
        return Some(Failure::InfraTransient);
    }
    if subject == Subject::Image && NO_IMAGE.iter().any(|t| m.contains(t)) {
        return Some(Failure::NoImage);
    }
    None
}

/// Whether a message quotes one of these HTTP status codes as a word.
fn has_status(m: &str, codes: &[&str]) -> bool {
    m.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| codes.contains(&w))
}

/// The failure a bollard error stands for.
pub(crate) fn classify(e: &DockerError, subject: Subject) -> Failure {
    match e {
        DockerError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let lower = message.to_ascii_lowercase();
            if lower.contains("could not select device driver") {
                return Failure::BadConfig;
            }
            if lower.contains("no space left on device") {
                return Failure::DiskFull;
            }
            match *status_code {
                404 if subject == Subject::Image => Failure::NoImage,
                // A container that vanished mid-run: removed by someone else or lost in an
                // engine restart. Trying again may work.
                404 => Failure::InfraTransient,
                429 | 500..=599 => match classify_text(message, subject) {
                    Some(Failure::NoImage) => Failure::NoImage,
                    _ => Failure::InfraTransient,
                },
                400 => Failure::BadConfig,
                _ => classify_text(message, subject).unwrap_or(Failure::Unknown),
            }
        }
        DockerError::RequestTimeoutError
        | DockerError::HyperLegacyError { .. }
        | DockerError::HyperResponseError { .. }
        | DockerError::IOError { .. }
        | DockerError::SocketNotFoundError(_) => Failure::InfraTransient,
        DockerError::DockerStreamError { error } => {
            classify_text(error, subject).unwrap_or(Failure::Unknown)
        }
        _ => Failure::Unknown,
    }
}

/// Wrap a bollard error with what was being done.
pub(crate) fn wrap(what: impl std::fmt::Display, e: DockerError, subject: Subject) -> BackendError {
    let kind = classify(&e, subject);
    BackendError::new(NAME, kind, format!("failed to {what}: {e}")).with_source(e)
}

/// A backend error without an underlying source.
pub(crate) fn fail(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// Whether an error is a 409 name conflict.
pub(crate) fn is_conflict(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}

/// Whether an error is a 404.
pub(crate) fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Replaces secret values in text we produce (errors, log lines, log files).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// A redactor for these secret values (values shorter than 4 bytes are too common to mask).
    pub(crate) fn new(values: impl IntoIterator<Item = String>) -> Self {
        Redactor {
            secrets: values.into_iter().filter(|v| v.len() >= 4).collect(),
        }
    }

    /// The text with every secret replaced by `[redacted]`.
    pub(crate) fn text(&self, s: &str) -> String {
        let mut out = s.to_string();
        for v in &self.secrets {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }

    /// The error with its message redacted (its source is dropped when it quoted a secret).
    pub(crate) fn error(&self, mut e: BackendError) -> BackendError {
        let leaks = |s: &str| self.secrets.iter().any(|v| s.contains(v.as_str()));
        e.message = self.text(&e.message);
        if e.source.as_ref().is_some_and(|s| leaks(&s.to_string())) {
            e.source = None;
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: u16, message: &str) -> DockerError {
        DockerError::DockerResponseServerError {
            status_code: code,
            message: message.into(),
        }
    }

    #[test]
    fn registry_and_engine_messages_are_classified() {
        let img = Subject::Image;
        let cases = [
            (
                server(404, "pull access denied for x, repository does not exist"),
                Failure::NoImage,
            ),
            (
                server(500, "manifest for x:y not found: manifest unknown"),
                Failure::NoImage,
            ),
            (
                server(500, "Get https://r/v2/: dial tcp: lookup r: no such host"),
                Failure::InfraTransient,
            ),
            (server(502, "bad gateway"), Failure::InfraTransient),
            (
                server(429, "toomanyrequests: rate limit"),
                Failure::InfraTransient,
            ),
            (server(400, "invalid reference format"), Failure::BadConfig),
            (DockerError::RequestTimeoutError, Failure::InfraTransient),
            (
                DockerError::DockerStreamError {
                    error: "manifest unknown".into(),
                },
                Failure::NoImage,
            ),
            (
                DockerError::DockerStreamError {
                    error: "received unexpected HTTP status: 503 Service Unavailable".into(),
                },
                Failure::InfraTransient,
            ),
            (
                DockerError::DockerStreamError {
                    error: "write /var/lib/docker/x: no space left on device".into(),
                },
                Failure::DiskFull,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(classify(&e, img), want, "{e}");
        }
        let c = Subject::Container;
        assert_eq!(
            classify(&server(404, "No such container: x"), c),
            Failure::InfraTransient
        );
        assert_eq!(
            classify(
                &server(
                    500,
                    "could not select device driver \"nvidia\" with capabilities: [[gpu]]"
                ),
                c
            ),
            Failure::BadConfig
        );
        assert_eq!(
            classify(&server(503, "engine restarting"), c),
            Failure::InfraTransient
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(
            classify(&DockerError::IOError { err: io }, c),
            Failure::InfraTransient
        );
    }

    #[test]
    fn wrapped_errors_say_what_failed() {
        let e = wrap(
            "create container 'pr-x'",
            server(500, "boom"),
            Subject::Container,
        );
        assert_eq!(e.kind, Failure::InfraTransient);
        assert!(
            e.message.starts_with("failed to create container 'pr-x': "),
            "{}",
            e.message
        );
    }

    #[test]
    fn redaction_masks_secrets_and_drops_leaking_sources() {
        let r = Redactor::new(["hf_SECRETVALUE".to_string(), "ab".to_string()]);
        assert_eq!(r.text("token hf_SECRETVALUE ab"), "token [redacted] ab");
        let e = fail(Failure::Unknown, "saw hf_SECRETVALUE")
            .with_source(std::io::Error::other("hf_SECRETVALUE"));
        let e = r.error(e);
        assert!(!e.message.contains("SECRET") && e.source.is_none());
    }
}
