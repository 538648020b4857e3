//! The model's tokenizer, read offline from its `tokenizer.json` (a path, a model folder, or the
//! local Hugging Face cache), so prompts have exact token lengths. Without one, a documented
//! approximation: one whitespace-separated word = one token (what the stand-in engine counts),
//! said loudly and recorded in the result.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Words of the approximation's vocabulary: ids map to `w<id>`.
const WORDS_VOCAB: u32 = 5000;

/// A tokenizer: the model's own, or the word approximation.
pub enum Tok {
    /// A `tokenizer.json` (byte-level BPE, WordPiece, Unigram, WordLevel …).
    Hf {
        /// The file read.
        path: PathBuf,
        /// The tokenizer.
        tok: Box<tokenizers::Tokenizer>,
        /// Ids that are not special tokens (what random prompts draw from).
        allowed: Vec<u32>,
    },
    /// One word = one token.
    Words,
}

impl std::fmt::Debug for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Hf { path, allowed, .. } => f
                .debug_struct("Hf")
                .field("path", path)
                .field("vocab", &allowed.len())
                .finish(),
            Tok::Words => f.write_str("Words"),
        }
    }
}

impl Tok {
    /// Loads the tokenizer of `name` (a file, a folder or a Hugging Face id), or the word
    /// approximation when none is found (with a warning on stderr).
    pub fn load(name: &str) -> Result<Tok> {
        let Some(path) = find(name) else {
            errln!(
                "WARNING: no tokenizer.json found for {:?} (looked at the path itself and the \
                 Hugging Face cache: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub); \
                 prompt and output lengths are APPROXIMATED as one word = one token. Pass \
                 --tokenizer DIR to measure with the model's own tokenizer.",
                runner_core::text::escape(name)
            );
            return Ok(Tok::Words);
        };
        Tok::from_file(&path)
    }

    /// Loads one `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Tok> {
        let tok = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("reading the tokenizer {}", path.display()))?;
        let special: std::collections::HashSet<u32> = tok
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| *id)
            .collect();
        let mut allowed: Vec<u32> = tok
            .get_vocab(true)
            .into_values()
            .filter(|id| !special.contains(id))
            .collect();
        allowed.sort_unstable();
        anyhow::ensure!(
            !allowed.is_empty(),
            "the tokenizer {} has no ordinary tokens",
            path.display()
        );
        Ok(Tok::Hf {
            path: path.to_path_buf(),
            tok: Box::new(tok),
            allowed,
        })
    }

    /// Whether lengths are approximated (no tokenizer.json).
    pub fn approximated(&self) -> bool {
        matches!(self, Tok::Words)
    }

    /// Where the tokenizer was read from, if from a file.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Tok::Hf { path, .. } => Some(path),
            Tok::Words => None,
        }
    }

    /// The ids random prompts draw from.
    pub fn vocab_len(&self) -> usize {
        match self {
            Tok::Hf { allowed, .. } => allowed.len(),
            Tok::Words => WORDS_VOCAB as usize,
        }
    }

    /// The `i`-th drawable id.
    pub fn vocab_id(&self, i: usize) -> u32 {
        match self {
            Tok::Hf { allowed, .. } => allowed[i % allowed.len()],
            Tok::Words => (i % WORDS_VOCAB as usize) as u32,
        }
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
            Tok::Hf { tok, .. } => tok
                .encode_fast(text, false)
                .map(|e| e.get_ids().to_vec())
                .unwrap_or_default(),
            Tok::Words => text
                .split_whitespace()
                .map(|w| {
                    w.strip_prefix('w')
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                })
                .collect(),
        }
    }

    /// Number of tokens of `text`.
    pub fn count(&self, text: &str) -> usize {
        match self {
            Tok::Words => text.split_whitespace().count(),
            Tok::Hf { .. } => self.encode(text).len(),
        }
    }

    /// The text of `ids`.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tok::Hf { tok, .. } => tok.decode(ids, false).unwrap_or_default(),
            Tok::Words => {
                let mut s = String::with_capacity(ids.len() * 6);
                for (i, id) in ids.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push('w');
                    s.push_str(&id.to_string());
                }
                s
            }
        }
    }
}

/// The `tokenizer.json` of `name`: the file itself, `name/tokenizer.json`, or the newest
/// snapshot of `name` in the local Hugging Face cache.
pub fn find(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    if p.is_dir() {
        let f = p.join("tokenizer.json");
        return f.is_file().then_some(f);
    }
    if name.is_empty() || name.contains("..") || name.starts_with('/') {
        return None;
    }
    let folder = format!("models--{}", name.replace('/', "--"));
    cache_roots()
        .into_iter()
        .find_map(|root| in_cache(&root.join(&folder)))
}

fn cache_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        roots.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("HF_HOME") {
        roots.push(PathBuf::from(d).join("hub"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        roots.push(PathBuf::from(home).join(".cache/huggingface/hub"));
    }
    roots
}

/// The snapshot `refs/main` names, else any snapshot with a tokenizer.json.
fn in_cache(model: &Path) -> Option<PathBuf> {
    let snaps = model.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(model.join("refs/main")) {
        let f = snaps.join(rev.trim()).join("tokenizer.json");
        if f.is_file() {
            return Some(f);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&snaps)
        .ok()?
        .flatten()
        .map(|e| e.path().join("tokenizer.json"))
        .filter(|f| f.is_file())
        .collect();
    found.sort();
    found.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_count() {
        let t = Tok::Words;
        let text = t.decode(&[1, 2, 4999]);
        assert_eq!(text, "w1 w2 w4999");
        assert_eq!(t.encode(&text), vec![1, 2, 4999]);
        assert_eq!(t.count("a b  c\n"), 3);
        assert!(t.approximated());
    }

    #[test]
    fn a_cached_model_is_found_by_its_hub_id() {
        let dir = tempfile::tempdir().unwrap();
        let snap = dir.path().join("models--org--m/snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("tokenizer.json"), "{}").unwrap();
        std::fs::create_dir_all(dir.path().join("models--org--m/refs")).unwrap();
        std::fs::write(dir.path().join("models--org--m/refs/main"), "abc\n").unwrap();
        assert_eq!(
            in_cache(&dir.path().join("models--org--m")),
            Some(snap.join("tokenizer.json"))
        );
        assert_eq!(find(""), None);
        assert_eq!(find("../x"), None);
    }
}
