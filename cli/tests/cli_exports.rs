//! `report --format csv|jsonl|parquet|wide-csv|wide-jsonl|wide-parquet` over a realistic
//! store, read back by pandas (and pyarrow's CSV, JSON and Parquet readers): the long table
//! keeps every attempt × metric, the wide view has ISO-Bench's `baseline_*`, `human_*`,
//! `agent_*` columns and ratios, and the Parquet files hold the same rows, values and types.

#[path = "../../runner-core/tests/report_support.rs"]
mod support;

use std::process::Command;

const RUN: &str = "20261128-030000-ab12";

/// Read the four exports with pandas and pyarrow and print what the test checks, as JSON.
const READER: &str = r#"
import json, sys
import pandas as pd, pyarrow.csv as pacsv, pyarrow.json as pajson, pyarrow.parquet as pq
d = sys.argv[1]
long_csv = pd.read_csv(f"{d}/report.csv", float_precision="round_trip")
long_jsonl = pd.read_json(f"{d}/report.jsonl", lines=True, precise_float=True)
wide_csv = pd.read_csv(f"{d}/report.wide.csv", float_precision="round_trip")
wide_jsonl = pd.read_json(f"{d}/report.wide.jsonl", lines=True, precise_float=True)
arrow_long = pacsv.read_csv(f"{d}/report.csv")
arrow_wide = pajson.read_json(f"{d}/report.wide.jsonl")
long_pq = pd.read_parquet(f"{d}/report.parquet")
wide_pq = pd.read_parquet(f"{d}/report.wide.parquet")
pq_schema = pq.read_schema(f"{d}/report.parquet")
ok = long_csv[(long_csv.status == "ok") & (~long_csv.aa.astype(bool))]
tput = ok[ok.metric == "output_throughput_tps"].groupby(["commit", "variant"]).value.median()
print(json.dumps({
    "long_rows": [len(long_csv), len(long_jsonl), arrow_long.num_rows],
    "long_columns": list(long_csv.columns),
    "same_values": bool((long_csv.value.fillna(-1) == long_jsonl.value.fillna(-1)).all()),
    "statuses": sorted(set(long_csv.status)),
    "variants": sorted(set(long_csv.variant)),
    "wide_rows": [len(wide_csv), len(wide_jsonl), arrow_wide.num_rows],
    "wide_columns": list(wide_csv.columns),
    "wide": json.loads(wide_csv.to_json(orient="records")),
    "median_tput": {f"{c}/{v}": x for (c, v), x in tput.items()},
    "value_dtype": str(long_csv.value.dtype),
    "parquet_rows": [len(long_pq), len(wide_pq)],
    "parquet_same_long": bool(long_pq.value.fillna(-1).tolist() == long_csv.value.fillna(-1).tolist()
        and long_pq.commit.tolist() == long_csv.commit.tolist()
        and long_pq.status.tolist() == long_csv.status.tolist()),
    "parquet_same_wide": bool(wide_pq.fillna(-1).equals(wide_csv.fillna(-1)[wide_pq.columns])
        and list(wide_pq.columns) == list(wide_csv.columns)),
    "parquet_types": {f.name: str(f.type) for f in pq_schema},
}))
"#;

#[test]
fn exports_round_trip_through_pandas_and_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("results.sqlite");
    support::build_store(&store);
    let out = dir.path().join("out");
    for format in [
        "csv",
        "jsonl",
        "parquet",
        "wide-csv",
        "wide-jsonl",
        "wide-parquet",
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_perf-runner"))
            .args([
                "report",
                RUN,
                "--store",
                store.to_str().unwrap(),
                "--format",
                format,
            ])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new("python3")
        .args(["-c", READER])
        .arg(&out)
        .output()
        .expect("python3 runs (pandas and pyarrow are installed by .ci/run)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let run: runner_core::record::RunId = RUN.parse().unwrap();
    let attempts = runner_core::store::Store::open(&store)
        .unwrap()
        .attempts(&run)
        .unwrap()
        .len();
    let n = v["long_rows"][0].as_u64().unwrap();
    assert!(n as usize >= attempts, "{v}");
    assert_eq!(v["long_rows"][1], n);
    assert_eq!(v["long_rows"][2], n);
    assert_eq!(
        v["same_values"], true,
        "CSV and JSON lines give the same numbers"
    );
    assert_eq!(v["value_dtype"], "float64");
    // Parquet: the same rows and values as the CSV files, with typed columns.
    assert_eq!(v["parquet_rows"][0], n, "{v}");
    assert_eq!(v["parquet_rows"][1], v["wide_rows"][0], "{v}");
    assert_eq!(v["parquet_same_long"], true, "{v}");
    assert_eq!(v["parquet_same_wide"], true, "{v}");
    let types = &v["parquet_types"];
    assert_eq!(types["value"], "double", "{types}");
    assert_eq!(types["aa"], "bool", "{types}");
    assert_eq!(types["repeat"], "int64", "{types}");
    assert_eq!(types["commit"], "string", "{types}");
    assert_eq!(v["long_columns"][0], "run_id");
    let statuses = v["statuses"].to_string();
    assert!(
        statuses.contains("ok") && statuses.contains("oom"),
        "{statuses}"
    );
    assert_eq!(
        v["variants"],
        serde_json::json!(["agent", "baseline", "human"])
    );

    // The wide view: one row per reported task, ISO-Bench's column families.
    assert_eq!(v["wide_rows"][0], v["wide_rows"][1]);
    assert_eq!(v["wide_rows"][0], v["wide_rows"][2]);
    let columns: Vec<&str> = v["wide_columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "baseline_output_throughput_tps",
        "human_output_throughput_tps",
        "agent_output_throughput_tps",
        "human_baseline_ratio_output_throughput_tps",
        "agent_human_ratio_output_throughput_tps",
    ] {
        assert!(columns.contains(&c), "{c} missing: {columns:?}");
    }
    let serving = v["wide"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["commit"] == support::SERVING)
        .unwrap();
    let base = serving["baseline_output_throughput_tps"].as_f64().unwrap();
    let human = serving["human_output_throughput_tps"].as_f64().unwrap();
    let ratio = serving["human_baseline_ratio_output_throughput_tps"]
        .as_f64()
        .unwrap();
    assert!((human / base - ratio).abs() < 0.02, "{serving}");
    assert!(
        ratio > 1.05,
        "the fixture's human build is 10 % faster: {ratio}"
    );
    // The wide medians are the long table's medians.
    let key = format!("{}/baseline", support::SERVING);
    let long_median = v["median_tput"][&key].as_f64().unwrap();
    assert!(
        (long_median - base).abs() < 1e-6 * base,
        "{long_median} vs {base}"
    );
}
