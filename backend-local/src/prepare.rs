//! `prepare`: the venv of a build identity — reused when complete, else made, filled from the
//! first source that has the engine, checked, patched (agent) and marked complete.

use std::path::Path;
use std::time::Instant;

use runner_core::patch::{self, Decision};
use runner_core::{Artifact, BackendError, BuildSpec, Failure, PreparedEnv, RunContext};
use tokio::sync::OnceCell;

use crate::config::{LocalConfig, safe_name};
use crate::venv::{self, Installer, Marker};
use crate::wheel::{self, Unavailable};
use crate::{NAME, scripts, source};

/// The agent patch of a build, read and decided.
pub(crate) struct AgentPatch {
    pub decision: Decision,
}

fn err(kind: Failure, message: impl Into<String>) -> BackendError {
    BackendError::new(NAME, kind, message)
}

/// Read and decide the build's patch (`runner_core::patch::load`); refused as the decision
/// says (native code → `needs_compile` unless source builds are allowed).
pub(crate) fn read_patch(
    cfg: &LocalConfig,
    build: &BuildSpec,
) -> Result<Option<AgentPatch>, BackendError> {
    let Some(spec) = &build.patch else {
        return Ok(None);
    };
    let decision = patch::load(spec).map_err(|e| e.backend_error(NAME))?;
    decision
        .check(cfg.allow_source_build)
        .map_err(|e| e.backend_error(NAME))?;
    Ok(Some(AgentPatch { decision }))
}

/// Prepare the environment of `build`.
pub async fn prepare(
    cfg: &LocalConfig,
    installer: &OnceCell<Installer>,
    build: &BuildSpec,
    cx: &RunContext,
) -> Result<PreparedEnv, BackendError> {
    let started = Instant::now();
    let patch = read_patch(cfg, build)?;
    let mut identity = build.identity.clone();
    if let (Some(p), Some(spec)) = (&patch, &build.patch) {
        if spec.sha256.is_none() {
            // The whole hash: two patches never share a venv.
            identity.push_str(&format!("-{}", p.decision.sha256));
        }
    }
    let dir = cfg.venv_dir(&identity);
    let venvs = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.cache_root());
    std::fs::create_dir_all(&venvs)
        .map_err(|e| disk_or(e, format!("cannot create {}", venvs.display())))?;
    let _lock = lock(&venvs.join(format!(".{}.lock", safe_name(&identity))), cx).await?;

    if let Some(m) = venv::read_marker(&dir) {
        if m.identity == identity
            && m.patch_sha256 == patch.as_ref().map(|p| p.decision.sha256.clone())
        {
            let scripts_dir = match m.scripts_dir.clone().filter(|d| Path::new(d).is_dir()) {
                Some(d) => Some(d),
                None => scripts_for(cfg, &build.commit, cx).await,
            };
            cx.progress.event(
                "prepare",
                &format!(
                    "reusing {identity} ({:.3} s)",
                    started.elapsed().as_secs_f64()
                ),
            );
            return Ok(PreparedEnv {
                identity: build.identity.clone(),
                handle: dir.display().to_string(),
                engine_version: m.engine_version,
                digest: m.digest,
                reused: true,
                scripts_dir,
            });
        }
    }
    if dir.exists() {
        tracing::info!(dir = %dir.display(), "removing an incomplete environment");
        std::fs::remove_dir_all(&dir)
            .map_err(|e| disk_or(e, format!("cannot remove {}", dir.display())))?;
    }
    // Detected only now: a reused environment needs no tool at all.
    let installer = installer.get_or_init(|| Installer::detect(cfg)).await;
    let made = make(cfg, installer, build, &identity, patch.as_ref(), &dir, cx).await;
    match made {
        Ok(marker) => {
            cx.progress.event(
                "prepare",
                &format!(
                    "{identity} ready in {:.1} s",
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(PreparedEnv {
                identity: build.identity.clone(),
                handle: dir.display().to_string(),
                engine_version: marker.engine_version,
                digest: marker.digest,
                reused: false,
                scripts_dir: marker.scripts_dir,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

async fn make(
    cfg: &LocalConfig,
    installer: &Installer,
    build: &BuildSpec,
    identity: &str,
    patch: Option<&AgentPatch>,
    dir: &Path,
    cx: &RunContext,
) -> Result<Marker, BackendError> {
    cx.progress
        .event("prepare", &format!("creating {}", dir.display()));
    venv::create(cfg, installer, dir, cx).await?;
    let native = patch.is_some_and(|p| p.decision.needs_compile);
    let (source, digest) = if native {
        // Only reachable with allow_source_build (read_patch refused it otherwise).
        source::install_patched(cfg, installer, build, patch, dir, cx).await?
    } else {
        install(cfg, installer, build, dir, cx).await?
    };
    let version = venv::engine_version(dir, cx).await?;
    venv::check_commit(&version, &build.commit).map_err(|m| err(Failure::EnvironmentBroken, m))?;
    cx.progress.event(
        "prepare",
        &format!("installed vllm {version} from {source}"),
    );
    let mut marker = Marker {
        identity: identity.to_string(),
        engine_version: Some(version),
        digest,
        source,
        patch_sha256: patch.map(|p| p.decision.sha256.clone()),
        patched_files: Default::default(),
        ignored_files: Vec::new(),
        scripts_dir: None,
    };
    let mut scripts_dir = scripts_for(cfg, &build.commit, cx).await;
    if let Some(p) = patch {
        if !native {
            crate::agent::apply_engine(p, dir, &mut marker, cx).await?;
        }
        scripts_dir = crate::agent::apply_benchmarks(cfg, p, identity, scripts_dir, cx).await?;
        marker.ignored_files = p.decision.left_out();
        if !marker.ignored_files.is_empty() {
            cx.progress.event(
                "prepare",
                &format!(
                    "patch: not applied (nothing a benchmark runs): {}",
                    marker.ignored_files.join(", ")
                ),
            );
        }
    }
    marker.scripts_dir = scripts_dir;
    venv::write_marker(dir, &marker)
        .map_err(|e| disk_or(e, format!("cannot write the marker in {}", dir.display())))?;
    Ok(marker)
}

async fn scripts_for(cfg: &LocalConfig, commit: &str, cx: &RunContext) -> Option<String> {
    match scripts::ensure(cfg, commit, cx).await {
        Ok(d) => d.map(|d| d.display().to_string()),
        Err(e) => {
            tracing::warn!(commit, "no benchmark scripts: {e}");
            cx.progress
                .event("prepare", &format!("no benchmark scripts: {e}"));
            None
        }
    }
}

/// One place the engine may come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Candidate {
    File(String),
    Index(String),
    Git(String),
}

fn candidates(cfg: &LocalConfig, build: &BuildSpec) -> Vec<Candidate> {
    if let Some(w) = cfg.wheel_for(build.variant) {
        return vec![Candidate::File(w.to_string())];
    }
    build
        .artifacts
        .iter()
        .filter_map(|a| match a {
            Artifact::WheelIndex { url } => Some(Candidate::Index(url.clone())),
            Artifact::Wheel { location } => Some(Candidate::File(location.clone())),
            Artifact::Source { repo } if cfg.allow_source_build => {
                Some(Candidate::Git(repo.clone()))
            }
            Artifact::Source { .. } | Artifact::Image { .. } => None,
        })
        .collect()
}

/// Install the engine from the first candidate that has it; returns (source, digest).
async fn install(
    cfg: &LocalConfig,
    installer: &Installer,
    build: &BuildSpec,
    dir: &Path,
    cx: &RunContext,
) -> Result<(String, Option<String>), BackendError> {
    let mut tried = Vec::new();
    let mut transient = false;
    for cand in candidates(cfg, build) {
        let (label, spec, digest) = match &cand {
            Candidate::File(loc) => match wheel::fetch(loc, &cfg.cache_root(), cx).await {
                Ok((path, sha)) => (
                    loc.clone(),
                    vec![path.display().to_string()],
                    Some(format!("sha256:{sha}")),
                ),
                Err(Unavailable::NotFound(m) | Unavailable::Other(m)) => {
                    tried.push(m);
                    continue;
                }
                Err(Unavailable::Transient(m)) => {
                    transient = true;
                    tried.push(m);
                    continue;
                }
                Err(Unavailable::DiskFull(m)) => return Err(err(Failure::DiskFull, m)),
                Err(Unavailable::Stopped(m)) => {
                    let kind = if cx.cancel.is_cancelled() {
                        Failure::Cancelled
                    } else {
                        Failure::Timeout
                    };
                    return Err(err(kind, m));
                }
            },
            Candidate::Index(url) if cfg.find_links.is_some() => {
                tracing::info!(%url, "offline (find_links): installing vllm from the local links instead");
                (format!("{url} (offline)"), vec!["vllm".into()], None)
            }
            Candidate::Index(url) => (
                url.clone(),
                vec!["vllm".into(), "--extra-index-url".into(), url.clone()],
                None,
            ),
            Candidate::Git(repo) => (
                repo.clone(),
                vec![source::git_requirement(repo, &build.commit)],
                None,
            ),
        };
        cx.progress
            .event("prepare", &format!("installing from {label}"));
        let mut cmd = venv::install_command(cfg, installer, dir);
        cmd.args(&spec);
        let out = venv::run(cmd, "installing vllm", cx).await?;
        if out.status.success() {
            let digest = digest.or_else(|| venv::record_digest(dir));
            return Ok((label, digest));
        }
        let e = venv::install_error(
            &format!("installing vllm from {label}"),
            &out.combined(),
            None,
        );
        match e.kind {
            Failure::NoWheel => tried.push(format!("{label}: not found")),
            Failure::InfraTransient => {
                transient = true;
                tried.push(e.message);
            }
            _ => return Err(e),
        }
    }
    let kind = if transient {
        Failure::InfraTransient
    } else {
        Failure::NoWheel
    };
    let tried = if tried.is_empty() {
        "no wheel source (explicit wheel, wheel index or wheel URL) for this build".to_string()
    } else {
        tried.join("; ")
    };
    Err(err(
        kind,
        format!(
            "no wheel of vllm at {} could be installed: {tried}",
            build.commit
        ),
    ))
}

fn disk_or(e: std::io::Error, what: String) -> BackendError {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
        Failure::DiskFull
    } else {
        Failure::EnvironmentBroken
    };
    err(kind, format!("{what}: {e}"))
}

/// An exclusive lock on a file (across processes and tasks), released on drop.
struct Lock(#[allow(dead_code)] std::fs::File);

async fn lock(path: &Path, cx: &RunContext) -> Result<Lock, BackendError> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| disk_or(e, format!("cannot open the lock {}", path.display())))?;
    let mut announced = false;
    loop {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(Lock(f));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
            tracing::warn!(path = %path.display(), "flock failed ({e}); going on unlocked");
            return Ok(Lock(f));
        }
        if !announced {
            announced = true;
            cx.progress
                .event("prepare", "waiting for another prepare of the same build");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
            _ = cx.cancel.cancelled() => return Err(err(Failure::Cancelled, "cancelled while waiting for a prepare lock")),
        }
    }
}
