//! The artifacts check: can the baseline and human builds be installed without a source build?
//!
//! Offline, the commit date decides: vLLM main has per-commit wheels only since v0.5.3
//! (2024-07-23). Online, per commit (parent and human): `GET` the wheel index (its listing
//! also gives the version, used by the engine check), `HEAD` the legacy wheel when the index is
//! absent, and `HEAD` the image manifest (a missing image is only a warning: they expire).
//! A probe whose transient failures persist is reported under `not_checked`, never as a verdict.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use futures::StreamExt;
use regex::Regex;

use crate::failure::Failure;
use crate::task::Task;

use super::http::{Http, HttpOutcome};
use super::version::iso_date;
use super::{Context, Findings, Reason, TriageOptions};

static WHEEL_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"vllm-(\d+\.\d+(?:\.\d+)?(?:[.a-z]*\d+)*)(?:\+|%2[bB]|-cp|-py)")
        .expect("valid regex")
});

/// What the online probes found, by URL.
#[derive(Debug, Default)]
pub struct OnlineResults {
    by_url: HashMap<String, HttpOutcome>,
    versions: HashMap<String, (String, String)>,
}

impl OnlineResults {
    /// URLs asked, and how many of them answered (found or absent, not "unknown").
    pub fn answered(&self) -> (usize, usize) {
        let ok = self
            .by_url
            .values()
            .filter(|o| !matches!(o, HttpOutcome::Unknown { .. }))
            .count();
        (self.by_url.len(), ok)
    }

    /// The vLLM version the commit's wheel index lists, and the index URL.
    pub fn version_of(&self, commit: &str) -> Option<(String, String)> {
        self.versions.get(commit).cloned()
    }
}

/// The version in a wheel index listing (`vllm-0.6.4.dev12+gabc…whl`), ignoring the legacy
/// placeholder version `1.0.0.dev`.
pub fn wheel_version(listing: &str) -> Option<String> {
    WHEEL_VERSION
        .captures_iter(listing)
        .map(|c| c[1].to_string())
        .find(|v| v != "1.0.0.dev" && !v.starts_with("1.0.0.dev"))
}

fn url(template: &str, commit: &str) -> String {
    template.replace("{commit}", commit)
}

fn commits(task: &Task) -> impl Iterator<Item = (&'static str, &str)> {
    task.parent
        .as_deref()
        .map(|p| ("baseline", p))
        .into_iter()
        .chain([("human", task.commit.as_str())])
}

/// Probe every task's commits (deduplicated), `opts.concurrency` at a time.
/// Whether the artifact servers answer at all: one probe (the first commit's wheel index)
/// before hundreds, so that a machine without a network learns it in one timeout.
pub(crate) async fn reachable(
    tasks: &[Task],
    opts: &TriageOptions,
    http: &Http,
) -> Result<(), String> {
    let Some(c) = tasks.iter().flat_map(|t| commits(t).map(|(_, c)| c)).next() else {
        return Ok(());
    };
    let u = url(&opts.sources.wheel_index, c);
    match http.get(&u).await {
        HttpOutcome::Unknown { why } => Err(format!("{u}: {why}")),
        _ => Ok(()),
    }
}

pub(crate) async fn probe_all(tasks: &[Task], opts: &TriageOptions, http: &Http) -> OnlineResults {
    let all: BTreeSet<&str> = tasks
        .iter()
        .flat_map(|t| commits(t).map(|(_, c)| c))
        .collect();
    let n = opts.concurrency.max(1);
    let first: Vec<(String, bool, HttpOutcome)> = futures::stream::iter(all.iter().flat_map(|c| {
        [
            (url(&opts.sources.wheel_index, c), false),
            (url(&opts.image_manifest_url, c), true),
        ]
    }))
    .map(|(u, image)| async move {
        let o = if image {
            http.manifest(&u).await
        } else {
            http.get(&u).await
        };
        (u, image, o)
    })
    .buffer_unordered(n)
    .collect()
    .await;
    let mut out = OnlineResults::default();
    for (u, _, o) in first {
        out.by_url.insert(u, o);
    }
    for c in &all {
        if let Some(HttpOutcome::Ok {
            body: Some(body), ..
        }) = out.by_url.get(&url(&opts.sources.wheel_index, c))
        {
            if let Some(v) = wheel_version(body) {
                out.versions
                    .insert(c.to_string(), (v, url(&opts.sources.wheel_index, c)));
            }
        }
    }
    let legacy: Vec<String> = all
        .iter()
        .filter(|c| {
            !matches!(
                out.by_url.get(&url(&opts.sources.wheel_index, c)),
                Some(HttpOutcome::Ok { .. })
            )
        })
        .map(|c| url(&opts.sources.legacy_wheel, c))
        .collect();
    let second: Vec<(String, HttpOutcome)> = futures::stream::iter(legacy)
        .map(|u| async move {
            let o = http.head(&u).await;
            (u, o)
        })
        .buffer_unordered(n)
        .collect()
        .await;
    out.by_url.extend(second);
    out
}

fn no_wheel(cx: &Context<'_>, detail: String, evidence: Vec<String>, f: &mut Findings) {
    let fix = "build vLLM from source at the commit (a backend with source builds), or skip";
    if cx.opts.source_builds {
        f.warnings
            .push(format!("no_wheel: {detail}; a source build will be used"));
    } else {
        f.reasons
            .push(Reason::attention(Failure::NoWheel, detail, fix).with_evidence(evidence));
    }
}

/// Decide by the commit date alone.
pub(crate) fn check_by_date(task: &Task, cx: &Context<'_>, f: &mut Findings) {
    if !date_rule(task, cx, f) {
        f.not_checked
            .push(if task.date.as_deref().and_then(iso_date).is_some() {
                "per-commit wheel and image existence: offline".into()
            } else {
                "per-commit wheels: offline and the task has no date".into()
            });
    }
}

/// Apply the first-wheel date rule; true when it decided (the commit predates wheels).
fn date_rule(task: &Task, cx: &Context<'_>, f: &mut Findings) -> bool {
    let (Some(day), Some(first)) = (
        task.date.as_deref().and_then(iso_date),
        cx.facts.first_wheel_date(),
    ) else {
        return false;
    };
    if day >= first {
        return false;
    }
    no_wheel(
        cx,
        format!(
            "the commit ({day}) predates per-commit wheels (vLLM {}, {first}); both builds need a source build",
            cx.facts.first_wheel
        ),
        vec![format!(
            "commit date {day} < {first} (first_wheel in vllm.toml)"
        )],
        f,
    );
    true
}

fn show(o: Option<&HttpOutcome>) -> String {
    match o {
        Some(HttpOutcome::Ok { status, .. }) => format!("HTTP {status}"),
        Some(HttpOutcome::Absent { status }) => format!("HTTP {status}"),
        Some(HttpOutcome::Unknown { why }) => why.clone(),
        None => "not probed".into(),
    }
}

/// Decide from the online probes (falling back to the date where they were inconclusive).
pub(crate) fn check_online(task: &Task, cx: &Context<'_>, r: &OnlineResults, f: &mut Findings) {
    if task.parent.is_none() {
        f.not_checked
            .push("baseline build: the task has no parent commit".into());
    }
    let mut missing = Vec::new();
    let mut evidence = Vec::new();
    let mut inconclusive = false;
    for (role, c) in commits(task) {
        let (iu, lu, mu) = (
            url(&cx.opts.sources.wheel_index, c),
            url(&cx.opts.sources.legacy_wheel, c),
            url(&cx.opts.image_manifest_url, c),
        );
        let (index, legacy) = (r.by_url.get(&iu), r.by_url.get(&lu));
        let exists = |o: Option<&HttpOutcome>| matches!(o, Some(HttpOutcome::Ok { .. }));
        let absent = |o: Option<&HttpOutcome>| matches!(o, Some(HttpOutcome::Absent { .. }));
        if exists(index) || exists(legacy) {
            // A wheel exists.
        } else if absent(index) && absent(legacy) {
            missing.push(format!("{role} {}", super::prefix(c, 12)));
            evidence.push(format!("GET {iu} → {}", show(index)));
            evidence.push(format!("HEAD {lu} → {}", show(legacy)));
        } else {
            inconclusive = true;
            f.not_checked.push(format!(
                "wheel for the {role} build {}: index {}; legacy wheel {}",
                super::prefix(c, 12),
                show(index),
                show(legacy)
            ));
        }
        match r.by_url.get(&mu) {
            Some(HttpOutcome::Absent { status }) => f.warnings.push(format!(
                "no_image: no per-commit image for the {role} build ({mu} → HTTP {status}); images expire, the wheel is used"
            )),
            Some(HttpOutcome::Ok { .. }) => {}
            other => f.not_checked.push(format!("image for the {role} build: {}", show(other))),
        }
    }
    if !missing.is_empty() {
        no_wheel(
            cx,
            format!("no per-commit wheel for {}", missing.join(" and ")),
            evidence,
            f,
        );
    } else if inconclusive {
        date_rule(task, cx, f);
    }
}
