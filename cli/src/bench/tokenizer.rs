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

    /// GPT-2's byte-to-character table: printable bytes stand for themselves, the others for
    /// characters from U+0100 on.
    fn byte_chars() -> Vec<char> {
        let printable = |b: u32| {
            (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b)
        };
        let mut extra = 0;
        (0u32..256)
            .map(|b| {
                if printable(b) {
                    char::from_u32(b).unwrap_or('?')
                } else {
                    extra += 1;
                    char::from_u32(255 + extra).unwrap_or('?')
                }
            })
            .collect()
    }

    /// A small byte-level BPE `tokenizer.json` (the layout of GPT-2, Llama 3, Qwen …): every
    /// byte a token, a few merges, one special token.
    fn byte_level_bpe(dir: &Path) -> PathBuf {
        let mut vocab = serde_json::Map::new();
        for (i, c) in byte_chars().into_iter().enumerate() {
            vocab.insert(c.to_string(), i.into());
        }
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "e r", "o n", "r e"];
        for m in merges {
            let id = vocab.len();
            vocab.insert(m.replace(' ', ""), id.into());
        }
        let special = vocab.len();
        let t = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [{"id": special, "content": "<|end|>", "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                              "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                        "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                      "continuing_subword_prefix": null, "end_of_word_suffix": null,
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges}
        });
        let p = dir.join("tokenizer.json");
        std::fs::write(&p, t.to_string()).unwrap();
        p
    }

    #[test]
    fn a_byte_level_bpe_tokenizer_loads_and_random_prompts_get_exact_lengths() {
        let dir = tempfile::tempdir().unwrap();
        byte_level_bpe(dir.path());
        let tok = Tok::load(dir.path().to_str().unwrap()).unwrap();
        assert!(!tok.approximated());
        assert_eq!(tok.vocab_len(), 256 + 8, "the special token is not drawn");
        assert_eq!(tok.count("the then"), 4, "t·he, Ġthe·n");
        assert_eq!(tok.decode(&tok.encode("héllo wörld")), "héllo wörld");
        let a = <super::super::args::ServeArgs as clap::FromArgMatches>::from_arg_matches(
            &<super::super::args::ServeArgs as clap::Args>::augment_args(clap::Command::new("x"))
                .get_matches_from([
                    "x",
                    "--num-prompts",
                    "40",
                    "--random-input-len",
                    "64",
                    "--random-prefix-len",
                    "7",
                    "--random-range-ratio",
                    "0.5",
                ]),
        )
        .unwrap();
        let samples = super::super::dataset::samples(&a, &tok).unwrap();
        for s in &samples {
            assert_eq!(tok.count(&s.prompt), s.prompt_len, "{:?}", s.prompt);
            assert!(
                (7 + 32..=7 + 96).contains(&s.prompt_len),
                "{}",
                s.prompt_len
            );
        }
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
