//! Warm servers: one server per build and task, started once and switched with vLLM's sleep
//! mode between jobs instead of a restart per job.
//!
//! A warm server runs the task's step with sleep mode on ([`sleep_step`]: the server gets
//! `--enable-sleep-mode`, the environment `VLLM_SERVER_DEV_MODE=1`, which serves
//! `POST /sleep` and `POST /wake_up`). [`WarmServer::start`] starts it, waits until it is
//! ready, reads what the engine allotted from its log, runs the burn-in (the measured client's
//! workload once, not scored) and puts it to sleep, so the next build's server starts beside
//! sleeping ones only. [`run_warm`] runs one job against it: wake →
//! warm-up → measured client → sleep, through the same lifecycle pieces as [`run_step`]
//! (the same readiness, timeouts, cancellation, and "a server that ends while a client runs
//! measured nothing"). A server found dead when its job comes (it died asleep) is
//! `server_failed`. Each attempt's `server.log` is the slice of the server's log written
//! during that attempt.
//!
//! [`run_step`]: super::run_step

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::layout::AttemptFiles;
use super::lifecycle::{Life, StepPolicy};
use super::probe;
use super::runtime::{Endpoint, Role, Running, StepRuntime};
use crate::backend::{BackendError, JobEnvs, RunContext, StepOutput};
use crate::failure::Failure;
use crate::plan::StepPlan;
use crate::record::Capacity;

/// The server flag that turns vLLM's sleep mode on.
pub const SLEEP_FLAG: &str = "--enable-sleep-mode";
/// The environment variable under which vLLM serves `/sleep` and `/wake_up`.
pub const DEV_MODE_ENV: &str = "VLLM_SERVER_DEV_MODE";
/// The most a server's start-up log is read for its capacity.
const START_LOG_CAP: u64 = 4 * 1024 * 1024;

/// What a kit does when the caller is done with it (e.g. remove the containers of a job's
/// clients), awaited by [`WarmKit::finish`].
pub type Cleanup<'a> = Box<
    dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>
        + Send
        + 'a,
>;

/// A backend's primitives for processes that may outlive one job, and its lifecycle policy.
pub struct WarmKit<'a> {
    /// Starts and watches processes.
    pub runtime: Box<dyn StepRuntime + 'a>,
    /// Grace periods, polling, port attempts.
    pub policy: StepPolicy,
    /// Run by [`WarmKit::finish`]: what the kit's job left that is not a warm server.
    pub cleanup: Option<Cleanup<'a>>,
}

impl WarmKit<'_> {
    /// Done with the kit: its cleanup runs now (before the next job starts), not whenever
    /// the kit is dropped.
    pub async fn finish(self) {
        if let Some(c) = self.cleanup {
            c().await;
        }
    }
}

impl std::fmt::Debug for WarmKit<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmKit")
            .field("backend", &self.runtime.backend())
            .field("policy", &self.policy)
            .finish()
    }
}

/// The step a warm server runs: `step` with sleep mode on (the flag once, the variable once).
pub fn sleep_step(step: &StepPlan) -> StepPlan {
    let mut s = step.clone();
    if let Some(server) = s.server.as_mut() {
        if !server.argv.iter().any(|a| a == SLEEP_FLAG) {
            server.argv.push(SLEEP_FLAG.to_string());
        }
    }
    s.env.retain(|(k, _)| k != DEV_MODE_ENV);
    s.env.push((DEV_MODE_ENV.to_string(), "1".to_string()));
    s
}

/// What the engine allotted, from a server's log: vLLM's `GPU KV cache size: N tokens` (v1) or
/// `# GPU blocks: N` (older builds); the last such line wins.
pub fn capacity(log: &str) -> Option<Capacity> {
    let mut found = None;
    for line in log.lines() {
        let parsed = after(line, "GPU KV cache size: ")
            .and_then(|rest| number(rest).map(|n| (n, "tokens")))
            .or_else(|| {
                after(line, "# GPU blocks: ")
                    .or_else(|| after(line, "# cuda blocks: "))
                    .and_then(|rest| number(rest).map(|n| (n, "blocks")))
            });
        if let Some((amount, unit)) = parsed {
            found = Some(Capacity {
                amount,
                unit: unit.to_string(),
                line: crate::text::escape(line.trim()).chars().take(300).collect(),
            });
        }
    }
    found
}

/// [`capacity`] of a log file, read from its start (where a server's start-up lines are; at
/// most 4 MiB).
pub fn capacity_of(log: &Path) -> Option<Capacity> {
    let f = std::fs::File::open(log).ok()?;
    let mut bytes = Vec::new();
    f.take(START_LOG_CAP).read_to_end(&mut bytes).ok()?;
    capacity(&String::from_utf8_lossy(&bytes))
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

fn number(s: &str) -> Option<u64> {
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

/// What switching a server cost in one job.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Switch {
    /// `POST /wake_up` took, ms (`None`: it was not woken).
    pub wake_ms: Option<f64>,
    /// `POST /sleep` after the job took, ms (`None`: it was not put to sleep).
    pub sleep_ms: Option<f64>,
}

/// One build's warm server.
pub struct WarmServer {
    slot: Option<Box<dyn Running>>,
    endpoint: Endpoint,
    port: u16,
    log: PathBuf,
    /// Seconds from its start until it was asleep.
    pub start_s: f64,
    /// What the engine allotted (from its start-up log).
    pub capacity: Option<Capacity>,
}

impl std::fmt::Debug for WarmServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmServer")
            .field("endpoint", &self.endpoint)
            .field("log", &self.log)
            .field("start_s", &self.start_s)
            .finish()
    }
}

fn life<'a>(
    kit: &'a WarmKit<'_>,
    envs: &'a JobEnvs,
    step: &'a StepPlan,
    cx: &'a RunContext,
    log: PathBuf,
) -> Life<'a> {
    Life {
        rt: kit.runtime.as_ref(),
        envs,
        step,
        cx,
        policy: &kit.policy,
        files: AttemptFiles::of(cx),
        log,
    }
}

impl WarmServer {
    /// Start `env`'s server for `step` (a [`sleep_step`]) with its log in `cx`'s folder, wait
    /// until it is ready, and put it to sleep. Whatever fails, nothing it started is left.
    pub async fn start(
        kit: &WarmKit<'_>,
        envs: &JobEnvs,
        step: &StepPlan,
        cx: &RunContext,
        burn_in: bool,
    ) -> Result<WarmServer, BackendError> {
        let files = AttemptFiles::of(cx);
        let l = life(kit, envs, step, cx, files.server_log());
        let Some(plan) = &step.server else {
            return Err(l.err(Failure::BadConfig, "a warm server needs a serving step"));
        };
        files.create().map_err(|e| {
            l.err(
                Failure::EnvironmentBroken,
                format!("{}: {e}", files.dir().display()),
            )
        })?;
        let started = Instant::now();
        let mut slot = None;
        let r = async {
            let port = l.start_server(plan, None, &mut slot).await?;
            let endpoint = match slot.as_mut() {
                Some(s) => s.endpoint().await,
                None => None,
            };
            let Some(endpoint) = endpoint else {
                return Err(l.err(Failure::InfraTransient, "the server has no endpoint"));
            };
            Ok((port, endpoint))
        }
        .await;
        let (port, endpoint) = match r {
            Ok(v) => v,
            Err(e) => {
                if let Some(s) = slot.as_mut() {
                    s.stop(kit.policy.stop_grace).await;
                }
                return Err(e);
            }
        };
        let mut server = WarmServer {
            slot,
            endpoint,
            port,
            log: files.server_log(),
            start_s: 0.0,
            capacity: None,
        };
        server.capacity = capacity_of(&server.log);
        if burn_in {
            if let Err(e) = server.burn_in(&l).await {
                server.stop(kit.policy.stop_grace).await;
                return Err(e);
            }
        }
        if let Err(e) = server.switch(&l, "/sleep?level=1").await {
            server.stop(kit.policy.stop_grace).await;
            return Err(e);
        }
        server.start_s = started.elapsed().as_secs_f64();
        cx.progress.event(
            "server",
            &format!("ready and asleep after {:.1} s", server.start_s),
        );
        Ok(server)
    }

    /// The burn-in: the measured client's workload once, right after the start, its files
    /// kept in the server's folder and never scored — the first run after a start is slower
    /// (caches, allocator, compilation), and no measured round should pay for it. A failed
    /// burn-in is only a warning; a server that dies meanwhile is an error.
    async fn burn_in(&mut self, l: &Life<'_>) -> Result<(), BackendError> {
        l.cx.progress.event("server", "burn-in run (not scored)");
        let t = Instant::now();
        let (exit, _, _) = l
            .run_to_end(
                Role::Client,
                &l.step.client,
                &l.envs.client,
                Some(self.port),
                &mut self.slot,
            )
            .await?;
        if !exit.success() {
            tracing::warn!(%exit, "the burn-in client failed; its files are in {}", l.files.dir().display());
        }
        tracing::info!(secs = t.elapsed().as_secs_f64(), "burn-in done");
        Ok(())
    }

    /// Whether its process is still there.
    pub async fn alive(&mut self) -> bool {
        match self.slot.as_mut() {
            Some(s) => matches!(s.try_wait().await, Ok(None)),
            None => false,
        }
    }

    /// Stop it and everything it started.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(mut s) = self.slot.take() {
            s.stop(grace).await;
        }
    }

    /// Its log (every start-up line and every job's lines).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// `POST path` must answer 200 within the server's start-up limit; returns the time in ms.
    async fn switch(&mut self, l: &Life<'_>, path: &str) -> Result<f64, BackendError> {
        let within = Duration::from_secs(l.step.timeouts.server_ready_s.max(1));
        let t = Instant::now();
        let answer = tokio::select! {
            r = probe::post(&self.endpoint, path, within) => r,
            _ = l.cx.cancel.cancelled() => return Err(l.cancelled(&format!("during POST {path}"))),
        };
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok(200) => Ok(ms),
            Ok(code) => Err(l.err(
                Failure::ServerFailed,
                format!(
                    "POST {path} answered {code} (is sleep mode served? {SLEEP_FLAG} and {DEV_MODE_ENV}=1); {}",
                    l.server_log_tail()
                ),
            )),
            Err(e) => Err(l.err(
                Failure::ServerFailed,
                format!("{e}; {}", l.server_log_tail()),
            )),
        }
    }
}

/// Run one job against a warm server: wake it, warm up, run the measured client, put it to
/// sleep (see the module docs). The server is stopped when it is found ended or cannot be
/// switched; [`WarmServer::alive`] then says so and the caller starts a new one for the next
/// job.
pub async fn run_warm(
    kit: &WarmKit<'_>,
    server: &mut WarmServer,
    envs: &JobEnvs,
    step: &StepPlan,
    cx: &RunContext,
) -> (Result<StepOutput, BackendError>, Switch) {
    let l = life(kit, envs, step, cx, server.log.clone());
    let from = std::fs::metadata(&server.log).map(|m| m.len()).unwrap_or(0);
    let mut switch = Switch::default();
    let r = phases(&l, server, &mut switch).await;
    if r.is_err() || !server.alive().await {
        server.stop(kit.policy.stop_grace).await;
    }
    copy_from(&server.log, from, &l.files.server_log());
    (r, switch)
}

async fn phases(
    l: &Life<'_>,
    server: &mut WarmServer,
    switch: &mut Switch,
) -> Result<StepOutput, BackendError> {
    l.prelude()?;
    let port = Some(server.port);
    let client_env = &l.envs.client;
    // Every argv is filled before the server is woken.
    if let Some(w) = &l.step.warmup {
        l.fill(Role::Warmup, client_env, w, port)?;
    }
    l.fill(Role::Client, client_env, &l.step.client, port)?;
    if let Some(s) = server.slot.as_mut() {
        if let Some(exit) = s.try_wait().await? {
            return Err(l.err(
                Failure::ServerFailed,
                format!(
                    "the server exited {exit} while it slept; {}",
                    l.server_log_tail()
                ),
            ));
        }
    }
    l.cx.progress.event("server", "waking the server");
    switch.wake_ms = Some(server.switch(l, "/wake_up").await?);
    let mut out = None;
    if let Some(w) = &l.step.warmup {
        let (exit, _, _) = l
            .run_to_end(Role::Warmup, w, client_env, port, &mut server.slot)
            .await?;
        if !exit.success() {
            tracing::warn!(%exit, "the warm-up failed; the measured client is not run");
            l.cx.progress.event(
                "warmup",
                &format!("the warm-up exited {exit}; the measured client is not run"),
            );
            out = Some(l.output(Role::Warmup, exit, 0.0, None));
        }
    }
    let out = match out {
        Some(o) => o,
        None => {
            let (exit, secs, cpu) = l
                .run_to_end(
                    Role::Client,
                    &l.step.client,
                    client_env,
                    port,
                    &mut server.slot,
                )
                .await?;
            l.cx.progress.event(
                "benchmark",
                &format!("the client exited {exit} after {secs:.1} s"),
            );
            l.output(Role::Client, exit, secs, cpu)
        }
    };
    l.cx.progress.event("server", "putting the server to sleep");
    switch.sleep_ms = Some(server.switch(l, "/sleep?level=1").await?);
    Ok(out)
}

/// Copy `src` from byte `from` on into `dst` (the attempt's slice of a warm server's log).
fn copy_from(src: &Path, from: u64, dst: &Path) {
    let copied = std::fs::File::open(src).and_then(|mut f| {
        f.seek(SeekFrom::Start(from))?;
        let mut out = std::fs::File::create(dst)?;
        std::io::copy(&mut f, &mut out)
    });
    if let Err(e) = copied {
        tracing::warn!(file = %dst.display(), "cannot copy the server's log: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_reads_both_log_formats_and_the_last_line_wins() {
        let v1 = "INFO 01-21 02:29:49 [kv_cache_utils.py:716] GPU KV cache size: 401,232 tokens\n";
        let c = capacity(v1).unwrap();
        assert_eq!((c.amount, c.unit.as_str()), (401_232, "tokens"));
        let old = "INFO 01-21 02:29:49 worker.py:1] # GPU blocks: 7000, # CPU blocks: 2048\n\
                   INFO 01-21 02:29:50 worker.py:1] # GPU blocks: 6500, # CPU blocks: 2048";
        let c = capacity(old).unwrap();
        assert_eq!((c.amount, c.unit.as_str()), (6500, "blocks"));
        assert!(capacity("nothing here\nGPU KV cache size: lots").is_none());
    }

    #[test]
    fn the_sleep_step_adds_the_flag_and_the_variable_once() {
        use crate::plan::{ClientBuild, GpuRequest, ProcessPlan};
        use crate::settings::Timeouts;
        use crate::spec::{EntryPoint, Mode};
        let step = StepPlan {
            mode: Mode::Serving,
            entry: EntryPoint::VllmBench {
                subcommand: "serve".into(),
            },
            server: Some(ProcessPlan {
                argv: vec!["{PYTHON}".into(), "--port".into(), "{PORT}".into()],
            }),
            client: ProcessPlan {
                argv: vec!["c".into()],
            },
            warmup: None,
            client_build: ClientBuild::SameAsVariant,
            env: vec![(DEV_MODE_ENV.into(), "0".into()), ("A".into(), "b".into())],
            datasets: Vec::new(),
            gpu: GpuRequest {
                kind: None,
                count: 1,
            },
            timeouts: Timeouts {
                prepare_s: 1,
                server_ready_s: 1,
                benchmark_s: 1,
            },
            result_file: None,
            unclassified_flags: Vec::new(),
            replaced_flags: Vec::new(),
        };
        let s = sleep_step(&sleep_step(&step));
        let argv = &s.server.as_ref().unwrap().argv;
        assert_eq!(argv.iter().filter(|a| *a == SLEEP_FLAG).count(), 1);
        let dev: Vec<_> = s.env.iter().filter(|(k, _)| k == DEV_MODE_ENV).collect();
        assert_eq!(dev, vec![&(DEV_MODE_ENV.to_string(), "1".to_string())]);
        assert!(s.env.contains(&("A".into(), "b".into())));
    }
}
