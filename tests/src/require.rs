//! Tests that need something of the machine (a Docker Engine, `uv`, `python3`, the `modal`
//! SDK, Chromium) go through [`skip_or_fail`]: on a developer's machine without it they say
//! `SKIPPED` and return, but where CI promises it — the environment variable
//! [`REQUIRE_ENV`] names it, or is `all`, or `CI=true` — its absence fails the test, so a suite
//! that tested nothing can never pass as green.

/// Comma-separated dependencies that must be present (`docker,uv,python3,modal,chromium`), or
/// `all`. `.ci/run` sets `all` after installing them.
pub const REQUIRE_ENV: &str = "PERF_RUNNER_TEST_REQUIRE";

/// Whether `dep` is required here (see [`REQUIRE_ENV`]; `CI=true` requires everything).
pub fn required(dep: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        return true;
    }
    std::env::var(REQUIRE_ENV).is_ok_and(|v| {
        v.split(',')
            .map(str::trim)
            .any(|d| d == "all" || d.eq_ignore_ascii_case(dep))
    })
}

/// Call when `dep` is missing: panics when it is required, else prints why `test` is skipped.
/// Returns `false`, so `if !present { return skip_or_fail(…) … }` reads naturally.
pub fn skip_or_fail(dep: &str, test: &str, why: &str) -> bool {
    if required(dep) {
        panic!("{test}: {dep} is required here ({REQUIRE_ENV}) but missing: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// One test at a time on the Slurm test cluster (one node, two GPUs): the guard of this
/// binary's lock while the cluster answers `sinfo` with GPU gres; `None` after
/// [`skip_or_fail`] when it does not.
pub fn slurm_cluster(test: &str) -> Option<std::sync::MutexGuard<'static, ()>> {
    static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let up = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%G"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("gpu"));
    if !up {
        skip_or_fail(
            "slurm",
            test,
            "no Slurm cluster with GPU gres answers sinfo (scripts/start-test-slurm.sh starts one)",
        );
        return None;
    }
    Some(CLUSTER.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_dependency_fails_and_another_skips() {
        // SAFETY (test-only): no other test of this crate reads these variables concurrently.
        unsafe { std::env::remove_var("CI") };
        unsafe { std::env::set_var(REQUIRE_ENV, "docker, uv") };
        assert!(required("docker") && required("UV") && !required("modal"));
        assert!(!skip_or_fail("modal", "t", "no modal"));
        let r = std::panic::catch_unwind(|| skip_or_fail("docker", "t", "no engine"));
        assert!(r.is_err());
        unsafe { std::env::set_var(REQUIRE_ENV, "all") };
        assert!(required("chromium"));
        unsafe { std::env::remove_var(REQUIRE_ENV) };
        assert!(!required("docker"));
    }
}
