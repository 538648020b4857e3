//! The tools' JSON results: serving `--save-result`, throughput and latency `--output-json`.
//!
//! JSON is preferred over text whenever it carries the mode's primary metrics. Each value's
//! provenance is the file and the field path (`$.mean_ttft_ms`, `$.percentiles.50`); per-request
//! arrays (`ttfts`, `itls`, `latencies` …) are not metrics and are skipped.

use serde_json::{Map, Value};

use super::text::percentile_word;
use crate::spec::Mode;

/// A metric read from a JSON result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonReading {
    /// The unit-bearing key.
    pub key: String,
    /// The value, or what the field holds instead of a number (`a string ("12.5")`).
    pub value: Result<f64, String>,
    /// The field path, `$.field`.
    pub path: String,
}

/// Serving fields that map one to one.
const SERVING_FIELDS: &[(&str, &str)] = &[
    ("completed", "completed"),
    ("failed", "failed"),
    ("duration", "duration_s"),
    ("total_input_tokens", "total_input_tokens"),
    ("total_output_tokens", "total_output_tokens"),
    ("request_throughput", "request_throughput_rps"),
    ("request_goodput", "request_goodput_rps"),
    ("input_throughput", "input_throughput_tps"),
    ("output_throughput", "output_throughput_tps"),
    ("total_token_throughput", "total_throughput_tps"),
    ("max_output_tokens_per_s", "peak_output_throughput_tps"),
    ("max_concurrent_requests", "peak_concurrent_requests"),
];

const THROUGHPUT_FIELDS: &[(&str, &str)] = &[
    ("elapsed_time", "elapsed_s"),
    ("num_requests", "num_requests"),
    ("total_num_tokens", "total_tokens"),
    ("requests_per_second", "request_throughput_rps"),
    ("tokens_per_second", "total_throughput_tps"),
];

const FAMILIES: &[&str] = &["ttft", "tpot", "itl", "e2el"];

/// The first JSON object in a result file: the whole text, or else its first line that is an
/// object (JSON-lines files appended by several runs: the first run wins).
pub(crate) fn first_object(text: &str) -> Option<Map<String, Value>> {
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
        return Some(map);
    }
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .find_map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        })
}

/// The mode a JSON result belongs to, from its fields (present and not null: a wrongly typed
/// primary field still says which tool wrote the file, and is then reported as such).
pub(crate) fn detect(obj: &Map<String, Value>) -> Option<Mode> {
    let has = |k: &str| obj.get(k).is_some_and(|v| !v.is_null());
    if has("request_throughput") || has("mean_ttft_ms") || has("output_throughput") {
        Some(Mode::Serving)
    } else if has("requests_per_second") || has("tokens_per_second") {
        Some(Mode::Throughput)
    } else if has("avg_latency") {
        Some(Mode::Latency)
    } else {
        None
    }
}

/// A metric field's value: `None` when null (the tool's way to say "not measured"), the
/// number, or a description of what stands where a number belongs.
fn num(v: &Value) -> Option<Result<f64, String>> {
    const MAX_SHOWN: usize = 40;
    let shown = |s: &str| -> String {
        match s.char_indices().nth(MAX_SHOWN) {
            Some((cut, _)) => format!("{}…", &s[..cut]),
            None => s.to_string(),
        }
    };
    Some(match v {
        Value::Null => return None,
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("a number out of range ({})", shown(&n.to_string()))),
        Value::String(s) => Err(format!("a string ({:?})", shown(s))),
        Value::Bool(b) => Err(format!("a boolean ({b})")),
        Value::Array(_) => Err("an array".to_string()),
        Value::Object(_) => Err("an object".to_string()),
    })
}

/// The metrics a JSON result holds for a mode (empty when it is not that mode's result).
pub(crate) fn readings(mode: Mode, obj: &Map<String, Value>) -> Vec<JsonReading> {
    let mut out = Vec::new();
    let mut push = |key: String, value: Result<f64, String>, path: String| {
        if !out.iter().any(|r: &JsonReading| r.key == key) {
            out.push(JsonReading { key, value, path });
        }
    };
    match mode {
        Mode::Serving => {
            for (field, key) in SERVING_FIELDS {
                if let Some(v) = obj.get(*field).and_then(num) {
                    push((*key).to_string(), v, format!("$.{field}"));
                }
            }
            for (field, value) in obj {
                if let (Some(key), Some(v)) = (serving_stat_key(field), num(value)) {
                    push(key, v, format!("$.{field}"));
                }
            }
        }
        Mode::Throughput => {
            for (field, key) in THROUGHPUT_FIELDS {
                if let Some(v) = obj.get(*field).and_then(num) {
                    push((*key).to_string(), v, format!("$.{field}"));
                }
            }
        }
        Mode::Latency => {
            if let Some(v) = obj.get("avg_latency").and_then(num) {
                push("latency_avg_s".into(), v, "$.avg_latency".into());
            }
            if let Some(Value::Object(pcts)) = obj.get("percentiles") {
                for (p, value) in pcts {
                    if let (Some(word), Some(v)) = (percentile_word(p), num(value)) {
                        push(format!("latency_{word}_s"), v, format!("$.percentiles.{p}"));
                    }
                }
            }
        }
        Mode::PrefixCaching | Mode::Other => {}
    }
    out
}

/// `mean_ttft_ms` → `ttft_mean_ms`, `p99.9_itl_ms` → `itl_p99_9_ms`.
fn serving_stat_key(field: &str) -> Option<String> {
    let body = field.strip_suffix("_ms")?;
    let (stat, family) = body.rsplit_once('_')?;
    if !FAMILIES.contains(&family) {
        return None;
    }
    let stat = match stat {
        "mean" | "median" | "std" => stat.to_string(),
        s => percentile_word(s.strip_prefix('p')?)?,
    };
    Some(format!("{family}_{stat}_ms"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_keys() {
        assert_eq!(
            serving_stat_key("mean_ttft_ms").as_deref(),
            Some("ttft_mean_ms")
        );
        assert_eq!(
            serving_stat_key("p99.9_itl_ms").as_deref(),
            Some("itl_p99_9_ms")
        );
        assert_eq!(
            serving_stat_key("p90_e2el_ms").as_deref(),
            Some("e2el_p90_ms")
        );
        assert_eq!(
            serving_stat_key("std_tpot_ms").as_deref(),
            Some("tpot_std_ms")
        );
        assert_eq!(serving_stat_key("mean_foo_ms"), None);
        assert_eq!(serving_stat_key("ttfts"), None);
    }

    #[test]
    fn jsonl_first_object_wins() {
        let text = "{\"avg_latency\": 1.5}\n{\"avg_latency\": 9.0}\n";
        let obj = first_object(text).unwrap();
        assert_eq!(detect(&obj), Some(Mode::Latency));
        let r = readings(Mode::Latency, &obj);
        assert_eq!(r[0].value, Ok(1.5));
        assert!(first_object("not json").is_none());
    }

    #[test]
    fn wrongly_typed_fields_are_readings_that_say_so() {
        let obj = first_object(
            r#"{"output_throughput": "1234.5", "mean_ttft_ms": true, "request_goodput": null,
                "request_throughput": 2.0, "date": "20250101"}"#,
        )
        .unwrap();
        assert_eq!(detect(&obj), Some(Mode::Serving));
        let r = readings(Mode::Serving, &obj);
        let get = |k: &str| r.iter().find(|r| r.key == k).map(|r| r.value.clone());
        assert_eq!(
            get("output_throughput_tps"),
            Some(Err("a string (\"1234.5\")".into()))
        );
        assert_eq!(get("ttft_mean_ms"), Some(Err("a boolean (true)".into())));
        assert_eq!(get("request_throughput_rps"), Some(Ok(2.0)));
        assert_eq!(get("request_goodput_rps"), None, "null is not measured");
        assert_eq!(r.len(), 3, "non-metric fields are not readings: {r:?}");
        let only_string = first_object(r#"{"output_throughput": "fast"}"#).unwrap();
        assert_eq!(detect(&only_string), Some(Mode::Serving));
    }
}
