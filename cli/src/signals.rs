//! Signals that stop a run: Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal went away, e.g.
//! a dropped SSH session). Each cancels the run: no new work starts, running work is stopped
//! and recorded as cancelled, so `--resume` picks it up.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn listen(name: &str, kind: SignalKind) -> Option<Signal> {
    signal(kind)
        .map_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
        .ok()
}

async fn recv(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Cancel `cancel` on the first SIGINT, SIGTERM or SIGHUP (from then on these signals no
/// longer end the process by themselves); a second one ends the process at once with exit code
/// 130, for a user who will not wait for the clean-up (what was started is then left for
/// `perf-runner gc`). Must be called inside a Tokio runtime.
pub fn spawn_handler(cancel: CancellationToken) {
    let mut int = listen("SIGINT", SignalKind::interrupt());
    let mut term = listen("SIGTERM", SignalKind::terminate());
    let mut hup = listen("SIGHUP", SignalKind::hangup());
    tokio::spawn(async move {
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = recv(&mut int) => "SIGINT",
                _ = recv(&mut term) => "SIGTERM",
                _ = recv(&mut hup) => "SIGHUP",
            };
            if !first {
                errln!(
                    "{name} received again: exiting now (`perf-runner gc` removes what is left)"
                );
                std::process::exit(runner_core::exit::INTERRUPTED);
            }
            first = false;
            // Cancel first: after SIGHUP the terminal may be gone, and printing may fail.
            cancel.cancel();
            errln!("{name} received: stopping (cleaning up what was started; again to exit now)…");
        }
    });
}
