//! The serving client of a local run: `perf-runner bench serve` (this program) by default, the
//! same argv for every variant, measuring a faster human build as faster; the engine's own
//! client with `[client] kind = "engine"`.

mod common;

use common::{World, text};
use runner_core::Variant;

#[test]
fn local_runs_measure_with_the_native_client_unless_told_otherwise() {
    let w = World::new(1.4, None);
    let o = w.run(&["--repeats", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let attempts = w.attempts(&w.only_run());
    assert_eq!(attempts.len(), 2);
    let mut tps = Vec::new();
    for a in &attempts {
        assert!(a.succeeded(), "{:?}: {:?}", a.failure, a.failure_detail);
        let argv = &a.client_argv;
        assert_eq!(argv[..3], ["{PERF_RUNNER}", "bench", "serve"], "{argv:?}");
        assert_eq!(
            argv, &attempts[0].client_argv,
            "one client for every variant"
        );
        tps.push((
            a.job.variant,
            a.metrics.get("output_throughput_tps").unwrap(),
        ));
    }
    // The results the attempts stored were written by the native client.
    let results = files_named(w.dir.path(), "result.json");
    // One per attempt, one per warm server's burn-in (kept in the server's folder).
    assert_eq!(results.len(), 4, "{results:?}");
    let burn_ins = results
        .iter()
        .filter(|p| p.to_string_lossy().contains("/server-"))
        .count();
    assert_eq!(burn_ins, 2, "{results:?}");
    for r in &results {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap();
        assert_eq!(json["client"], "perf-runner bench serve", "{}", r.display());
    }
    let of = |v: Variant| tps.iter().find(|(x, _)| *x == v).unwrap().1;
    let ratio = of(Variant::Human) / of(Variant::Baseline);
    assert!(ratio > 1.15, "human/baseline output throughput {ratio:.3}");

    let w = World::new(1.0, None);
    w.use_engine_client();
    let o = w.run(&["--repeats", "1", "--variants", "human"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let a = &w.attempts(&w.only_run())[0];
    assert!(a.succeeded(), "{:?}", a.failure_detail);
    assert!(
        a.client_argv
            .iter()
            .any(|t| t == "vllm.entrypoints.cli.main"),
        "{:?}",
        a.client_argv
    );
}

fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files_named(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
    out
}
