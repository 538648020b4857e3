//! Images: which image realises a build, its existence check and pull.
//!
//! Resolution order for a build without a patch:
//! 1. the explicit image of the variant (`docker.images`), never substituted when missing;
//! 2. the per-commit post-merge image(s) of the build (`Artifact::Image`; these expire);
//! 3. the release image `vllm/vllm-openai:v<version>` when the commit's version is configured;
//! 4. an image derived locally from `docker.base_image` plus the per-commit wheel
//!    (`perf-runner/vllm:<identity>`, reused when present).
//!
//! The agent build resolves its base the same way and applies the patch on top (see
//! [`crate::derive`]). An image present locally is used without contacting any registry
//! (unless `pull = "always"`), so `prepare` is cheap once images exist.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ImageInspect;
use bollard::query_parameters::CreateImageOptionsBuilder;
use futures::StreamExt;
use runner_core::{Artifact, BackendError, BuildSpec, Failure, PreparedEnv, RunContext};

use crate::DockerBackend;
use crate::config::PullPolicy;
use crate::error::{Subject, fail, is_not_found, wrap};

/// An image that realises a build.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The reference containers are created from.
    pub reference: String,
    /// What the engine knows about it.
    pub inspect: ImageInspect,
    /// Whether it was already present (no pull, no build).
    pub reused: bool,
}

/// `reference` with an explicit tag (`:latest` when it has neither a tag nor a digest), so a
/// pull never fetches every tag of a repository.
pub(crate) fn with_tag(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

/// The content identity of an image: its registry digest when it has one, else its id.
pub(crate) fn digest_of(i: &ImageInspect) -> Option<String> {
    i.repo_digests
        .as_ref()
        .and_then(|d| d.first().cloned())
        .or_else(|| i.id.clone())
}

/// A label of an image's config.
pub(crate) fn image_label<'a>(i: &'a ImageInspect, key: &str) -> Option<&'a str> {
    i.config
        .as_ref()
        .and_then(|c| c.labels.as_ref())
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

impl DockerBackend {
    /// `prepare`: the image of a build, its version and digest.
    pub(crate) async fn prepare_build(
        &self,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<PreparedEnv, BackendError> {
        let d = self.docker().await?;
        if let Err(e) = std::fs::create_dir_all(&cx.artifact_dir) {
            tracing::warn!(dir = %cx.artifact_dir.display(), "cannot create the artifact dir: {e}");
        }
        let resolved = match &build.patch {
            Some(p) => self.patched(&d, build, p, cx).await?,
            None => self.resolve(&d, build, cx).await?,
        };
        cx.progress.event(
            "prepare",
            &format!("{}: image {}", build.identity, resolved.reference),
        );
        let engine_version = self.engine_version(&d, &resolved, cx).await;
        Ok(PreparedEnv {
            identity: build.identity.clone(),
            handle: resolved.reference.clone(),
            engine_version,
            digest: digest_of(&resolved.inspect),
            reused: resolved.reused,
            scripts_dir: Some(self.config.vllm_source.clone()),
        })
    }

    /// The image of a build without a patch, by the resolution order.
    pub(crate) async fn resolve(
        &self,
        d: &Docker,
        build: &BuildSpec,
        cx: &RunContext,
    ) -> Result<Resolved, BackendError> {
        if let Some(img) = self.config.explicit_image(build.variant) {
            return self.ensure(d, img, cx).await;
        }
        let mut candidates: Vec<String> = build
            .artifacts
            .iter()
            .filter_map(|a| match a {
                Artifact::Image { reference } => Some(reference.clone()),
                _ => None,
            })
            .collect();
        candidates.extend(self.config.release_image_for(&build.commit));
        let mut tried = Vec::new();
        let mut transient = false;
        let mut wheel_failed = false;
        for c in candidates {
            match self.ensure(d, &c, cx).await {
                Ok(r) => return Ok(r),
                Err(e) if matches!(e.kind, Failure::NoImage | Failure::InfraTransient) => {
                    transient |= e.kind == Failure::InfraTransient;
                    tracing::info!(image = %c, "image unavailable: {}", e.message);
                    tried.push(e.message);
                }
                Err(e) => return Err(e),
            }
        }
        let wheels: Vec<&Artifact> = build
            .artifacts
            .iter()
            .filter(|a| matches!(a, Artifact::Wheel { .. } | Artifact::WheelIndex { .. }))
            .collect();
        match &self.config.base_image {
            Some(base) => {
                for w in wheels {
                    match self.wheel_image(d, build, base, w, cx).await {
                        Ok(r) => return Ok(r),
                        Err(e)
                            if matches!(
                                e.kind,
                                Failure::NoWheel | Failure::InfraTransient | Failure::NoImage
                            ) =>
                        {
                            transient |= e.kind == Failure::InfraTransient;
                            wheel_failed |= e.kind == Failure::NoWheel;
                            tried.push(e.message);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            None if !wheels.is_empty() => tried.push(
                "no base image is configured to install the per-commit wheel into \
                 (docker.base_image)"
                    .into(),
            ),
            None => {}
        }
        let kind = if transient {
            Failure::InfraTransient
        } else if wheel_failed {
            Failure::NoWheel
        } else {
            Failure::NoImage
        };
        Err(fail(
            kind,
            format!(
                "no image for {} (commit {}): {}",
                build.identity,
                build.commit,
                if tried.is_empty() {
                    "no candidate image".to_string()
                } else {
                    tried.join("; ")
                }
            ),
        ))
    }

    /// The image if present locally.
    pub(crate) async fn present(
        &self,
        d: &Docker,
        reference: &str,
    ) -> Result<Option<ImageInspect>, BackendError> {
        match d.inspect_image(reference).await {
            Ok(i) => Ok(Some(i)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(wrap(
                format_args!("inspect image '{reference}'"),
                e,
                Subject::Image,
            )),
        }
    }

    /// Make sure an image is present: inspect locally, else pull it (by the pull policy).
    pub(crate) async fn ensure(
        &self,
        d: &Docker,
        reference: &str,
        cx: &RunContext,
    ) -> Result<Resolved, BackendError> {
        let reference = with_tag(reference);
        if self.config.pull != PullPolicy::Always {
            if let Some(inspect) = self.present(d, &reference).await? {
                return Ok(Resolved {
                    reference,
                    inspect,
                    reused: true,
                });
            }
            if self.config.pull == PullPolicy::Never {
                return Err(fail(
                    Failure::NoImage,
                    format!(
                        "image '{reference}' is not present locally and pulling is off \
                         (docker.pull = \"never\")"
                    ),
                ));
            }
        }
        self.pull(d, &reference, cx).await?;
        match self.present(d, &reference).await? {
            Some(inspect) => Ok(Resolved {
                reference,
                inspect,
                reused: false,
            }),
            None => Err(fail(
                Failure::NoImage,
                format!("image '{reference}' is missing right after its pull"),
            )),
        }
    }

    /// Pull an image, reporting progress; an error inside the stream is an error.
    async fn pull(&self, d: &Docker, reference: &str, cx: &RunContext) -> Result<(), BackendError> {
        cx.progress.event("pull", &format!("pulling {reference}"));
        tracing::info!(image = %reference, "pulling");
        let opts = CreateImageOptionsBuilder::new()
            .from_image(reference)
            .build();
        let mut stream = d.create_image(Some(opts), None, None);
        let mut last = Instant::now();
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = cx.cancel.cancelled() => {
                    return Err(fail(Failure::Cancelled, format!("cancelled while pulling '{reference}'")));
                }
            };
            let Some(item) = item else { break };
            let info = item
                .map_err(|e| wrap(format_args!("pull image '{reference}'"), e, Subject::Image))?;
            let Some(status) = info.status else { continue };
            let final_line = status.starts_with("Status:") || status.starts_with("Digest:");
            if final_line || last.elapsed() >= Duration::from_secs(2) {
                let layer = info.id.map(|i| format!("{i}: ")).unwrap_or_default();
                cx.progress
                    .event("pull", &format!("{reference}: {layer}{status}"));
                last = Instant::now();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_a_tag() {
        assert_eq!(with_tag("vllm/vllm-openai"), "vllm/vllm-openai:latest");
        assert_eq!(
            with_tag("vllm/vllm-openai:v0.6.3"),
            "vllm/vllm-openai:v0.6.3"
        );
        assert_eq!(with_tag("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(with_tag("r/x@sha256:abc"), "r/x@sha256:abc");
    }

    #[test]
    fn digest_prefers_the_registry_digest() {
        let mut i = ImageInspect {
            id: Some("sha256:1".into()),
            ..Default::default()
        };
        assert_eq!(digest_of(&i).as_deref(), Some("sha256:1"));
        i.repo_digests = Some(vec!["r/x@sha256:2".into()]);
        assert_eq!(digest_of(&i).as_deref(), Some("r/x@sha256:2"));
    }
}
