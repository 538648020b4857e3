//! prepare: real venvs, real wheels, real installers.

use std::collections::BTreeMap;
use std::time::Instant;

use backend_local::{LocalBackend, LocalConfig};
use runner_core::{Artifact, Backend, Failure, Variant};

use crate::common::*;

#[tokio::test]
async fn installs_a_real_wheel_then_reuses_the_env() {
    let s = Scratch::new();
    let wheel = s.wheel();
    let backend = LocalBackend::new(s.config());
    let b = build(Variant::Baseline, &wheel);
    let t = Instant::now();
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    println!("fresh environment in {:?}", t.elapsed());
    assert!(!env.reused);
    assert_eq!(env.engine_version.as_deref(), Some(VERSION));
    let sha = backend_local::wheel::sha256_file(&wheel).unwrap();
    assert_eq!(env.digest, Some(format!("sha256:{sha}")));
    assert!(env.handle.ends_with(&b.identity), "{}", env.handle);
    assert!(
        std::path::Path::new(&env.handle)
            .join("bin/python")
            .exists()
    );
    assert_eq!(env.scripts_dir, None);

    // A second backend (a later run) finds the complete env.
    let again = LocalBackend::new(s.config());
    let t = Instant::now();
    let env2 = again.prepare(&b, &s.cx()).await.unwrap();
    let took = t.elapsed();
    println!("reused environment in {took:?}");
    assert!(env2.reused);
    assert_eq!(env2.engine_version, env.engine_version);
    assert_eq!(env2.digest, env.digest);
}

#[tokio::test]
async fn commits_sharing_a_prefix_get_their_own_envs() {
    let s = Scratch::new();
    let wheel = s.wheel();
    let backend = LocalBackend::new(s.config());
    let sources = runner_core::build::ArtifactSources::default();
    // Shares its first 20 hex digits (so also its first 12) with COMMIT; the fake wheel's
    // `+gabcdef12` matches both.
    let other = format!("{}{}", &COMMIT[..20], "0".repeat(20));
    let mut envs = Vec::new();
    for commit in [COMMIT, other.as_str(), &COMMIT[..12]] {
        let mut b = sources.build_for(Variant::Human, commit, commit, None);
        b.artifacts = vec![Artifact::Wheel {
            location: wheel.display().to_string(),
        }];
        let env = backend.prepare(&b, &s.cx()).await.unwrap();
        assert!(
            !env.reused,
            "{commit} reused another commit's env {}",
            env.handle
        );
        assert!(env.handle.ends_with(commit), "{}", env.handle);
        envs.push(env.handle);
    }
    envs.sort();
    envs.dedup();
    assert_eq!(envs.len(), 3, "{envs:?}");
    assert!(
        envs.iter()
            .all(|e| std::path::Path::new(e).join("bin/python").exists())
    );
}

#[tokio::test]
async fn an_incomplete_env_is_rebuilt() {
    let s = Scratch::new();
    let wheel = s.wheel();
    let backend = LocalBackend::new(s.config());
    let b = build(Variant::Human, &wheel);
    let dir = s.config().venv_dir(&b.identity);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("half-written"), "x").unwrap();
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    assert!(!env.reused);
    assert!(!dir.join("half-written").exists());
}

#[tokio::test]
async fn explicit_wheel_with_python_venv_and_pip_when_uv_is_absent() {
    let s = Scratch::new();
    let wheel = s.wheel();
    let mut cfg = s.config();
    cfg.uv = s.path("no-uv");
    cfg.wheels = BTreeMap::from([(Variant::Baseline, wheel.display().to_string())]);
    let backend = LocalBackend::new(cfg);
    let mut b = build(Variant::Agent, &wheel);
    b.artifacts.clear(); // only the explicit wheel (the agent falls back to the baseline's)
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    assert_eq!(env.engine_version.as_deref(), Some(VERSION));
    let cfg =
        std::fs::read_to_string(std::path::Path::new(&env.handle).join("pyvenv.cfg")).unwrap();
    assert!(
        !cfg.contains("uv ="),
        "made by python -m venv, not uv: {cfg}"
    );
}

#[tokio::test]
async fn missing_wheels_are_no_wheel_and_network_errors_transient() {
    let s = Scratch::new();
    let port = http_server(BTreeMap::new()).await;
    let backend = LocalBackend::new(s.config());
    let mut b = build(Variant::Baseline, &s.path("wheels/none.whl"));
    b.artifacts.insert(
        0,
        Artifact::Wheel {
            location: format!(
                "http://127.0.0.1:{port}/{COMMIT}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl"
            ),
        },
    );
    let e = backend.prepare(&b, &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::NoWheel, "{e}");
    assert!(
        e.message.contains("404") && e.message.contains("none.whl"),
        "{e}"
    );
    assert!(
        !s.config().venv_dir(&b.identity).exists(),
        "a failed env is removed"
    );

    let closed = backend_local::process::free_port().unwrap();
    b.artifacts = vec![Artifact::Wheel {
        location: format!("http://127.0.0.1:{closed}/vllm.whl"),
    }];
    let e = backend.prepare(&b, &s.cx()).await.unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_wheel_from_another_commit_is_environment_broken() {
    let s = Scratch::new();
    let wheel = fake_wheel(&s.path("wheels"), "0.6.3.dev9+g1234567");
    let backend = LocalBackend::new(s.config());
    let e = backend
        .prepare(&build(Variant::Baseline, &wheel), &s.cx())
        .await
        .unwrap_err();
    assert_eq!(e.kind, Failure::EnvironmentBroken);
    assert!(
        e.message.contains("1234567") && e.message.contains(COMMIT),
        "{e}"
    );
}

#[tokio::test]
async fn downloads_a_wheel_by_url_and_fetches_scripts_by_template() {
    let s = Scratch::new();
    let wheel = s.wheel();
    let name = wheel
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace('+', "%2B");
    let files = BTreeMap::from([
        (format!("/w/{name}"), std::fs::read(&wheel).unwrap()),
        (
            format!("/src/{COMMIT}/benchmarks/benchmark_serving.py"),
            b"print('serving')\n".to_vec(),
        ),
    ]);
    let port = http_server(files).await;
    let cfg = LocalConfig {
        vllm_source: Some(format!("http://127.0.0.1:{port}/src/{{commit}}/{{path}}")),
        ..s.config()
    };
    let backend = LocalBackend::new(cfg);
    let mut b = build(Variant::Human, &wheel);
    b.artifacts = vec![Artifact::Wheel {
        location: format!("http://127.0.0.1:{port}/w/{name}"),
    }];
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    let sha = backend_local::wheel::sha256_file(&wheel).unwrap();
    assert_eq!(env.digest, Some(format!("sha256:{sha}")));
    let scripts = env.scripts_dir.expect("scripts");
    let script = std::path::Path::new(&scripts).join("benchmarks/benchmark_serving.py");
    assert_eq!(
        std::fs::read_to_string(script).unwrap(),
        "print('serving')\n"
    );
}

#[tokio::test]
async fn extracts_scripts_from_a_git_clone_at_the_commit() {
    let s = Scratch::new();
    let repo = s.path("repo");
    std::fs::create_dir_all(repo.join("benchmarks")).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid", "-C"])
            .arg(&repo)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    std::fs::write(
        repo.join("benchmarks/benchmark_throughput.py"),
        "print('v1')\n",
    )
    .unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "v1"]);
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(
        repo.join("benchmarks/benchmark_throughput.py"),
        "print('v2')\n",
    )
    .unwrap();
    git(&["commit", "-qam", "v2"]);

    let cfg = LocalConfig {
        vllm_source: Some(repo.display().to_string()),
        ..s.config()
    };
    let backend = LocalBackend::new(cfg);
    // A release-style version (no +g<hash>), so any commit passes the version check.
    let mut b = build(Variant::Baseline, &fake_wheel(&s.path("wheels"), "0.6.3"));
    b.commit = first.clone();
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    let scripts = env.scripts_dir.expect("scripts");
    let text = std::fs::read_to_string(
        std::path::Path::new(&scripts).join("benchmarks/benchmark_throughput.py"),
    )
    .unwrap();
    assert_eq!(
        text, "print('v1')\n",
        "the scripts are those of the build's commit"
    );
    assert!(scripts.ends_with(&first));
}

/// A host whose PyTorch lives in a venv: `host_site_packages` links that interpreter's
/// site-packages into the new venv, which then imports what only the host has (here `uv`'s
/// Python package, installed in the base interpreter but not in the venv).
#[tokio::test]
async fn host_site_packages_are_linked_into_the_venv() {
    let s = Scratch::new();
    let host_has_uv = std::process::Command::new("python3")
        .args(["-c", "import uv"])
        .status()
        .is_ok_and(|st| st.success());
    if !host_has_uv {
        eprintln!("the host python has no 'uv' package to import through the link; skipped");
        return;
    }
    let wheel = s.wheel();
    let mut cfg = s.config();
    cfg.host_site_packages = true;
    let backend = LocalBackend::new(cfg.clone());
    let b = build(Variant::Baseline, &wheel);
    let env = backend.prepare(&b, &s.cx()).await.unwrap();
    let dir = cfg.venv_dir(&b.identity);
    let site = backend_local::venv::site_packages(&dir).unwrap();
    let pth = std::fs::read_to_string(site.join("_perf_runner_host.pth")).unwrap();
    assert!(pth.contains("site-packages"), "{pth}");
    let ok = std::process::Command::new(backend_local::venv::python(&dir))
        .args(["-c", "import uv, vllm; print(vllm.__version__)"])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(env.engine_version.as_deref(), Some(VERSION));
}
