//! What comes out of the sandbox is bounded before it reaches this process, against the fake
//! shim (`tests/fake_shim.py`): the benchmark runs an agent patch, so its result files and its
//! output lines are untrusted. Also: a shim of another protocol version is refused at once.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use perf_runner_tests::standin::standin_binary;
use runner_core::{Backend, Failure};

/// The result cap these tests run with.
const CAP: u64 = 1024 * 1024;

/// A `{PYTHON}` for the fake's sandbox: the stand-in, except that the client (`bench latency`)
/// also leaves a sparse 300 MiB result file, two files of 0.7 × CAP (together over the cap),
/// a small one, and ends its stdout with an 8 MiB line without a newline.
fn noisy_python(dir: &Path) -> String {
    let results = dir.join("work/results");
    let script = dir.join("noisy-python");
    let third = CAP * 7 / 10;
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             case \"$*\" in *latency*) ;; *) exec {standin} \"$@\" ;; esac\n\
             mkdir -p {results}\n\
             truncate -s 300M {results}/huge.json\n\
             head -c {third} /dev/zero > {results}/a.json\n\
             head -c {third} /dev/zero > {results}/b.json\n\
             echo '{{}}' > {results}/small.json\n\
             {standin} \"$@\"; code=$?\n\
             head -c 8388608 /dev/zero | tr '\\0' x\n\
             exit $code\n",
            standin = standin_binary().display(),
            results = results.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

#[tokio::test]
async fn huge_result_files_and_endless_lines_stay_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let python = noisy_python(dir.path());
    let b = fake(dir.path(), "ok", |c| c.container_python = python).with_max_result_bytes(CAP);
    let p = plan(BENCH_LATENCY, "H100:1");
    let cx = cx(dir.path());
    let e = envs(&b, &p, &cx, false).await;
    let t0 = Instant::now();
    let out = b.execute(&e, &p.step, &cx).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(60), "{:?}", t0.elapsed());
    assert_eq!(out.exit_code, Some(0));

    // The result files: the huge one and the one past the total were never read.
    let art = dir.path().join("art");
    let mut names: Vec<_> = out
        .result_files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.contains(&"a.json".into()) && names.contains(&"small.json".into()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"huge.json".into()) && !names.contains(&"b.json".into()),
        "{names:?}"
    );
    assert!(!art.join("results/huge.json").exists());
    let fetched: u64 = out
        .result_files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(fetched <= CAP, "{fetched} bytes fetched");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(art.join("modal.json")).unwrap()).unwrap();
    let skipped = meta["results_skipped"].as_array().unwrap();
    let huge = skipped.iter().find(|s| s["name"] == "huge.json").unwrap();
    assert_eq!(huge["size"], 300 * 1024 * 1024);
    assert!(
        huge["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("cap of {CAP} bytes")),
        "{huge}"
    );
    let past = skipped.iter().find(|s| s["name"] == "b.json").unwrap();
    assert!(
        past["reason"].as_str().unwrap().contains("reach the cap"),
        "{past}"
    );

    // The 8 MiB line: its first 64 KiB, and a note of what was dropped.
    let stdout = std::fs::read_to_string(&out.client_stdout).unwrap();
    assert!(
        stdout.contains("Avg latency"),
        "the measured output is intact"
    );
    assert!(stdout.len() < 128 * 1024, "{} bytes kept", stdout.len());
    let dropped = 8 * 1024 * 1024 - 64 * 1024;
    assert!(
        stdout.contains(&format!(
            "[perf-runner: {dropped} more bytes of this line dropped]"
        )),
        "{}",
        &stdout[stdout.len().saturating_sub(200)..]
    );
    nothing_left(&Ran {
        dir,
        cx,
        result: Ok(out),
    });
}

#[tokio::test]
async fn a_reply_over_the_bound_fails_its_call_instead_of_being_read() {
    // The fake ignores the caps and answers the fetch with a line over what this side reads.
    let dir = tempfile::tempdir().unwrap();
    let b = fake(dir.path(), "huge_reply", |_| {}).with_max_result_bytes(CAP);
    let p = plan(BENCH_LATENCY, "H100:1");
    let cx = cx(dir.path());
    let e = envs(&b, &p, &cx, false).await;
    let t0 = Instant::now();
    let result = b.execute(&e, &p.step, &cx).await;
    let err = result.as_ref().unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "failed at once, not at the fetch's time limit: {:?}",
        t0.elapsed()
    );
    assert_eq!(err.kind, Failure::Unknown, "{err}");
    assert!(
        err.message.contains("perf_runner.ReplyTooLong") && err.message.contains("bytes"),
        "{err}"
    );
    assert!(marked(dir.path(), "terminated"));
    nothing_left(&Ran { dir, cx, result });
}

#[tokio::test]
async fn a_shim_of_another_protocol_is_refused_as_bad_config() {
    let r = run("old_protocol", BENCH_LATENCY, "H100:1", &[], false, |_| {}).await;
    let e = r.result.as_ref().unwrap_err();
    assert_eq!(e.kind, Failure::BadConfig, "{e}");
    assert!(
        e.message.contains("protocol 2") && e.message.contains("shim_override"),
        "{e}"
    );
    assert!(commands(r.path(), "exec").is_empty(), "nothing ran");
    nothing_left(&r);
}

/// A client whose every result file is over the cap: nothing is fetched, and the attempt fails
/// as `no_metrics` saying which files were left behind and which setting to raise, instead of
/// a bare "no metrics" later.
#[tokio::test]
async fn a_result_over_the_cap_fails_the_attempt_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("work/results");
    let script = dir.path().join("bloated-python");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             case \"$*\" in *latency*) ;; *) exec {standin} \"$@\" ;; esac\n\
             {standin} \"$@\"; code=$?\n\
             for f in {results}/*; do truncate -s 2M \"$f\"; done\n\
             exit $code\n",
            standin = standin_binary().display(),
            results = results.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let python = script.display().to_string();
    let b = fake(dir.path(), "ok", |c| c.container_python = python).with_max_result_bytes(CAP);
    let p = plan(BENCH_LATENCY, "H100:1");
    let cx = cx(dir.path());
    let e = envs(&b, &p, &cx, false).await;
    let err = b.execute(&e, &p.step, &cx).await.unwrap_err();
    assert_eq!(err.kind, Failure::NoMetrics, "{err}");
    assert!(
        err.message.contains("no result file was fetched")
            && err.message.contains("2097152 bytes")
            && err.message.contains("limits.max_result_bytes"),
        "{err}"
    );
}
