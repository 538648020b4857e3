//! Image recipes: how a build's artifact becomes a `modal.Image` (a registry image, or a slim
//! Python image with the per-commit wheel installed by uv), the benchmark scripts layer, the
//! agent patch layer, and the serving client's layer.

use std::path::Path;

use runner_core::{Artifact, BuildSpec};
use serde::{Deserialize, Serialize};

use crate::classify::BuildArtifact;
use crate::config::ModalConfig;
use crate::protocol::{ImageBase, ImageOp, ImageRecipe};

/// Where the benchmark scripts of the engine build live in the image.
pub const SCRIPTS_DIR: &str = "/opt/vllm-src";
/// Where the benchmark scripts of the serving client's build live.
pub const CLIENT_SCRIPTS_DIR: &str = "/opt/vllm-src-client";
/// The serving client's venv (when its build differs from the engine's).
pub const CLIENT_VENV: &str = "/opt/perf-runner/client";
/// Where the agent patch is copied in the image.
pub const PATCH_PATH: &str = "/opt/perf-runner/agent.patch";
/// The uv binary copied in for the client venv (the path `uv_pip_install` uses too).
pub const UV: &str = "/.uv/uv";

/// How one artifact is installed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Install {
    /// `uv pip install` of requirements (a per-commit index, a wheel URL or a local wheel).
    Wheel {
        /// Requirements or wheel URLs.
        packages: Vec<String>,
        /// `--extra-index-url`.
        extra_index_url: Option<String>,
        /// A local wheel copied into the image first: (local path, path in the image).
        local: Option<(String, String)>,
    },
    /// A registry image.
    Registry {
        /// Image reference.
        reference: String,
    },
}

/// One way to obtain a build, in the order tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// What a failing build of it means (`no_wheel` / `no_image`).
    #[serde(skip)]
    pub artifact: Option<BuildArtifact>,
    /// For people: `wheel index https://…`.
    pub label: String,
    /// How it is installed.
    pub install: Install,
}

/// The candidates of a build: configured images for the commit first, then the build's
/// artifacts (images first when `prefer_image`); source builds are not supported on Modal.
pub fn candidates(cfg: &ModalConfig, build: &BuildSpec) -> Vec<Candidate> {
    let mut wheels = Vec::new();
    let mut images = Vec::new();
    for a in &build.artifacts {
        match a {
            Artifact::WheelIndex { url } => wheels.push(Candidate {
                artifact: Some(BuildArtifact::Wheel),
                label: format!("wheel index {url}"),
                install: Install::Wheel {
                    packages: vec!["vllm".into()],
                    extra_index_url: Some(url.clone()),
                    local: None,
                },
            }),
            Artifact::Wheel { location } => wheels.push(wheel_candidate(location)),
            Artifact::Image { reference } => images.push(registry(reference)),
            Artifact::Source { .. } => {}
        }
    }
    let mut out: Vec<Candidate> = cfg
        .image_for_commit(&build.commit)
        .map(registry)
        .into_iter()
        .collect();
    if cfg.prefer_image {
        out.extend(images);
        out.extend(wheels);
    } else {
        out.extend(wheels);
        out.extend(images);
    }
    out
}

fn registry(reference: &str) -> Candidate {
    Candidate {
        artifact: Some(BuildArtifact::Image),
        label: format!("image {reference}"),
        install: Install::Registry {
            reference: reference.to_string(),
        },
    }
}

fn wheel_candidate(location: &str) -> Candidate {
    let remote = location.starts_with("http://") || location.starts_with("https://");
    let (packages, local) = if remote {
        (vec![location.to_string()], None)
    } else {
        let name = Path::new(location)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "vllm.whl".into());
        let in_image = format!("/opt/perf-runner/wheels/{name}");
        (
            vec![in_image.clone()],
            Some((location.to_string(), in_image)),
        )
    };
    Candidate {
        artifact: Some(BuildArtifact::Wheel),
        label: format!("wheel {location}"),
        install: Install::Wheel {
            packages,
            extra_index_url: None,
            local,
        },
    }
}

/// The engine image of a candidate at `commit`.
pub fn engine_recipe(cfg: &ModalConfig, install: &Install, commit: &str) -> ImageRecipe {
    let mut ops = Vec::new();
    let base = match install {
        Install::Wheel {
            packages,
            extra_index_url,
            local,
        } => {
            if let Some((l, r)) = local {
                ops.push(ImageOp::AddLocalFile {
                    local_path: l.clone(),
                    remote_path: r.clone(),
                    copy: true,
                });
            }
            let mut packages = packages.clone();
            packages.extend(cfg.extra_pip.iter().cloned());
            ops.push(ImageOp::UvPipInstall {
                packages,
                extra_index_url: extra_index_url.clone(),
                pre: true,
            });
            ImageBase::DebianSlim {
                python_version: cfg.python_version.clone(),
            }
        }
        Install::Registry { reference } => {
            ops.push(ImageOp::Entrypoint { args: Vec::new() });
            if !cfg.extra_pip.is_empty() {
                let pkgs: Vec<String> = cfg.extra_pip.iter().map(|p| quote(p)).collect();
                ops.push(ImageOp::RunCommands {
                    commands: vec![format!(
                        "{} -m pip install {}",
                        cfg.container_python,
                        pkgs.join(" ")
                    )],
                });
            }
            ImageBase::Registry {
                reference: reference.clone(),
            }
        }
    };
    ops.extend(scripts_op(cfg, commit, SCRIPTS_DIR, &cfg.container_python));
    ImageRecipe { base, ops }
}

/// The layer that fetches `benchmarks/*.py` at `commit` into `dir` (best effort per file).
fn scripts_op(cfg: &ModalConfig, commit: &str, dir: &str, python: &str) -> Option<ImageOp> {
    scripts_command(cfg, commit, dir, python).map(|cmd| ImageOp::RunCommands {
        commands: vec![cmd],
    })
}

/// The shell command that fetches the configured script files at `commit` into `dir` with
/// `python` (urllib; a file that cannot be fetched is skipped and reported).
pub fn scripts_command(cfg: &ModalConfig, commit: &str, dir: &str, python: &str) -> Option<String> {
    const FETCH: &str = "import os,sys,urllib.request as u\nd,c,t=sys.argv[1:4]\nn=0\n\
        for p in sys.argv[4:]:\n  f=os.path.join(d,p)\n  os.makedirs(os.path.dirname(f),exist_ok=True)\n  \
        try:\n    u.urlretrieve(t.replace(\"{commit}\",c).replace(\"{path}\",p),f)\n    n+=1\n  \
        except Exception as e:\n    print(\"skipped\",p,e)\nprint(\"fetched\",n,\"benchmark scripts\")\n";
    let template = cfg.vllm_source.as_deref()?;
    if cfg.script_files.is_empty() {
        return None;
    }
    let mut cmd = format!(
        "{python} -c {} {} {} {}",
        quote(&format!("exec({FETCH:?})")),
        quote(dir),
        quote(commit),
        quote(template)
    );
    for f in &cfg.script_files {
        cmd.push(' ');
        cmd.push_str(&quote(f));
    }
    Some(cmd)
}

/// The scripts dir an engine image of this config has, if any.
pub fn scripts_dir(cfg: &ModalConfig) -> Option<String> {
    (cfg.vllm_source.is_some() && !cfg.script_files.is_empty()).then(|| SCRIPTS_DIR.to_string())
}

/// The serving client's layer: its build installed into a venv, and its scripts.
pub fn client_ops(
    cfg: &ModalConfig,
    install: &Install,
    commit: &str,
) -> Result<Vec<ImageOp>, String> {
    let Install::Wheel {
        packages,
        extra_index_url,
        local,
    } = install
    else {
        return Err(
            "the serving client's build is a container image, and a Modal sandbox runs one \
             image: give the client build a wheel (or run the same build for both)"
                .into(),
        );
    };
    let mut ops = vec![ImageOp::DockerfileCommands {
        commands: vec![format!("COPY --from=ghcr.io/astral-sh/uv:latest /uv {UV}")],
    }];
    if let Some((l, r)) = local {
        ops.push(ImageOp::AddLocalFile {
            local_path: l.clone(),
            remote_path: r.replace("/wheels/", "/client-wheels/"),
            copy: true,
        });
    }
    let mut install_cmd =
        format!("{UV} pip install --python {CLIENT_VENV}/bin/python --prerelease allow");
    if let Some(url) = extra_index_url {
        install_cmd.push_str(&format!(" --extra-index-url {}", quote(url)));
    }
    for p in packages.iter().chain(cfg.extra_pip.iter()) {
        install_cmd.push(' ');
        install_cmd.push_str(&quote(&p.replace("/wheels/", "/client-wheels/")));
    }
    ops.push(ImageOp::RunCommands {
        commands: vec![
            format!(
                "{UV} venv {CLIENT_VENV} --python \"$(command -v {})\"",
                cfg.container_python
            ),
            install_cmd,
        ],
    });
    ops.extend(scripts_op(
        cfg,
        commit,
        CLIENT_SCRIPTS_DIR,
        &format!("{CLIENT_VENV}/bin/python"),
    ));
    Ok(ops)
}

/// A shell word.
pub fn quote(s: &str) -> String {
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| format!("'{}'", s.replace(['\0', '\''], "")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wheels_first_unless_images_preferred() {
        let build = runner_core::build::ArtifactSources::default().build_for(
            runner_core::Variant::Human,
            "abcdef0123",
            "0123abcdef",
            None,
        );
        let mut cfg = ModalConfig::default();
        let c = candidates(&cfg, &build);
        assert_eq!(c[0].artifact, Some(BuildArtifact::Wheel));
        assert_eq!(c.last().unwrap().artifact, Some(BuildArtifact::Image));
        cfg.prefer_image = true;
        assert_eq!(
            candidates(&cfg, &build)[0].artifact,
            Some(BuildArtifact::Image)
        );
        let r = engine_recipe(&cfg, &c[0].install, "abcdef0123");
        assert!(matches!(r.base, ImageBase::DebianSlim { .. }));
        assert!(
            matches!(&r.ops[0], ImageOp::UvPipInstall { extra_index_url: Some(u), pre: true, .. } if u.contains("abcdef0123"))
        );
        assert!(client_ops(&cfg, &c.last().unwrap().install, "x").is_err());
        assert!(client_ops(&cfg, &c[0].install, "x").unwrap().len() >= 2);
    }
}
