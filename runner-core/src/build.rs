//! How each variant's engine is obtained. Resolution lives here so every backend agrees on
//! what "the baseline build" is.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::task::Variant;

/// First vLLM release with per-commit wheels on main.
pub const FIRST_WHEEL_VERSION: &str = "0.5.3";

/// Where a build can come from, in the order a backend should try them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PatchSpec {
    /// Path of the patch file.
    pub path: String,
    /// sha256 of the patch file's bytes, when it was readable at planning time.
    pub sha256: Option<String>,
}

/// How to obtain the engine for one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BuildSpec {
    /// The variant this build is for.
    pub variant: Variant,
    /// The commit whose engine is installed (the parent for baseline and agent).
    pub commit: String,
    /// Candidate sources, tried in order.
    pub artifacts: Vec<Artifact>,
    /// The agent patch, for the agent variant.
    pub patch: Option<PatchSpec>,
    /// A stable identity for caching environments: same identity, same environment. It names
    /// venvs, images and caches, so it holds the whole commit (never a prefix two commits
    /// could share) and the whole patch sha256; see [`name_part`].
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
                name_part(engine_commit),
                match p.sha256.as_deref() {
                    Some(sha) => name_part(sha).into_owned(),
                    // Unread at planning time: the path at least tells patches apart (backends
                    // add the content hash once they read the file).
                    None => format!("unhashed-{}", &digest(&p.path)[..32]),
                }
            ),
            None => format!("vllm-{}", name_part(engine_commit)),
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

/// A part of a name (directory, image tag, cache key) for a commit or a hash that can never
/// be shared by two different inputs: the input itself when it is plain (lower-case ASCII
/// letters and digits only, at most 64 — a full or abbreviated commit as datasets give it, a
/// sha256; nothing a case-insensitive file system could fold together), else
/// `h` and 32 hex digits of its sha256. A short commit stays distinct from the full hash it
/// abbreviates (`abcdef1` ≠ `abcdef1234…`): the name is exactly what was given.
pub fn name_part(s: &str) -> Cow<'_, str> {
    if !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(format!("h{}", &digest(s)[..32]))
    }
}

/// Hex sha256 of a string.
fn digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
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

    const A: &str = "e3580537a41a46b0f3cd750b86b633c1857a8c90";
    /// Shares its first 20 hex digits (and so its first 12) with `A`.
    const B: &str = "e3580537a41a46b0f3cd0000000000000000ffff";

    #[test]
    fn commits_sharing_a_prefix_get_distinct_identities() {
        let src = ArtifactSources::default();
        assert_eq!(A[..20], B[..20]);
        let id = |c: &str| src.build_for(Variant::Human, c, "0000000", None).identity;
        assert_ne!(id(A), id(B));
        assert_eq!(id(A), format!("vllm-{A}"), "readable: the whole commit");
        // A dataset's short hash stays distinct from the full hash it abbreviates.
        assert_ne!(id(&A[..7]), id(A));
        assert_ne!(id(&A[..12]), id(B));
        let base = |c: &str| {
            src.build_for(Variant::Baseline, "0000000", c, None)
                .identity
        };
        assert_ne!(base(A), base(B));
    }

    #[test]
    fn patch_identities_hold_the_whole_hash() {
        let src = ArtifactSources::default();
        let patch = |sha: Option<String>, path: &str| {
            src.build_for(
                Variant::Agent,
                A,
                B,
                Some(PatchSpec {
                    path: path.into(),
                    sha256: sha,
                }),
            )
            .identity
        };
        let s1 = "ab".repeat(32);
        let s2 = format!("{}{}", &s1[..40], "cd".repeat(12));
        assert_ne!(patch(Some(s1.clone()), "p"), patch(Some(s2), "p"));
        assert_eq!(patch(Some(s1.clone()), "p"), format!("vllm-{B}+patch-{s1}"));
        assert_ne!(patch(None, "a.patch"), patch(None, "b.patch"));
        assert_eq!(patch(None, "a.patch"), patch(None, "a.patch"));
    }

    #[test]
    fn name_parts_are_plain_or_a_digest() {
        assert!(matches!(name_part(A), Cow::Borrowed(_)));
        for odd in ["a/b", "a_b", "../x", "", "ABC", &"f".repeat(65)] {
            let n = name_part(odd);
            assert!(n.starts_with('h') && n.len() == 33, "{odd:?}: {n}");
            assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        assert_ne!(name_part("a/b"), name_part("a_b"));
        assert_ne!(name_part("ABC"), name_part("abc"));
    }
}
