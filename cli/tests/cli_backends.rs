//! The backend registry as a user meets it: `--backend` takes only registered names, `doctor`,
//! `plan --backend` and `config --defaults` follow the registry, and backend sections of the
//! configuration load as before while unknown ones are warned about.

use std::path::Path;
use std::process::{Command, Output};

use runner_core::exit;
use runner_core::settings::Settings;

/// The binary, run in `dir` (its `perf-runner.toml`, if any, applies) with a store and cache
/// inside it.
fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
    c.env_remove("PERF_RUNNER_LOG")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .current_dir(dir)
        .arg("--store")
        .arg(dir.join("s.db"));
    c
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin(dir).args(args).output().expect("runs")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Every name of the registry appears in `text` (in the registry's order: local, docker,
/// modal first).
fn names_every_backend(text: &str) -> bool {
    text.contains("local, docker, modal")
}

#[test]
fn an_unknown_backend_is_a_usage_error_naming_the_valid_ones_and_creates_no_run() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["run", "e3580537", "--backend", "nosuch"][..],
        &["batch", "--backend", "nosuch"],
        &["run", "e3580537", "--backend=gpu"],
    ] {
        let o = run_in(dir.path(), args);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(exit::USAGE), "{args:?}: {e}");
        assert!(
            e.contains("invalid value") && names_every_backend(&e),
            "{e}"
        );
    }
    // Nothing was recorded: the refusal came before any run existed.
    let o = run_in(dir.path(), &["runs", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let runs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}

#[test]
fn doctor_with_an_unknown_backend_says_why_and_exits_with_the_usage_code() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["doctor", "--backend", "nosuch"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(exit::USAGE), "{e}");
    assert!(
        e.contains("'nosuch'") && e.contains("--backend") && names_every_backend(&e),
        "{e}"
    );
    assert_eq!(
        out(&o),
        "",
        "nothing is reported for a backend that does not exist"
    );
}

#[test]
fn doctor_reports_a_backend_whose_settings_cannot_be_read_as_not_usable() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perf-runner.toml"),
        "[local]\ncpu_only = \"yes\"\n",
    )
    .unwrap();
    let o = run_in(
        dir.path(),
        &["doctor", "--backend", "local", "--format", "json"],
    );
    assert_eq!(
        o.status.code(),
        Some(exit::BACKEND_UNAVAILABLE),
        "{}",
        err(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reports = v["backends"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{v}");
    assert_eq!(reports[0]["backend"], "local");
    assert_eq!(reports[0]["health"]["usable"], false);
    let why = reports[0]["health"]["error"].as_str().unwrap();
    assert!(
        why.contains("invalid [local] settings") && why.contains("cpu_only"),
        "{why}"
    );
}

#[test]
fn plan_backend_takes_only_backends_with_a_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["plan", "310aca88", "--backend", "local"]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(exit::USAGE), "{e}");
    assert!(e.contains("[possible values: modal, slurm]"), "{e}");
}

#[test]
fn help_texts_list_the_registered_backends() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["run", "--help"]);
    let text = out(&o);
    for name in ["local", "docker", "modal"] {
        assert!(text.contains(&format!("{name}:")), "{name} in: {text}");
    }
    let o = run_in(dir.path(), &["gc", "--help"]);
    assert!(
        out(&o).contains("leftovers to collect: local, docker"),
        "{}",
        out(&o)
    );
}

#[test]
fn config_defaults_hold_core_and_every_backend_section() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(dir.path(), &["config", "--defaults"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = out(&o);
    let doc: toml::Table = toml::from_str(&text).unwrap();
    for section in ["engine", "limits", "local", "docker", "modal"] {
        assert!(doc.contains_key(section), "[{section}] in: {text}");
    }
    assert!(
        text.contains("# find_links"),
        "each backend's own documentation: {text}"
    );
    let s: Settings = toml::from_str(&text).unwrap();
    assert_eq!(s.plan, Settings::embedded().plan);
}

#[test]
fn backend_sections_load_as_before_and_unknown_ones_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("perf-runner.toml"),
        "[local]\ncpu_only = true\ncolour = 1\n[local.wheels]\nbaseline = \"/w/b.whl\"\n\
         [docker]\nnetwork = \"host\"\n[modal]\npin_sku = false\n[gpu]\nkind = \"H100\"\n",
    )
    .unwrap();
    let o = bin(dir.path())
        .env("PERF_RUNNER__LOCAL__STOP_GRACE_MS", "5")
        .env("PERF_RUNNER__DOCKER__SERVER_PORT", "9000")
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let s: Settings = toml::from_str(&out(&o)).unwrap();
    let local = s.section("local").unwrap();
    assert_eq!(local["cpu_only"].as_bool(), Some(true));
    assert_eq!(local["stop_grace_ms"].as_integer(), Some(5));
    assert_eq!(local["wheels"]["baseline"].as_str(), Some("/w/b.whl"));
    let docker = s.section("docker").unwrap();
    assert_eq!(docker["network"].as_str(), Some("host"));
    assert_eq!(docker["server_port"].as_integer(), Some(9000));
    assert_eq!(
        s.section("modal").unwrap()["pin_sku"].as_bool(),
        Some(false)
    );
    let e = err(&o);
    let warning = |key: &str| {
        e.lines()
            .find(|l| l.contains("unknown configuration key") && l.contains(&format!("key={key}")))
    };
    let gpu = warning("gpu").unwrap_or_else(|| panic!("[gpu] is warned about: {e}"));
    assert!(names_every_backend(gpu), "{gpu}");
    assert!(warning("local.colour").is_some(), "{e}");
    assert!(
        warning("docker").is_none() && warning("modal").is_none(),
        "{e}"
    );
    assert_eq!(e.matches("unknown configuration key").count(), 2, "{e}");
}
