//! Completions, the man page, and where the configuration and the store are looked up.

use std::path::Path;
use std::process::{Command, Output};

fn perf_runner(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perf-runner"));
    c.current_dir(dir)
        .env_remove("PERF_RUNNER_LOG")
        .env_remove("PERF_RUNNER_CONFIG")
        .env_remove("PERF_RUNNER_STORE");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = perf_runner(d.path(), &[], &["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(out(&o).contains("perf-runner"), "{shell}");
        assert!(out(&o).contains("triage"), "{shell}: every subcommand");
    }
    let o = perf_runner(d.path(), &[], &["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
    let o = perf_runner(d.path(), &[], &["man"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out(&o).starts_with(".ie") || out(&o).contains(".TH"),
        "{}",
        out(&o)
    );
    // A broken config does not stop them.
    std::fs::write(d.path().join("perf-runner.toml"), "[[[").unwrap();
    let o = perf_runner(d.path(), &[], &["completions", "bash"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn the_config_comes_from_the_flag_the_environment_here_or_the_user_dir() {
    let d = tempfile::tempdir().unwrap();
    let home = d.path().join("home");
    let user = home.join(".config/perf-runner");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(
        user.join("config.toml"),
        "[engine]\nrepeats_unused = 1\nconcurrency = 7\n",
    )
    .unwrap();
    let work = d.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let home_s = home.to_str().unwrap();
    let no_xdg = [("HOME", home_s), ("XDG_CONFIG_HOME", "")];
    // The user's config dir, when the folder has no perf-runner.toml.
    let o = perf_runner(&work, &no_xdg, &["config"]);
    assert!(out(&o).contains("concurrency = 7"), "{}", out(&o));
    // ./perf-runner.toml wins over it.
    std::fs::write(work.join("perf-runner.toml"), "[engine]\nconcurrency = 5\n").unwrap();
    let o = perf_runner(&work, &no_xdg, &["config"]);
    assert!(out(&o).contains("concurrency = 5"), "{}", out(&o));
    // $PERF_RUNNER_CONFIG wins over both.
    let other = d.path().join("other.toml");
    std::fs::write(&other, "[engine]\nconcurrency = 3\n").unwrap();
    let mut envs = no_xdg.to_vec();
    envs.push(("PERF_RUNNER_CONFIG", other.to_str().unwrap()));
    let o = perf_runner(&work, &envs, &["config"]);
    assert!(out(&o).contains("concurrency = 3"), "{}", out(&o));
}

#[test]
fn the_store_comes_from_perf_runner_store() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("s.sqlite");
    let o = perf_runner(
        d.path(),
        &[("PERF_RUNNER_STORE", store.to_str().unwrap())],
        &["runs", "--format", "json"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        store.is_file(),
        "the store named by PERF_RUNNER_STORE is used"
    );
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let d = tempfile::tempdir().unwrap();
    let o = perf_runner(d.path(), &[], &["--version"]);
    assert_eq!(o.status.code(), Some(0));
    let v = out(&o);
    let inner = v
        .split_once('(')
        .and_then(|(_, r)| r.split_once(')'))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    assert!(
        inner == "unknown" || (inner.len() >= 7 && inner.bytes().all(|b| b.is_ascii_hexdigit())),
        "{v}"
    );
}
