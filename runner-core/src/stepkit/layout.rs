//! The files of one attempt, declared once. Backends write through [`AttemptFiles`] and the
//! engine reads through it; no other code names these files.
//!
//! ```text
//! <attempt dir>/
//!   plan.json                  the task's plan (the engine)
//!   commands.txt               every command that ran, filled ("server: …", "client: …")
//!   server.log                 the server's stdout and stderr
//!   warmup.stdout / .stderr    the warm-up client
//!   client.stdout / .stderr    the measured client
//!   results/                   {RESULT_DIR}: the client's result files
//!   nvidia-smi.txt, pip-freeze.txt, pip-freeze-client.txt   host snapshots (best effort)
//!   <backend files>            a backend's own records (`backend_file`), never read by the engine
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use super::runtime::Role;
use crate::backend::RunContext;

const PLAN: &str = "plan.json";
const COMMANDS: &str = "commands.txt";
const SERVER_LOG: &str = "server.log";
const WARMUP_STDOUT: &str = "warmup.stdout";
const WARMUP_STDERR: &str = "warmup.stderr";
const CLIENT_STDOUT: &str = "client.stdout";
const CLIENT_STDERR: &str = "client.stderr";
const RESULTS: &str = "results";
const NVIDIA_SMI: &str = "nvidia-smi.txt";
const PIP_FREEZE: &str = "pip-freeze.txt";
const PIP_FREEZE_CLIENT: &str = "pip-freeze-client.txt";

/// Where one process's output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// stdout and stderr interleaved in one file, appended to (the server log: a server
    /// started again on a fresh port adds to it).
    Merged(PathBuf),
    /// stdout and stderr in files of their own, created afresh (clients).
    Split {
        /// stdout file.
        stdout: PathBuf,
        /// stderr file.
        stderr: PathBuf,
    },
}

impl Output {
    /// How its files are opened: the merged log appended to, split files created afresh.
    pub fn open_options(&self) -> std::fs::OpenOptions {
        let mut o = std::fs::OpenOptions::new();
        o.create(true);
        match self {
            Output::Merged(_) => o.append(true),
            Output::Split { .. } => o.write(true).truncate(true),
        };
        o
    }
}

/// The files of one attempt (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptFiles {
    dir: PathBuf,
}

impl AttemptFiles {
    /// The files of the attempt folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> AttemptFiles {
        AttemptFiles { dir: dir.into() }
    }

    /// The files of the attempt `cx` runs.
    pub fn of(cx: &RunContext) -> AttemptFiles {
        AttemptFiles::new(&cx.artifact_dir)
    }

    /// The attempt folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create the folder and `results/`.
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.results_dir())
    }

    /// The task's plan, as the engine wrote it.
    pub fn plan(&self) -> PathBuf {
        self.dir.join(PLAN)
    }

    /// Every command that ran, one line each.
    pub fn commands(&self) -> PathBuf {
        self.dir.join(COMMANDS)
    }

    /// The server's log.
    pub fn server_log(&self) -> PathBuf {
        self.dir.join(SERVER_LOG)
    }

    /// The measured client's stdout.
    pub fn client_stdout(&self) -> PathBuf {
        self.dir.join(CLIENT_STDOUT)
    }

    /// The measured client's stderr.
    pub fn client_stderr(&self) -> PathBuf {
        self.dir.join(CLIENT_STDERR)
    }

    /// The warm-up's stdout.
    pub fn warmup_stdout(&self) -> PathBuf {
        self.dir.join(WARMUP_STDOUT)
    }

    /// The warm-up's stderr.
    pub fn warmup_stderr(&self) -> PathBuf {
        self.dir.join(WARMUP_STDERR)
    }

    /// `{RESULT_DIR}` on this host.
    pub fn results_dir(&self) -> PathBuf {
        self.dir.join(RESULTS)
    }

    /// `nvidia-smi`'s report at the start of the step.
    pub fn nvidia_smi(&self) -> PathBuf {
        self.dir.join(NVIDIA_SMI)
    }

    /// The engine build's installed packages.
    pub fn pip_freeze(&self) -> PathBuf {
        self.dir.join(PIP_FREEZE)
    }

    /// The client build's installed packages, when it is another build.
    pub fn pip_freeze_client(&self) -> PathBuf {
        self.dir.join(PIP_FREEZE_CLIENT)
    }

    /// A file of a backend's own (its metadata, its helper's log …). The engine never reads
    /// these; `name` is a plain file name chosen by the backend.
    pub fn backend_file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where a process of `role` writes its output.
    pub fn output(&self, role: Role) -> Output {
        match role {
            Role::Server => Output::Merged(self.server_log()),
            Role::Warmup => Output::Split {
                stdout: self.warmup_stdout(),
                stderr: self.warmup_stderr(),
            },
            Role::Client => Output::Split {
                stdout: self.client_stdout(),
                stderr: self.client_stderr(),
            },
        }
    }

    /// The stdout (server: its log) of a process of `role`.
    pub fn stdout(&self, role: Role) -> PathBuf {
        match self.output(role) {
            Output::Merged(p) | Output::Split { stdout: p, .. } => p,
        }
    }

    /// The stderr (server: its log) of a process of `role`.
    pub fn stderr(&self, role: Role) -> PathBuf {
        match self.output(role) {
            Output::Merged(p) | Output::Split { stderr: p, .. } => p,
        }
    }

    /// The logs that explain a failed server, root cause first: the server's log, then the
    /// warm-up's (the first client to talk to it), with their names.
    pub fn server_evidence(&self) -> [(&'static str, PathBuf); 3] {
        [
            (SERVER_LOG, self.server_log()),
            (WARMUP_STDERR, self.warmup_stderr()),
            (WARMUP_STDOUT, self.warmup_stdout()),
        ]
    }

    /// Whether a step output's client stdout is the warm-up's: the warm-up failed, so the
    /// measured client never ran.
    pub fn is_warmup_stdout(path: &Path) -> bool {
        path.file_name().is_some_and(|n| n == WARMUP_STDOUT)
    }

    /// Every regular file under `results/`, sorted (links are not followed).
    pub fn result_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.results_dir()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(e.path()),
                    Ok(t) if t.is_file() => out.push(e.path()),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }

    /// Append a command as it ran to the commands file: `role: [shown env ]argv`.
    pub fn record_command(&self, role: Role, argv: &[String], shown_env: &[(String, String)]) {
        let env: String = shown_env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.commands())
            .and_then(|mut f| writeln!(f, "{role}: {env}{}", argv.join(" ")));
        if let Err(e) = appended {
            tracing::warn!(file = %self.commands().display(), "cannot record the command: {e}");
        }
    }

    /// The last `n` lines of one of the attempt's text files (at most its last 64 KiB; empty
    /// when unreadable).
    pub fn tail(path: &Path, n: usize) -> String {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(path) else {
            return String::new();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
        let mut bytes = Vec::new();
        let _ = f.take(64 * 1024).read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roles_and_results() {
        let d = tempfile::tempdir().unwrap();
        let f = AttemptFiles::new(d.path());
        f.create().unwrap();
        assert_eq!(f.output(Role::Server), Output::Merged(f.server_log()));
        assert_eq!(f.stdout(Role::Warmup), f.warmup_stdout());
        assert_eq!(f.stderr(Role::Client), f.client_stderr());
        assert!(AttemptFiles::is_warmup_stdout(&f.warmup_stdout()));
        assert!(!AttemptFiles::is_warmup_stdout(&f.client_stdout()));
        assert_eq!(f.server_evidence()[0].1, f.server_log());

        std::fs::create_dir_all(f.results_dir().join("sub")).unwrap();
        std::fs::write(f.results_dir().join("b.json"), "{}").unwrap();
        std::fs::write(f.results_dir().join("sub/a.json"), "{}").unwrap();
        let outside = d.path().join("secret");
        std::fs::write(&outside, "x").unwrap();
        std::os::unix::fs::symlink(&outside, f.results_dir().join("link.json")).unwrap();
        assert_eq!(
            f.result_files(),
            [
                f.results_dir().join("b.json"),
                f.results_dir().join("sub/a.json")
            ]
        );

        // The server's log is appended to (a restart adds to it); clients' files start afresh.
        let merged = f.output(Role::Server);
        let client = f.output(Role::Client);
        for round in ["first\n", "second\n"] {
            for (out, path) in [(&merged, f.server_log()), (&client, f.client_stdout())] {
                out.open_options()
                    .open(path)
                    .and_then(|mut file| file.write_all(round.as_bytes()))
                    .unwrap();
            }
        }
        assert_eq!(
            std::fs::read_to_string(f.server_log()).unwrap(),
            "first\nsecond\n"
        );
        assert_eq!(
            std::fs::read_to_string(f.client_stdout()).unwrap(),
            "second\n"
        );

        let env = [("CUDA_VISIBLE_DEVICES".to_string(), "1".to_string())];
        f.record_command(Role::Server, &["python".into(), "-m".into()], &env);
        f.record_command(Role::Client, &["python".into()], &[]);
        let text = std::fs::read_to_string(f.commands()).unwrap();
        assert_eq!(
            text,
            "server: CUDA_VISIBLE_DEVICES=1 python -m\nclient: python\n"
        );
    }

    #[test]
    fn tails_keep_the_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        std::fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(AttemptFiles::tail(&p, 2), "c\nd");
        assert_eq!(AttemptFiles::tail(&p, 10), "a\nb\nc\nd");
        assert_eq!(AttemptFiles::tail(&d.path().join("none"), 2), "");
    }
}
