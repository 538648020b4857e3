//! What a step ran, as its attempt's `commands.txt` records it (through
//! [`AttemptFiles`](crate::stepkit::AttemptFiles)), and its comparison with the plan's argv up
//! to placeholder values.

use std::collections::BTreeMap;
use std::path::Path;

use crate::plan::StepPlan;

/// One command as recorded: `role: [NAME=value …] argv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// `server`, `warmup` or `client`.
    pub role: String,
    /// The environment the backend chose to show next to it (backend-specific).
    pub shown_env: Vec<(String, String)>,
    /// The filled argv.
    pub argv: Vec<String>,
}

/// Every command one attempt ran, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// The commands.
    pub lines: Vec<Line>,
}

/// Whether `token` looks like `NAME=value` with a shell-style variable name.
fn is_assignment(token: &str) -> bool {
    let Some((name, _)) = token.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

impl Transcript {
    /// Parse a `commands.txt` text (argv tokens are space-joined there, so tokens holding
    /// spaces cannot be told apart; the conformance plans have none).
    pub fn parse(text: &str) -> Transcript {
        let lines = text
            .lines()
            .filter_map(|l| {
                let (role, rest) = l.split_once(": ")?;
                let mut tokens = rest.split_whitespace().peekable();
                let mut shown_env = Vec::new();
                while let Some(t) = tokens.next_if(|t| is_assignment(t)) {
                    if let Some((k, v)) = t.split_once('=') {
                        shown_env.push((k.to_string(), v.to_string()));
                    }
                }
                Some(Line {
                    role: role.to_string(),
                    shown_env,
                    argv: tokens.map(str::to_string).collect(),
                })
            })
            .collect();
        Transcript { lines }
    }

    /// Read an attempt's `commands.txt` (empty when there is none).
    pub fn read(path: &Path) -> Transcript {
        Transcript::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The roles in order.
    pub fn roles(&self) -> Vec<&str> {
        self.lines.iter().map(|l| l.role.as_str()).collect()
    }

    /// The last command of `role`.
    pub fn last(&self, role: &str) -> Option<&Line> {
        self.lines.iter().rev().find(|l| l.role == role)
    }
}

/// The placeholder values one filled argv took, by placeholder (`{PORT}` → `8123`).
pub type Taken = BTreeMap<String, String>;

/// Match a filled argv against the plan's: every token equal, except that each placeholder
/// stands for a value (the same value wherever it appears in this argv). Returns the values.
pub fn match_argv(plan: &[String], filled: &[String]) -> Result<Taken, String> {
    if plan.len() != filled.len() {
        return Err(format!(
            "{} tokens, the plan has {}: {filled:?} against {plan:?}",
            filled.len(),
            plan.len()
        ));
    }
    let holder = regex::Regex::new(r"\{[A-Z_]+\}").map_err(|e| e.to_string())?;
    let mut taken = Taken::new();
    for (p, f) in plan.iter().zip(filled) {
        if !holder.is_match(p) {
            if p != f {
                return Err(format!("token {f:?} where the plan has {p:?}"));
            }
            continue;
        }
        let mut pattern = String::from("^");
        let mut names = Vec::new();
        let mut last = 0;
        for m in holder.find_iter(p) {
            pattern.push_str(&regex::escape(&p[last..m.start()]));
            pattern.push_str("(.+?)");
            names.push(m.as_str().to_string());
            last = m.end();
        }
        pattern.push_str(&regex::escape(&p[last..]));
        pattern.push('$');
        let re = regex::Regex::new(&pattern).map_err(|e| e.to_string())?;
        let caps = re
            .captures(f)
            .ok_or_else(|| format!("token {f:?} does not fill {p:?}"))?;
        for (i, name) in names.into_iter().enumerate() {
            let v = caps.get(i + 1).map_or("", |m| m.as_str()).to_string();
            if v.contains('{') {
                return Err(format!("{name} left unfilled in {f:?}"));
            }
            match taken.get(&name) {
                Some(old) if *old != v => {
                    return Err(format!("{name} is {old:?} and {v:?} in one argv"));
                }
                _ => {
                    taken.insert(name, v);
                }
            }
        }
    }
    Ok(taken)
}

/// The transcript of a successful serving step against its plan: server, warm-up and client
/// in that order, each argv the plan's up to placeholders, and one `{PORT}` for all three.
/// Returns each role's placeholder values.
pub fn check_serving(t: &Transcript, step: &StepPlan) -> Result<Vec<(String, Taken)>, String> {
    let mut want = Vec::new();
    if let Some(s) = &step.server {
        want.push(("server", &s.argv));
    }
    if let Some(w) = &step.warmup {
        want.push(("warmup", &w.argv));
    }
    want.push(("client", &step.client.argv));
    let roles: Vec<&str> = want.iter().map(|w| w.0).collect();
    if t.roles() != roles {
        return Err(format!("ran {:?}, want {roles:?}", t.roles()));
    }
    let mut out = Vec::new();
    for ((role, plan), line) in want.into_iter().zip(&t.lines) {
        let taken = match_argv(plan, &line.argv).map_err(|e| format!("{role}: {e}"))?;
        out.push((role.to_string(), taken));
    }
    let ports: Vec<&String> = out.iter().filter_map(|(_, t)| t.get("{PORT}")).collect();
    if ports.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!(
            "the processes were given different ports: {ports:?}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_lines_with_shown_env() {
        let t = Transcript::parse(
            "server: CUDA_VISIBLE_DEVICES=1 /v/bin/python -m x --port 9\nclient: python3 a=b\n",
        );
        assert_eq!(t.roles(), ["server", "client"]);
        assert_eq!(
            t.lines[0].shown_env,
            [("CUDA_VISIBLE_DEVICES".into(), "1".into())]
        );
        assert_eq!(t.lines[0].argv, v("/v/bin/python -m x --port 9"));
        assert_eq!(t.lines[1].argv, v("python3 a=b"));
        assert!(t.last("warmup").is_none());
    }

    #[test]
    fn matches_up_to_placeholders() {
        let plan = v("{PYTHON} --port {PORT} --out {RESULT_DIR}/r.json --url http://{HOST}:{PORT}");
        let got = match_argv(
            &plan,
            &v("/p/python --port 81 --out /a/results/r.json --url http://h:81"),
        )
        .unwrap();
        assert_eq!(got["{PORT}"], "81");
        assert_eq!(got["{RESULT_DIR}"], "/a/results");
        assert!(
            match_argv(
                &plan,
                &v("/p/python --port 81 --out /a/r.json --url http://h:82")
            )
            .is_err()
        );
        assert!(match_argv(&plan, &v("/p/python --port 81")).is_err());
        assert!(match_argv(&v("a b"), &v("a c")).is_err());
        assert!(match_argv(&v("{PORT}"), &v("{PORT}")).is_err());
    }
}
