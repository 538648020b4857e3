//! Splitting a unified or git diff into per-file sections, with the paths as the headers write
//! them: prefixes are not stripped here (that is [`super::strip`]'s decision, made once for the
//! whole patch).
//!
//! Hunk bodies are consumed by the line counts of their `@@` header, so a removed line that
//! reads `--- x` is never taken for a file header; a hunk that ends before its counts do is
//! malformed (both `patch` and `git apply` refuse it too).

use super::PatchError;

/// A path as a diff header names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RawPath {
    /// `/dev/null`: the file does not exist on that side.
    DevNull,
    /// A path, unquoted, prefix (if any) still on.
    Path(String),
}

impl RawPath {
    pub(super) fn path(&self) -> Option<&str> {
        match self {
            RawPath::DevNull => None,
            RawPath::Path(p) => Some(p),
        }
    }
}

/// One hunk of a file section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// 1-based line of its `@@` header in the patch.
    pub line: usize,
    /// First line of the hunk in the old file.
    pub old_start: u64,
    /// The hunk's text, header included.
    pub text: String,
}

/// One file's section of a patch, as written.
#[derive(Debug, Default)]
pub(super) struct Section {
    /// 1-based line where it starts.
    pub line: usize,
    /// Started by `diff --git`.
    pub is_git: bool,
    /// The two names of the `diff --git` line.
    pub git: Option<(String, String)>,
    /// `--- …` (or the first name of a `Binary files … differ` line).
    pub old: Option<RawPath>,
    /// `+++ …` (or the second name of a `Binary files … differ` line).
    pub new: Option<RawPath>,
    pub rename_from: Option<String>,
    pub rename_to: Option<String>,
    pub copy_from: Option<String>,
    pub copy_to: Option<String>,
    pub new_file: bool,
    pub deleted_file: bool,
    pub old_mode: Option<String>,
    pub new_mode: Option<String>,
    pub binary: bool,
    pub hunks: Vec<Hunk>,
    /// The section's raw text, headers and hunks.
    pub text: String,
}

impl Section {
    fn new(line: usize, is_git: bool) -> Section {
        Section {
            line,
            is_git,
            ..Section::default()
        }
    }

    /// Whether its file headers (or content) have been read: a `--- ` header now starts the
    /// next section.
    fn has_content(&self) -> bool {
        self.old.is_some() || self.new.is_some() || !self.hunks.is_empty() || self.binary
    }
}

/// Split `text` into file sections; lines before the first (mail headers, a description) are
/// left out.
pub(super) fn sections(text: &str) -> Result<Vec<Section>, PatchError> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut out: Vec<Section> = Vec::new();
    // Lines still owed by the open hunk: (old, new, line of its header).
    let mut owed: Option<(u64, u64, usize)> = None;
    let mut after_hunk = false;
    let mut after_old_header = false;
    for (i, raw) in lines.iter().enumerate() {
        let n = i + 1;
        let body = raw.trim_end_matches(['\n', '\r']);
        if let Some((old, new, at)) = owed.as_mut() {
            let taken = match body.as_bytes().first() {
                // An empty line: a context line whose space some tools strip.
                None | Some(b' ') => {
                    *old = old.saturating_sub(1);
                    *new = new.saturating_sub(1);
                    true
                }
                Some(b'-') => {
                    *old = old.saturating_sub(1);
                    true
                }
                Some(b'+') => {
                    *new = new.saturating_sub(1);
                    true
                }
                Some(b'\\') => true,
                _ => false,
            };
            if !taken {
                return Err(short_hunk(n, *at, *old, *new));
            }
            push_hunk_line(&mut out, raw);
            if *old == 0 && *new == 0 {
                owed = None;
                after_hunk = true;
            }
            continue;
        }
        if after_hunk && body.starts_with('\\') {
            // `\ No newline at end of file` after the hunk's last line.
            push_hunk_line(&mut out, raw);
            continue;
        }
        after_hunk = false;
        let was_after_old_header = std::mem::take(&mut after_old_header);
        let next_is_new = lines.get(i + 1).is_some_and(|l| l.starts_with("+++ "));
        let binary_names = body
            .strip_prefix("Binary files ")
            .and_then(|r| r.strip_suffix(" differ"));
        if let Some(rest) = body.strip_prefix("diff --git ") {
            let mut s = Section::new(n, true);
            s.git = git_names(rest);
            out.push(s);
        } else if ((body.starts_with("--- ") && next_is_new) || binary_names.is_some())
            && out.last().is_none_or(|s| !s.is_git || s.has_content())
        {
            // A plain diff's file, or the next file after a git one's headers.
            out.push(Section::new(n, false));
        }
        let Some(cur) = out.last_mut() else {
            continue; // the preamble
        };
        cur.text.push_str(raw);
        if let Some(p) = body.strip_prefix("--- ").filter(|_| next_is_new) {
            cur.old = Some(header_path(p));
            after_old_header = true;
        } else if let Some(p) = body.strip_prefix("+++ ").filter(|_| was_after_old_header) {
            cur.new = Some(header_path(p));
        } else if body.starts_with("@@") {
            let (start, old, new) = hunk_header(body).ok_or_else(|| PatchError::Malformed {
                line: n,
                reason: format!(
                    "'{}' is not a hunk header (`@@ -START,COUNT +START,COUNT @@`)",
                    body.chars().take(80).collect::<String>().escape_default()
                ),
            })?;
            cur.hunks.push(Hunk {
                line: n,
                old_start: start,
                text: raw.to_string(),
            });
            if old > 0 || new > 0 {
                owed = Some((old, new, n));
            } else {
                after_hunk = true;
            }
        } else if let Some(names) = binary_names {
            cur.binary = true;
            if let Some((a, b)) = names.split_once(" and ") {
                cur.old.get_or_insert_with(|| header_path(a));
                cur.new.get_or_insert_with(|| header_path(b));
            }
        } else if cur.is_git && cur.hunks.is_empty() {
            extended_header(cur, body);
        }
    }
    if let Some((old, new, at)) = owed {
        return Err(short_hunk(lines.len() + 1, at, old, new));
    }
    Ok(out)
}

fn short_hunk(line: usize, at: usize, old: u64, new: u64) -> PatchError {
    PatchError::Malformed {
        line,
        reason: format!(
            "the hunk of line {at} ends here with {old} old and {new} new lines still missing \
             (its header's line counts are wrong)"
        ),
    }
}

fn push_hunk_line(out: &mut [Section], raw: &str) {
    if let Some(s) = out.last_mut() {
        s.text.push_str(raw);
        if let Some(h) = s.hunks.last_mut() {
            h.text.push_str(raw);
        }
    }
}

/// The extended header lines of a git section.
fn extended_header(cur: &mut Section, body: &str) {
    let unquoted = |s: &str| header_path(s).path().unwrap_or("/dev/null").to_string();
    if let Some(m) = body.strip_prefix("new file mode ") {
        cur.new_file = true;
        cur.new_mode = Some(m.trim().to_string());
    } else if body.starts_with("deleted file mode ") {
        cur.deleted_file = true;
    } else if let Some(m) = body.strip_prefix("old mode ") {
        cur.old_mode = Some(m.trim().to_string());
    } else if let Some(m) = body.strip_prefix("new mode ") {
        cur.new_mode = Some(m.trim().to_string());
    } else if let Some(p) = body.strip_prefix("rename from ") {
        cur.rename_from = Some(unquoted(p));
    } else if let Some(p) = body.strip_prefix("rename to ") {
        cur.rename_to = Some(unquoted(p));
    } else if let Some(p) = body.strip_prefix("copy from ") {
        cur.copy_from = Some(unquoted(p));
    } else if let Some(p) = body.strip_prefix("copy to ") {
        cur.copy_to = Some(unquoted(p));
    } else if body == "GIT binary patch" {
        cur.binary = true;
    }
}

/// The path of a `---`/`+++` header (it ends at a tab: a timestamp may follow).
fn header_path(s: &str) -> RawPath {
    let p = if s.starts_with('"') {
        unquote(s).map(|(p, _)| p)
    } else {
        None
    };
    let p = p.unwrap_or_else(|| s.split('\t').next().unwrap_or(s).trim_end().to_string());
    if p == "/dev/null" {
        RawPath::DevNull
    } else {
        RawPath::Path(p)
    }
}

/// The two names of `diff --git A B` (either may be C-quoted; unquoted names may hold spaces).
fn git_names(rest: &str) -> Option<(String, String)> {
    let rest = rest.trim_end();
    if rest.starts_with('"') {
        let (a, tail) = unquote(rest)?;
        let tail = tail.strip_prefix(' ')?;
        let b = match unquote(tail) {
            Some((b, _)) => b,
            None => tail.to_string(),
        };
        return Some((a, b));
    }
    if let Some((a, q)) = rest.rsplit_once(" \"") {
        let (b, _) = unquote(&format!("\"{q}"))?;
        return Some((a.to_string(), b));
    }
    // Unquoted: the split at which both names are the same file (with or without prefixes).
    let after_first = |p: &str| p.split_once('/').map(|(_, r)| r.to_string());
    for (i, _) in rest.match_indices(' ') {
        let (a, b) = (&rest[..i], &rest[i + 1..]);
        if a == b || after_first(a).is_some_and(|r| Some(r) == after_first(b)) {
            return Some((a.to_string(), b.to_string()));
        }
    }
    let (a, b) = match rest.rsplit_once(" b/") {
        Some((a, b)) => (a.to_string(), format!("b/{b}")),
        None => {
            let (a, b) = rest.split_once(' ')?;
            (a.to_string(), b.to_string())
        }
    };
    Some((a, b))
}

/// A C-quoted name at the start of `s` (`"a/x\303\251\t"`): the name and what follows it.
fn unquote(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut bytes = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                let name = String::from_utf8_lossy(&bytes).into_owned();
                return Some((name, &body[i + 1..]));
            }
            '\\' => {
                let (_, e) = chars.next()?;
                let byte = match e {
                    'n' => b'\n',
                    't' => b'\t',
                    'r' => b'\r',
                    'a' => 0x07,
                    'b' => 0x08,
                    'f' => 0x0c,
                    'v' => 0x0b,
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            let (_, d) = chars.next()?;
                            v = v * 8 + d.to_digit(8)?;
                        }
                        u8::try_from(v).ok()?
                    }
                    other => {
                        let mut buf = [0u8; 4];
                        bytes.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                        continue;
                    }
                };
                bytes.push(byte);
            }
            c => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// `@@ -a[,b] +c[,d] @@` → (a, b, d); a missing count is 1.
fn hunk_header(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix("@@ ")?;
    let mut parts = rest.split_whitespace();
    let old = parts.next()?.strip_prefix('-')?;
    let new = parts.next()?.strip_prefix('+')?;
    if parts.next() != Some("@@") {
        return None;
    }
    let range = |r: &str| -> Option<(u64, u64)> {
        match r.split_once(',') {
            Some((s, n)) => Some((s.parse().ok()?, n.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (start, old_n) = range(old)?;
    let (_, new_n) = range(new)?;
    Some((start, old_n, new_n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_spaced_names() {
        assert_eq!(
            unquote(r#""a/caf\303\251 \"x\".py" rest"#),
            Some(("a/café \"x\".py".to_string(), " rest"))
        );
        assert_eq!(unquote("\"unterminated"), None);
        assert_eq!(
            git_names("a/my file.py b/my file.py"),
            Some(("a/my file.py".into(), "b/my file.py".into()))
        );
        assert_eq!(
            git_names("vllm/x.py vllm/x.py"),
            Some(("vllm/x.py".into(), "vllm/x.py".into()))
        );
        assert_eq!(
            git_names(r#""a/t\tb" "b/t\tb""#),
            Some(("a/t\tb".into(), "b/t\tb".into()))
        );
        assert_eq!(
            header_path("a/x.py\t2024-01-01 00:00"),
            RawPath::Path("a/x.py".into())
        );
        assert_eq!(header_path("/dev/null"), RawPath::DevNull);
    }

    #[test]
    fn hunk_headers() {
        assert_eq!(hunk_header("@@ -1,3 +1,4 @@ def f():"), Some((1, 3, 4)));
        assert_eq!(hunk_header("@@ -5 +5 @@"), Some((5, 1, 1)));
        assert_eq!(hunk_header("@@@ -1,2 -1,2 +1,3 @@@"), None);
        assert_eq!(hunk_header("@@ nonsense @@"), None);
        assert_eq!(hunk_header("@@ -x +1 @@"), None);
    }
}
