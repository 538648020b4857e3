//! A lenient argparse look-alike: every `--flag [value]` is accepted (real vLLM has hundreds),
//! typed getters fail like argparse does (`error: argument --x: invalid int value: 'y'`, exit 2).

use crate::logs::err;

/// Flags that never take a value (so `--ignore-eos --foo` does not eat `--foo`, nor a positional).
const BOOL_FLAGS: &[&str] = &[
    "ignore-eos",
    "save-result",
    "save-detailed",
    "append-result",
    "enable-prefix-caching",
    "no-enable-prefix-caching",
    "enforce-eager",
    "trust-remote-code",
    "disable-log-requests",
    "disable-log-stats",
    "disable-tqdm",
    "use-v2-block-manager",
    "use-beam-search",
    "profile",
    "sort",
    "disable-custom-all-reduce",
    "async-scheduling",
    "help",
    "h",
];

/// The largest integer option accepted (lengths, counts): keeps every product of two in range.
pub const MAX_INT: usize = 100_000_000;

/// An argparse-style error; printed with the usage line and exit code 2.
#[derive(Debug)]
pub struct ArgError(pub String);

/// Parsed command-line arguments of one entry point.
#[derive(Debug, Clone)]
pub struct Args {
    /// Program name for usage lines (`vllm bench serve`, `benchmark_serving.py` …).
    pub prog: String,
    /// Flags in order: normalised name (no dashes, `_` → `-`), the raw token, the value.
    pub flags: Vec<(String, String, Option<String>)>,
    /// Positional arguments.
    pub positionals: Vec<String>,
}

fn is_flag(tok: &str) -> bool {
    tok.starts_with('-') && tok.len() > 1 && tok[1..].parse::<f64>().is_err()
}

fn normalise(name: &str) -> String {
    name.trim_start_matches('-').replace('_', "-")
}

impl Args {
    /// Parses `raw` (the arguments after the entry point).
    pub fn parse(prog: &str, raw: &[String]) -> Args {
        let mut flags = Vec::new();
        let mut positionals = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let tok = &raw[i];
            if is_flag(tok) {
                if let Some((name, value)) = tok.split_once('=').filter(|_| tok.starts_with("--")) {
                    flags.push((normalise(name), name.to_string(), Some(value.to_string())));
                } else {
                    let name = normalise(tok);
                    let takes_value = !BOOL_FLAGS.contains(&name.as_str());
                    let value = raw
                        .get(i + 1)
                        .filter(|v| takes_value && !is_flag(v))
                        .cloned();
                    if value.is_some() {
                        i += 1;
                    }
                    flags.push((name, tok.clone(), value));
                }
            } else {
                positionals.push(tok.clone());
            }
            i += 1;
        }
        Args {
            prog: prog.to_string(),
            flags,
            positionals,
        }
    }

    /// Whether the flag was given (under any spelling: `--a-b`, `--a_b`).
    pub fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _, _)| n == name)
    }

    /// Whether any of `-h`/`--help` was given.
    pub fn wants_help(&self) -> bool {
        self.has("help") || self.has("h")
    }

    /// The value of the last occurrence; an error when the flag is there without a value.
    pub fn value(&self, name: &str) -> Result<Option<&str>, ArgError> {
        match self.flags.iter().rev().find(|(n, _, _)| n == name) {
            None => Ok(None),
            Some((_, _, Some(v))) => Ok(Some(v)),
            Some((_, raw, None)) => Err(ArgError(format!("argument {raw}: expected one argument"))),
        }
    }

    /// A string value or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> Result<String, ArgError> {
        Ok(self.value(name)?.unwrap_or(default).to_string())
    }

    /// An optional integer value, at most [`MAX_INT`] (so no arithmetic on it can overflow).
    pub fn opt_usize(&self, name: &str) -> Result<Option<usize>, ArgError> {
        match self.value(name)? {
            None => Ok(None),
            Some(v) => match v.trim().parse::<usize>() {
                Ok(n) if n <= MAX_INT => Ok(Some(n)),
                Ok(n) => Err(ArgError(format!(
                    "argument --{name}: {n} is larger than {MAX_INT}"
                ))),
                Err(_) => Err(ArgError(format!(
                    "argument --{name}: invalid int value: '{v}'"
                ))),
            },
        }
    }

    /// A 64-bit integer value (seeds; negative ones wrap) or `default`.
    pub fn u64_or(&self, name: &str, default: u64) -> Result<u64, ArgError> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) => Ok(n as u64),
                Err(_) => v
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| ArgError(format!("argument --{name}: invalid int value: '{v}'"))),
            },
        }
    }

    /// An integer value or `default`.
    pub fn usize_or(&self, name: &str, default: usize) -> Result<usize, ArgError> {
        Ok(self.opt_usize(name)?.unwrap_or(default))
    }

    /// A float value (`inf` allowed) or `default`.
    pub fn f64_or(&self, name: &str, default: f64) -> Result<f64, ArgError> {
        match self.value(name)? {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if !x.is_nan() => Ok(x),
                _ => Err(ArgError(format!(
                    "argument --{name}: invalid float value: '{v}'"
                ))),
            },
        }
    }

    /// The raw token of the last flag given, e.g. `--foo` (what `unrecognized_arg` rejects).
    pub fn last_flag(&self) -> Option<String> {
        self.flags.last().map(|(_, raw, _)| raw.clone())
    }

    /// The argparse usage line of this program.
    pub fn usage(&self) -> String {
        if self.prog.starts_with("vllm serve") {
            "usage: vllm serve [model_tag] [options]".to_string()
        } else if let Some(sub) = self.prog.strip_prefix("vllm bench ") {
            format!("usage: vllm bench {sub} [options]")
        } else {
            format!(
                "usage: {} [-h] [--model MODEL] [--host HOST] [--port PORT] [--seed SEED] …",
                self.prog
            )
        }
    }

    /// Prints an argparse error (usage + `prog: error: msg`) and returns exit code 2.
    pub fn fail(&self, e: &ArgError) -> i32 {
        err(&self.usage());
        err(&format!("{}: error: {}", self.prog, e.0));
        2
    }

    /// Prints a short help text on stdout (for `-h`) and returns exit code 0.
    pub fn help(&self) -> i32 {
        crate::logs::out(&self.usage());
        crate::logs::out("");
        crate::logs::out("perf-runner's stand-in engine (a test double of vLLM): every option of");
        crate::logs::out("the real entry point is accepted; see perf-runner-tests' README.");
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Args {
        let raw: Vec<String> = s.split_whitespace().map(str::to_string).collect();
        Args::parse("x", &raw)
    }

    #[test]
    fn flags_values_and_booleans() {
        let a = p("M --ignore-eos --num_prompts 5 --seed -1 --request-rate=inf --x");
        assert_eq!(a.positionals, vec!["M"]);
        assert!(a.has("ignore-eos"));
        assert_eq!(a.usize_or("num-prompts", 1).unwrap(), 5);
        assert_eq!(a.value("seed").unwrap(), Some("-1"));
        assert!(a.f64_or("request-rate", 1.0).unwrap().is_infinite());
        assert!(a.value("x").is_err());
        assert_eq!(a.last_flag().as_deref(), Some("--x"));
        assert!(p("--num-prompts abc").usize_or("num-prompts", 1).is_err());
    }
}
