//! A secret from the caller's environment (`HF_TOKEN` by default) reaches the containers, and
//! appears in no log line (bollard's debug output included), no file we write and no error we
//! return. Its own test binary: it sets an environment variable before any thread starts.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use runner_core::backend::JobEnvs;
use runner_core::{Backend, Failure, Variant};

const VAR: &str = "PERF_RUNNER_TEST_HF_TOKEN";
const TOKEN: &str = "hf_perfRunnerTestToken5f1c9e0a";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn files_containing(dir: &Path, needle: &str, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_containing(&p, needle, out);
        } else if String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).contains(needle) {
            out.push(p.display().to_string());
        }
    }
}

#[test]
fn secrets_reach_containers_but_no_log_file_or_error() {
    // SAFETY: no other thread exists yet in this test binary (one test, set before the runtime).
    unsafe { std::env::set_var(VAR, TOKEN) };
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ran = rt.block_on(async {
        let Some(d) = support::engine("secrets").await else {
            // No Docker Engine: said (or failed, where the suite requires one) by `engine`;
            // there are no container logs to look at.
            return false;
        };
        support::images(&d).await;
        let dir = tempfile::tempdir().unwrap();
        let b = support::backend_c(dir.path(), |c| {
            c.secret_env = vec![VAR.to_string()];
            c.keep_containers = true;
        });
        assert!(!format!("{b:?}").contains(TOKEN));
        let health = b.check().await.unwrap();
        assert!(format!("{health:?}").contains(VAR) && !format!("{health:?}").contains(TOKEN));

        let mut plan = support::plan(dir.path(), support::SERVE);
        plan.step.env.push(("STANDIN_ECHO_ENV".into(), VAR.into()));
        let run = support::run_id("secrets");
        let mut envs = Vec::new();
        for v in [Variant::Baseline, Variant::Human] {
            let build = plan.builds.iter().find(|b| b.variant == v).unwrap();
            let cx = support::context(dir.path(), &run, &format!("prepare-{v}"));
            envs.push(b.prepare(build, &cx).await.unwrap());
        }
        let job = JobEnvs {
            engine: envs[0].clone(),
            client: envs[1].clone(),
        };
        // A good run: the server printed the variable; the log we wrote has it masked.
        let cx = support::context(dir.path(), &run, "baseline");
        let out = b.execute(&job, &plan.step, &cx).await.unwrap();
        assert_eq!(out.exit_code, Some(0));
        let log = std::fs::read_to_string(out.server_log.unwrap()).unwrap();
        assert!(log.contains(&format!("env {VAR}=[redacted]")), "{log}");

        // A failing run: the error quotes the server's log, masked too.
        let mut step = plan.step.clone();
        step.env
            .push(("STANDIN_FAULT".into(), "crash_at_start".into()));
        let cx = support::context(dir.path(), &run, "human");
        let e = b.execute(&job, &step, &cx).await.unwrap_err();
        assert_eq!(e.kind, Failure::ServerFailed);
        assert!(e.message.contains("[redacted]"), "{e}");
        let mut chain = format!("{e} {e:?}");
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&s.to_string());
            src = s.source();
        }
        assert!(!chain.contains(TOKEN), "the error leaks the token: {chain}");

        // The container did get it (inspect shows it, as it should).
        let name = format!("pr-{run}-{}-human-1-server", support::COMMIT);
        // This inspection is the test's, not the backend's: keep its debug lines out.
        let inspect = d.inspect_container(&name, None);
        let inspect = tracing::instrument::WithSubscriber::with_subscriber(
            inspect,
            tracing::subscriber::NoSubscriber::default(),
        );
        let env = inspect.await.unwrap().config.unwrap().env.unwrap();
        assert!(env.contains(&format!("{VAR}={TOKEN}")));
        assert!(b.gc(Some(&run)).await.unwrap() >= 4);

        let mut leaks = Vec::new();
        files_containing(dir.path(), TOKEN, &mut leaks);
        assert!(leaks.is_empty(), "files holding the token: {leaks:?}");
        true
    });
    if !ran {
        return;
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("/containers/"),
        "bollard's debug lines were captured"
    );
    let leaking: Vec<&str> = logs.lines().filter(|l| l.contains(TOKEN)).collect();
    assert!(leaking.is_empty(), "log lines hold the token: {leaking:#?}");
}
