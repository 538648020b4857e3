//! The scenarios (see the module docs of [`super`]).

use std::time::{Duration, Instant};

use super::transcript::{Transcript, check_serving};
use super::{SERVE, Subject, plan, slow_serve, with_fault};
use crate::backend::{BackendError, RunContext, StepOutput};
use crate::failure::Failure;
use crate::plan::{StepPlan, TaskPlan};
use crate::stepkit::AttemptFiles;

/// How one scenario went on one backend.
#[derive(Debug, Clone)]
pub struct Report {
    /// The scenario.
    pub scenario: &'static str,
    /// Its wall time, preparation included.
    pub seconds: f64,
    /// What it saw, for people (placeholder values, codes …).
    pub detail: String,
}

/// How long the measured client runs before the cancellation scenario cancels.
const CANCEL_AFTER: Duration = Duration::from_millis(1500);

/// One attempt: prepare, lease, execute (cancelling `cancel_after` into the measured client
/// when asked), find leftovers before the lease goes back.
struct Attempt {
    cx: RunContext,
    result: Result<StepOutput, BackendError>,
    leftovers: Vec<String>,
    cancelled_at: Option<Instant>,
    /// What the leftover finder saw just before the cancellation.
    seen_running: usize,
}

async fn attempt(
    s: &dyn Subject,
    name: &str,
    plan: &TaskPlan,
    step: &StepPlan,
    cancel_after: Option<Duration>,
) -> Result<Attempt, String> {
    let mut cx = s.context(name);
    let envs = s
        .envs(plan, &cx)
        .await
        .map_err(|e| format!("{name}: prepare: {e}"))?;
    cx.lease = s
        .lease(step, &cx)
        .await
        .map_err(|e| format!("{name}: lease: {e}"))?;
    let files = AttemptFiles::of(&cx);
    let backend = s.backend();
    let mut cancelled_at = None;
    let mut seen_running = 0;
    let result = {
        let exec = backend.execute(&envs, step, &cx);
        tokio::pin!(exec);
        let mut client_seen: Option<Instant> = None;
        loop {
            tokio::select! {
                r = &mut exec => break r,
                _ = tokio::time::sleep(Duration::from_millis(100)), if cancel_after.is_some() && cancelled_at.is_none() => {
                    if client_seen.is_none() && Transcript::read(&files.commands()).last("client").is_some() {
                        client_seen = Some(Instant::now());
                    }
                    if let (Some(seen), Some(after)) = (client_seen, cancel_after) {
                        if seen.elapsed() >= after {
                            // The finder must see the run while it runs, or its "nothing
                            // left" below would prove nothing.
                            seen_running = s.leftovers(&cx).await.len();
                            cx.cancel.cancel();
                            cancelled_at = Some(Instant::now());
                        }
                    }
                }
            }
        }
    };
    let leftovers = s.leftovers(&cx).await;
    let lease = std::mem::take(&mut cx.lease);
    s.release(lease).await;
    Ok(Attempt {
        cx,
        result,
        leftovers,
        cancelled_at,
        seen_running,
    })
}

fn nothing_left(name: &str, a: &Attempt) -> Result<(), String> {
    if a.leftovers.is_empty() {
        Ok(())
    } else {
        Err(format!("{name}: left behind: {:?}", a.leftovers))
    }
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn expect_error(name: &str, a: &Attempt, kind: Failure) -> Result<String, String> {
    match &a.result {
        Err(e) if e.kind == kind => Ok(e.message.clone()),
        Err(e) => Err(format!("{name}: {e}, want {kind}")),
        Ok(out) => Err(format!(
            "{name}: succeeded (exit {:?}), want {kind}; client stderr: {}",
            out.exit_code,
            read(&out.client_stderr)
        )),
    }
}

/// (1) The suite's serving plan runs; `commands.txt` holds server, warm-up and client, each
/// the plan's argv up to placeholder values, one port; the client wrote its result.
pub async fn same_argv(s: &dyn Subject) -> Result<Report, String> {
    let name = "same_argv";
    let t0 = Instant::now();
    let p = plan(SERVE)?;
    let a = attempt(s, name, &p, &p.step, None).await?;
    let out = a.result.as_ref().map_err(|e| format!("{name}: {e}"))?;
    let files = AttemptFiles::of(&a.cx);
    if out.exit_code != Some(0) {
        return Err(format!(
            "{name}: client exit {:?}: {}",
            out.exit_code,
            read(&out.client_stderr)
        ));
    }
    if !read(&out.client_stdout).contains("Request throughput (req/s):") {
        return Err(format!(
            "{name}: no benchmark block in {}",
            out.client_stdout.display()
        ));
    }
    if out.client_stdout != files.client_stdout() {
        return Err(format!(
            "{name}: client stdout at {}",
            out.client_stdout.display()
        ));
    }
    if let Some(f) = &p.step.result_file {
        if !out.result_files.iter().any(|r| r.ends_with(f)) {
            return Err(format!("{name}: no {f} among {:?}", out.result_files));
        }
    }
    let t = Transcript::read(&files.commands());
    let taken = check_serving(&t, &p.step).map_err(|e| format!("{name}: {e}"))?;
    nothing_left(name, &a)?;
    let shown: Vec<String> = t
        .lines
        .iter()
        .map(|l| {
            let keys: Vec<&str> = l.shown_env.iter().map(|(k, _)| k.as_str()).collect();
            format!("{} shows {:?}", l.role, keys)
        })
        .collect();
    Ok(Report {
        scenario: name,
        seconds: t0.elapsed().as_secs_f64(),
        detail: format!("{taken:?}; {}", shown.join(", ")),
    })
}

/// (2) The warm-up crashes (the stand-in's `client_crash`, through the plan's environment):
/// the step ends with the warm-up's exit and files, the measured client never started.
pub async fn warmup_failure_stops(s: &dyn Subject) -> Result<Report, String> {
    let name = "warmup_failure_stops";
    let t0 = Instant::now();
    let p = plan(SERVE)?;
    let step = with_fault(&p.step, "client_crash");
    let a = attempt(s, name, &p, &step, None).await?;
    let out = a.result.as_ref().map_err(|e| format!("{name}: {e}"))?;
    let files = AttemptFiles::of(&a.cx);
    if out.exit_code != Some(1) {
        return Err(format!(
            "{name}: exit {:?}, want the warm-up's 1",
            out.exit_code
        ));
    }
    if !AttemptFiles::is_warmup_stdout(&out.client_stdout)
        || out.client_stderr != files.warmup_stderr()
    {
        return Err(format!(
            "{name}: the output is {} / {}, not the warm-up's",
            out.client_stdout.display(),
            out.client_stderr.display()
        ));
    }
    if !read(&out.client_stderr).contains("ClientPayloadError") {
        return Err(format!(
            "{name}: the warm-up's stderr lacks its crash: {}",
            read(&out.client_stderr)
        ));
    }
    let t = Transcript::read(&files.commands());
    if t.roles() != ["server", "warmup"] {
        return Err(format!(
            "{name}: ran {:?}, want server and warm-up only",
            t.roles()
        ));
    }
    if files.client_stdout().exists() || !out.result_files.is_empty() {
        return Err(format!("{name}: the measured client left output"));
    }
    nothing_left(name, &a)?;
    Ok(Report {
        scenario: name,
        seconds: t0.elapsed().as_secs_f64(),
        detail: format!(
            "exit {:?}, output {}",
            out.exit_code,
            out.client_stdout.display()
        ),
    })
}

/// (3) Cancelled 1.5 s into a measured client of about 20 s: `cancelled`, promptly, and the
/// backend's leftover finder finds nothing of the run.
pub async fn cancel_mid_client(s: &dyn Subject) -> Result<Report, String> {
    let name = "cancel_mid_client";
    let t0 = Instant::now();
    let p = plan(&slow_serve(40))?;
    let a = attempt(s, name, &p, &p.step, Some(CANCEL_AFTER)).await?;
    let Some(at) = a.cancelled_at else {
        return Err(format!("{name}: the client never started: {:?}", a.result));
    };
    let msg = expect_error(name, &a, Failure::Cancelled)?;
    let after = at.elapsed();
    if a.seen_running == 0 {
        return Err(format!(
            "{name}: the leftover finder saw nothing of the run while its client ran"
        ));
    }
    nothing_left(name, &a)?;
    if after > Duration::from_secs(30) {
        return Err(format!("{name}: took {after:?} after the cancellation"));
    }
    Ok(Report {
        scenario: name,
        seconds: t0.elapsed().as_secs_f64(),
        detail: format!(
            "{msg}; {} running before, none after; returned {:.1} s after the cancellation",
            a.seen_running,
            after.as_secs_f64()
        ),
    })
}

/// (4a) The server crashes at start: `server_failed`, quoting the engine's error, no client.
pub async fn crash_at_start(s: &dyn Subject) -> Result<Report, String> {
    let p = plan(SERVE)?;
    let step = with_fault(&p.step, "crash_at_start");
    server_fails(
        s,
        "crash_at_start",
        &p,
        &step,
        (Failure::ServerFailed, "Engine core initialization failed"),
        "server_failed with the engine's error",
    )
    .await
}

/// (4b) The server binds its port but never gets ready (`hang`), `server_ready_s` = 3:
/// `timeout` within the phase's limit plus the stop's grace, and the server is gone.
pub async fn hanging_server(s: &dyn Subject) -> Result<Report, String> {
    let p = plan(SERVE)?;
    let mut step = with_fault(&p.step, "hang");
    step.timeouts.server_ready_s = 3;
    server_fails(
        s,
        "hanging_server",
        &p,
        &step,
        (Failure::Timeout, "server_ready_s"),
        "timeout (server_ready_s = 3)",
    )
    .await
}

/// A step whose server fails: the attempt's error has `want.0`'s code and names `want.1`, only
/// the server ran, and nothing of the run is left.
async fn server_fails(
    s: &dyn Subject,
    name: &'static str,
    p: &TaskPlan,
    step: &StepPlan,
    want: (Failure, &str),
    detail: &str,
) -> Result<Report, String> {
    let t0 = Instant::now();
    let a = attempt(s, name, p, step, None).await?;
    let msg = expect_error(name, &a, want.0)?;
    if !msg.contains(want.1) {
        return Err(format!(
            "{name}: the error does not name {:?}: {msg}",
            want.1
        ));
    }
    let t = Transcript::read(&AttemptFiles::of(&a.cx).commands());
    if t.roles() != ["server"] {
        return Err(format!("{name}: ran {:?}, want the server only", t.roles()));
    }
    nothing_left(name, &a)?;
    Ok(Report {
        scenario: name,
        seconds: t0.elapsed().as_secs_f64(),
        detail: detail.into(),
    })
}
