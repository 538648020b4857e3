//! The engine going away mid-run. Restarting the shared dockerd would disrupt other work on the
//! machine, so the test puts a unix-socket proxy between bollard and dockerd and cuts it: every
//! connection drops and the socket disappears, as when dockerd restarts. The error path in the
//! backend is the real one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runner_core::backend::JobEnvs;
use runner_core::{Backend, Failure, Variant};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

use crate::support;

/// The engine's socket.
fn engine_socket() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    match host.strip_prefix("unix://") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from("/var/run/docker.sock"),
    }
}

struct Proxy {
    path: PathBuf,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Proxy {
    fn start(path: &Path) -> Proxy {
        let p = Proxy {
            path: path.to_path_buf(),
            tasks: Arc::new(Mutex::new(Vec::new())),
        };
        p.listen();
        p
    }

    fn listen(&self) {
        let _ = std::fs::remove_file(&self.path);
        let l = UnixListener::bind(&self.path).unwrap();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = l.accept().await {
                let Ok(mut outbound) = UnixStream::connect(engine_socket()).await else {
                    continue;
                };
                let conn = tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
                tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Drop every connection and the socket.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_engine_mid_run_is_transient_and_a_retry_succeeds() {
    let Some(d) = support::engine("engine_lost").await else {
        return;
    };
    support::images(&d).await;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("engine.sock");
    let proxy = Proxy::start(&sock);
    let b = Arc::new(support::backend(dir.path(), |c| {
        c.docker_host = Some(format!("unix://{}", sock.display()));
        c.probe_version = false;
    }));
    let plan = support::plan(dir.path(), &support::slow_serve(6));
    let prep = support::context(dir.path(), &support::run_id("prep"), "baseline");
    let base = plan
        .builds
        .iter()
        .find(|b| b.variant == Variant::Baseline)
        .unwrap();
    let env = b.prepare(base, &prep).await.unwrap();
    let job = JobEnvs {
        engine: env.clone(),
        client: env,
    };
    let mut step = plan.step.clone();
    step.warmup = None;

    let run = support::run_id("lost");
    let cx = support::context(dir.path(), &run, "baseline");
    let (b2, job2, step2, cx2) = (b.clone(), job.clone(), step.clone(), cx.clone());
    let h = tokio::spawn(async move { b2.execute(&job2, &step2, &cx2).await });
    support::running(&d, &run, "client", Duration::from_secs(20)).await;
    proxy.cut();
    let e = h.await.unwrap().unwrap_err();
    assert_eq!(e.kind, Failure::InfraTransient, "{e}");
    assert!(e.is_transient());
    let left = support::containers(&d, &run, None).await;
    assert!(
        !left.is_empty(),
        "cleanup could not reach the engine either"
    );

    // The engine is back: gc clears what the lost attempt left, and the retry runs.
    proxy.listen();
    let mut removed = None;
    for _ in 0..3 {
        match b.gc(Some(&run)).await {
            Ok(n) => {
                removed = Some(n);
                break;
            }
            // A pooled connection from before the cut may fail once.
            Err(e) if e.is_transient() => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(removed, Some(left.len()));
    let retry = support::context(dir.path(), &run, "baseline-retry");
    let out = b.execute(&job, &step, &retry).await.unwrap();
    assert_eq!(out.exit_code, Some(0));
    assert!(support::containers(&d, &run, None).await.is_empty());
    proxy.cut();
}
