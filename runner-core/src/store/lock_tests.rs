use std::process::Command;
use std::sync::Arc;

use super::*;

fn store() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
    (dir, s)
}

/// Put a holder row as another process would have.
fn plant(s: &Store, run: &RunId, h: &LockHolder) {
    s.with(|c| {
        c.execute_batch(SCHEMA)?;
        c.execute(
            "INSERT OR REPLACE INTO run_locks (run_id, pid, host, boot_id, proc_start, since) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![run.0, h.pid, h.host, h.boot_id, h.proc_start.map(|s| s as i64), h.since],
        )
    })
    .unwrap();
}

/// A pid that was a real process of this host and has ended (spawned, waited for).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn parse_stat_counts_fields_after_the_command_name() {
    let line =
        "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 3 1 0 0 20 0 1 0 987654 1000 10";
    assert_eq!(parse_stat(line), Some(('S', 987654)));
    assert_eq!(parse_stat("garbage"), None);
    assert_eq!(parse_stat("1 (x) Z"), None);
    let me = LockHolder::me();
    assert!(
        me.proc_start.is_some(),
        "this process's start time is readable"
    );
    assert_eq!(me.alive(), Some(true));
}

#[test]
fn a_second_lock_is_refused_and_released_on_drop() {
    let (_d, s) = store();
    let run = RunId("r1".into());
    let lock = s.lock_run(&run, false).unwrap();
    assert!(lock.taken_over.is_none());
    let held = s.run_lock(&run).unwrap().unwrap();
    assert_eq!(held.pid, std::process::id());
    match s.lock_run(&run, false) {
        Err(LockError::Running { holder, .. }) => assert_eq!(holder, held),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let msg = s.lock_run(&run, true).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("pid {}", held.pid)) && msg.contains(&held.host),
        "{msg}"
    );
    // Another run is independent.
    let other = s.lock_run(&RunId("r2".into()), false).unwrap();
    drop(lock);
    assert_eq!(s.run_lock(&run).unwrap(), None);
    let again = s.lock_run(&run, false).unwrap();
    assert!(again.taken_over.is_none());
    again.release();
    other.release();
    assert_eq!(s.run_lock(&RunId("r2".into())).unwrap(), None);
}

#[test]
fn a_dead_holder_on_this_host_is_taken_over() {
    let (_d, s) = store();
    let run = RunId("r".into());
    let dead = LockHolder {
        pid: dead_pid(),
        ..LockHolder::me()
    };
    assert_eq!(dead.alive(), Some(false));
    plant(&s, &run, &dead);
    let lock = s.lock_run(&run, false).unwrap();
    assert_eq!(lock.taken_over.as_ref(), Some(&dead));
    assert_eq!(s.run_lock(&run).unwrap().unwrap().pid, std::process::id());
}

#[test]
fn a_reused_pid_or_a_reboot_does_not_keep_a_lock_alive() {
    let (_d, s) = store();
    // Our own live pid, but started at another time: another process reusing the number.
    let reused = LockHolder {
        proc_start: LockHolder::me().proc_start.map(|t| t + 1),
        ..LockHolder::me()
    };
    assert_eq!(reused.alive(), Some(false));
    let run = RunId("a".into());
    plant(&s, &run, &reused);
    assert!(s.lock_run(&run, false).unwrap().taken_over.is_some());
    let rebooted = LockHolder {
        boot_id: "another-boot".into(),
        ..LockHolder::me()
    };
    assert_eq!(rebooted.alive(), Some(false));
}

#[test]
fn a_holder_on_another_host_is_refused_unless_broken() {
    let (_d, s) = store();
    let run = RunId("r".into());
    let far = LockHolder {
        host: "gpu-box-7".into(),
        pid: 4242,
        ..LockHolder::me()
    };
    assert_eq!(far.alive(), None);
    plant(&s, &run, &far);
    let e = s.lock_run(&run, false).unwrap_err();
    assert!(matches!(e, LockError::Elsewhere { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("pid 4242 on host gpu-box-7") && msg.contains("--break-lock"),
        "{msg}"
    );
    assert_eq!(
        s.run_lock(&run).unwrap(),
        Some(far.clone()),
        "left as it was"
    );
    let lock = s.lock_run(&run, true).unwrap();
    assert_eq!(lock.taken_over, Some(far));
}
