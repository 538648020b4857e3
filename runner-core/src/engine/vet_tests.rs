use std::time::{Duration, SystemTime};

use super::*;
use crate::benchmark::{OutputSource, SourceKind};

fn step(dir: &Path, stem: &str, exit_code: Option<i32>, results: &[&Path]) -> StepOutput {
    StepOutput {
        exit_code,
        client_stdout: dir.join(format!("{stem}.stdout")),
        client_stderr: dir.join(format!("{stem}.stderr")),
        result_files: results.iter().map(|p| p.to_path_buf()).collect(),
        ..StepOutput::default()
    }
}

/// A result file whose modification time is `age` in the past.
fn result_aged(dir: &Path, name: &str, age: Duration) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, "{\"output_throughput\": 1509.98}").unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    p
}

fn output(text: &str) -> RunOutput {
    RunOutput {
        sources: vec![OutputSource {
            name: "client.stderr".into(),
            kind: SourceKind::Stderr,
            text: text.into(),
        }],
        exit_code: Some(1),
    }
}

#[test]
fn a_result_this_client_wrote_after_the_attempt_started_is_trusted() {
    let d = tempfile::tempdir().unwrap();
    let since = SystemTime::now() - Duration::from_secs(5);
    let fresh = result_aged(d.path(), "r.json", Duration::from_secs(1));
    let v = results(&step(d.path(), "client", Some(0), &[&fresh]), since);
    assert_eq!(v.trusted, vec![fresh]);
    assert!(v.ignored.is_empty() && v.client_failed.is_none());
    assert!(judge(&v, None, &output("")).is_none());
}

#[test]
fn a_result_older_than_the_attempt_is_ignored() {
    let d = tempfile::tempdir().unwrap();
    let stale = result_aged(d.path(), "stale.json", Duration::from_secs(120));
    let fresh = result_aged(d.path(), "fresh.json", Duration::ZERO);
    let since = SystemTime::now() - Duration::from_secs(10);
    let v = results(&step(d.path(), "client", Some(0), &[&stale, &fresh]), since);
    assert_eq!(v.trusted, vec![fresh]);
    assert_eq!(v.ignored.len(), 1);
    assert!(
        v.ignored[0].contains("stale.json") && v.ignored[0].contains("before this attempt"),
        "{:?}",
        v.ignored
    );
    // Within the clock's slack still counts.
    let edge = result_aged(d.path(), "edge.json", Duration::from_millis(300));
    let v = results(
        &step(d.path(), "client", Some(0), &[&edge]),
        SystemTime::now(),
    );
    assert_eq!(v.trusted, vec![edge]);
}

#[test]
fn no_result_counts_when_the_client_failed_or_never_ran() {
    let d = tempfile::tempdir().unwrap();
    let since = SystemTime::now() - Duration::from_secs(5);
    let fresh = result_aged(d.path(), "r.json", Duration::ZERO);
    for (stem, code, says) in [
        ("client", Some(1), "the benchmark client exited with code 1"),
        ("client", None, "killed by a signal"),
        ("warmup", Some(2), "the measured client did not run"),
        ("warmup", Some(0), "the measured client did not run"),
    ] {
        let v = results(&step(d.path(), stem, code, &[&fresh]), since);
        assert!(v.trusted.is_empty(), "{stem} {code:?}");
        let why = v.client_failed.clone().unwrap();
        assert!(why.contains(says), "{why}");
        assert!(v.ignored[0].contains("r.json"), "{:?}", v.ignored);
        // Even when the parser found numbers, the attempt fails, with the evidence.
        let (code, detail, evidence) =
            judge(&v, None, &output("Traceback\nRuntimeError: boom")).unwrap();
        assert_eq!(code, Failure::NoMetrics);
        assert!(detail.starts_with(&why), "{detail}");
        assert_eq!(evidence[0], why);
        assert!(
            evidence
                .iter()
                .any(|e| e.contains("ignored result file r.json"))
        );
        assert!(
            evidence.iter().any(|e| e.contains("RuntimeError: boom")),
            "{evidence:?}"
        );
    }
}

#[test]
fn a_failed_clients_root_cause_is_kept() {
    let d = tempfile::tempdir().unwrap();
    let v = results(&step(d.path(), "client", Some(1), &[]), SystemTime::now());
    let oom = output("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB");
    let (code, _, evidence) = judge(&v, None, &oom).unwrap();
    assert_eq!(code, Failure::Oom, "{evidence:?}");
    let parsed = Classified {
        code: Failure::InfraTransient,
        evidence: vec!["Connection reset by peer".into()],
        signature: None,
    };
    let (code, detail, _) = judge(&v, Some(parsed), &oom).unwrap();
    assert_eq!(code, Failure::InfraTransient, "the parser's verdict first");
    assert!(detail.ends_with("Connection reset by peer"), "{detail}");
}
