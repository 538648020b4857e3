//! From the store to a [`Report`]: samples per variant, comparisons, floors, validity,
//! failures and cost.

use std::collections::BTreeMap;

use super::{
    Cost, FailureReport, LatencyPercentiles, MedianRun, MetricReport, Pair, PairComparison,
    REPORT_SCHEMA_VERSION, Report, ReportError, ReportOptions, RunInfo, RunProvenance, Sample,
    TaskReport, Validity, VariantProvenance, VariantReport,
};
use crate::metrics::higher_is_better;
use crate::plan::TaskPlan;
use crate::record::{AttemptRecord, JobKey, JobStatus, RunId, TaskStatus};
use crate::samples::primary_metric;
use crate::spec::Mode;
use crate::stats::{CompareOptions, NoiseFloor, Verdict, compare_rounds, summarize};
use crate::store::{PrepareTry, Store, StoreError, TaskRow};
use crate::task::Variant;

/// Secondary metrics reported for serving tasks.
/// Secondary serving metrics: reported, descriptive only (no verdict is drawn from them beside
/// the primary one, so no correction for multiplicity is needed).
const SERVING_EXTRA: [&str; 9] = [
    "output_throughput_tps",
    "tpot_median_ms",
    "tpot_p99_ms",
    "ttft_median_ms",
    "ttft_p99_ms",
    "itl_median_ms",
    "itl_p99_ms",
    "e2el_median_ms",
    "e2el_p99_ms",
];

/// The latency families whose P50 and P99 are reported per variant.
const LATENCY_FAMILIES: [&str; 4] = ["ttft", "tpot", "itl", "e2el"];

/// The four sides of a task, in display order.
const SIDES: [(Variant, bool); 4] = [
    (Variant::Baseline, false),
    (Variant::Human, false),
    (Variant::Agent, false),
    (Variant::Baseline, true),
];

/// Read a run from the store and compute its report.
pub fn build(store: &Store, run: &RunId, opts: &ReportOptions) -> Result<Report, ReportError> {
    let info = store
        .runs()?
        .into_iter()
        .find(|r| &r.id == run)
        .ok_or_else(|| StoreError::NoSuchRun(run.0.clone()))?;
    let rows = store.tasks(run)?;
    let jobs: BTreeMap<JobKey, JobStatus> = store.jobs(run)?.into_iter().collect();
    let attempts = store.attempts(run)?;
    let prepare = store.prepare_tries(run)?;
    let mut tasks = Vec::with_capacity(rows.len());
    for row in &rows {
        let own: Vec<&AttemptRecord> = attempts
            .iter()
            .filter(|a| a.job.commit == row.commit)
            .collect();
        let own_jobs: BTreeMap<&JobKey, JobStatus> = jobs
            .iter()
            .filter(|(k, _)| k.commit == row.commit)
            .map(|(k, s)| (k, *s))
            .collect();
        let own_prepare: Vec<PrepareTry> = prepare
            .iter()
            .filter(|p| p.commit == row.commit)
            .cloned()
            .collect();
        tasks.push(task_report(row, &own, &own_jobs, own_prepare, opts));
    }
    let all: Vec<&AttemptRecord> = attempts.iter().collect();
    let meta = store.run_meta(run)?;
    Ok(Report {
        schema_version: REPORT_SCHEMA_VERSION,
        run: RunInfo {
            id: info.id.0,
            created_at: info.created_at,
            status: info.status,
            backend: info.backend,
            // Recorded by the program with the run's options, where one applied.
            profile: meta
                .get("profile")
                .and_then(|p| p.as_str())
                .map(String::from),
            origin: info.origin,
        },
        options: opts.clone(),
        tasks,
        cost: cost(&all),
        provenance: RunProvenance {
            // Recorded by the store when the run was created.
            run_by: meta
                .get("perf_runner")
                .and_then(|p| serde_json::from_value(p.clone()).ok()),
            report_by: Some(crate::provenance::program()),
        },
    })
}

/// The mode of a task: from its plan, else from which primary metric its attempts carry.
fn mode_of(row: &TaskRow, attempts: &[&AttemptRecord]) -> Option<Mode> {
    if let Ok(plan) = serde_json::from_str::<TaskPlan>(row.plan_json().unwrap_or_default()) {
        return Some(plan.step.mode);
    }
    [
        Mode::Serving,
        Mode::Throughput,
        Mode::Latency,
        Mode::PrefixCaching,
    ]
    .into_iter()
    .find(|&m| {
        attempts
            .iter()
            .any(|a| a.metrics.get(&primary_metric(m)).is_some())
    })
}

/// The successful attempt of each job (the last, should a job have several).
fn successes<'a>(attempts: &[&'a AttemptRecord]) -> BTreeMap<JobKey, &'a AttemptRecord> {
    let mut out = BTreeMap::new();
    for a in attempts.iter().filter(|a| a.succeeded()) {
        out.insert(a.job.clone(), *a);
    }
    out
}

/// Samples of `metric` for one side, ordered by repeat.
fn values(
    ok: &BTreeMap<JobKey, &AttemptRecord>,
    side: (Variant, bool),
    metric: &str,
) -> Vec<Sample> {
    ok.iter()
        .filter(|(k, _)| k.variant == side.0 && k.aa == side.1)
        .filter_map(|(k, a)| {
            a.metrics
                .get(metric)
                .filter(|v| v.is_finite())
                .map(|value| Sample {
                    repeat: k.repeat,
                    value,
                })
        })
        .collect()
}

/// `(round, value)` of each sample, for pairing runs of one round.
fn rounds(s: &[Sample]) -> Vec<(u32, f64)> {
    s.iter().map(|s| (s.repeat, s.value)).collect()
}

fn plain(s: &[Sample]) -> Vec<f64> {
    s.iter().map(|s| s.value).collect()
}

fn task_report(
    row: &TaskRow,
    attempts: &[&AttemptRecord],
    jobs: &BTreeMap<&JobKey, JobStatus>,
    prepare: Vec<PrepareTry>,
    opts: &ReportOptions,
) -> TaskReport {
    let mode = mode_of(row, attempts);
    let planned = row.status == TaskStatus::Planned;
    // The client argv the runs used says the load, and so the primary metric.
    let load = attempts
        .first()
        .filter(|_| mode == Some(Mode::Serving))
        .map(|a| crate::primary::Load::from_argv(&a.client_argv));
    let chosen = mode.map(|m| crate::primary::choose(m, load));
    let ok = successes(attempts);
    let chosen = match (&opts.metric, chosen) {
        (Some(metric), Some(_)) => {
            let reported = ok.values().any(|a| a.metrics.get(metric).is_some());
            Some(crate::primary::Primary {
                metric: metric.clone(),
                why: if reported {
                    "chosen for this report (--metric)".into()
                } else {
                    "chosen for this report (--metric); no successful repeat of this task reported it".into()
                },
            })
        }
        (_, chosen) => chosen,
    };
    let primary_why = chosen.as_ref().map(|p| p.why.clone());
    let primary = chosen.map(|p| p.metric);
    let mut variants = Vec::new();
    for side in SIDES {
        let n_jobs = jobs
            .keys()
            .filter(|k| k.variant == side.0 && k.aa == side.1)
            .count() as u32;
        let had_attempts = attempts
            .iter()
            .any(|a| a.job.variant == side.0 && a.job.aa == side.1);
        if n_jobs == 0 && !had_attempts {
            continue;
        }
        let samples = primary
            .as_deref()
            .map(|m| values(&ok, side, m))
            .unwrap_or_default();
        let succeeded = ok
            .keys()
            .filter(|k| k.variant == side.0 && k.aa == side.1)
            .count() as u32;
        let failed = jobs
            .iter()
            .filter(|(k, s)| k.variant == side.0 && k.aa == side.1 && is_failed(**s))
            .count() as u32;
        variants.push(VariantReport {
            variant: side.0,
            aa: side.1,
            jobs: n_jobs.max(succeeded),
            succeeded,
            failed,
            summary: summarize(&plain(&samples), opts.resamples, opts.seed),
            median_run: median_run(&ok, side, &samples),
            samples,
            latency: latency(&ok, side),
            provenance: variant_provenance(attempts, side),
        });
    }
    let all: Vec<Vec<(u32, f64)>> = variants.iter().map(|v| rounds(&v.samples)).collect();
    // The baseline and its A/A are one build: what moves them alike is the host, not a variant.
    let same_build: Vec<Vec<(u32, f64)>> = variants
        .iter()
        .filter(|v| v.variant == Variant::Baseline)
        .map(|v| rounds(&v.samples))
        .collect();
    let tested = if same_build.len() == 2 {
        &same_build
    } else {
        &all
    };
    let mut rounds_levels = crate::stats::round_levels(&all, tested);
    for l in rounds_levels.iter_mut().flat_map(|r| r.levels.iter_mut()) {
        let of_round = |key: &str| {
            let xs: Vec<f64> = ok
                .iter()
                .filter(|(k, _)| k.repeat == l.round)
                .filter_map(|(_, a)| a.metrics.get(key))
                .collect();
            crate::stats::median(&xs)
        };
        l.host_cpu_busy_pct = of_round("host_cpu_busy_pct");
        l.host_cpu_steal_pct = of_round("host_cpu_steal_pct");
    }
    let (noise_floor, aa) = floor(&ok, primary.as_deref(), opts);
    let cmp = CompareOptions {
        resamples: opts.resamples,
        seed: opts.seed,
        floor: noise_floor,
        ..CompareOptions::default()
    };
    let mut keys: Vec<String> = primary.iter().cloned().collect();
    if mode == Some(Mode::Serving) {
        let extra = SERVING_EXTRA
            .iter()
            .filter(|k| Some(**k) != primary.as_deref());
        keys.extend(extra.map(|k| k.to_string()));
    }
    let mut metrics: Vec<MetricReport> = keys
        .iter()
        .map(|metric| MetricReport {
            metric: metric.clone(),
            higher_is_better: higher_is_better(metric),
            comparisons: Pair::ALL
                .iter()
                .filter_map(|&pair| {
                    let (b, o) = pair.sides();
                    // Runs of one interleaved round share its conditions: pair them.
                    let base = rounds(&values(&ok, (b, false), metric));
                    let other = rounds(&values(&ok, (o, false), metric));
                    compare_rounds(metric, &base, &other, &cmp).map(|comparison| PairComparison {
                        pair,
                        comparison,
                        scored: true,
                    })
                })
                .collect(),
        })
        // The primary metric always; a secondary one only where the runs report it.
        .enumerate()
        .filter(|(i, m)| *i == 0 || !m.comparisons.is_empty())
        .map(|(_, m)| m)
        .collect();
    let validity = validity(row, planned, metrics.first(), &variants);
    for m in &mut metrics {
        for c in &mut m.comparisons {
            c.scored = c.pair == Pair::HumanVsBaseline || validity == Validity::Reproduced;
        }
    }
    let mut backends: Vec<String> = Vec::new();
    for a in attempts {
        if !backends.contains(&a.backend) {
            backends.push(a.backend.clone());
        }
    }
    TaskReport {
        backends,
        commit: row.commit.clone(),
        line: row.line,
        subject: row.subject.clone(),
        status: row.status,
        reason: (!planned).then(|| row.detail.clone()),
        mode,
        primary_metric: primary,
        primary_why,
        variants,
        noise_floor,
        aa,
        metrics,
        validity,
        failures: failures(attempts, jobs, &ok),
        cost: cost(attempts),
        servers: super::servers::servers(attempts),
        prepare,
        rounds: rounds_levels,
    }
}

/// The median of finite values, `None` when there are none.
fn median_of(mut xs: Vec<f64>) -> Option<f64> {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

/// P50 and P99 per latency family over a side's successful repeats (families no repeat
/// reported are left out).
fn latency(
    ok: &BTreeMap<JobKey, &AttemptRecord>,
    side: (Variant, bool),
) -> Vec<LatencyPercentiles> {
    let runs: Vec<&AttemptRecord> = ok
        .iter()
        .filter(|(k, _)| k.variant == side.0 && k.aa == side.1)
        .map(|(_, a)| *a)
        .collect();
    LATENCY_FAMILIES
        .iter()
        .filter_map(|family| {
            let p50 = |a: &AttemptRecord| {
                a.metrics
                    .get(&format!("{family}_p50_ms"))
                    .or_else(|| a.metrics.get(&format!("{family}_median_ms")))
            };
            let p99 = |a: &AttemptRecord| a.metrics.get(&format!("{family}_p99_ms"));
            let p50s: Vec<f64> = runs.iter().filter_map(|a| p50(a)).collect();
            let p99s: Vec<f64> = runs.iter().filter_map(|a| p99(a)).collect();
            let n = runs
                .iter()
                .filter(|a| p50(a).is_some() || p99(a).is_some())
                .count() as u32;
            (n > 0).then(|| LatencyPercentiles {
                family: family.to_string(),
                p50_ms: median_of(p50s),
                p99_ms: median_of(p99s),
                n,
            })
        })
        .collect()
}

/// Every distinct build, GPU, host, backend and argv digest a side's attempts recorded, in
/// the order first seen.
fn variant_provenance(attempts: &[&AttemptRecord], side: (Variant, bool)) -> VariantProvenance {
    fn add(list: &mut Vec<String>, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            if !list.iter().any(|x| x == v) {
                list.push(v.to_string());
            }
        }
    }
    let mut p = VariantProvenance::default();
    for a in attempts
        .iter()
        .filter(|a| a.job.variant == side.0 && a.job.aa == side.1)
    {
        add(&mut p.engine_versions, a.engine_version.as_deref());
        add(&mut p.build_identities, Some(&a.build_identity));
        add(&mut p.build_digests, a.build_digest.as_deref());
        for g in &a.gpu_names {
            add(&mut p.gpu_names, Some(g));
        }
        add(&mut p.hosts, a.host.as_deref());
        add(&mut p.backends, Some(&a.backend));
        if !a.client_argv.is_empty() {
            let d = crate::provenance::argv_sha256(&a.client_argv);
            add(&mut p.client_argv_sha256, Some(&d));
        }
        if let Some(argv) = &a.server_argv {
            let d = crate::provenance::argv_sha256(argv);
            add(&mut p.server_argv_sha256, Some(&d));
        }
    }
    p
}

fn is_failed(s: JobStatus) -> bool {
    matches!(s, JobStatus::Failed | JobStatus::FailedTransient)
}

/// The noise floor of a task: A/A-measured on the primary metric when the run has A/A
/// samples (at least two per side) and the options allow it, else the configured one.
fn floor(
    ok: &BTreeMap<JobKey, &AttemptRecord>,
    primary: Option<&str>,
    opts: &ReportOptions,
) -> (NoiseFloor, Option<crate::stats::Comparison>) {
    let configured = NoiseFloor::configured(opts.configured_floor);
    let Some(metric) = primary else {
        return (configured, None);
    };
    let base = rounds(&values(ok, (Variant::Baseline, false), metric));
    let aa = rounds(&values(ok, (Variant::Baseline, true), metric));
    if base.len() < 2 || aa.len() < 2 {
        return (configured, None);
    }
    let cmp = CompareOptions {
        resamples: opts.resamples,
        seed: opts.seed,
        floor: configured,
        ..CompareOptions::default()
    };
    let comparison = compare_rounds(metric, &base, &aa, &cmp);
    let measured = comparison
        .as_ref()
        .and_then(|c| c.ratio)
        .map(|r| NoiseFloor::from_aa(&r, opts.aa_floor_minimum));
    match measured {
        Some(f) if opts.aa_floor => (f, comparison),
        _ => (configured, comparison),
    }
}

fn validity(
    row: &TaskRow,
    planned: bool,
    primary: Option<&MetricReport>,
    variants: &[VariantReport],
) -> Validity {
    if !planned {
        return Validity::NotMeasured {
            reason: format!("task {}", row.status),
        };
    }
    match primary.and_then(|m| m.comparison(Pair::HumanVsBaseline)) {
        Some(c) if c.verdict == Verdict::Improved => Validity::Reproduced,
        Some(c) => Validity::NotReproduced { verdict: c.verdict },
        None => {
            let missing: Vec<String> = [Variant::Baseline, Variant::Human]
                .into_iter()
                .filter(|v| {
                    !variants
                        .iter()
                        .any(|r| r.variant == *v && !r.aa && !r.samples.is_empty())
                })
                .map(|v| v.to_string())
                .collect();
            Validity::NotMeasured {
                reason: format!("no successful {} repeats", missing.join(" or ")),
            }
        }
    }
}

fn median_run(
    ok: &BTreeMap<JobKey, &AttemptRecord>,
    side: (Variant, bool),
    samples: &[Sample],
) -> Option<MedianRun> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.value.total_cmp(&b.value).then(a.repeat.cmp(&b.repeat)));
    let mid = sorted.get(sorted.len().checked_sub(1)? / 2)?;
    let (_, a) = ok
        .iter()
        .find(|(k, _)| k.variant == side.0 && k.aa == side.1 && k.repeat == mid.repeat)?;
    Some(MedianRun {
        repeat: mid.repeat,
        attempt: a.attempt,
        started_at: a.started_at.clone(),
        engine_version: a.engine_version.clone(),
        client_argv: a.client_argv.clone(),
        metrics: a.metrics.values(),
    })
}

/// Jobs whose final state is a failure: the last attempt's code and evidence.
fn failures(
    attempts: &[&AttemptRecord],
    jobs: &BTreeMap<&JobKey, JobStatus>,
    ok: &BTreeMap<JobKey, &AttemptRecord>,
) -> Vec<FailureReport> {
    let mut by_job: BTreeMap<&JobKey, Vec<&AttemptRecord>> = BTreeMap::new();
    for a in attempts {
        by_job.entry(&a.job).or_default().push(a);
    }
    by_job
        .into_iter()
        .filter(|(k, _)| !ok.contains_key(*k))
        .filter(|(k, _)| jobs.get(k).is_none_or(|s| is_failed(*s)))
        .filter_map(|(k, list)| {
            let last = list.iter().rev().find(|a| a.failure.is_some())?;
            Some(FailureReport {
                variant: k.variant,
                aa: k.aa,
                repeat: k.repeat,
                code: last.failure.map(|f| f.code().to_string())?,
                attempts: list.len() as u32,
                detail: last.failure_detail.clone(),
                evidence: last.evidence.clone(),
            })
        })
        .collect()
}

/// GPU·seconds, first start → last finish, attempts and retries.
pub(super) fn cost(attempts: &[&AttemptRecord]) -> Cost {
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
    let start = attempts.iter().filter_map(|a| parse(&a.started_at)).min();
    let end = attempts.iter().filter_map(|a| parse(&a.finished_at)).max();
    let wall_s = match (start, end) {
        (Some(s), Some(e)) if e >= s => Some((e - s).num_milliseconds() as f64 / 1000.0),
        _ => None,
    };
    let distinct: std::collections::BTreeSet<&JobKey> = attempts.iter().map(|a| &a.job).collect();
    Cost {
        // `+ 0.0` turns the empty sum's −0 into 0.
        gpu_seconds: attempts
            .iter()
            .map(|a| a.gpu_seconds)
            .filter(|g| g.is_finite())
            .sum::<f64>()
            + 0.0,
        wall_s,
        attempts: attempts.len() as u32,
        retries: (attempts.len() - distinct.len()) as u32,
        measured_share: super::servers::measured_share(attempts),
    }
}
