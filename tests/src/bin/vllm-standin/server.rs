//! The stand-in OpenAI-compatible server: vLLM's start-up logs, a port bound early but served
//! only once "the engine" is loaded (like vLLM), uvicorn's lines, periodic engine stats lines,
//! prompt exit on SIGTERM/SIGINT, and the start-up faults.

use crate::args::{ArgError, Args};
use crate::argv::Entry;
use crate::faults::{self, Ctx, Start};
use crate::http::{self, ReadError};
use crate::logs::{err, log, out};
use crate::openai;
use perf_runner_tests::standin::StandinConfig;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Shared server state and counters.
#[derive(Debug)]
pub struct State {
    /// The build's config.
    pub cfg: StandinConfig,
    /// Traceback context.
    pub ctx: Ctx,
    /// The served model name (`--served-model-name`, else `--model`).
    pub model: String,
    /// `--max-model-len`, enforced when given.
    pub max_model_len: Option<usize>,
    /// Generation requests received.
    pub requests: AtomicU64,
    /// Requests generating now.
    pub running: AtomicU64,
    /// The most requests that were generating at once (`GET /standin/peak_running`: a test
    /// double's own route, for checking a client's concurrency limit).
    pub peak_running: AtomicU64,
    /// Prompt tokens since the last stats line.
    pub prompt_tokens: AtomicU64,
    /// Generated tokens since the last stats line.
    pub gen_tokens: AtomicU64,
    /// Sleep mode.
    pub sleep: crate::sleep::Sleep,
}

/// Parses a `--host` without DNS: IPs, `localhost`, empty (all interfaces).
pub fn parse_host(host: &str) -> Option<IpAddr> {
    match host {
        "" | "0.0.0.0" => Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        "localhost" => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        h => h.trim_start_matches('[').trim_end_matches(']').parse().ok(),
    }
}

async fn next_signal(term: &mut Option<Signal>, int: &mut Option<Signal>) -> &'static str {
    async fn one(s: &mut Option<Signal>) {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = one(term) => "SIGTERM",
        _ = one(int) => "SIGINT",
    }
}

/// Runs the server until a signal or a fault ends it; returns the exit code.
pub async fn run(entry: &Entry, args: &Args, cfg: StandinConfig) -> i32 {
    if args.wants_help() {
        return args.help();
    }
    if let Some(code) = faults::argparse_fault(&cfg, args) {
        return code;
    }
    let sleep_flag = args.has("enable-sleep-mode");
    if sleep_flag && !cfg.sleep_mode {
        // A build older than sleep mode: argparse does not know the flag.
        err(&args.usage());
        err(&format!(
            "{}: error: unrecognized arguments: --enable-sleep-mode",
            args.prog
        ));
        return 2;
    }
    let parsed = (|| -> Result<_, ArgError> {
        let model = match args.value("model")? {
            Some(m) => m.to_string(),
            None => args
                .positionals
                .first()
                .cloned()
                .unwrap_or_else(|| "facebook/opt-125m".into()),
        };
        let served = args.string_or("served-model-name", &model)?;
        let port = args.usize_or("port", 8000)?;
        let port = u16::try_from(port)
            .map_err(|_| ArgError(format!("argument --port: invalid port: {port}")))?;
        Ok((
            model,
            served,
            args.string_or("host", "")?,
            port,
            args.opt_usize("max-model-len")?,
        ))
    })();
    let (model, served, host, port, max_model_len) = match parsed {
        Ok(p) => p,
        Err(e) => return args.fail(&e),
    };
    let ctx = Ctx::new(entry, &model, cfg.old_format);
    let state = Arc::new(State {
        cfg,
        ctx,
        model: served,
        max_model_len,
        requests: AtomicU64::new(0),
        running: AtomicU64::new(0),
        peak_running: AtomicU64::new(0),
        prompt_tokens: AtomicU64::new(0),
        gen_tokens: AtomicU64::new(0),
        sleep: crate::sleep::Sleep::new(sleep_flag),
    });
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    let unkillable = Arc::new(AtomicBool::new(false));
    let serve = serve(state.clone(), host, port, model, unkillable.clone());
    tokio::pin!(serve);
    loop {
        tokio::select! {
            code = &mut serve => return code,
            name = next_signal(&mut term, &mut int) => {
                if unkillable.load(Ordering::SeqCst) {
                    continue;
                }
                let old = state.cfg.old_format;
                log("INFO", "launcher.py:80", "Shutting down FastAPI HTTP server.", old);
                err("INFO:     Shutting down");
                err("INFO:     Waiting for application shutdown.");
                err("INFO:     Application shutdown complete.");
                err(&format!("INFO:     Finished server process [{}] ({name})", std::process::id()));
                return 0;
            }
        }
    }
}

async fn serve(
    state: Arc<State>,
    host: String,
    port: u16,
    model: String,
    unkillable: Arc<AtomicBool>,
) -> i32 {
    let cfg = &state.cfg;
    let (old, version) = (cfg.old_format, cfg.version.clone());
    log(
        "INFO",
        "__init__.py:239",
        "Automatically detected platform cuda.",
        old,
    );
    log(
        "INFO",
        "api_server.py:1043",
        &format!("vLLM API server version {version}"),
        old,
    );
    log(
        "INFO",
        "cli_args.py:325",
        &format!("non-default args: {{'host': '{host}', 'port': {port}, 'model': '{model}'}}"),
        old,
    );
    let Some(ip) = parse_host(&host) else {
        err(&format!(
            "Traceback (most recent call last):\n{}\nsocket.gaierror: [Errno -2] Name or service not known",
            state.ctx.top
        ));
        return 1;
    };
    // vLLM binds its socket before building the engine: connections queue until it serves.
    let std_listener = match std::net::TcpListener::bind(SocketAddr::new(ip, port)) {
        Ok(l) => l,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            err(&format!(
                "Traceback (most recent call last):\n{}\nOSError: [Errno {errno}] {}",
                state.ctx.top,
                if errno == 98 {
                    "Address already in use".to_string()
                } else {
                    e.to_string()
                }
            ));
            return 1;
        }
    };
    log(
        "INFO",
        "core.py:455",
        &format!(
            "Initializing a V1 LLM engine (v{version}) with config: model='{model}', tokenizer='{model}', dtype=torch.bfloat16, seed={}",
            cfg.seed
        ),
        old,
    );
    let half = Duration::from_millis(cfg.startup_ms / 2);
    tokio::time::sleep(half).await;
    match faults::engine_start(cfg, &state.ctx) {
        Start::Exit(code) => return code,
        Start::Hang { unkillable: u } => {
            unkillable.store(u, Ordering::SeqCst);
            log(
                "INFO",
                "gpu_model_runner.py:1595",
                &format!("Starting to load model {model}..."),
                old,
            );
            std::future::pending::<()>().await;
        }
        Start::Continue => {}
    }
    log(
        "INFO",
        "gpu_model_runner.py:1595",
        "Model loading took 14.9595 GiB and 3.21 seconds",
        old,
    );
    tokio::time::sleep(Duration::from_millis(cfg.startup_ms).saturating_sub(half)).await;
    log(
        "INFO",
        "kv_cache_utils.py:716",
        &format!(
            "GPU KV cache size: {} tokens",
            thousands(cfg.kv_cache_tokens)
        ),
        old,
    );
    log(
        "INFO",
        "api_server.py:1081",
        &format!("Starting vLLM API server 0 on http://{host}:{port}"),
        old,
    );
    log("INFO", "launcher.py:28", "Available routes are:", old);
    for route in [
        "/health, Methods: GET",
        "/v1/models, Methods: GET",
        "/version, Methods: GET",
        "/v1/chat/completions, Methods: POST",
        "/v1/completions, Methods: POST",
    ] {
        log("INFO", "launcher.py:36", &format!("Route: {route}"), old);
    }
    let listener = match std_listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(std_listener))
    {
        Ok(l) => l,
        Err(e) => {
            err(&format!("OSError: {e}"));
            return 1;
        }
    };
    err(&format!(
        "INFO:     Started server process [{}]",
        std::process::id()
    ));
    err("INFO:     Waiting for application startup.");
    err("INFO:     Application startup complete.");
    let shown = if host.is_empty() {
        "0.0.0.0"
    } else {
        host.as_str()
    };
    err(&format!(
        "INFO:     Uvicorn running on http://{shown}:{port} (Press CTRL+C to quit)"
    ));
    tokio::spawn(stats_logger(state.clone()));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, state.clone()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// `401232` as `401,232`, as vLLM prints it.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn connection(stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    loop {
        let req = match http::read_request(&mut rd).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(ReadError::Closed) => return,
            Err(ReadError::Bad(m)) => {
                let body = openai::error_body(400, &m);
                let _ =
                    http::write_response(&mut wr, 400, "application/json", body.as_bytes(), false)
                        .await;
                return;
            }
        };
        let keep = req.keep_alive();
        let Ok(code) = openai::route(&req, &mut wr, &state, keep).await else {
            return;
        };
        out(&format!(
            "INFO:     {}:{} - \"{} {} {}\" {code} {}",
            peer.ip(),
            peer.port(),
            req.method,
            req.path,
            req.version,
            http::reason(code)
        ));
        if !keep {
            return;
        }
    }
}

async fn stats_logger(state: Arc<State>) {
    let ms = state.cfg.log_interval_ms.max(10);
    let secs = ms as f64 / 1000.0;
    loop {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        let p = state.prompt_tokens.swap(0, Ordering::SeqCst) as f64 / secs;
        let g = state.gen_tokens.swap(0, Ordering::SeqCst) as f64 / secs;
        let running = state.running.load(Ordering::SeqCst);
        if p == 0.0 && g == 0.0 && running == 0 {
            continue;
        }
        let kv = (running as f64 * 0.1).min(100.0);
        if state.cfg.old_format {
            log(
                "INFO",
                "metrics.py:486",
                &format!(
                    "Avg prompt throughput: {p:.1} tokens/s, Avg generation throughput: {g:.1} tokens/s, \
                 Running: {running} reqs, Swapped: 0 reqs, Pending: 0 reqs, GPU KV cache usage: {kv:.1}%, \
                 CPU KV cache usage: 0.0%."
                ),
                true,
            );
        } else {
            log(
                "INFO",
                "loggers.py:80",
                &format!(
                    "Avg prompt throughput: {p:.1} tokens/s, Avg generation throughput: {g:.1} tokens/s, \
                 Running: {running} reqs, Waiting: 0 reqs, GPU KV cache usage: {kv:.1}%, \
                 Prefix cache hit rate: 0.0%"
                ),
                false,
            );
        }
    }
}
