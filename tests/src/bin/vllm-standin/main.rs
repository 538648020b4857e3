//! `vllm-standin`: perf-runner's stand-in engine, a **test double** of vLLM (never a product
//! feature). It is invoked like `python` (`-m vllm.entrypoints.openai.api_server …`,
//! `-m vllm.entrypoints.cli.main bench serve …`, `…/benchmarks/benchmark_*.py …`, `-c …`), as the
//! `vllm` console script, or directly (`vllm-standin serve …`). See the crate's README for the
//! whole surface, the config and the faults.

mod args;
mod argv;
mod client;
mod faults;
mod http;
mod logs;
mod numeric;
mod offline;
mod openai;
mod report;
mod serve_bench;
mod serve_setup;
mod server;
mod sleep;

use argv::{Command, Mode};
use logs::{err, out};
use perf_runner_tests::standin::StandinConfig;
use std::io::Write;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let _ = writeln!(std::io::stderr(), "vllm-standin: internal error: {info}");
        std::process::exit(1);
    }));
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let code = run(&argv);
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run(argv: &[String]) -> i32 {
    let cmd = argv::parse(argv);
    if let Command::Print {
        code,
        stdout,
        stderr,
    } = &cmd
    {
        if !stdout.is_empty() {
            out(stdout);
        }
        if !stderr.is_empty() {
            err(stderr);
        }
        return *code;
    }
    let exe = std::env::current_exe()
        .ok()
        .or_else(|| argv.first().map(Into::into));
    let cfg = match StandinConfig::load(exe.as_deref()) {
        Ok((cfg, _)) => cfg,
        Err(e) => {
            err(&format!("vllm-standin: {e}"));
            return 1;
        }
    };
    match cmd {
        Command::Print { code, .. } => code,
        Command::Version => {
            out(&cfg.version);
            0
        }
        Command::PythonC(code) => python_c(&code, &cfg),
        Command::Run { mode, entry, args } => match mode {
            Mode::Server | Mode::BenchServe => {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        err(&format!("RuntimeError: cannot start the event loop: {e}"));
                        return 1;
                    }
                };
                if mode == Mode::Server {
                    rt.block_on(server::run(&entry, &args, cfg))
                } else {
                    rt.block_on(serve_bench::run(&entry, &args, cfg))
                }
            }
            _ => offline::run(mode, &entry, &args, cfg),
        },
    }
}

/// `python -c CODE`: imports of anything but vLLM and a few standard modules fail like Python;
/// any mention of `__version__` prints the build's version.
fn python_c(code: &str, cfg: &StandinConfig) -> i32 {
    const KNOWN: [&str; 7] = ["vllm", "os", "sys", "json", "platform", "importlib", "time"];
    for stmt in code.split([';', '\n']).map(str::trim) {
        let modules: Vec<&str> = if let Some(rest) = stmt.strip_prefix("import ") {
            rest.split(',').collect()
        } else if let Some(rest) = stmt.strip_prefix("from ") {
            rest.split(" import").take(1).collect()
        } else {
            continue;
        };
        for m in modules {
            let root = m.trim().split([' ', '.']).next().unwrap_or("");
            if !KNOWN.contains(&root) {
                err("Traceback (most recent call last):");
                err("  File \"<string>\", line 1, in <module>");
                err(&format!("ModuleNotFoundError: No module named '{root}'"));
                return 1;
            }
        }
    }
    if code.contains("__version__") {
        out(&cfg.version);
    }
    0
}
