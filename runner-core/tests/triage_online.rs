//! Online checks against a local HTTP server: wheel index, legacy wheel, image manifest (with
//! the registry token exchange), retries of transient failures, and a raw-file vLLM source.

#[path = "fixtures/triage/fake_vllm.rs"]
mod fake_vllm;
#[path = "fixtures/triage/http_server.rs"]
mod http_server;
#[path = "fixtures/triage/support.rs"]
mod support;

use std::time::Duration;

use http_server::{Server, body, status};
use runner_core::build::ArtifactSources;
use runner_core::failure::Failure;
use runner_core::task::Task;
use runner_core::triage::{TriageOptions, Verdict, VllmSource, triage_dataset};
use support::{hash, serving, task};

const FILES: &[&str] = &["vllm/worker.py"];
const DATE: &str = "2025-06-20";

fn opts(server: &Server) -> TriageOptions {
    TriageOptions {
        online: true,
        sources: ArtifactSources {
            wheel_index: format!("{}/wheels/{{commit}}/", server.base),
            legacy_wheel: format!(
                "{}/wheels/{{commit}}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl",
                server.base
            ),
            commit_image: "unused".into(),
        },
        image_manifest_url: format!(
            "{}/v2/q9t5s3a7/vllm-ci-postmerge-repo/manifests/{{commit}}",
            server.base
        ),
        http_timeout: Duration::from_secs(5),
        retries: 2,
        retry_backoff: Duration::from_millis(20),
        ..TriageOptions::default()
    }
}

fn with_parent(n: u32, cmd: &str, parent: &str) -> Task {
    let mut t = task(n, cmd, Some("H100:2"), FILES, DATE);
    t.parent = Some(parent.to_string());
    t
}

#[tokio::test]
async fn wheels_images_and_retries() {
    let server = Server::start().await;
    let index = |c: &str| format!("/wheels/{c}/");
    let legacy = |c: &str| format!("/wheels/{c}/vllm-1.0.0.dev-cp38-abi3-manylinux1_x86_64.whl");
    let manifest = |c: &str| format!("/v2/q9t5s3a7/vllm-ci-postmerge-repo/manifests/{c}");
    let (ok, gone, flaky, down, old) = (hash(901), hash(902), hash(903), hash(904), hash(905));
    let listing = "<a href=\"vllm-0.6.4.dev12%2Bgabcdef-cp38-abi3-manylinux1_x86_64.whl\">x</a>";
    server.route(&index(&ok), vec![body(listing)]);
    server.route(&index(&flaky), vec![status(503), body("<html></html>")]);
    server.route(&index(&down), vec![status(503)]);
    server.route(&legacy(&down), vec![status(503)]);
    server.route(&legacy(&old), vec![status(200)]);
    server.route("/token", vec![body("{\"token\":\"T0K\"}")]);
    for c in [&ok, &flaky, &old] {
        server.route(&manifest(c), vec![status(200)]);
        server.require_bearer(&manifest(c), "T0K");
    }
    // Every task's human commit has a wheel (index 200 after one retry).
    let llama = serving("meta-llama/Llama-3.1-8B-Instruct", "");
    let mut tasks: Vec<Task> = [&ok, &gone, &flaky, &down, &old]
        .iter()
        .enumerate()
        .map(|(i, p)| with_parent(i as u32 + 1, &llama, p))
        .collect();
    for t in &mut tasks {
        t.commit = flaky.clone();
    }
    tasks.push(with_parent(
        6,
        &serving("Qwen/Qwen3-30B-A3B", "--tensor-parallel-size 2"),
        &ok,
    ));
    tasks[5].commit = flaky.clone();

    let r = triage_dataset(&tasks, &opts(&server)).await;
    let t = &r.tasks;
    assert_eq!(t[0].verdict, Verdict::Verifiable, "{:#?}", t[0]);
    assert!(
        t[0].warnings.iter().all(|w| !w.contains("no_image")),
        "{:?}",
        t[0].warnings
    );
    assert!(
        t[0].not_checked.iter().all(|n| !n.contains("image")),
        "token exchange: {:?}",
        t[0].not_checked
    );
    assert_eq!(server.hits("/token"), 1, "one token for the repository");

    let nw = t[1]
        .reasons
        .iter()
        .find(|r| r.code == Failure::NoWheel)
        .expect("no_wheel");
    assert!(nw.detail.contains("baseline"), "{}", nw.detail);
    assert!(
        nw.evidence.iter().any(|e| e.contains("→ HTTP 404")),
        "{:?}",
        nw.evidence
    );
    assert!(
        t[1].warnings
            .iter()
            .any(|w| w.starts_with("no_image") && w.contains("baseline")),
        "{:?}",
        t[1].warnings
    );

    assert_eq!(t[2].verdict, Verdict::Verifiable, "{:#?}", t[2]);
    assert_eq!(server.hits(&index(&flaky)), 2, "503 then 200: one retry");

    assert_eq!(
        t[3].verdict,
        Verdict::Verifiable,
        "a persistent 503 is no verdict: {:#?}",
        t[3]
    );
    assert!(
        t[3].not_checked
            .iter()
            .any(|n| n.contains("HTTP 503 after 3 attempt(s)")),
        "{:?}",
        t[3].not_checked
    );
    assert_eq!(server.hits(&index(&down)), 3);

    assert_eq!(
        t[4].verdict,
        Verdict::Verifiable,
        "the legacy wheel counts: {:#?}",
        t[4]
    );

    // The wheel index of the parent says 0.6.4.dev: Qwen3-MoE is not there yet, whatever the date.
    let r5 = t[5].primary().expect("a reason");
    assert_eq!(r5.code, Failure::ModelUnsupported, "{:#?}", t[5]);
    assert!(
        r5.evidence
            .iter()
            .any(|e| e.contains("lists vllm 0.6.4.dev12")),
        "{:?}",
        r5.evidence
    );
    assert!(r.skip_list().lines().all(|l| !l.starts_with(&down)));
}

#[tokio::test]
async fn a_refused_connection_is_not_checked() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut dead = Server::start().await;
    dead.base = format!("http://127.0.0.1:{port}");
    let tasks = vec![with_parent(
        1,
        &serving("meta-llama/Llama-3.1-8B-Instruct", ""),
        &hash(7),
    )];
    let r = triage_dataset(&tasks, &opts(&dead)).await;
    let t = &r.tasks[0];
    assert_eq!(t.verdict, Verdict::Verifiable, "{t:#?}");
    // One probe tells the servers do not answer: said once, artifacts judged by date, and
    // the report does not claim online probes.
    assert!(!r.online);
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("online probes skipped") && n.contains("connection")),
        "{:?}",
        r.notes
    );
}

#[tokio::test]
async fn raw_file_source_over_http() {
    let repo = fake_vllm::FakeVllm::new();
    let server = Server::start().await;
    let [c0, c1, c2, c3] = [0, 1, 2, 3].map(|i| repo.commits[i].clone());
    for c in [&c0, &c1, &c2, &c3] {
        for p in [
            "vllm/__init__.py",
            "vllm/model_executor/models/registry.py",
            "benchmarks/benchmark_serving.py",
            "vllm/engine/arg_utils.py",
            "vllm/envs.py",
        ] {
            if let Some(text) = repo.show(c, p) {
                server.route(&format!("/raw/{c}/{p}"), vec![body(&text)]);
            }
        }
    }
    let qwen = serving("Qwen/Qwen3-30B-A3B", "--tensor-parallel-size 2");
    let mut a = with_parent(1, &qwen, &c0);
    a.commit = c1.clone();
    let mut b = with_parent(2, &qwen, &c2);
    b.commit = c3.clone();
    let mut orphan = task(3, &qwen, Some("H100:2"), FILES, DATE);
    orphan.parent = None;
    let src = VllmSource::parse(&format!("{}/raw/{{commit}}/{{path}}", server.base));
    let o = TriageOptions {
        vllm_source: Some(src),
        ..opts(&server)
    };
    let r = triage_dataset(&[a, b, orphan], &o).await;
    let e: Vec<String> = r.tasks[0]
        .reasons
        .iter()
        .flat_map(|r| r.evidence.clone())
        .collect();
    assert!(
        e.iter().any(|e| e
            == &format!(
                "vllm/model_executor/models/registry.py@{}: no \"Qwen3MoeForCausalLM\"",
                &c0[..12]
            )),
        "{e:?}"
    );
    assert!(
        r.tasks[1]
            .reasons
            .iter()
            .all(|r| r.code != Failure::ModelUnsupported),
        "{:#?}",
        r.tasks[1]
    );
    assert!(
        r.tasks[2]
            .not_checked
            .iter()
            .any(|n| n.contains("cannot resolve COMMIT^")),
        "{:?}",
        r.tasks[2].not_checked
    );
    assert_eq!(
        server.hits(&format!("/raw/{c0}/vllm/model_executor/models/registry.py")),
        1,
        "fetched once, cached"
    );
}

#[test]
fn github_urls_become_raw_templates() {
    match VllmSource::parse("https://github.com/vllm-project/vllm") {
        VllmSource::Http { template, .. } => {
            assert_eq!(
                template,
                "https://raw.githubusercontent.com/vllm-project/vllm/{commit}/{path}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(VllmSource::parse("/src/vllm"), VllmSource::Git(_)));
}

#[test]
fn image_manifest_url_from_the_settings() {
    let o = TriageOptions::from_sources(ArtifactSources::default());
    assert_eq!(
        o.image_manifest_url,
        runner_core::triage::DEFAULT_IMAGE_MANIFEST_URL
    );
    assert_eq!(
        runner_core::triage::manifest_url_for_image("ghcr.io/acme/vllm:{commit}").as_deref(),
        Some("https://ghcr.io/v2/acme/vllm/manifests/{commit}")
    );
    assert!(runner_core::triage::manifest_url_for_image("vllm:{commit}").is_none());
}
