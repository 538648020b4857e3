//! `backend = "auto"`: a backend that hands each task to the first backend of the setting
//! `auto.order` that is usable here ([`Backend::check`]) and whose GPUs
//! ([`Backend::capabilities`]) satisfy the task's request (kind, count). The choice is made
//! once per task and every later call of that task — its lease, its builds, its jobs, its warm
//! servers — goes to the same backend, so the variants of a task are never split across
//! backends. Tasks no backend can take are named with every backend's reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Result, bail};
use async_trait::async_trait;
use runner_core::backend::GpuLease;
use runner_core::lease::matches_kind;
use runner_core::plan::{GpuRequest, PlanError, TaskPlan, plan_task};
use runner_core::session::Planner;
use runner_core::settings::{AUTO_BACKEND, Settings};
use runner_core::{
    Backend, BackendError, Capabilities, Failure, Health, RunContext, Task, Variant,
};
use tokio::sync::OnceCell;

use crate::backends;

mod backend;
mod verdicts;

pub use verdicts::{Route, RouteJson, Verdict};

/// One backend `auto` may choose.
#[derive(Debug)]
struct Candidate {
    name: &'static str,
    /// The backend, or why its settings cannot make it.
    backend: Result<Arc<dyn Backend>, String>,
    /// Its health, asked once.
    health: OnceCell<Result<(), String>>,
}

/// The `auto` backend: routes each task to one backend of a configured order.
#[derive(Debug)]
pub struct Router {
    candidates: Vec<Candidate>,
    /// The backend chosen per task (by commit).
    routes: Mutex<BTreeMap<String, usize>>,
    /// Leases held, with the backend that gave each.
    leases: Mutex<Vec<(GpuLease, usize)>>,
}

impl Router {
    /// The router of `settings`: the backends of `auto.order` (every registered one when it is
    /// empty), each configured from its section. A name that is not a backend is an error;
    /// a backend whose section is unreadable stays in the order with that as its reason.
    pub fn new(settings: &Settings) -> Result<Router> {
        let order: Vec<String> = if settings.auto.order.is_empty() {
            backends::names().into_iter().map(String::from).collect()
        } else {
            settings.auto.order.clone()
        };
        let mut candidates: Vec<Candidate> = Vec::new();
        for name in &order {
            if name == AUTO_BACKEND {
                bail!("invalid configuration value: auto.order names `auto` itself");
            }
            let r = backends::find(name).map_err(|_| {
                anyhow::anyhow!(
                    "invalid configuration value: auto.order names {}, which is not a backend \
                     (expected some of {})",
                    runner_core::text::escape(name),
                    backends::names().join(", ")
                )
            })?;
            if candidates.iter().any(|c| c.name == r.name) {
                continue;
            }
            let backend = backends::section(r, settings)
                .and_then(|t| (r.make)(&t, &settings.limits))
                .map_err(|e| format!("its settings cannot be used: {e:#}"));
            candidates.push(Candidate {
                name: r.name,
                backend,
                health: OnceCell::new(),
            });
        }
        Ok(Router {
            candidates,
            routes: Mutex::new(BTreeMap::new()),
            leases: Mutex::new(Vec::new()),
        })
    }

    /// The backends it chooses from, in order.
    #[cfg(test)]
    pub fn order(&self) -> Vec<&'static str> {
        self.candidates.iter().map(|c| c.name).collect()
    }

    /// Whether candidate `i` can take a request: its GPUs first, then its health (asked once).
    async fn verdict(&self, i: usize, req: &GpuRequest) -> Result<(), String> {
        let c = &self.candidates[i];
        let backend = c.backend.as_ref().map_err(Clone::clone)?;
        fits(&backend.capabilities(), req)?;
        c.health
            .get_or_init(|| async {
                match backend.check().await {
                    Ok(h) if h.usable => Ok(()),
                    Ok(h) => Err(format!("not usable here: {}", failing(&h))),
                    Err(e) => Err(format!("its check failed: {e}")),
                }
            })
            .await
            .clone()
    }

    /// Where a task with this GPU request goes. `all`: ask every backend (to say why the others
    /// would not take it); else stop at the first that can.
    pub async fn route(&self, req: &GpuRequest, all: bool) -> Route {
        let mut route = Route {
            chosen: None,
            verdicts: Vec::new(),
        };
        for i in 0..self.candidates.len() {
            let outcome = self.verdict(i, req).await;
            if outcome.is_ok() && route.chosen.is_none() {
                route.chosen = Some(i);
            }
            route.verdicts.push(Verdict {
                backend: self.candidates[i].name,
                outcome,
            });
            if route.chosen.is_some() && !all {
                break;
            }
        }
        route
    }

    /// Send every call of `task` to the backend of `route` (none: its calls fail).
    fn assign(&self, task: &str, route: &Route) {
        if let Some(i) = route.chosen {
            lock(&self.routes).insert(task.to_string(), i);
        }
    }

    /// The backend chosen for `task`.
    fn chosen(&self, task: &str) -> Option<(usize, &Arc<dyn Backend>)> {
        let i = *lock(&self.routes).get(task)?;
        Some((i, self.candidates[i].backend.as_ref().ok()?))
    }

    /// The backend of the task of `cx`, or the error of a call for a task never routed.
    fn of(&self, cx: &RunContext) -> Result<&Arc<dyn Backend>, BackendError> {
        let task = cx.labels.get("task").map(String::as_str).unwrap_or("");
        self.chosen(task).map(|(_, b)| b).ok_or_else(|| {
            BackendError::new(
                AUTO_BACKEND,
                Failure::BadConfig,
                format!("task {task} has no backend (it was never routed)"),
            )
        })
    }
}

#[async_trait]
impl Planner for Router {
    /// Plan `task` for the backend that takes it: planned once to learn its GPU request, routed
    /// (and the route kept for its jobs), then planned for that backend (whether it runs the
    /// native serving client). `Ok(Err(why))`: no backend can take it, with every reason.
    async fn plan(
        &self,
        task: &Task,
        variants: &[Variant],
        settings: &Settings,
        patch: Option<runner_core::build::PatchSpec>,
    ) -> Result<Result<TaskPlan, String>, PlanError> {
        let first = plan_task(task, variants, settings, patch.clone())?;
        let route = self.route(&first.step.gpu, false).await;
        let Some((i, backend)) = route.chosen.and_then(|i| {
            let b = self.candidates[i].backend.as_ref().ok()?;
            Some((i, b))
        }) else {
            // Every backend's reason, not only those asked before giving up.
            let all = self.route(&first.step.gpu, true).await;
            return Ok(Err(all.why_none()));
        };
        self.assign(&task.commit, &route);
        tracing::info!(task = %task.commit, backend = self.candidates[i].name, "routed");
        let settings = settings.clone().for_backend(&backend.capabilities());
        plan_task(task, variants, &settings, patch).map(Ok)
    }

    fn backend_of(&self, commit: &str) -> Option<String> {
        Some(Backend::backend_of(self, commit).to_string())
    }
}

/// The backend of a run, and the router when it is `auto` (kept to route tasks as they are
/// planned).
pub type RunBackend = (Arc<dyn Backend>, Option<Arc<Router>>);

/// The backend of a run: a registered one, or the `auto` router.
pub fn make(name: &str, settings: &Settings) -> Result<RunBackend> {
    if name == AUTO_BACKEND {
        let router = Arc::new(Router::new(settings)?);
        return Ok((router.clone(), Some(router)));
    }
    Ok((backends::make(name, settings)?, None))
}

/// The GPUs a task asks for: its plan's request, or (a task that cannot be planned) its
/// `gpu_config`, else one GPU of any kind.
pub fn gpu_request(task: &Task, settings: &Settings) -> GpuRequest {
    let variants = [Variant::Baseline, Variant::Human];
    match plan_task(task, &variants, settings, None) {
        Ok(p) => p.step.gpu,
        Err(_) => match &task.gpu {
            Some(g) => GpuRequest {
                kind: Some(g.kind.clone()),
                count: g.count,
            },
            None => GpuRequest {
                kind: None,
                count: 1,
            },
        },
    }
}

/// With `backend = "auto"` in `settings`: per task, where it would go and why each other
/// backend would not take it (every backend is asked).
pub async fn explain(tasks: &[Task], settings: &Settings) -> Result<Option<Vec<(String, Route)>>> {
    if settings.backend != AUTO_BACKEND {
        return Ok(None);
    }
    let router = Router::new(settings)?;
    let mut out = Vec::new();
    for t in tasks {
        let route = router.route(&gpu_request(t, settings), true).await;
        out.push((t.commit.clone(), route));
    }
    Ok(Some(out))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Plain maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The failing checks of a health report, on one line.
fn failing(h: &Health) -> String {
    let bad: Vec<String> = h
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    if bad.is_empty() {
        "it says so without naming a check".into()
    } else {
        bad.join(", ")
    }
}

/// Whether a backend's GPUs satisfy a request: some kind it has matches the request's kind
/// (its model word, e.g. `H100` of `H100-SXM`; any kind when the task names none) and it can
/// lease that many of it at once. A request of no GPUs fits any backend.
pub fn fits(caps: &Capabilities, req: &GpuRequest) -> Result<(), String> {
    if req.count == 0 {
        return Ok(());
    }
    let kind = req.kind.as_deref().map(str::trim).filter(|k| !k.is_empty());
    let what = kind.unwrap_or("any kind");
    if caps.gpus.is_empty() {
        return Err(format!(
            "has no GPUs to lease; the task needs {} GPU(s) of {what}",
            req.count
        ));
    }
    let model = kind.map(|k| k.split('-').next().unwrap_or(k));
    let most = caps
        .gpus
        .iter()
        .filter(|(name, _)| matches_kind(name, kind) || matches_kind(name, model))
        .map(|(_, n)| *n)
        .max();
    let have = || {
        caps.gpus
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match most {
        None => Err(format!(
            "has no {what} GPUs (it has {}); the task needs {}",
            have(),
            req.count
        )),
        Some(n) if n < req.count => Err(format!(
            "has at most {n} GPU(s) of {what} (it has {}); the task needs {}",
            have(),
            req.count
        )),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(gpus: &[(&str, u32)]) -> Capabilities {
        Capabilities {
            gpus: gpus.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            ..Capabilities::default()
        }
    }

    fn req(kind: Option<&str>, count: u32) -> GpuRequest {
        GpuRequest {
            kind: kind.map(String::from),
            count,
        }
    }

    #[test]
    fn a_request_fits_by_kind_and_count() {
        let one = caps(&[("H100", 1)]);
        assert_eq!(fits(&one, &req(Some("H100"), 1)), Ok(()));
        assert_eq!(fits(&one, &req(None, 1)), Ok(()));
        assert_eq!(fits(&one, &req(Some("H100-SXM"), 1)), Ok(()));
        assert_eq!(fits(&caps(&[]), &req(Some("H100"), 0)), Ok(()));
        let e = fits(&one, &req(Some("H100"), 8)).unwrap_err();
        assert!(e.contains("at most 1") && e.contains("needs 8"), "{e}");
        let e = fits(&one, &req(Some("A100"), 1)).unwrap_err();
        assert!(e.contains("no A100 GPUs") && e.contains("1 × H100"), "{e}");
        assert!(
            fits(&caps(&[]), &req(None, 1))
                .unwrap_err()
                .contains("no GPUs")
        );
        // Product names (a fictional pool, Modal's table) match by their model word.
        let named = caps(&[("NVIDIA H100 80GB HBM3 (dummy)", 8)]);
        assert_eq!(fits(&named, &req(Some("H100"), 8)), Ok(()));
        assert!(fits(&named, &req(Some("H10"), 1)).is_err());
    }

    #[test]
    fn unknown_or_recursive_names_in_the_order_are_configuration_errors() {
        let mut s = Settings::embedded();
        s.auto.order = vec!["local".into(), "gpu-cloud".into()];
        let e = Router::new(&s).unwrap_err().to_string();
        assert!(
            e.contains("gpu-cloud") && e.contains("not a backend"),
            "{e}"
        );
        s.auto.order = vec!["auto".into()];
        assert!(Router::new(&s).unwrap_err().to_string().contains("itself"));
        s.auto.order = vec!["modal".into(), "local".into(), "modal".into()];
        assert_eq!(Router::new(&s).unwrap().order(), ["modal", "local"]);
        s.auto.order.clear();
        assert_eq!(Router::new(&s).unwrap().order(), backends::names());
    }
}
