//! Running the `perf-runner` binary in a folder of its own, and checking its JSON outputs
//! against the schemas it publishes (a complete draft 2020-12 validator).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Run `bin` (the test's `CARGO_BIN_EXE_perf-runner`) in `dir` with `args`: its store, cache
/// and config are the folder's own; the caller's log and config variables are cleared.
pub fn run_in(bin: &str, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .env_remove("PERF_RUNNER_LOG")
        .env_remove("PERF_RUNNER_CONFIG")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .current_dir(dir)
        .arg("--store")
        .arg(dir.join("s.db"))
        .args(args)
        .output()
        .expect("perf-runner starts")
}

/// The arguments of `run` for the embedded dataset's commit `e3580537` on the test-only dummy
/// backend, baseline and human builds, followed by `extra` (e.g. `--repeats 3`).
pub fn dummy_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "run",
        "e3580537",
        "--backend",
        "dummy",
        "--variants",
        "baseline,human",
    ];
    v.extend_from_slice(extra);
    v
}

/// The JSON on stdout of `o`, which must have exited `code` (else a panic with both streams).
pub fn json_of(o: &Output, code: i32) -> Value {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(code), "{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

/// The errors of `value` against `schema`, as `instance path: message` (empty: valid).
pub fn schema_errors(schema: &Value, value: &Value) -> Vec<String> {
    let v = jsonschema::draft202012::new(schema).unwrap_or_else(|e| panic!("a bad schema: {e}"));
    v.iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Panic with every error of `value` against `schema` (the output `name`'s).
pub fn assert_valid(name: &str, schema: &Value, value: &Value) {
    let e = schema_errors(schema, value);
    assert!(e.is_empty(), "{name}:\n{}", e.join("\n"));
}

/// Why `schema` is not a valid draft 2020-12 schema (checked against the meta-schema).
pub fn meta_error(schema: &Value) -> Option<String> {
    jsonschema::meta::validate(schema)
        .err()
        .map(|e| e.to_string())
}
