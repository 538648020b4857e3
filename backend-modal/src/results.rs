//! Fetching the client's result files out of the sandbox, within a cap. The files are written
//! by the benchmark, which runs an agent patch: the shim checks each size before reading
//! anything, sends at most the cap in all, and says what it left out; this side checks the
//! cap again and reads the shim's reply line up to a bound derived from it.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use runner_core::stepkit::AttemptFiles;
use runner_core::{BackendError, Failure};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::NAME;
use crate::protocol::{Command, Fetched};
use crate::sandbox::Link;

/// How long fetching the result files may take.
const FETCH_WAIT: Duration = Duration::from_secs(300);

/// Room in a reply line beyond the files' base64: names, sizes, reasons and JSON.
const REPLY_SLACK: u64 = 8 * 1024 * 1024;

/// The longest event line read from the shim when result files may total `cap` bytes: their
/// base64 and some room.
pub(crate) fn reply_line_max(cap: u64) -> usize {
    let b64 = cap.div_ceil(3).saturating_mul(4);
    usize::try_from(b64.saturating_add(REPLY_SLACK)).unwrap_or(usize::MAX)
}

/// A result file that was not fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Skipped {
    /// Its name in the result folder.
    pub name: String,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
    /// Why, for people.
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.size {
            Some(n) => write!(f, "{} ({n} bytes) not fetched: {}", self.name, self.reason),
            None => write!(f, "{} not fetched: {}", self.name, self.reason),
        }
    }
}

fn over_cap(cap: u64) -> String {
    format!("over the cap of {cap} bytes on the result files fetched from a sandbox")
}

/// Fetch the files the client wrote in `dir` into the attempt's `results/` (names reduced to
/// their file name), each at most `cap` bytes and all together at most `cap`; what was left
/// out, and why.
pub(crate) async fn fetch(
    link: &Link,
    dir: &str,
    files: &AttemptFiles,
    cap: u64,
) -> Result<Vec<Skipped>, BackendError> {
    let never = CancellationToken::new();
    let cmd = Command::Fetch {
        dir: dir.to_string(),
        max_bytes: cap,
        max_total_bytes: cap,
    };
    let v = link
        .call(cmd, &never, Some(FETCH_WAIT))
        .await
        .map_err(|e| e.into_backend("fetching the result files"))?;
    let fetched: Fetched = serde_json::from_value(v)
        .map_err(|e| BackendError::new(NAME, Failure::Unknown, format!("a fetch reply: {e}")))?;
    let mut skipped: Vec<Skipped> = fetched
        .skipped
        .into_iter()
        .map(|s| Skipped {
            name: s.name,
            size: s.size,
            reason: s.reason,
        })
        .collect();
    if fetched.skipped_more > 0 {
        skipped.push(Skipped {
            name: format!("{} more", fetched.skipped_more),
            size: None,
            reason: "left out by the shim, not listed".into(),
        });
    }
    let mut total = 0u64;
    for f in fetched.files {
        let Some(base) = Path::new(&f.name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            tracing::warn!(name = %f.name, "a result file without a usable name; skipped");
            continue;
        };
        let bytes = match base64::engine::general_purpose::STANDARD.decode(&f.content_b64) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(name = %f.name, "a result file that is not base64 ({e}); skipped");
                continue;
            }
        };
        let size = bytes.len() as u64;
        if size > cap || total + size > cap {
            skipped.push(Skipped {
                name: base,
                size: Some(size),
                reason: over_cap(cap),
            });
            continue;
        }
        total += size;
        let path = files.results_dir().join(&base);
        if let Err(e) = std::fs::write(&path, bytes) {
            tracing::warn!("{}: {e}", path.display());
        }
    }
    for s in &skipped {
        tracing::warn!("result file {s}");
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reply_bound_fits_the_cap_in_base64() {
        let cap = 64 * 1024 * 1024;
        let line = reply_line_max(cap) as u64;
        assert!(line >= cap * 4 / 3 + REPLY_SLACK && line < cap * 2);
        assert_eq!(reply_line_max(u64::MAX), usize::MAX);
        let s = Skipped {
            name: "r.json".into(),
            size: Some(5),
            reason: over_cap(4),
        };
        assert_eq!(
            s.to_string(),
            "r.json (5 bytes) not fetched: over the cap of 4 bytes on the result files \
             fetched from a sandbox"
        );
    }
}
