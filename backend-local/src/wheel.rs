//! Wheels: fetching a wheel file (local path or URL) into the cache with its sha256, and
//! reading an installer's failure output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use runner_core::RunContext;
use sha2::{Digest, Sha256};

/// Why a source did not yield a wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// It does not exist (404, missing file): try the next source.
    NotFound(String),
    /// The network failed; retrying may help.
    Transient(String),
    /// A disk filled up.
    DiskFull(String),
    /// Anything else.
    Other(String),
    /// The run was cancelled or ran out of time.
    Stopped(String),
}

/// What an installer's failed output says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallFailure {
    /// No such package/version at that source.
    NotFound,
    /// Network trouble.
    Transient,
    /// `No space left on device`.
    DiskFull,
    /// Something else (resolution conflict, build failure …).
    Other,
}

/// Classify the output of a failed `uv pip install` / `pip install`.
pub fn classify_install_output(text: &str) -> InstallFailure {
    let t = text.to_ascii_lowercase();
    let any = |pats: &[&str]| pats.iter().any(|p| t.contains(p));
    if any(&["no space left on device", "errno 28", "disk quota exceeded"]) {
        return InstallFailure::DiskFull;
    }
    if any(&[
        "vllm was not found in the package registry",
        "because vllm was not found",
        "no matching distribution found for vllm",
        "version that satisfies the requirement vllm",
        "404 not found",
        "status code 404",
        "404 client error",
        "http status client error (404",
    ]) {
        return InstallFailure::NotFound;
    }
    if any(&[
        "connection refused",
        "connection reset",
        "timed out",
        "temporary failure in name resolution",
        "dns error",
        "failed to connect",
        "error sending request",
        "network is unreachable",
        "could not connect",
        "too many requests",
        "429",
        "502 bad gateway",
        "503 service unavailable",
        "504 gateway",
        "failed to fetch",
    ]) {
        return InstallFailure::Transient;
    }
    InstallFailure::Other
}

/// Whether a location is an HTTP(S) URL.
pub fn is_url(location: &str) -> bool {
    location.starts_with("http://") || location.starts_with("https://")
}

pub use runner_core::digest::sha256_file;

/// The wheel at `location` (a path, `file://` URL or HTTP URL) as a local file and its sha256.
/// URLs are downloaded once into `<cache>/wheels/`.
pub async fn fetch(
    location: &str,
    cache_root: &Path,
    cx: &RunContext,
) -> Result<(PathBuf, String), Unavailable> {
    if !is_url(location) {
        let path = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        if !path.is_file() {
            return Err(Unavailable::NotFound(format!(
                "no wheel file at {}",
                path.display()
            )));
        }
        let p = path.clone();
        let sha = tokio::task::spawn_blocking(move || sha256_file(&p))
            .await
            .map_err(|e| Unavailable::Other(e.to_string()))?
            .map_err(|e| Unavailable::Other(format!("reading {}: {e}", path.display())))?;
        return Ok((path, sha));
    }
    let url_hash = hex::encode(Sha256::digest(location.as_bytes()));
    let dir = cache_root.join("wheels").join(&url_hash[..16]);
    let file = dir.join(file_name_of(location));
    let sidecar = file.with_extension("whl.sha256");
    if let (true, Ok(sha)) = (file.is_file(), std::fs::read_to_string(&sidecar)) {
        tracing::debug!(%location, "wheel already downloaded");
        return Ok((file, sha.trim().to_string()));
    }
    cx.progress
        .event("prepare", &format!("downloading {location}"));
    let deadline = async {
        match cx.deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    let sha = tokio::select! {
        r = download(location, &dir, &file) => r?,
        _ = cx.cancel.cancelled() => return Err(Unavailable::Stopped("cancelled during download".into())),
        _ = deadline => return Err(Unavailable::Stopped("deadline passed during download".into())),
    };
    std::fs::write(&sidecar, &sha).map_err(|e| io_unavailable(&sidecar, e))?;
    Ok((file, sha))
}

async fn download(url: &str, dir: &Path, file: &Path) -> Result<String, Unavailable> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Unavailable::Other(format!("HTTP client: {e}")))?;
    let mut resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| Unavailable::Transient(format!("GET {url}: {}", chain(&e))))?;
    let status = resp.status();
    if matches!(status.as_u16(), 403 | 404 | 410) {
        return Err(Unavailable::NotFound(format!("GET {url}: {status}")));
    }
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Unavailable::Transient(format!("GET {url}: {status}")));
    }
    if !status.is_success() {
        return Err(Unavailable::Other(format!("GET {url}: {status}")));
    }
    std::fs::create_dir_all(dir).map_err(|e| io_unavailable(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| io_unavailable(dir, e))?;
    let mut hasher = Sha256::new();
    loop {
        match resp.chunk().await {
            Ok(Some(bytes)) => {
                hasher.update(&bytes);
                tmp.write_all(&bytes).map_err(|e| io_unavailable(file, e))?;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Unavailable::Transient(format!("GET {url}: {}", chain(&e))));
            }
        }
    }
    tmp.persist(file)
        .map_err(|e| io_unavailable(file, e.error))?;
    Ok(hex::encode(hasher.finalize()))
}

fn io_unavailable(path: &Path, e: std::io::Error) -> Unavailable {
    let msg = format!("{}: {e}", path.display());
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        Unavailable::DiskFull(msg)
    } else {
        Unavailable::Other(msg)
    }
}

/// An error with its sources, on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The file name at the end of a URL, percent-decoded (`vllm-0.6.3%2Bgabc-….whl` →
/// `vllm-0.6.3+gabc-….whl`); `download.whl` when there is none.
pub fn file_name_of(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or("");
    let decoded = percent_decode(last);
    let safe = crate::config::safe_name(&decoded);
    if decoded.is_empty() || safe != decoded {
        "download.whl".into()
    } else {
        decoded
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_installer_output() {
        use InstallFailure::*;
        let uv404 = "  × No solution found when resolving dependencies:\n  ╰─▶ Because vllm was not \
                     found in the package registry and you require vllm, we can conclude …";
        assert_eq!(classify_install_output(uv404), NotFound);
        assert_eq!(
            classify_install_output("ERROR: No matching distribution found for vllm"),
            NotFound
        );
        assert_eq!(
            classify_install_output(
                "error: Failed to fetch: `https://x/simple/vllm/`\n  Caused by: dns error"
            ),
            Transient
        );
        assert_eq!(
            classify_install_output("OSError: [Errno 28] No space left on device"),
            DiskFull
        );
        assert_eq!(
            classify_install_output("Because torch==9 is unsatisfiable"),
            Other
        );
    }

    #[test]
    fn file_names_from_urls() {
        assert_eq!(
            file_name_of(
                "https://wheels.vllm.ai/abc/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"
            ),
            "vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"
        );
        assert_eq!(
            file_name_of("http://h/x/vllm-0.6.3%2Bgabc-py3-none-any.whl?sig=1"),
            "vllm-0.6.3+gabc-py3-none-any.whl"
        );
        assert_eq!(file_name_of("http://h/"), "download.whl");
        assert_eq!(file_name_of("http://h/%2e%2e%2Fx"), "download.whl");
        assert_eq!(file_name_of("http://h/a%"), "download.whl");
    }
}
