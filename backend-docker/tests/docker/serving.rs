//! Whole steps: three variants of a serving benchmark through `prepare` + `execute`, an offline
//! benchmark, and a leftover container with the step's name.

use std::collections::BTreeMap;

use backend_docker::LABEL_RUN_ID;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::CreateContainerOptionsBuilder;
use runner_core::backend::{JobEnvs, StepOutput};
use runner_core::benchmark::{OutputSource, RunOutput, SourceKind};
use runner_core::{Backend, Metrics, Mode, Variant};

use crate::support::{self, BASELINE, HUMAN};

/// The metrics runner-core's parser reads from a step's outputs, as the engine does.
fn metrics(mode: Mode, out: &StepOutput) -> Metrics {
    let mut sources = Vec::new();
    let mut add = |p: &std::path::Path, kind| {
        if let Ok(text) = std::fs::read_to_string(p) {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            sources.push(OutputSource { name, kind, text });
        }
    };
    for f in &out.result_files {
        add(f, SourceKind::ResultJson);
    }
    add(&out.client_stdout, SourceKind::Stdout);
    add(&out.client_stderr, SourceKind::Stderr);
    let run = RunOutput {
        sources,
        exit_code: out.exit_code,
    };
    let parsed = runner_core::parse::benchmark_for(mode).parse(&run);
    assert!(parsed.failure.is_none(), "{:?}", parsed.failure);
    parsed.metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_variants_serve_with_the_same_client() {
    let Some(d) = support::engine("three_variants_serve_with_the_same_client").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let b = support::backend(dir.path(), |_| {});
    let plan = support::plan(dir.path(), support::SERVE);
    let run = support::run_id("serve3");
    let mut envs = BTreeMap::new();
    for build in &plan.builds {
        let cx = support::context(dir.path(), &run, &format!("prepare-{}", build.variant));
        let env = b
            .prepare(build, &cx)
            .await
            .unwrap_or_else(|e| panic!("prepare {}: {e}", build.variant));
        envs.insert(build.variant, env);
    }
    assert_eq!(envs[&Variant::Baseline].handle, BASELINE);
    assert_eq!(envs[&Variant::Human].handle, HUMAN);
    let agent = &envs[&Variant::Agent];
    assert!(
        agent.handle.starts_with("perf-runner/vllm:"),
        "{}",
        agent.handle
    );
    assert_eq!(
        agent.engine_version.as_deref(),
        Some(support::AGENT_VERSION)
    );
    assert_eq!(
        envs[&Variant::Human].engine_version.as_deref(),
        Some(support::HUMAN_VERSION)
    );
    assert!(
        agent
            .digest
            .as_deref()
            .is_some_and(|d| d.starts_with("sha256:"))
    );
    assert_eq!(agent.scripts_dir.as_deref(), Some("/vllm-workspace"));
    // The agent build is reused while its base and patch are the same.
    let agent_build = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Agent)
        .unwrap();
    let cx = support::context(dir.path(), &run, "prepare-agent-again");
    let again = b.prepare(agent_build, &cx).await.unwrap();
    assert!(again.reused && again.handle == agent.handle && again.digest == agent.digest);

    let versions = [
        (Variant::Baseline, support::BASELINE_VERSION),
        (Variant::Human, support::HUMAN_VERSION),
        (Variant::Agent, support::AGENT_VERSION),
    ];
    for (v, version) in versions {
        let (cx, progress) = support::context_with_progress(dir.path(), &run, v.as_str());
        let job = JobEnvs {
            engine: envs[&v].clone(),
            client: envs[&Variant::Human].clone(),
        };
        let out = b
            .execute(&job, &plan.step, &cx)
            .await
            .unwrap_or_else(|e| panic!("execute {v}: {e}"));
        assert_eq!(out.exit_code, Some(0), "{v}");
        // The server ran the variant's build; the client the human build's image.
        let log = std::fs::read_to_string(out.server_log.as_ref().unwrap()).unwrap();
        assert!(
            log.contains(&format!("vLLM API server version {version}")),
            "{v}: {log}"
        );
        assert!(log.contains("GET /health"), "{log}");
        let lines = progress.0.lock().unwrap().clone();
        let client = lines
            .iter()
            .find(|l| l.starts_with("client: starting"))
            .unwrap();
        assert!(client.ends_with(&format!("from {HUMAN}")), "{client}");
        let result = cx.artifact_dir.join("results").join("result.json");
        assert_eq!(out.result_files, vec![result]);
        let m = metrics(Mode::Serving, &out);
        assert!(
            m.get("request_throughput_rps").is_some_and(|r| r > 0.0),
            "{m:?}"
        );
        assert!(m.get("ttft_mean_ms").is_some(), "{m:?}");
        let warm = std::fs::read_to_string(cx.artifact_dir.join("warmup.stdout")).unwrap();
        let prompts = warm
            .lines()
            .find(|l| l.starts_with("Successful requests:"))
            .and_then(|l| l.split_whitespace().last());
        assert_eq!(
            prompts,
            Some("16"),
            "the warm-up sends warmup_prompts: {warm}"
        );
        assert!(out.benchmark_seconds > 0.0);
        assert!(out.host.is_some());
    }
    assert!(support::containers(&d, &run, None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_latency_runs_the_variant_s_own_image() {
    let Some(d) = support::engine("offline_latency_runs_the_variant_s_own_image").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let b = support::backend(dir.path(), |c| c.probe_version = false);
    let plan = support::plan(
        dir.path(),
        "vllm bench latency --model standin/model --input-len 32 --output-len 8",
    );
    assert!(plan.step.server.is_none());
    let run = support::run_id("latency");
    let base = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Baseline)
        .unwrap();
    let cx = support::context(dir.path(), &run, "baseline");
    let env = b.prepare(base, &cx).await.unwrap();
    assert_eq!(env.engine_version, None, "probe_version = false");
    let job = JobEnvs {
        engine: env.clone(),
        client: env,
    };
    // A leftover container with the client's name (an earlier crash) is replaced.
    let leftover = format!("pr-{run}-{}-baseline-1-client", support::COMMIT);
    let opts = CreateContainerOptionsBuilder::new().name(&leftover).build();
    let body = ContainerCreateBody {
        image: Some(BASELINE.into()),
        cmd: Some(vec!["/usr/bin/python3".into()]),
        labels: Some([(LABEL_RUN_ID.to_string(), run.clone())].into()),
        ..Default::default()
    };
    d.create_container(Some(opts), body).await.unwrap();
    let out = b.execute(&job, &plan.step, &cx).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(out.server_log.is_none());
    let stdout = std::fs::read_to_string(&out.client_stdout).unwrap();
    assert!(stdout.contains("Avg latency:"), "{stdout}");
    assert_eq!(out.result_files.len(), 1);
    let m = metrics(Mode::Latency, &out);
    assert!(m.get("latency_avg_s").is_some_and(|l| l > 0.0), "{m:?}");
    assert!(support::containers(&d, &run, None).await.is_empty());
}
