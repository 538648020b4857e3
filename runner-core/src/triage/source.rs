//! A vLLM source to read files at a commit: a local clone (one long-lived
//! `git cat-file --batch` process serves every probe) or raw files over HTTP from a URL
//! template. Results are cached per `(rev, path)`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

use super::http::{Http, HttpOutcome};

/// The result of reading one file (or directory) at a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// It exists; its text (empty for a directory).
    Found(Arc<str>),
    /// It does not exist at that commit.
    Missing,
    /// The probe itself failed (commit unknown to the clone, process died, HTTP error …).
    Failed(String),
}

/// Where triage reads vLLM's files at the parent commit.
#[derive(Clone)]
pub enum VllmSource {
    /// A local clone.
    Git(GitProbe),
    /// Raw files over HTTP; the template has `{commit}` and `{path}`.
    Http {
        /// e.g. `https://raw.githubusercontent.com/vllm-project/vllm/{commit}/{path}`.
        template: String,
        /// Cached results by URL.
        cache: Arc<Mutex<HashMap<String, Probe>>>,
    },
}

impl std::fmt::Debug for VllmSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VllmSource({})", self.describe())
    }
}

impl VllmSource {
    /// A source from a CLI argument: an `http(s)://` URL template (a `github.com/OWNER/REPO`
    /// URL becomes its raw-file template), else a path to a local clone.
    pub fn parse(s: &str) -> VllmSource {
        let s = s.trim();
        if s.starts_with("http://") || s.starts_with("https://") {
            let template = match s.strip_prefix("https://github.com/") {
                Some(repo) if !s.contains('{') => format!(
                    "https://raw.githubusercontent.com/{}/{{commit}}/{{path}}",
                    repo.trim_end_matches('/').trim_end_matches(".git")
                ),
                _ => s.to_string(),
            };
            VllmSource::http(template)
        } else {
            VllmSource::Git(GitProbe::new(s))
        }
    }

    /// A raw-file URL template source.
    pub fn http(template: impl Into<String>) -> VllmSource {
        VllmSource::Http {
            template: template.into(),
            cache: Arc::default(),
        }
    }

    /// A short description for evidence and notes.
    pub fn describe(&self) -> String {
        match self {
            VllmSource::Git(g) => format!("git clone {}", g.repo.display()),
            VllmSource::Http { template, .. } => template.clone(),
        }
    }

    /// Git processes started so far (always 0 for HTTP).
    pub fn processes_started(&self) -> usize {
        match self {
            VllmSource::Git(g) => g.processes_started(),
            VllmSource::Http { .. } => 0,
        }
    }

    /// Whether `rev` may be `COMMIT^` (a local clone resolves it; raw URLs cannot).
    pub fn resolves_parents(&self) -> bool {
        matches!(self, VllmSource::Git(_))
    }

    /// Read `path` at `rev`.
    pub(crate) async fn read(&self, rev: &str, path: &str, http: Option<&Http>) -> Probe {
        match self {
            VllmSource::Git(g) => g.read(rev, path),
            VllmSource::Http { template, cache } => {
                let url = template.replace("{commit}", rev).replace("{path}", path);
                if let Some(hit) = lock(cache).get(&url) {
                    return hit.clone();
                }
                let Some(http) = http else {
                    return Probe::Failed("no HTTP client".into());
                };
                let probe = match http.get(&url).await {
                    HttpOutcome::Ok { body, .. } => {
                        Probe::Found(Arc::from(body.unwrap_or_default()))
                    }
                    HttpOutcome::Absent { .. } => Probe::Missing,
                    HttpOutcome::Unknown { why } => Probe::Failed(format!("GET {url}: {why}")),
                };
                lock(cache).insert(url, probe.clone());
                probe
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Batch {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

#[derive(Default)]
struct GitState {
    batch: Option<Batch>,
    broken: Option<String>,
    started: usize,
    cache: HashMap<String, Probe>,
}

/// Reads files from a local clone through ONE `git cat-file --batch` process, started on the
/// first probe and kept for all later ones (see [`GitProbe::processes_started`]).
#[derive(Clone)]
pub struct GitProbe {
    repo: PathBuf,
    state: Arc<Mutex<GitState>>,
}

impl std::fmt::Debug for GitProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitProbe")
            .field("repo", &self.repo)
            .finish_non_exhaustive()
    }
}

/// Whether a revision is safe to hand to `cat-file` (no spaces, newlines or `:`).
fn safe_rev(rev: &str) -> bool {
    !rev.is_empty()
        && rev.len() <= 80
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '^' | '~' | '.' | '_' | '-' | '/'))
}

impl GitProbe {
    /// A probe of the clone at `repo`; nothing starts until the first read.
    pub fn new(repo: impl AsRef<Path>) -> GitProbe {
        GitProbe {
            repo: repo.as_ref().to_path_buf(),
            state: Arc::default(),
        }
    }

    /// How many `git` processes this probe has started (1 after any number of reads).
    pub fn processes_started(&self) -> usize {
        lock(&self.state).started
    }

    /// Read `path` at `rev` (`<rev>:<path>`); a tree (directory) reads as empty text.
    pub fn read(&self, rev: &str, path: &str) -> Probe {
        if !safe_rev(rev) || path.contains(['\n', '\r']) {
            return Probe::Failed(format!("refusing to probe '{rev}:{path}'"));
        }
        let key = format!("{rev}:{path}");
        let mut st = lock(&self.state);
        if let Some(hit) = st.cache.get(&key) {
            return hit.clone();
        }
        if let Some(why) = &st.broken {
            return Probe::Failed(why.clone());
        }
        if st.batch.is_none() {
            match self.spawn() {
                Ok(b) => {
                    st.started += 1;
                    st.batch = Some(b);
                }
                Err(e) => {
                    let why = format!(
                        "cannot start git cat-file --batch in {}: {e}",
                        self.repo.display()
                    );
                    st.broken = Some(why.clone());
                    return Probe::Failed(why);
                }
            }
        }
        let result = match st.batch.as_mut() {
            Some(b) => request(b, &key),
            None => Err("no git process".into()),
        };
        let probe = match result {
            Ok(p) => p,
            Err(e) => {
                let why = format!(
                    "git cat-file --batch in {} failed ({e}); is it a clone of vLLM?",
                    self.repo.display()
                );
                if let Some(mut b) = st.batch.take() {
                    let _ = b.child.kill();
                    let _ = b.child.wait();
                }
                st.broken = Some(why.clone());
                return Probe::Failed(why);
            }
        };
        st.cache.insert(key, probe.clone());
        probe
    }

    fn spawn(&self) -> std::io::Result<Batch> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["cat-file", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("no pipes"));
        };
        Ok(Batch {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }
}

/// One request/response on the batch pipe.
fn request(b: &mut Batch, key: &str) -> Result<Probe, String> {
    writeln!(b.stdin, "{key}")
        .and_then(|_| b.stdin.flush())
        .map_err(|e| e.to_string())?;
    let mut header = String::new();
    let n = b.stdout.read_line(&mut header).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err("the process exited".into());
    }
    let header = header.trim_end();
    if header.ends_with(" missing") || header.ends_with(" ambiguous") {
        return Ok(Probe::Missing);
    }
    let mut fields = header.rsplitn(3, ' ');
    let size: usize = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unexpected reply '{header}'"))?;
    let kind = fields.next().unwrap_or_default().to_string();
    let mut buf = vec![0u8; size + 1];
    b.stdout.read_exact(&mut buf).map_err(|e| e.to_string())?;
    buf.pop();
    Ok(match kind.as_str() {
        "blob" => Probe::Found(Arc::from(String::from_utf8_lossy(&buf).as_ref())),
        _ => Probe::Found(Arc::from("")),
    })
}

impl Drop for GitState {
    fn drop(&mut self) {
        if let Some(Batch {
            mut child, stdin, ..
        }) = self.batch.take()
        {
            drop(stdin);
            let _ = child.wait();
        }
    }
}
