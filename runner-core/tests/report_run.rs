//! Reports of a realistic run: comparisons, verdicts, the validity gate, floors, failures,
//! skipped tasks and cost, in the report data, its JSON and its markdown.

#[path = "report_support.rs"]
mod support;

use runner_core::record::RunId;
use runner_core::report::{Pair, ReportOptions, Validity, build, markdown};
use runner_core::stats::{FloorSource, Verdict};
use runner_core::store::Store;
use runner_core::task::Variant;
use support::{FAILED, NO_CHANGE, REPEATS, SERVING, SKIPPED};

fn fixture() -> (tempfile::TempDir, Store, RunId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("results.sqlite");
    let run = support::build_store(&path);
    (dir, Store::open(&path).unwrap(), run)
}

#[test]
fn comparisons_verdicts_and_validity() {
    let (_d, store, run) = fixture();
    let r = build(&store, &run, &ReportOptions::default()).unwrap();
    let commits: Vec<&str> = r.tasks.iter().map(|t| t.commit.as_str()).collect();
    assert_eq!(commits, [SERVING, NO_CHANGE, FAILED, SKIPPED]);

    // Human 10 % faster, agent equal to human, A/A-measured floor. At request rate 8 the
    // arrival rate sets the throughput, so median TPOT decides (and the report says why).
    let t = &r.tasks[0];
    assert_eq!(t.primary_metric.as_deref(), Some("tpot_median_ms"));
    assert!(
        t.primary_why
            .as_deref()
            .unwrap()
            .contains("finite request rate")
    );
    assert_eq!(t.validity, Validity::Reproduced);
    assert_eq!(t.noise_floor.source, FloorSource::AaMeasured);
    assert!(t.noise_floor.value >= 0.01 && t.noise_floor.value < 0.05);
    let primary = &t.metrics[0];
    let hb = primary.comparison(Pair::HumanVsBaseline).unwrap();
    assert_eq!(hb.verdict, Verdict::Improved);
    let ratio = hb.ratio.unwrap();
    assert!(
        (ratio.value - 1.0 / 1.10).abs() < 0.02 && ratio.ci[1] < 0.95,
        "{ratio:?}"
    );
    assert_eq!(
        primary.comparison(Pair::AgentVsBaseline).unwrap().verdict,
        Verdict::Improved
    );
    let ah = primary.comparison(Pair::AgentVsHuman).unwrap().verdict;
    assert!(
        matches!(ah, Verdict::NoChange | Verdict::Inconclusive),
        "{ah:?}"
    );
    assert!(primary.comparisons.iter().all(|c| c.scored));
    // Throughput and P50/P99 latencies too (descriptive), direction-aware; metrics the runs
    // do not report are left out.
    let keys: Vec<&str> = t.metrics.iter().map(|m| m.metric.as_str()).collect();
    assert_eq!(
        keys,
        [
            "tpot_median_ms",
            "output_throughput_tps",
            "tpot_p99_ms",
            "ttft_median_ms",
            "ttft_p99_ms"
        ]
    );
    let tput = t.metrics[1].comparison(Pair::HumanVsBaseline).unwrap();
    assert!(tput.higher_is_better && tput.verdict == Verdict::Improved);
    let ttft = t.metrics[3].comparison(Pair::HumanVsBaseline).unwrap();
    assert!(!ttft.higher_is_better && ttft.verdict == Verdict::Improved);
    // Samples: one per repeat per variant, A/A separate; the retried job counts once.
    let human = t.variant(Variant::Human, false).unwrap();
    assert_eq!(
        (human.samples.len(), human.succeeded),
        (REPEATS as usize, REPEATS)
    );
    assert_eq!(t.variant(Variant::Baseline, true).unwrap().samples.len(), 6);
    assert!(t.aa.is_some() && t.failures.is_empty());
    assert_eq!((t.cost.attempts, t.cost.retries), (25, 1));
    assert_eq!(t.cost.gpu_seconds, 24.0 * 60.0 + 20.0);

    // No change: the gate trips, agent comparisons are shown but unscored.
    let t = &r.tasks[1];
    assert_eq!(
        t.validity,
        Validity::NotReproduced {
            verdict: Verdict::NoChange
        }
    );
    assert_eq!(t.noise_floor.source, FloorSource::Configured);
    assert_eq!(t.metrics.len(), 1, "no TTFT/TPOT outside serving");
    let m = &t.metrics[0];
    assert!(
        m.comparisons
            .iter()
            .find(|c| c.pair == Pair::HumanVsBaseline)
            .unwrap()
            .scored
    );
    let ab = m
        .comparisons
        .iter()
        .find(|c| c.pair == Pair::AgentVsBaseline)
        .unwrap();
    assert!(!ab.scored && ab.comparison.verdict == Verdict::Improved);

    // Failed human: not measured, failures with code and evidence.
    let t = &r.tasks[2];
    assert_eq!(t.primary_metric.as_deref(), Some("latency_avg_s"));
    assert!(matches!(&t.validity, Validity::NotMeasured { reason } if reason.contains("human")));
    assert_eq!(t.failures.len(), REPEATS as usize);
    assert!(
        t.failures
            .iter()
            .all(|f| f.code == "oom" && f.variant == Variant::Human)
    );
    assert!(t.failures[0].evidence[0].contains("CUDA out of memory"));
    assert_eq!(t.variant(Variant::Human, false).unwrap().failed, REPEATS);

    // Skipped with its reason.
    let t = &r.tasks[3];
    assert_eq!(t.status, runner_core::record::TaskStatus::Skipped);
    assert!(t.reason.as_deref().unwrap().starts_with("rocm_specific"));
    assert!(t.variants.is_empty() && t.metrics.is_empty());

    assert_eq!((r.cost.attempts, r.cost.retries), (55, 1));
    assert_eq!(r.cost.gpu_seconds, 1460.0 + 1080.0 + 480.0);
    assert_eq!(r.cost.wall_s, Some(109.0));
}

#[test]
fn markdown_and_json_say_it() {
    let (_d, store, run) = fixture();
    let r = build(&store, &run, &ReportOptions::default()).unwrap();
    let md = markdown(&r);
    for needle in [
        "# perf-runner report: run `20261128-030000-ab12`",
        "human speedup reproduced in 1 of 2 measured",
        "human speedup not reproduced: no_change",
        "not measured: no successful human repeats",
        "(unscored)",
        "A/A-measured",
        "(configured)",
        "## Secondary metrics (descriptive)",
        "ttft_median_ms (ms, ↓)",
        "decides on `tpot_median_ms`: serving at a finite request rate",
        "`oom`",
        "CUDA out of memory",
        "rocm_specific: every change is under csrc/rocm/",
        "Refactor the scheduler \\| no perf change",
        "3020 GPU·s, wall 1m49s, 55 attempts (1 retries)",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle:?}:\n{md}");
    }
    assert!(
        md.contains("| `cccc3333dd` | human | 0–5 | `oom` | 6 |"),
        "{md}"
    );
    assert!(
        md.contains("Fused MoE for &lt;small&gt; batches"),
        "no raw HTML in markdown"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["tasks"][1]["validity"]["status"], "not_reproduced");
    assert_eq!(json["tasks"][1]["validity"]["verdict"], "no_change");
    assert_eq!(json["tasks"][0]["noise_floor"]["source"], "aa_measured");
    assert_eq!(
        json["tasks"][0]["metrics"][0]["comparisons"][0]["pair"],
        "human_vs_baseline"
    );
    assert_eq!(
        json["tasks"][0]["metrics"][0]["comparisons"][0]["comparison"]["verdict"],
        "improved"
    );
    assert_eq!(json["cost"]["attempts"], 55);
}

#[test]
fn the_rounds_steadiness_is_reported_and_an_unsteady_host_is_named() {
    let (_d, store, run) = fixture();
    let mut r = build(&store, &run, &ReportOptions::default()).unwrap();
    // The fixture's runs wobble by under 1 %: 6 steady rounds, per-round ratios on each pair.
    let t = &r.tasks[0];
    let rounds = t.rounds.as_ref().expect("6 rounds of 4 runs");
    assert_eq!(rounds.levels.len(), REPEATS as usize);
    assert!(!rounds.unsteady && rounds.spread < 0.05, "{rounds:?}");
    let hb = t.human_vs_baseline().unwrap();
    let [lo, hi] = hb.round_ratios.expect("paired rounds carry their range");
    assert!(lo <= hb.ratio.unwrap().value && hb.ratio.unwrap().value <= hi);
    assert!(markdown(&r).contains("(each run over its variant's median, per round): spread"));
    assert!(markdown(&r).contains("— steady (p = "));
    assert_eq!(rounds.tested_sides, 2, "the fixture has A/A repeats");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["tasks"][0]["rounds"]["unsteady"], false);
    assert!(
        json["tasks"][0]["metrics"][0]["comparisons"][0]["comparison"]["round_ratios"].is_array()
    );
    // The GPU host's levels (three rounds of six ran 15–30 % slower, the baseline and its A/A
    // alike): named, with the test and the ranges.
    let levels = [0.92, 0.92, 1.08, 1.15, 1.22, 0.91];
    let t = &mut r.tasks[0];
    let rounds = t.rounds.as_mut().unwrap();
    for (l, v) in rounds.levels.iter_mut().zip(levels) {
        l.level = v;
    }
    rounds.spread = 1.22 / 0.91 - 1.0;
    rounds.p_value = Some(0.017);
    rounds.unsteady = true;
    let md = markdown(&r);
    assert!(
        md.contains("rounds 0.92 · 0.92 · 1.08 · 1.15 · 1.22 · 0.91 (each run over its variant's median, per round): spread 34 %; per-round ratios human/baseline "),
        "{md}"
    );
    assert!(
        md.contains("— **unsteady** (over 15 %, p = 0.017 that run noise alone moves the baseline and its A/A this much across rounds)"),
        "{md}"
    );
}

#[test]
fn same_seed_same_report() {
    let (_d, store, run) = fixture();
    let o = ReportOptions::default();
    let a = serde_json::to_string(&build(&store, &run, &o).unwrap()).unwrap();
    let b = serde_json::to_string(&build(&store, &run, &o).unwrap()).unwrap();
    assert_eq!(a, b);
    let other = ReportOptions { seed: 7, ..o };
    let c = serde_json::to_string(&build(&store, &run, &other).unwrap()).unwrap();
    assert_ne!(a, c, "the seed drives the bootstrap");
}

#[test]
fn floor_source_follows_the_options() {
    let (_d, store, run) = fixture();
    let o = ReportOptions {
        aa_floor: false,
        configured_floor: 0.03,
        ..ReportOptions::default()
    };
    let r = build(&store, &run, &o).unwrap();
    let t = &r.tasks[0];
    assert_eq!(t.noise_floor.source, FloorSource::Configured);
    assert_eq!(t.noise_floor.value, 0.03);
    assert!(t.aa.is_some(), "the A/A measurement is still reported");
    assert!(markdown(&r).contains("noise floor: configured ±3.0 %"));
    // A large minimum wins over a tight A/A measurement.
    let o = ReportOptions {
        aa_floor_minimum: 0.2,
        ..ReportOptions::default()
    };
    let t = &build(&store, &run, &o).unwrap().tasks[0];
    assert_eq!(t.noise_floor.source, FloorSource::AaMeasured);
    assert_eq!(t.noise_floor.value, 0.2);
    assert_eq!(
        t.validity,
        Validity::NotReproduced {
            verdict: Verdict::NoChange
        }
    );
}

#[test]
fn a_missing_run_is_a_clear_error() {
    let (_d, store, _run) = fixture();
    let e = build(
        &store,
        &RunId("20990101-000000-0000".into()),
        &ReportOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no run '20990101-000000-0000' in the results store"
    );
}

#[test]
fn an_inconclusive_paired_verdict_says_about_how_many_rounds_would_decide_it() {
    let (_d, store, run) = fixture();
    let mut r = build(&store, &run, &ReportOptions::default()).unwrap();
    // Decided comparisons carry no estimate; inconclusive paired ones do.
    for c in &r.tasks[0].metrics[0].comparisons {
        let c = &c.comparison;
        assert_eq!(
            c.rounds_to_decide.is_some(),
            c.verdict == Verdict::Inconclusive && c.paired_rounds.is_some() && c.reason.is_none(),
            "{c:?}"
        );
    }
    // The GPU host's known-effect run: agent/baseline 1.418 over 6 rounds whose ratios
    // spread 1.05–1.96, against a ±7.1 % floor.
    let pairs: Vec<(f64, f64)> = [1.95, 1.96, 1.10, 1.05, 1.06, 1.74]
        .iter()
        .map(|x| (1.0, *x))
        .collect();
    let d = runner_core::stats::rounds_to_decide(&pairs, false, 0.071).unwrap();
    let t = &mut r.tasks[0];
    let ab = t.metrics[0]
        .comparisons
        .iter_mut()
        .find(|c| c.pair == Pair::AgentVsBaseline)
        .unwrap();
    ab.comparison.verdict = Verdict::Inconclusive;
    ab.comparison.rounds_to_decide = Some(d);
    let k = d.rounds.unwrap();
    let md = markdown(&r);
    let line = md
        .lines()
        .find(|l| l.contains("agent/baseline inconclusive: if its estimate"))
        .unwrap_or_else(|| panic!("{md}"));
    assert!(
        line.contains(&format!(
            "(sd {:.3} of the log ratio) hold, about {k} paired rounds would decide it, as \
             `regressed`, with a 90 % chance (6 ran; `--repeats {k}`)",
            d.log_sd
        )),
        "{line}"
    );
    // Beyond the cap: more rounds are not the way.
    let ab = r.tasks[0].metrics[0]
        .comparisons
        .iter_mut()
        .find(|c| c.pair == Pair::AgentVsBaseline)
        .unwrap();
    ab.comparison.rounds_to_decide = Some(runner_core::stats::RoundsToDecide { rounds: None, ..d });
    assert!(
        markdown(&r).contains("more than 1000 paired rounds would be needed for a 90 % chance")
    );
    let json = serde_json::to_value(&r).unwrap();
    let c = &json["tasks"][0]["metrics"][0]["comparisons"];
    assert!(
        c.as_array()
            .unwrap()
            .iter()
            .any(|c| c["comparison"]["rounds_to_decide"]["toward"] == "regressed")
    );
}
