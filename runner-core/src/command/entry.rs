//! Leading `VAR=value` assignments and the entry point: which benchmark program the command
//! runs, and so its [`Mode`].

use std::sync::OnceLock;

use regex::Regex;

use super::CommandError;
use super::placeholder::check_env_value;
use super::tokenize::Word;
use crate::spec::{EntryPoint, Mode};

/// The entry points the parser accepts, for error messages.
pub const ACCEPTED_ENTRY_POINTS: &str = "python[3[.x]] [path/]benchmarks/benchmark_{serving,\
    throughput,latency,prefix_caching}.py, python [path/]benchmarks/<any/depth>/<script>.py, \
    vllm bench {serve,throughput,latency}, or python -m vllm.entrypoints.cli.main bench \
    {serve,throughput,latency}";

/// The `-m` modules that provide the `vllm` CLI.
const CLI_MODULES: &[&str] = &["vllm.entrypoints.cli.main"];

/// The entry point found, and where the benchmark's own arguments start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// How the benchmark is invoked.
    pub entry: EntryPoint,
    /// The mode it implies.
    pub mode: Mode,
    /// Index of the first word after the entry point.
    pub args_start: usize,
}

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("the entry-point patterns are valid"))
}

fn unknown(token: impl Into<String>) -> CommandError {
    CommandError::UnknownEntryPoint {
        token: token.into(),
    }
}

/// `NAME=value` with an unquoted name and `=`, as the shell reads an assignment.
fn assignment(word: &Word) -> Option<(String, String)> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let eq = word.text.find('=')?;
    let name = word.text.get(..eq)?;
    let ok = eq < word.bare_prefix && regex(&RE, r"^[A-Za-z_][A-Za-z0-9_]*$").is_match(name);
    ok.then(|| {
        (
            name.to_string(),
            word.text.get(eq + 1..).unwrap_or("").to_string(),
        )
    })
}

/// Leading `VAR=value` assignments (optionally after `env`), and the index after them.
pub fn split_env(words: &[Word]) -> Result<(Vec<(String, String)>, usize), CommandError> {
    let mut env = Vec::new();
    let mut i = 0;
    let mut after_env = false;
    while let Some(word) = words.get(i) {
        if let Some((name, value)) = assignment(word) {
            check_env_value(&name, &value)?;
            env.push((name, value));
        } else if !after_env && (word.text == "env" || word.text.ends_with("/env")) {
            after_env = true;
        } else if after_env && word.text.starts_with('-') {
            return Err(CommandError::Invalid {
                message: "options of `env` are not supported: write only `VAR=value` \
                          assignments before the benchmark program"
                    .into(),
                token: word.text.clone(),
            });
        } else {
            break;
        }
        i += 1;
    }
    Ok((env, i))
}

fn text(words: &[Word], i: usize) -> Option<&str> {
    words.get(i).map(|w| w.text.as_str())
}

/// Find the entry point at `words[start..]`.
pub fn detect(words: &[Word], start: usize) -> Result<Found, CommandError> {
    static PYTHON: OnceLock<Regex> = OnceLock::new();
    static VLLM: OnceLock<Regex> = OnceLock::new();
    let Some(program) = text(words, start) else {
        let last = start.checked_sub(1).and_then(|i| text(words, i));
        return Err(unknown(last.unwrap_or("")));
    };
    if regex(&VLLM, r"^(?:\S*/)?vllm$").is_match(program) {
        let (entry, mode) = bench_cli(words, start + 1, program, None)?;
        return Ok(Found {
            entry,
            mode,
            args_start: start + 3,
        });
    }
    if !regex(&PYTHON, r"^(?:\S*/)?python(?:3(?:\.\d+)?)?$").is_match(program) {
        return Err(unknown(program));
    }
    let mut i = start + 1;
    loop {
        let Some(arg) = text(words, i) else {
            return Err(unknown(program));
        };
        match arg {
            "-m" => {
                let Some(module) = text(words, i + 1) else {
                    return Err(unknown(format!("{program} -m")));
                };
                return module_entry(words, i + 2, program, module);
            }
            _ if arg.starts_with("-m") => {
                return module_entry(words, i + 1, program, arg.get(2..).unwrap_or(""));
            }
            "-X" | "-W" => i += 2,
            _ if regex_python_switches(arg) => i += 1,
            _ if arg.starts_with('-') => return Err(unknown(format!("{program} {arg}"))),
            _ => return script_entry(arg, i + 1),
        }
    }
}

/// Interpreter switches that change nothing the benchmark sees (`-u`, `-B`, `-O` …).
fn regex_python_switches(arg: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    regex(&RE, r"^-[uBEsSIObq]+$").is_match(arg)
}

fn module_entry(
    words: &[Word],
    i: usize,
    program: &str,
    module: &str,
) -> Result<Found, CommandError> {
    if !CLI_MODULES.contains(&module) {
        return Err(unknown(format!("{program} -m {module}")));
    }
    let (entry, mode) = bench_cli(words, i, program, Some(module))?;
    Ok(Found {
        entry,
        mode,
        args_start: i + 2,
    })
}

/// `bench <subcommand>` at `words[i..]`, after `vllm` or `python -m <module>`.
fn bench_cli(
    words: &[Word],
    i: usize,
    program: &str,
    module: Option<&str>,
) -> Result<(EntryPoint, Mode), CommandError> {
    let prefix = match module {
        Some(m) => format!("{program} -m {m}"),
        None => program.to_string(),
    };
    let bench = text(words, i);
    if bench != Some("bench") {
        return Err(unknown(match bench {
            Some(b) => format!("{prefix} {b}"),
            None => prefix,
        }));
    }
    let sub = text(words, i + 1).unwrap_or("");
    let mode = match sub {
        "serve" => Mode::Serving,
        "throughput" => Mode::Throughput,
        "latency" => Mode::Latency,
        _ => {
            return Err(unknown(
                format!("{prefix} bench {sub}").trim_end().to_string(),
            ));
        }
    };
    let subcommand = sub.to_string();
    let entry = match module {
        Some(m) => EntryPoint::ModuleBench {
            module: m.to_string(),
            subcommand,
        },
        None => EntryPoint::VllmBench { subcommand },
    };
    Ok((entry, mode))
}

/// `[path/]benchmarks/[dir/]<name>.py`.
fn script_entry(path: &str, args_start: usize) -> Result<Found, CommandError> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = regex(&RE, r"(?:^|/)benchmarks/((?:[^/]+/)*)([^/]+)\.py$");
    let Some(caps) = re.captures(path) else {
        return Err(unknown(path));
    };
    let nested = caps.get(1).is_some_and(|m| !m.as_str().is_empty());
    let name = caps.get(2).map_or("", |m| m.as_str());
    let mode = match name {
        _ if nested => Mode::Other,
        "benchmark_serving" => Mode::Serving,
        n if n.starts_with("benchmark_serving_") => Mode::Serving,
        "benchmark_throughput" => Mode::Throughput,
        "benchmark_latency" => Mode::Latency,
        "benchmark_prefix_caching" => Mode::PrefixCaching,
        _ => Mode::Other,
    };
    Ok(Found {
        entry: EntryPoint::Script {
            path: path.to_string(),
        },
        mode,
        args_start,
    })
}
