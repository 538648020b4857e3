//! Images built here: a base image plus a per-commit wheel, and the agent build (the baseline
//! image with the patch applied to the installed `vllm` package). Both are tagged
//! `perf-runner/vllm:<identity>` and reused while their inputs (base image id, wheel or patch
//! hash) are the same.

use std::collections::HashMap;
use std::io::Write;

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures::StreamExt;
use runner_core::build::PatchSpec;
use runner_core::{Artifact, BackendError, BuildSpec, Failure, RunContext};

use crate::DockerBackend;
use crate::containers::sanitize;
use crate::error::{Subject, classify_text, fail, wrap};
use crate::images::{Resolved, image_label};
use crate::patch::{self, PATCH_DIR};

/// The longest tag Docker accepts.
const MAX_TAG: usize = 128;

/// The tag of a derived image: the identity itself (`+` shown as `-`; identities are built from
/// plain hex and letters, see `runner_core::build::name_part`), or, when that would not be a
/// valid tag as it is (too long, other characters), a readable prefix and 32 hex digits of the
/// identity's sha256 — never a truncation two identities could share.
pub(crate) fn derived_tag(identity: &str) -> String {
    let plain = identity
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'+'))
        && identity
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    let clean = sanitize(identity, MAX_TAG);
    let tag = if plain && identity.len() <= MAX_TAG {
        clean
    } else {
        let head = clean.trim_start_matches(['.', '-']);
        let head: String = head.chars().take(MAX_TAG - 33).collect();
        let head = if head.is_empty() { "x" } else { head.as_str() };
        format!("{head}-{}", &hash(identity)[..32])
    };
    format!("perf-runner/vllm:{tag}")
}

/// A tar build context with a Dockerfile and files.
fn context(dockerfile: &str, files: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let all = std::iter::once(("Dockerfile", dockerfile.as_bytes())).chain(files.iter().copied());
    for (name, data) in all {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, data)?;
    }
    b.into_inner()
}

/// A JSON array for an exec-form Dockerfile instruction.
fn exec_form(args: &[&str]) -> String {
    serde_json::to_string(args).unwrap_or_else(|_| "[]".into())
}

/// One image build.
struct BuildJob<'a> {
    tag: &'a str,
    dockerfile: &'a str,
    files: &'a [(&'a str, &'a [u8])],
    labels: HashMap<String, String>,
    kind: BuildKind,
}

/// How a failed build is classified when the engine itself was fine.
#[derive(Debug, Clone, Copy)]
enum BuildKind {
    Wheel,
    Patch,
}

impl DockerBackend {
    /// Build an image; output goes to `<artifact_dir>/<tag>.build.log`; a failure carries its
    /// last lines.
    async fn build(
        &self,
        d: &Docker,
        job: BuildJob<'_>,
        cx: &RunContext,
    ) -> Result<(), BackendError> {
        let BuildJob {
            tag,
            dockerfile,
            files,
            labels,
            kind,
        } = job;
        let tar = context(dockerfile, files).map_err(|e| {
            fail(
                Failure::Unknown,
                format!("failed to pack a build context: {e}"),
            )
        })?;
        let log_path = cx
            .artifact_dir
            .join(format!("{}.build.log", tag.replace(['/', ':'], "_")));
        let mut log = std::fs::File::create(&log_path).ok();
        let opts = BuildImageOptionsBuilder::new()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .labels(&labels)
            .build();
        cx.progress.event("build", &format!("building {tag}"));
        let mut stream = d.build_image(opts, None, Some(bollard::body_full(tar.into())));
        let mut lines: Vec<String> = Vec::new();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cx.cancel.cancelled() => return Err(fail(Failure::Cancelled, format!("cancelled while building {tag}"))),
            };
            let Some(item) = item else { break };
            let info = match item {
                Ok(info) => info,
                Err(e) => {
                    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                    return Err(build_error(tag, e, kind, &tail));
                }
            };
            if let Some(s) = info.stream.filter(|s| !s.trim().is_empty()) {
                let s = self.redactor.text(&s);
                if let Some(f) = log.as_mut() {
                    let _ = f.write_all(s.as_bytes());
                }
                if s.starts_with("Step ") {
                    cx.progress.event("build", &format!("{tag}: {}", s.trim()));
                }
                lines.extend(s.lines().map(|l| l.chars().take(300).collect::<String>()));
            }
        }
        Ok(())
    }

    /// The base image plus one per-commit wheel.
    pub(crate) async fn wheel_image(
        &self,
        d: &Docker,
        build: &BuildSpec,
        base: &str,
        wheel: &Artifact,
        cx: &RunContext,
    ) -> Result<Resolved, BackendError> {
        let base = self.ensure(d, base, cx).await?;
        let base_id = base.inspect.id.clone().unwrap_or_default();
        let (source, pip): (String, Vec<&str>) = match wheel {
            Artifact::WheelIndex { url } => (
                url.clone(),
                vec![
                    "install",
                    "--no-cache-dir",
                    "--pre",
                    "vllm",
                    "--extra-index-url",
                    url,
                ],
            ),
            Artifact::Wheel { location } => (
                location.clone(),
                vec!["install", "--no-cache-dir", location],
            ),
            _ => return Err(fail(Failure::BadConfig, "not a wheel artifact")),
        };
        let tag = derived_tag(&format!("{}-{}", build.identity, &hash(&source)[..16]));
        if let Some(i) = self.present(d, &tag).await? {
            if image_label(&i, "perf-runner.base-id") == Some(base_id.as_str()) {
                return Ok(Resolved {
                    reference: tag,
                    inspect: i,
                    reused: true,
                });
            }
        }
        let py = self.config.python.as_str();
        let mut run = vec![py, "-m", "pip"];
        run.extend(pip);
        let dockerfile = format!("FROM {}\nRUN {}\n", base.reference, exec_form(&run));
        let labels = HashMap::from([
            ("perf-runner.identity".to_string(), build.identity.clone()),
            ("perf-runner.base-id".to_string(), base_id),
            ("perf-runner.wheel".to_string(), source),
        ]);
        let job = BuildJob {
            tag: &tag,
            dockerfile: &dockerfile,
            files: &[],
            labels,
            kind: BuildKind::Wheel,
        };
        self.build(d, job, cx).await?;
        self.built(d, tag).await
    }

    /// The agent build: its base resolved like the baseline's, with the patch applied.
    pub(crate) async fn patched(
        &self,
        d: &Docker,
        build: &BuildSpec,
        spec: &PatchSpec,
        cx: &RunContext,
    ) -> Result<Resolved, BackendError> {
        let (decision, layer) = patch::agent_layer(spec, &self.config)?;
        let left_out = decision.left_out();
        if !left_out.is_empty() {
            let msg = format!(
                "the agent patch's files that nothing runs are not applied: {}",
                left_out.join(", ")
            );
            tracing::warn!(identity = %build.identity, "{msg}");
            cx.progress.event("build", &msg);
        }
        // The step as a whole (parts, script): a changed config builds again.
        let layer_hash = hash(&format!("{layer:?}"));
        let base = self.resolve(d, build, cx).await?;
        let base_id = base.inspect.id.clone().unwrap_or_default();
        let tag = derived_tag(&build.identity);
        if let Some(i) = self.present(d, &tag).await? {
            if image_label(&i, "perf-runner.base-id") == Some(base_id.as_str())
                && image_label(&i, "perf-runner.patch-sha256") == Some(decision.sha256.as_str())
                && image_label(&i, "perf-runner.patch-layer") == Some(layer_hash.as_str())
            {
                return Ok(Resolved {
                    reference: tag,
                    inspect: i,
                    reused: true,
                });
            }
        }
        let user = base
            .inspect
            .config
            .as_ref()
            .and_then(|c| c.user.clone())
            .filter(|u| !u.is_empty());
        let mut dockerfile = format!("FROM {}\n", base.reference);
        if user.is_some() {
            dockerfile.push_str("USER root\n");
        }
        let names: Vec<&str> = layer.files.iter().map(|(n, _)| *n).collect();
        dockerfile.push_str(&format!("COPY {} {PATCH_DIR}/\n", names.join(" ")));
        dockerfile.push_str(&format!(
            "RUN {}\n",
            exec_form(&["/bin/sh", "-c", &layer.script])
        ));
        if let Some(u) = user {
            dockerfile.push_str(&format!("USER {u}\n"));
        }
        let labels = HashMap::from([
            ("perf-runner.identity".to_string(), build.identity.clone()),
            ("perf-runner.base-id".to_string(), base_id),
            ("perf-runner.base".to_string(), base.reference.clone()),
            (
                "perf-runner.patch-sha256".to_string(),
                decision.sha256.clone(),
            ),
            ("perf-runner.patch-layer".to_string(), layer_hash),
        ]);
        let files: Vec<(&str, &[u8])> = layer
            .files
            .iter()
            .map(|(n, t)| (*n, t.as_bytes()))
            .collect();
        let job = BuildJob {
            tag: &tag,
            dockerfile: &dockerfile,
            files: &files,
            labels,
            kind: BuildKind::Patch,
        };
        self.build(d, job, cx).await?;
        self.built(d, tag).await
    }

    async fn built(&self, d: &Docker, tag: String) -> Result<Resolved, BackendError> {
        match self.present(d, &tag).await? {
            Some(inspect) => Ok(Resolved {
                reference: tag,
                inspect,
                reused: false,
            }),
            None => Err(fail(
                Failure::Unknown,
                format!("image {tag} is missing after its build"),
            )),
        }
    }
}

/// sha256 hex of a string.
fn hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A failed build: the engine's own trouble is classified as usual; a failing step is the
/// wheel's or the patch's fault.
fn build_error(tag: &str, e: bollard::errors::Error, kind: BuildKind, tail: &str) -> BackendError {
    let step_failed = match &e {
        bollard::errors::Error::DockerStreamError { error }
            if error.contains("returned a non-zero code") =>
        {
            let code = error
                .rsplit("returned a non-zero code:")
                .next()
                .unwrap_or("?");
            Some(format!("a build step exited with code {}", code.trim()))
        }
        bollard::errors::Error::DockerStreamError { error } => {
            match classify_text(error, Subject::Container) {
                Some(Failure::DiskFull | Failure::InfraTransient) => None,
                _ => Some(error.clone()),
            }
        }
        _ => None,
    };
    let Some(error) = step_failed else {
        return wrap(format_args!("build image {tag}"), e, Subject::Container);
    };
    let (failure, what) = match kind {
        BuildKind::Patch => (Failure::PatchFailed, "the agent patch does not apply"),
        BuildKind::Wheel => {
            let t = tail.to_ascii_lowercase();
            let net = [
                "temporary failure in name resolution",
                "connection",
                "timed out",
            ];
            if net.iter().any(|n| t.contains(n)) && !t.contains("404") {
                (
                    Failure::InfraTransient,
                    "installing the wheel failed on the network",
                )
            } else {
                (
                    Failure::NoWheel,
                    "the per-commit wheel could not be installed",
                )
            }
        }
    };
    fail(
        failure,
        format!("{what} (building {tag}: {error}); last output:\n{tail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_contexts() {
        assert_eq!(
            derived_tag("vllm-abc+patch-123"),
            "perf-runner/vllm:vllm-abc-patch-123"
        );
        // Whole commits: identities sharing 20 leading digits get distinct tags.
        let a = format!("vllm-{}", "e3580537a41a46b0f3cd750b86b633c1857a8c90");
        let b = format!("vllm-{}", "e3580537a41a46b0f3cd0000000000000000ffff");
        assert_ne!(derived_tag(&a), derived_tag(&b));
        assert_eq!(derived_tag(&a), format!("perf-runner/vllm:{a}"));
        // The longest identity (commit and patch sha256) fits as it is; with a source hash
        // on top it takes the digest form, still distinct per patch.
        let longest = format!("{a}+patch-{}", "ab".repeat(32));
        assert_eq!(
            derived_tag(&longest),
            format!("perf-runner/vllm:{}", longest.replace('+', "-"))
        );
        let other_patch = format!("{a}+patch-{}{}", "ab".repeat(31), "cd");
        assert_ne!(
            derived_tag(&format!("{longest}-{}", "cd".repeat(8))),
            derived_tag(&format!("{other_patch}-{}", "cd".repeat(8)))
        );
        // Longer or odd identities: a digest, never a shared truncation.
        let long1 = format!("{}1", "x".repeat(200));
        let long2 = format!("{}2", "x".repeat(200));
        for t in [
            derived_tag(&long1),
            derived_tag(&long2),
            derived_tag("../a b"),
        ] {
            let tag = t.strip_prefix("perf-runner/vllm:").unwrap();
            assert!(tag.len() <= MAX_TAG, "{tag}");
            assert!(
                tag.starts_with(|c: char| c.is_ascii_alphanumeric()),
                "{tag}"
            );
        }
        assert_ne!(derived_tag(&long1), derived_tag(&long2));
        assert_ne!(derived_tag("a b"), derived_tag("a/b"));
        let tar = context("FROM x\n", &[("agent.patch", b"diff")]).unwrap();
        let mut a = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["Dockerfile", "agent.patch"]);
        assert!(exec_form(&["/bin/sh", "-c", "echo \"x\""]).starts_with("[\"/bin/sh\""));
    }

    #[test]
    fn failing_steps_are_the_patch_s_fault_and_engine_trouble_is_transient() {
        let step = bollard::errors::Error::DockerStreamError {
            error: "The command '/bin/sh -c set -e' returned a non-zero code: 1".into(),
        };
        let e = build_error("t", step, BuildKind::Patch, "1 out of 1 hunk FAILED");
        assert_eq!(e.kind, Failure::PatchFailed);
        assert!(e.message.contains("hunk FAILED"));
        assert!(
            e.message.contains("a build step exited with code 1") && !e.message.contains("set -e")
        );
        let eng = bollard::errors::Error::RequestTimeoutError;
        assert_eq!(
            build_error("t", eng, BuildKind::Patch, "").kind,
            Failure::InfraTransient
        );
    }
}
