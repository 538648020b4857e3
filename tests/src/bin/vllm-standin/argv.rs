//! Python-style argv: the stand-in is invoked as `python` would be (`-m module …`, `script.py …`,
//! `-c code`), as the `vllm` console script, or directly (`vllm-standin serve …`).

use crate::args::Args;

/// How the entry point was reached (decides traceback frames and usage lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `python -m <module>`.
    Module(String),
    /// `python <path>/benchmarks/benchmark_*.py`.
    Script(String),
    /// The `vllm` CLI (`vllm serve`, `vllm bench …`, `-m vllm.entrypoints.cli.main`).
    Cli,
}

/// What the stand-in does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The OpenAI-compatible server.
    Server,
    /// The serving benchmark client (`bench serve`, `benchmark_serving.py`).
    BenchServe,
    /// Offline throughput (`bench throughput`, `benchmark_throughput.py`).
    Throughput,
    /// Offline latency (`bench latency`, `benchmark_latency.py`).
    Latency,
    /// Offline prefix caching (`benchmark_prefix_caching.py`).
    PrefixCaching,
}

/// One invocation, decided from argv alone.
#[derive(Debug)]
pub enum Command {
    /// Run a mode.
    Run {
        mode: Mode,
        entry: Entry,
        args: Args,
    },
    /// `python -c CODE`.
    PythonC(String),
    /// `vllm --version`.
    Version,
    /// Print and exit (usage, errors).
    Print {
        code: i32,
        stdout: String,
        stderr: String,
    },
}

fn print(code: i32, stdout: &str, stderr: &str) -> Command {
    Command::Print {
        code,
        stdout: stdout.to_string(),
        stderr: stderr.to_string(),
    }
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Decides what to do from the full argv (argv[0] included).
pub fn parse(argv: &[String]) -> Command {
    let argv0 = argv.first().map(|a| basename(a)).unwrap_or("python3");
    let rest = argv.get(1..).unwrap_or(&[]);
    if argv0 == "vllm" {
        return cli(rest, Entry::Cli);
    }
    let mut i = 0;
    while let Some(tok) = rest.get(i) {
        match tok.as_str() {
            "-c" => {
                return match rest.get(i + 1) {
                    Some(code) => Command::PythonC(code.clone()),
                    None => print(2, "", "Argument expected for the -c option"),
                };
            }
            "-m" => {
                return match rest.get(i + 1) {
                    Some(m) => module(m, &rest[i + 2..]),
                    None => print(2, "", "Argument expected for the -m option"),
                };
            }
            "-V" | "--version" => return print(0, "Python 3.12.3", ""),
            "-W" | "-X" => i += 2,
            "serve" | "bench" => return cli(&rest[i..], Entry::Cli),
            t if t.starts_with('-') && t.len() > 1 => i += 1,
            script => return run_script(script, &rest[i + 1..]),
        }
    }
    print(
        2,
        "",
        "vllm-standin: perf-runner's stand-in engine (a test double of vLLM).\n\
         usage: vllm-standin -m vllm.entrypoints.openai.api_server [options]\n       \
         vllm-standin -m vllm.entrypoints.cli.main {serve,bench} ...\n       \
         vllm-standin <path>/benchmarks/benchmark_{serving,throughput,latency,prefix_caching}.py ...\n       \
         vllm-standin -c 'import vllm; print(vllm.__version__)'",
    )
}

fn module(m: &str, args: &[String]) -> Command {
    match m {
        "vllm.entrypoints.openai.api_server" | "vllm.entrypoints.api_server" => Command::Run {
            mode: Mode::Server,
            entry: Entry::Module(m.to_string()),
            args: Args::parse("api_server.py", args),
        },
        "vllm.entrypoints.cli.main" | "vllm" => cli(args, Entry::Cli),
        _ => print(1, "", &format!("/usr/bin/python3: No module named {m}")),
    }
}

const SUBCOMMANDS: &str = "'chat', 'complete', 'serve', 'bench', 'collect-env', 'run-batch'";

fn cli(args: &[String], entry: Entry) -> Command {
    let Some(sub) = args.first() else {
        let usage = format!(
            "usage: vllm [-h] [-v] {{{}}} ...",
            SUBCOMMANDS.replace(['\'', ' '], "")
        );
        return print(
            2,
            "",
            &format!("{usage}\nvllm: error: the following arguments are required: subparser"),
        );
    };
    match sub.as_str() {
        "serve" => Command::Run {
            mode: Mode::Server,
            entry,
            args: Args::parse("vllm serve", &args[1..]),
        },
        "bench" => {
            let mode = match args.get(1).map(String::as_str) {
                Some("serve") => Mode::BenchServe,
                Some("throughput") => Mode::Throughput,
                Some("latency") => Mode::Latency,
                other => {
                    let usage = "usage: vllm bench [-h] {latency,serve,throughput} ...";
                    let msg = match other {
                        None => "the following arguments are required: bench_type".to_string(),
                        Some(x) => format!(
                            "argument bench_type: invalid choice: '{x}' (choose from 'latency', 'serve', 'throughput')"
                        ),
                    };
                    return print(2, "", &format!("{usage}\nvllm bench: error: {msg}"));
                }
            };
            let prog = format!("vllm bench {}", args[1]);
            Command::Run {
                mode,
                entry,
                args: Args::parse(&prog, &args[2..]),
            }
        }
        "-v" | "--version" => Command::Version,
        "-h" | "--help" => print(
            0,
            &format!("usage: vllm [-h] [-v] {{{SUBCOMMANDS}}} ..."),
            "",
        ),
        other => print(
            2,
            "",
            &format!(
                "usage: vllm [-h] [-v] ...\nvllm: error: argument subparser: invalid choice: '{other}' (choose from {SUBCOMMANDS})"
            ),
        ),
    }
}

fn run_script(path: &str, args: &[String]) -> Command {
    let name = basename(path);
    let mode = match name {
        "benchmark_serving.py" => Mode::BenchServe,
        "benchmark_throughput.py" => Mode::Throughput,
        "benchmark_latency.py" => Mode::Latency,
        "benchmark_prefix_caching.py" => Mode::PrefixCaching,
        _ if !std::path::Path::new(path).exists() => {
            let abs = std::path::absolute(path).map(|p| p.display().to_string());
            let abs = abs.unwrap_or_else(|_| path.to_string());
            return print(
                2,
                "",
                &format!(
                    "/usr/bin/python3: can't open file '{abs}': [Errno 2] No such file or directory"
                ),
            );
        }
        _ => {
            return print(
                1,
                "",
                &format!(
                    "vllm-standin: cannot run {path}: the stand-in (a test double of vLLM) only knows \
                     vLLM's benchmark scripts"
                ),
            );
        }
    };
    Command::Run {
        mode,
        entry: Entry::Script(path.to_string()),
        args: Args::parse(name, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn python_style_entry_points() {
        let c = parse(&argv(
            "python3 -u -m vllm.entrypoints.openai.api_server --port 1",
        ));
        assert!(matches!(
            c,
            Command::Run {
                mode: Mode::Server,
                ..
            }
        ));
        let c = parse(&argv(
            "vllm-standin -m vllm.entrypoints.cli.main bench serve --x 1",
        ));
        assert!(matches!(
            c,
            Command::Run {
                mode: Mode::BenchServe,
                entry: Entry::Cli,
                ..
            }
        ));
        let c = parse(&argv(
            "python /src/benchmarks/benchmark_latency.py --batch-size 2",
        ));
        assert!(matches!(
            c,
            Command::Run {
                mode: Mode::Latency,
                entry: Entry::Script(_),
                ..
            }
        ));
        let c = parse(&argv("vllm serve m --port 2"));
        assert!(matches!(
            c,
            Command::Run {
                mode: Mode::Server,
                entry: Entry::Cli,
                ..
            }
        ));
        assert!(matches!(parse(&argv("python3 -c x")), Command::PythonC(_)));
        assert!(matches!(
            parse(&argv("python3 -m nope")),
            Command::Print { code: 1, .. }
        ));
        assert!(matches!(
            parse(&argv("vllm bench nope")),
            Command::Print { code: 2, .. }
        ));
        assert!(matches!(
            parse(&argv("python3")),
            Command::Print { code: 2, .. }
        ));
        assert!(matches!(parse(&[]), Command::Print { code: 2, .. }));
    }
}
