//! Every injectable fault prints its vLLM-like text and exits with Python's code; signals end
//! the server promptly.

mod common;

use common::{bench_serve, bin, fast, metric, run, server};
use perf_runner_tests::standin::{Fault, StandinConfig, StandinServer, http_get, run_standin};
use std::time::{Duration, Instant};

fn with(fault: Fault) -> StandinConfig {
    StandinConfig {
        fault: Some(fault),
        ..fast(1.0)
    }
}

/// Starts a server with `cfg` and waits for it to exit (5 s at most); returns code and stderr.
fn server_exit(cfg: &StandinConfig) -> (Option<i32>, String) {
    let mut s = StandinServer::start(bin(), Some(cfg), "m", &["--foo", "1"]).unwrap();
    let st = s
        .wait_exit(Duration::from_secs(5))
        .unwrap()
        .expect("server should exit");
    (st.code(), s.stderr_text())
}

#[test]
fn start_up_faults_print_their_tracebacks_and_exit_1() {
    let cases = [
        (
            Fault::CrashAtStart,
            "RuntimeError: Engine core initialization failed. See root cause above.",
        ),
        (
            Fault::UnsupportedArch,
            "ValueError: Model architectures ['FooForCausalLM'] are not supported for now. Supported architectures: [",
        ),
        (
            Fault::Oom,
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB",
        ),
    ];
    for (fault, text) in cases {
        let (code, err) = server_exit(&with(fault));
        assert_eq!(code, Some(1), "{fault:?}: {err}");
        assert!(
            err.contains("Traceback (most recent call last):"),
            "{fault:?}: {err}"
        );
        assert!(err.contains(text), "{fault:?}: {err}");
        assert!(
            !err.contains("Uvicorn running"),
            "{fault:?} must fail before ready"
        );
        // The offline engine fails the same way.
        let r = run(
            &with(fault),
            &[
                "-m",
                "vllm.entrypoints.cli.main",
                "bench",
                "latency",
                "--num-iters",
                "1",
            ],
        );
        assert_eq!(r.code, Some(1), "{fault:?} offline");
        assert!(r.stderr.contains(text), "{fault:?} offline: {}", r.stderr);
    }
}

#[test]
fn unrecognized_argument_is_an_argparse_error_with_exit_2() {
    let (code, err) = server_exit(&with(Fault::UnrecognizedArg));
    assert_eq!(code, Some(2));
    assert!(
        err.contains("usage: api_server.py")
            && err.contains("error: unrecognized arguments: --foo"),
        "{err}"
    );
    let r = run(
        &with(Fault::UnrecognizedArg),
        &[
            "/s/benchmarks/benchmark_prefix_caching.py",
            "--use-v2-block-manager",
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains(
        "benchmark_prefix_caching.py: error: unrecognized arguments: --use-v2-block-manager"
    ));
    // Without the fault, bad values are argparse errors too, and nothing panics.
    let r = run(
        &fast(1.0),
        &[
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "serve",
            "--num-prompts",
            "x",
        ],
    );
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains("error: argument --num-prompts: invalid int value: 'x'"),
        "{}",
        r.stderr
    );
    let r = run(
        &fast(1.0),
        &["-m", "vllm.entrypoints.cli.main", "bench", "nope"],
    );
    assert_eq!(r.code, Some(2));
    assert_eq!(run(&fast(1.0), &["-m", "nope"]).code, Some(1));
    assert_eq!(run(&fast(1.0), &["/nonexistent/x.py"]).code, Some(2));
}

#[test]
fn transient_fault_fails_only_the_first_invocation_per_state_dir() {
    let state = tempfile::tempdir().unwrap();
    let cfg = StandinConfig {
        state_dir: Some(state.path().to_path_buf()),
        ..with(Fault::TransientOnce)
    };
    let args = [
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "throughput",
        "--input-len",
        "8",
        "--output-len",
        "4",
        "--num-prompts",
        "4",
    ];
    let first = run(&cfg, &args);
    assert_eq!(first.code, Some(1));
    assert!(first.stderr.contains(
        "requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))"
    ), "{}", first.stderr);
    let second = run(&cfg, &args);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(second.stdout.contains("Throughput: "));
}

#[test]
fn hang_stays_alive_unready_and_sigterm_ends_it() {
    let mut s = StandinServer::start(bin(), Some(&with(Fault::Hang)), "m", &[]).unwrap();
    assert!(s.wait_ready(Duration::from_millis(800)).is_err());
    assert!(
        s.try_status().unwrap().is_none(),
        "hang keeps the process alive"
    );
    assert!(
        http_get(s.port(), "/health", Duration::from_millis(200)).is_err(),
        "bound but never served"
    );
    s.signal(libc::SIGTERM).unwrap();
    assert!(s.wait_exit(Duration::from_secs(1)).unwrap().is_some());

    // The offline engine hangs too (killed by the runner's deadline).
    let args = [
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "throughput",
        "--num-prompts",
        "1",
    ];
    let r = run_standin(
        bin(),
        Some(&with(Fault::Hang)),
        &args,
        Duration::from_millis(600),
    )
    .unwrap();
    assert!(r.timed_out && r.code.is_none());

    let mut s = StandinServer::start(bin(), Some(&with(Fault::HangUnkillable)), "m", &[]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    s.signal(libc::SIGTERM).unwrap();
    assert!(
        s.wait_exit(Duration::from_millis(400)).unwrap().is_none(),
        "SIGTERM is ignored"
    );
    s.signal(libc::SIGKILL).unwrap();
    assert!(s.wait_exit(Duration::from_secs(1)).unwrap().is_some());
}

#[test]
fn sigterm_and_sigint_stop_a_ready_server_within_a_second() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let mut s = server(&fast(1.0));
        let t = Instant::now();
        s.signal(sig).unwrap();
        let st = s
            .wait_exit(Duration::from_secs(1))
            .unwrap()
            .expect("exits within 1 s");
        assert_eq!(st.code(), Some(0));
        assert!(t.elapsed() < Duration::from_secs(1));
        assert!(
            s.stderr_text()
                .contains("INFO:     Finished server process")
        );
    }
}

#[test]
fn crash_mid_run_kills_the_server_and_the_benchmark_counts_failures() {
    // Request 1 is the initial test run, 2 and 3 (one at a time) succeed, the 4th kills the engine.
    let cfg = StandinConfig {
        fault_after: 3,
        ..with(Fault::CrashMidRun)
    };
    let mut srv = server(&cfg);
    let args = [
        "--num-prompts",
        "8",
        "--random-input-len",
        "8",
        "--random-output-len",
        "8",
        "--max-concurrency",
        "1",
    ];
    let r = bench_serve(&fast(1.0), srv.port(), &args);
    assert_eq!(
        r.code,
        Some(0),
        "vLLM's client exits 0 and reports failures: {}",
        r.stderr
    );
    assert_eq!(
        metric(&r.stdout, "Successful requests:"),
        2.0,
        "{}",
        r.stdout
    );
    assert_eq!(metric(&r.stdout, "Failed requests:"), 6.0);
    let st = srv
        .wait_exit(Duration::from_secs(2))
        .unwrap()
        .expect("server died");
    assert_eq!(st.code(), Some(1));
    let err = srv.stderr_text();
    assert!(
        err.contains("RuntimeError: CUDA error: an illegal memory access was encountered"),
        "{err}"
    );
    assert!(err.contains("EngineDeadError"));

    let r = run(
        &cfg,
        &[
            "-m",
            "vllm.entrypoints.cli.main",
            "bench",
            "throughput",
            "--num-prompts",
            "20",
            "--max-num-seqs",
            "2",
            "--input-len",
            "4",
            "--output-len",
            "2",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("illegal memory access") && !r.stdout.contains("Throughput:"));
}

#[test]
fn client_crash_ends_the_benchmark_with_a_traceback() {
    let srv = server(&fast(1.0));
    let args = [
        "--num-prompts",
        "8",
        "--random-input-len",
        "4",
        "--random-output-len",
        "4",
        "--max-concurrency",
        "2",
    ];
    let r = bench_serve(&with(Fault::ClientCrash), srv.port(), &args);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains(
            "aiohttp.client_exceptions.ClientPayloadError: Response payload is not completed"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("Serving Benchmark Result"));
    assert_eq!(
        http_get(srv.port(), "/health", Duration::from_secs(1))
            .unwrap()
            .0,
        200,
        "server unharmed"
    );
}

#[test]
fn the_fault_env_var_overrides_the_config() {
    let mut cmd = std::process::Command::new(bin());
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("c.json");
    std::fs::write(&cfg_path, fast(1.0).to_json()).unwrap();
    let out = cmd
        .args(["-m", "vllm.entrypoints.cli.main", "bench", "latency"])
        .env("VLLM_STANDIN_CONFIG", &cfg_path)
        .env("VLLM_STANDIN_FAULT", "oom")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUDA out of memory"));
}
