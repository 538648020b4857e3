//! How each variant's engine is obtained. Resolution lives here so every backend agrees on
//! what "the baseline build" is.

use serde::{Deserialize, Serialize};

use crate::task::Variant;

/// First vLLM release with per-commit wheels on main.
pub const FIRST_WHEEL_VERSION: &str = "0.5.3";

/// Where a build can come from, in the order a backend should try them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Artifact {
    /// A per-commit wheel index (install with `uv pip install vllm --extra-index-url`).
    WheelIndex {
        /// Index URL.
        url: String,
    },
    /// A direct wheel file URL or local path.
    Wheel {
        /// URL or path.
        location: String,
    },
    /// A container image reference.
    Image {
        /// Image reference (`repo:tag`).
        reference: String,
    },
    /// Build from source at the commit.
    Source {
        /// Repository URL or local path.
        repo: String,
    },
}

/// The agent's patch, applied on top of the baseline build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSpec {
    /// Path of the patch file.
    pub path: String,
    /// sha256 of the patch file's bytes, when it was readable at planning time.
    pub sha256: Option<String>,
}

/// How to obtain the engine for one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The variant this build is for.
    pub variant: Variant,
    /// The commit whose engine is installed (the parent for baseline and agent).
    pub commit: String,
    /// Candidate sources, tried in order.
    pub artifacts: Vec<Artifact>,
    /// The agent patch, for the agent variant.
    pub patch: Option<PatchSpec>,
    /// A stable identity for caching environments: same identity, same environment.
    pub identity: String,
}

/// URL templates for per-commit artifacts; `{commit}` is replaced by the full hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSources {
    /// Per-commit wheel index URL template.
    pub wheel_index: String,
    /// Legacy per-commit wheel URL template.
    pub legacy_wheel: String,
    /// Per-commit post-merge image template.
    pub commit_image: String,
}

impl Default for ArtifactSources {
    fn default() -> Self {
        ArtifactSources {
            wheel_index: "https://wheels.vllm.ai/{commit}/".into(),
            legacy_wheel:
                "https://wheels.vllm.ai/{commit}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"
                    .into(),
            commit_image: "public.ecr.aws/q9t5s3a7/vllm-ci-postmerge-repo:{commit}".into(),
        }
    }
}

impl ArtifactSources {
    /// The candidate artifacts for a commit, in resolution order.
    pub fn candidates(&self, commit: &str) -> Vec<Artifact> {
        vec![
            Artifact::WheelIndex {
                url: self.wheel_index.replace("{commit}", commit),
            },
            Artifact::Wheel {
                location: self.legacy_wheel.replace("{commit}", commit),
            },
            Artifact::Image {
                reference: self.commit_image.replace("{commit}", commit),
            },
        ]
    }

    /// The build of `variant` for a task whose human commit is `commit` and parent `parent`.
    /// The agent build is the parent plus the patch; its identity includes the patch hash.
    pub fn build_for(
        &self,
        variant: Variant,
        commit: &str,
        parent: &str,
        patch: Option<PatchSpec>,
    ) -> BuildSpec {
        let engine_commit = match variant {
            Variant::Human => commit,
            Variant::Baseline | Variant::Agent => parent,
        };
        let patch = if variant == Variant::Agent {
            patch
        } else {
            None
        };
        let identity = match &patch {
            Some(p) => format!(
                "vllm-{}+patch-{}",
                short(engine_commit),
                p.sha256.as_deref().map(short).unwrap_or("unhashed")
            ),
            None => format!("vllm-{}", short(engine_commit)),
        };
        BuildSpec {
            variant,
            commit: engine_commit.to_string(),
            artifacts: self.candidates(engine_commit),
            patch,
            identity,
        }
    }
}

fn short(s: &str) -> &str {
    &s[..s.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_and_agent_build_the_parent() {
        let src = ArtifactSources::default();
        let b = src.build_for(Variant::Baseline, "aaaa", "bbbb", None);
        let p = PatchSpec {
            path: "x.patch".into(),
            sha256: Some("0123456789abcdef".into()),
        };
        let a = src.build_for(Variant::Agent, "aaaa", "bbbb", Some(p.clone()));
        let h = src.build_for(Variant::Human, "aaaa", "bbbb", Some(p));
        assert_eq!(b.commit, "bbbb");
        assert_eq!(a.commit, "bbbb");
        assert_eq!(h.commit, "aaaa");
        assert!(
            h.patch.is_none(),
            "the human build never carries the agent patch"
        );
        assert_ne!(a.identity, b.identity);
        assert!(matches!(&b.artifacts[0], Artifact::WheelIndex { url } if url.contains("bbbb")));
    }
}
