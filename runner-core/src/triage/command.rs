//! The command check: is there a benchmark command, does it parse, and is it a command that
//! can run as written (no placeholders, no shell, no missing companion flags, a known script)?

use crate::catalogue::{DatasetSettings, Provision};
use crate::command::parse_perf_command;
use crate::failure::Failure;
use crate::spec::{BenchmarkSpec, Mode};
use crate::task::Task;

use super::{Findings, Reason};

/// Datasets of the benchmark scripts that read a file (or HF id) from `--dataset-path`.
const DATASETS_NEEDING_PATH: &[&str] = &["sharegpt", "burstgpt", "hf", "custom"];

/// Accepted `--dtype` values (vLLM's argparse choices).
pub const DTYPES: &[&str] = &["auto", "half", "float16", "bfloat16", "float", "float32"];

/// Run the command check; `datasets` says which catalogued dataset files can be provided.
pub fn check(task: &Task, datasets: &DatasetSettings, f: &mut Findings) {
    let Some(raw) = task
        .perf_command
        .as_deref()
        .filter(|c| !c.trim().is_empty())
    else {
        f.reasons.push(Reason::blocking(
            Failure::NoPerfCommand,
            "the task has no benchmark command",
            "add the commit's perf_command (the benchmark its PR reports) to the dataset",
        ));
        return;
    };
    if let (None, Some(v)) = (&task.spec, &task.policy_violation) {
        f.reasons.push(
            Reason::blocking(
                v.code,
                format!(
                    "the perf command is refused by the input policy: {} (token '{}')",
                    v.message, v.token
                ),
                v.fix.clone(),
            )
            .with_evidence([format!("perf_command: {}", one_line(raw))]),
        );
        return;
    }
    let parsed;
    let spec = match (&task.spec, &task.command_error) {
        (Some(spec), _) => spec,
        (None, Some(err)) => {
            f.reasons.push(
                Reason::blocking(
                    Failure::BadConfig,
                    format!("the perf command does not parse: {err}"),
                    "rewrite perf_command as one plain benchmark invocation",
                )
                .with_evidence([format!("perf_command: {}", one_line(raw))]),
            );
            return;
        }
        (None, None) => match parse_perf_command(raw) {
            Ok(spec) => {
                parsed = spec;
                &parsed
            }
            Err(err) => {
                f.reasons.push(
                    Reason::blocking(
                        Failure::BadConfig,
                        format!("the perf command does not parse: {err}"),
                        "rewrite perf_command as one plain benchmark invocation",
                    )
                    .with_evidence([format!("perf_command: {}", one_line(raw))]),
                );
                return;
            }
        },
    };
    let hazards = shell_hazards(raw);
    if !hazards.is_empty() {
        f.reasons.push(
            Reason::blocking(
                Failure::BadConfig,
                format!(
                    "the perf command is not a plain invocation: {}",
                    hazards.join("; ")
                ),
                "replace placeholders with real values and drop shell operators; \
                 perf-runner runs one benchmark process and no shell",
            )
            .with_evidence([format!("perf_command: {}", one_line(raw))]),
        );
    }
    check_flags(task, spec, datasets, f);
}

/// Collapse a command onto one line for evidence.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn check_flags(task: &Task, spec: &BenchmarkSpec, datasets: &DatasetSettings, f: &mut Findings) {
    let mut bad = |detail: String, fix: &str, evidence: Vec<String>| {
        f.reasons
            .push(Reason::blocking(Failure::BadConfig, detail, fix).with_evidence(evidence));
    };
    let spec_model = spec.value_of("--speculative-model");
    let spec_config = spec.value_of("--speculative-config");
    let is_ngram = spec_model.is_some_and(|m| m.trim_matches(['[', ']', '"', '\'']) == "ngram");
    if is_ngram && !spec.has_flag("--ngram-prompt-lookup-max") {
        bad(
            "ngram speculation (--speculative-model [ngram]) without --ngram-prompt-lookup-max"
                .into(),
            "add --ngram-prompt-lookup-max N (e.g. 4) as in the PR's benchmark",
            vec![format!(
                "--speculative-model {}",
                spec_model.unwrap_or_default()
            )],
        );
    }
    if spec.has_flag("--num-speculative-tokens") && spec_model.is_none() && spec_config.is_none() {
        bad(
            "--num-speculative-tokens without a speculative model or --speculative-config".into(),
            "add --speculative-model (or --speculative-config) as in the PR's benchmark",
            vec![],
        );
    }
    if spec_model.is_some() && !is_ngram && !spec.has_flag("--num-speculative-tokens") {
        f.warnings.push(
            "--speculative-model without --num-speculative-tokens: vLLM rejects this unless the \
             draft model's config sets n_predict"
                .into(),
        );
    }
    if spec.has_flag("--ngram-prompt-lookup-max") && spec_model.is_none() && spec_config.is_none() {
        f.warnings
            .push("--ngram-prompt-lookup-max without a speculative model is ignored".into());
    }
    if let Some(cfg) = spec_config {
        if serde_json::from_str::<serde_json::Value>(cfg).is_err() {
            bad(
                format!("--speculative-config is not valid JSON: {}", one_line(cfg)),
                "quote the JSON object as one argument",
                vec![],
            );
        }
    }
    for name in [
        "--tensor-parallel-size",
        "--pipeline-parallel-size",
        "--data-parallel-size",
    ] {
        if let Some(v) = spec.value_of(name) {
            if !v.parse::<u32>().is_ok_and(|n| n >= 1) {
                bad(
                    format!("{name} '{v}' is not a positive whole number"),
                    "fix the value",
                    vec![],
                );
            }
        }
    }
    if let Some(v) = spec.value_of("--gpu-memory-utilization") {
        if !v.parse::<f64>().is_ok_and(|u| u > 0.0 && u <= 1.0) {
            bad(
                format!("--gpu-memory-utilization '{v}' is not in (0, 1]"),
                "use a fraction such as 0.9",
                vec![],
            );
        }
    }
    if let Some(v) = spec.value_of("--dtype") {
        if !DTYPES.contains(&v.to_ascii_lowercase().as_str()) {
            bad(
                format!("--dtype '{v}' is not one of {}", DTYPES.join(", ")),
                "use --dtype auto, float16 or bfloat16",
                vec![],
            );
        }
    }
    // benchmark_serving.py defaults to ShareGPT; a named file dataset needs its file. A
    // catalogued one comes from the dataset mirror when it has it; otherwise the run would
    // fail in the client (nothing is substituted), and a person can provide the file.
    match crate::catalogue::provision(spec, datasets) {
        Some(Provision::Mirror { entry, path }) => {
            f.warnings.push(format!(
                "{} will be provisioned from the dataset mirror ({}): copied once into the \
                 run's data dir and given to every variant as --dataset-path",
                entry.file,
                path.display()
            ));
        }
        Some(Provision::Missing { entry, why }) => {
            f.reasons.push(Reason::attention(
                Failure::DatasetMissing,
                format!(
                    "the command relies on the {} dataset ({}) without --dataset-path, and {why}",
                    entry.name, entry.file
                ),
                crate::catalogue::fix(entry),
            ));
        }
        None => check_uncatalogued_dataset(spec, f),
    }
    if spec.mode == Mode::Other {
        f.reasons.push(Reason::attention(
            Failure::Unknown,
            format!(
                "benchmark script {} is not one perf-runner knows; its output format and \
                 server needs are unknown",
                entry_name(spec)
            ),
            "use benchmark_serving/throughput/latency (or vllm bench), or add a Benchmark for it",
        ));
    }
    if spec.model().is_none() && spec.mode != Mode::Other {
        if let Some(m) = task.models.first() {
            f.reasons.push(Reason::attention(
                Failure::BadConfig,
                format!(
                    "the command has no --model: the script's default model would be \
                     benchmarked, not {m}"
                ),
                format!("add --model {m} to the command"),
            ));
        }
    }
    let unknown: Vec<&str> = spec.unclassified().map(|fl| fl.name.as_str()).collect();
    if !unknown.is_empty() {
        f.warnings.push(format!(
            "flags the parser does not know: {}",
            unknown.join(", ")
        ));
    }
}

/// A dataset the command needs a file for, outside the catalogue (`hf`, `custom`).
fn check_uncatalogued_dataset(spec: &BenchmarkSpec, f: &mut Findings) {
    let has_path = spec.has_flag("--dataset-path") || spec.has_flag("--dataset");
    let name = spec.value_of("--dataset-name");
    let serving_script =
        spec.mode == Mode::Serving && matches!(spec.entry, crate::spec::EntryPoint::Script { .. });
    let needs_file = match name {
        Some(n) => DATASETS_NEEDING_PATH.contains(&n),
        None => serving_script,
    };
    if needs_file && !has_path {
        let what = match name {
            Some(n) => format!("--dataset-name {n}"),
            None => "the serving client's default dataset (ShareGPT)".into(),
        };
        f.reasons.push(Reason::attention(
            Failure::DatasetMissing,
            format!("{what} needs --dataset-path, which the command lacks"),
            "add --dataset-path (e.g. ShareGPT_V3_unfiltered_cleaned_split.json) or use \
             --dataset-name random with explicit lengths",
        ));
    }
}

fn entry_name(spec: &BenchmarkSpec) -> String {
    match &spec.entry {
        crate::spec::EntryPoint::Script { path } => path.clone(),
        crate::spec::EntryPoint::VllmBench { subcommand } => format!("vllm bench {subcommand}"),
        crate::spec::EntryPoint::ModuleBench { module, subcommand } => {
            format!("python -m {module} bench {subcommand}")
        }
    }
}

/// Shell syntax and placeholders in a raw command (quote-aware), one description each.
pub fn shell_hazards(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    let chars: Vec<char> = raw.chars().collect();
    let (mut single, mut double) = (false, false);
    let mut tokens: Vec<String> = vec![String::new()];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let cur = tokens.last_mut().expect("never empty");
        if single {
            if c == '\'' {
                single = false;
            } else {
                cur.push(c);
            }
        } else if c == '\\' {
            if let Some(n) = next.filter(|n| *n != '\n') {
                cur.push(n);
            }
            i += 1;
        } else if c == '`' || (c == '$' && next == Some('(')) {
            push(format!(
                "command substitution '{}'",
                if c == '`' { "`" } else { "$(" }
            ));
        } else if c == '$' && next.is_some_and(|n| n == '{' || n.is_ascii_alphabetic()) {
            let var: String = chars[i..]
                .iter()
                .take_while(|c| !c.is_whitespace() && **c != '"')
                .collect();
            push(format!("unexpanded variable '{var}'"));
            cur.push(c);
        } else if double {
            if c == '"' {
                double = false;
            } else {
                cur.push(c);
            }
        } else if c == '\'' {
            single = true;
        } else if c == '"' {
            double = true;
        } else if c == '<' {
            let rest: String = chars[i + 1..].iter().take_while(|c| **c != '>').collect();
            let closed = chars.len() > i + 1 + rest.chars().count();
            if closed && !rest.is_empty() && !rest.contains(char::is_whitespace) {
                push(format!("placeholder '<{rest}>'"));
                cur.push_str(&format!("<{rest}>"));
                i += rest.chars().count() + 2;
                continue;
            }
            push("shell redirection '<'".into());
        } else if matches!(c, '|' | '&' | ';' | '>') {
            let op: String = chars[i..]
                .iter()
                .take_while(|c| matches!(c, '|' | '&' | ';' | '>'))
                .collect();
            i += op.chars().count();
            push(format!("shell operator '{op}'"));
            continue;
        } else if c == '\n' {
            push("more than one command (a line break without '\\')".into());
            tokens.push(String::new());
        } else if c.is_whitespace() {
            tokens.push(String::new());
        } else {
            cur.push(c);
        }
        i += 1;
    }
    if single || double {
        push("an unterminated quote".into());
    }
    for t in tokens.iter().filter(|t| !t.is_empty()) {
        if let Some(p) = placeholder(t) {
            push(p);
        }
    }
    out
}

fn placeholder(t: &str) -> Option<String> {
    let upper = t.to_ascii_uppercase();
    if t.starts_with('[') && t.ends_with(']') && t.len() >= 2 {
        let inner = &t[1..t.len() - 1];
        if inner != "ngram" && serde_json::from_str::<serde_json::Value>(t).is_err() {
            return Some(format!("usage-style brackets '{t}'"));
        }
    }
    let braced = t.len() > 2
        && t.starts_with('{')
        && t.ends_with('}')
        && t[1..t.len() - 1]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    let marker = ["YOUR_", "YOUR-", "PATH/TO", "PATH_TO", "<", "TODO", "XXX"]
        .iter()
        .any(|m| upper.contains(m))
        || t == "..."
        || t.ends_with("...");
    (braced || marker).then(|| format!("placeholder '{t}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards() {
        let ok = r#"python benchmarks/benchmark_serving.py --model m --speculative-model '[ngram]' --speculative-config '{"method": "ngram"}' --x \
            --y [1,2]"#;
        assert!(shell_hazards(ok).is_empty(), "{:?}", shell_hazards(ok));
        let h = shell_hazards("python a.py --model <model> | tee out.txt && echo $(date) > f");
        assert_eq!(h.len(), 5, "{h:?}");
        assert!(
            shell_hazards("a --model $MODEL")
                .iter()
                .any(|s| s.contains("$MODEL"))
        );
        assert!(
            shell_hazards("a --dataset [sharegpt|random]")
                .iter()
                .any(|s| s.contains("brackets"))
        );
        assert!(
            shell_hazards("a --model {model}")
                .iter()
                .any(|s| s.contains("{model}"))
        );
        assert!(shell_hazards("a 'b").iter().any(|s| s.contains("quote")));
        assert!(
            shell_hazards("a\nb")
                .iter()
                .any(|s| s.contains("line break"))
        );
        assert!(shell_hazards("a --path /path/to/data.json").len() == 1);
    }
}
