//! The engine's side of warm servers (see [`crate::stepkit::warm`]): per task and lease, one
//! server per build, started one after another (each put to sleep before the next starts), then
//! the interleaved rounds as wake → warm-up → measured client → sleep, the variants' order
//! rotating across rounds from a seeded start. A build or backend without sleep mode — or any
//! server that does not come up asleep — falls back to a restart per job, with the reason in
//! every attempt's record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::backend::{BackendError, GpuLease, JobEnvs, PreparedEnv, RunContext, StepOutput};
use crate::failure::Failure;
use crate::plan::{StepPlan, TaskPlan};
use crate::record::{Capacity, JobKey, RunId, ServeMode, ServeRecord};
use crate::stepkit::{self, WarmServer};
use crate::task::Variant;

/// How the jobs of a task get their server.
pub(super) enum Exec<'p> {
    /// A server started for every job (or none: offline steps); `why` is recorded for serving
    /// steps.
    Restart {
        /// Why not warm servers (`None`: the step has no server).
        why: Option<String>,
        /// The rotation's seed and each round's order, for serving steps: a fresh server per
        /// job still follows the previous one's teardown, so no variant may always go first.
        order: Option<(u64, BTreeMap<u32, Vec<String>>)>,
    },
    /// The task's warm servers.
    Warm(&'p mut Pool),
}

impl Exec<'_> {
    /// The record of a restart attempt (serving steps) of round `repeat`.
    pub(super) fn restart_record(
        why: &Option<String>,
        order: &Option<(u64, BTreeMap<u32, Vec<String>>)>,
        repeat: u32,
    ) -> Option<ServeRecord> {
        why.as_ref().map(|w| ServeRecord {
            mode: ServeMode::Restart,
            why: Some(w.clone()),
            server_start: 0,
            setup_charged_s: 0.0,
            wake_ms: None,
            sleep_ms: None,
            kv_cache: None,
            round_order: order
                .as_ref()
                .and_then(|(_, o)| o.get(&repeat).cloned())
                .unwrap_or_default(),
            order_seed: order.as_ref().map(|(seed, _)| *seed),
        })
    }
}

/// Why the set-up of warm servers ended without a pool.
pub(super) enum NoPool {
    /// Restart per job, for this reason.
    Fallback(String),
    /// Cancelled meanwhile.
    Cancelled,
}

struct Slot {
    server: Option<WarmServer>,
    starts: u32,
    envs: JobEnvs,
    /// Start-up seconds not yet charged to an attempt.
    uncharged_s: f64,
    capacity: Option<Capacity>,
}

/// A task's warm servers, one per build.
pub(super) struct Pool {
    step: StepPlan,
    slots: BTreeMap<Variant, Slot>,
    dir: PathBuf,
    grace: Duration,
    /// The seed of the rotation.
    pub(super) seed: u64,
    /// The order each round ran in, by repeat.
    pub(super) orders: BTreeMap<u32, Vec<String>>,
    /// Whether each start runs a burn-in.
    burn_in: bool,
}

/// The seed of a task's rotation: from the run and the commit, so a resumed run keeps it.
pub(super) fn seed(run: &RunId, commit: &str) -> u64 {
    let d = Sha256::digest(format!("{}\n{commit}", run.0).as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

fn label(job: &JobKey) -> String {
    match job.aa {
        true => format!("{}-aa", job.variant),
        false => job.variant.to_string(),
    }
}

/// The jobs in the order they run: round by round (repeat), each round's jobs rotated by
/// `seed + round`, so every variant goes first equally often, and in every other round the
/// jobs after the first reversed, so no job always follows the same one (a rotation alone
/// keeps each round's cyclic order: with three builds or more, a build would follow the same
/// neighbour nearly every round). Also the order of each round. On a resume the rounds'
/// remaining jobs are ordered among themselves.
pub(super) fn rotate(jobs: &[JobKey], seed: u64) -> (Vec<JobKey>, BTreeMap<u32, Vec<String>>) {
    let mut rounds: BTreeMap<u32, Vec<JobKey>> = BTreeMap::new();
    for j in jobs {
        rounds.entry(j.repeat).or_default().push(j.clone());
    }
    let mut out = Vec::with_capacity(jobs.len());
    let mut orders = BTreeMap::new();
    for (repeat, mut round) in rounds {
        let n = round.len() as u64;
        if n > 0 {
            round.rotate_left((seed.wrapping_add(u64::from(repeat)) % n) as usize);
            if (seed >> 32).wrapping_add(u64::from(repeat)) % 2 == 1 {
                round[1..].reverse();
            }
        }
        orders.insert(repeat, round.iter().map(label).collect());
        out.extend(round);
    }
    (out, orders)
}

/// A folder for a server's start that did not exist before: `server-<variant>-<n>`.
fn server_dir(task: &Path, v: Variant, n: u32) -> PathBuf {
    let mut k = n;
    loop {
        let d = task.join(format!("server-{v}-{k}"));
        if !d.exists() {
            return d;
        }
        k += 1;
    }
}

/// A warm server's labels: its variant, and its folder's name as its "attempt" (so that names
/// and labels made from them differ between the servers of a task).
fn server_labels(cx: &mut RunContext, v: Variant, dir: &Path) {
    cx.labels.insert("variant".into(), v.to_string());
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "server".into());
    cx.labels.insert("attempt".into(), name);
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

impl Pool {
    /// Start one server per variant in `variants`, one after another, each asleep before the
    /// next starts.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open(
        engine: &Engine,
        run: &RunId,
        plan: &TaskPlan,
        lease: &GpuLease,
        variants: &[Variant],
        envs: &BTreeMap<Variant, Result<PreparedEnv, (Failure, String)>>,
        dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<Pool, NoPool> {
        let step = stepkit::sleep_step(&plan.step);
        let burn_in = engine.opts.burn_in;
        let mut slots: BTreeMap<Variant, Slot> = BTreeMap::new();
        let mut grace = Duration::from_secs(10);
        let result = 'open: {
            for &v in variants {
                let client = match plan.step.client_build {
                    crate::plan::ClientBuild::Fixed(c) => c,
                    crate::plan::ClientBuild::SameAsVariant => v,
                };
                let (Some(Ok(env)), Some(Ok(client_env))) = (envs.get(&v), envs.get(&client))
                else {
                    break 'open Err(NoPool::Fallback(format!("the {v} build is not prepared")));
                };
                let job_envs = JobEnvs {
                    engine: env.clone(),
                    client: client_env.clone(),
                };
                let sdir = server_dir(dir, v, 1);
                let mut cx = engine.context(run, plan, lease, cancel, sdir.clone());
                server_labels(&mut cx, v, &sdir);
                let Some(kit) = engine.backend.warm_kit(&step, &cx).await else {
                    break 'open Err(NoPool::Fallback(format!(
                        "the {} backend starts a server for every job",
                        engine.backend.name()
                    )));
                };
                grace = kit.policy.stop_grace;
                engine
                    .progress
                    .event("server", &format!("{v}: starting its warm server"));
                let mut tries = 1;
                let started = std::time::Instant::now();
                let r = loop {
                    let r = WarmServer::start(&kit, &job_envs, &step, &cx, burn_in).await;
                    let delay = match &r {
                        Err(e) if e.is_transient() && !cancel.is_cancelled() => {
                            tries += 1;
                            engine
                                .opts
                                .retry
                                .delay_before(tries, started.elapsed(), rand::random())
                        }
                        _ => None,
                    };
                    match (r, delay) {
                        (Err(e), Some(d)) => {
                            tracing::warn!(variant = %v, error = %e, "transient failure starting the warm server; again in {d:?}");
                            if !super::retry::wait(d, cancel).await {
                                break 'open Err(NoPool::Cancelled);
                            }
                        }
                        (r, _) => break r,
                    }
                };
                kit.finish().await;
                match r {
                    Ok(s) => {
                        tracing::info!(variant = %v, start_s = s.start_s, capacity = ?s.capacity, "warm server asleep");
                        slots.insert(
                            v,
                            Slot {
                                uncharged_s: s.start_s,
                                capacity: s.capacity.clone(),
                                server: Some(s),
                                starts: 1,
                                envs: job_envs.clone(),
                            },
                        );
                    }
                    Err(e) if e.kind == Failure::Cancelled || cancel.is_cancelled() => {
                        break 'open Err(NoPool::Cancelled);
                    }
                    Err(e) => {
                        break 'open Err(NoPool::Fallback(format!(
                            "the {v} server did not come up asleep with {} ({}: {}); a server per job instead",
                            stepkit::warm::SLEEP_FLAG,
                            e.kind.code(),
                            crate::text::escape(first_line(&e.message))
                        )));
                    }
                }
            }
            Ok(())
        };
        let mut pool = Pool {
            step,
            slots,
            dir: dir.to_path_buf(),
            grace,
            seed: seed(run, &plan.commit),
            orders: BTreeMap::new(),
            burn_in,
        };
        match result {
            Ok(()) => Ok(pool),
            Err(e) => {
                pool.close().await;
                Err(e)
            }
        }
    }

    /// Run one attempt of `job` on its variant's server (started again first when it is gone).
    pub(super) async fn run(
        &mut self,
        engine: &Engine,
        job: &JobKey,
        envs: &JobEnvs,
        cx: &RunContext,
    ) -> (Result<StepOutput, BackendError>, ServeRecord) {
        let mut rec = ServeRecord {
            mode: ServeMode::Sleep,
            why: None,
            server_start: 0,
            setup_charged_s: 0.0,
            wake_ms: None,
            sleep_ms: None,
            kv_cache: None,
            round_order: self.orders.get(&job.repeat).cloned().unwrap_or_default(),
            order_seed: Some(self.seed),
        };
        let no_server = |m: String| BackendError::new(engine.backend.name(), Failure::Unknown, m);
        let Some(slot) = self.slots.get_mut(&job.variant) else {
            return (
                Err(no_server(format!("no warm server for {}", job.variant))),
                rec,
            );
        };
        rec.setup_charged_s = std::mem::take(&mut slot.uncharged_s);
        let alive = match slot.server.as_mut() {
            Some(s) => s.alive().await,
            None => false,
        };
        if !alive {
            if let Some(mut s) = slot.server.take() {
                s.stop(self.grace).await;
            }
            // Started again inside this attempt (its wall time holds the start), while the
            // other servers sleep.
            slot.starts += 1;
            let sdir = server_dir(&self.dir, job.variant, slot.starts);
            let mut scx = RunContext {
                artifact_dir: sdir.clone(),
                ..cx.clone()
            };
            server_labels(&mut scx, job.variant, &sdir);
            let Some(kit) = engine.backend.warm_kit(&self.step, &scx).await else {
                return (Err(no_server("the backend has no warm kit".into())), rec);
            };
            let started = WarmServer::start(&kit, &slot.envs, &self.step, &scx, self.burn_in).await;
            kit.finish().await;
            match started {
                Ok(s) => {
                    slot.capacity = s.capacity.clone();
                    slot.server = Some(s);
                }
                Err(e) => return (Err(e), rec),
            }
        }
        rec.server_start = slot.starts;
        rec.kv_cache = slot.capacity.clone();
        let Some(kit) = engine.backend.warm_kit(&self.step, cx).await else {
            return (Err(no_server("the backend has no warm kit".into())), rec);
        };
        let Some(server) = slot.server.as_mut() else {
            return (Err(no_server("the warm server is gone".into())), rec);
        };
        let (r, switch) = stepkit::run_warm(&kit, server, envs, &self.step, cx).await;
        kit.finish().await;
        if !server.alive().await {
            slot.server = None;
        }
        rec.wake_ms = switch.wake_ms;
        rec.sleep_ms = switch.sleep_ms;
        (r, rec)
    }

    /// How many times each variant's server was started.
    pub(super) fn starts(&self) -> BTreeMap<Variant, u32> {
        self.slots.iter().map(|(v, s)| (*v, s.starts)).collect()
    }

    /// Stop every server.
    pub(super) async fn close(&mut self) {
        for slot in self.slots.values_mut() {
            if let Some(mut s) = slot.server.take() {
                s.stop(self.grace).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::interleaved_jobs;

    #[test]
    fn rotation_puts_every_variant_first_equally_often_and_is_seeded() {
        let vs = [Variant::Baseline, Variant::Human, Variant::Agent];
        let jobs = interleaved_jobs("c", &vs, 6, false);
        let (ordered, orders) = rotate(&jobs, 7);
        assert_eq!(ordered.len(), jobs.len());
        let mut firsts: BTreeMap<String, u32> = BTreeMap::new();
        for (r, order) in &orders {
            assert_eq!(order.len(), 3, "round {r}");
            *firsts.entry(order[0].clone()).or_default() += 1;
        }
        assert_eq!(firsts.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        // Rounds stay contiguous and complete.
        for (i, j) in ordered.iter().enumerate() {
            assert_eq!(j.repeat as usize, i / 3);
        }
        assert_eq!(rotate(&jobs, 7).1, orders);
        assert_ne!(rotate(&jobs, 8).1, orders);
        assert_ne!(seed(&RunId("a".into()), "c"), seed(&RunId("b".into()), "c"));
    }

    #[test]
    fn no_job_keeps_following_the_same_one() {
        // Three builds and an A/A over 6 rounds, run back to back: the job just before each
        // one (across round ends too) varies. A rotation alone gave one predecessor 5 times
        // in 6.
        let vs = [Variant::Baseline, Variant::Human, Variant::Agent];
        let jobs = interleaved_jobs("c", &vs, 6, true);
        for s in [0u64, 7, 1 << 32, u64::MAX] {
            let (ordered, orders) = rotate(&jobs, s);
            let mut before: BTreeMap<(String, String), u32> = BTreeMap::new();
            for w in ordered.windows(2) {
                *before.entry((label(&w[1]), label(&w[0]))).or_default() += 1;
            }
            let most = before.values().copied().max().unwrap();
            assert!(most <= 3, "seed {s}: {before:?}");
            let mut firsts: BTreeMap<String, u32> = BTreeMap::new();
            for order in orders.values() {
                *firsts.entry(order[0].clone()).or_default() += 1;
            }
            assert!(firsts.values().all(|n| (1..=2).contains(n)), "{firsts:?}");
        }
    }
}
