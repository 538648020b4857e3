//! The model table: parameters, architecture and native precision of the models datasets use,
//! keyed by Hugging Face repo id, with a fallback that reads the size from the name when the
//! family is known. Data lives in the embedded `models.toml`; extra entries can be added.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The embedded model table.
pub const MODELS_TOML: &str = include_str!("models.toml");

/// Orgs that re-publish official checkpoints (quantized or mirrored) under the same names.
const REPACKAGERS: &[&str] = &[
    "neuralmagic",
    "redhatai",
    "nm-testing",
    "unsloth",
    "thebloke",
    "hugging-quants",
    "casperhansen",
    "modelscope",
];

fn two() -> f64 {
    2.0
}

/// A model known by exact repo id(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Hugging Face repo ids (`org/name`), matched case-insensitively.
    pub ids: Vec<String>,
    /// Total parameters, in billions.
    pub params_b: f64,
    /// Active parameters per token (MoE), in billions.
    #[serde(default)]
    pub active_b: Option<f64>,
    /// `architectures[0]` of its config.json.
    pub arch: String,
    /// Bytes per parameter of the published checkpoint.
    #[serde(default = "two")]
    pub dtype_bytes: f64,
    /// Whether it takes images or video.
    #[serde(default)]
    pub multimodal: bool,
}

/// A family recognised from the name, with the sizes it really released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyEntry {
    /// Display name (`Llama-3.1`).
    pub name: String,
    /// Name patterns (see `models.toml`).
    pub patterns: Vec<String>,
    /// Architecture of its models.
    pub arch: String,
    /// Bytes per parameter of its checkpoints.
    #[serde(default = "two")]
    pub dtype_bytes: f64,
    /// Size label → parameters (billions).
    pub sizes: BTreeMap<String, f64>,
    /// Size label → active parameters (MoE sizes).
    #[serde(default)]
    pub active: BTreeMap<String, f64>,
    /// Size label → architecture, where it differs.
    #[serde(default)]
    pub size_arch: BTreeMap<String, String>,
    /// The label assumed when the name has none.
    #[serde(default)]
    pub default_size: Option<String>,
    /// Official orgs (lower case); an unreleased size under them is an error.
    #[serde(default)]
    pub orgs: Vec<String>,
    /// Whether its models take images or video.
    #[serde(default)]
    pub multimodal: bool,
}

/// A table file: `[[model]]` and `[[family]]` arrays.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TableFile {
    /// Exact-id entries.
    #[serde(default)]
    pub model: Vec<ModelEntry>,
    /// Families.
    #[serde(default)]
    pub family: Vec<FamilyEntry>,
}

impl TableFile {
    /// Parse a table file (the format of `models.toml`), e.g. a config section.
    pub fn parse(text: &str) -> Result<TableFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// What the table knows of a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Total parameters, in billions.
    pub params_b: f64,
    /// Active parameters (MoE), in billions.
    pub active_b: Option<f64>,
    /// Architecture class name.
    pub arch: String,
    /// Bytes per parameter of the checkpoint.
    pub dtype_bytes: f64,
    /// Whether it takes images or video.
    pub multimodal: bool,
    /// How it was found (`table: meta-llama/…` or `family Llama-3.1, size 8b from the name`).
    pub basis: String,
}

/// The outcome of a lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Found (exactly or through its family).
    Known(ModelInfo),
    /// The family never released this size.
    Impossible {
        /// Family name.
        family: String,
        /// The size label read from the name.
        size: String,
        /// The sizes the family released.
        released: Vec<String>,
        /// Whether the org is official (then it is an error, else a community model).
        official: bool,
    },
    /// Not in the table and no family recognised.
    Unknown,
}

/// The model table.
#[derive(Debug, Clone, Default)]
pub struct ModelTable {
    models: Vec<ModelEntry>,
    exact: HashMap<String, usize>,
    families: Vec<FamilyEntry>,
}

static BUILTIN: LazyLock<ModelTable> = LazyLock::new(|| {
    // Covered by a unit test: the embedded table always parses and validates.
    let file = TableFile::parse(MODELS_TOML).unwrap_or_else(|e| panic!("embedded models: {e}"));
    let mut notes = Vec::new();
    ModelTable::default().with_extra(&file.model, &file.family, &mut notes)
});

static SIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[-/])(\d+(?:\.\d+)?x\d+(?:\.\d+)?b|\d+(?:\.\d+)?b-a\d+(?:\.\d+)?b|\d+(?:\.\d+)?[bm])(?:$|[-/])")
        .expect("valid regex")
});

fn valid_size(x: f64) -> bool {
    x.is_finite() && x > 0.0 && x < 100_000.0
}

fn validate_model(m: &ModelEntry) -> Result<(), String> {
    if m.ids.is_empty() || m.arch.trim().is_empty() {
        return Err("needs ids and arch".into());
    }
    if !valid_size(m.params_b) || m.active_b.is_some_and(|a| !valid_size(a) || a > m.params_b) {
        return Err(format!(
            "bad params_b/active_b {} / {:?}",
            m.params_b, m.active_b
        ));
    }
    if !(m.dtype_bytes > 0.0 && m.dtype_bytes <= 8.0) {
        return Err(format!("bad dtype_bytes {}", m.dtype_bytes));
    }
    Ok(())
}

fn validate_family(f: &FamilyEntry) -> Result<(), String> {
    if f.patterns.iter().all(|p| p.trim().is_empty()) || f.arch.trim().is_empty() {
        return Err("needs patterns and arch".into());
    }
    if f.sizes.values().any(|v| !valid_size(*v)) || !(f.dtype_bytes > 0.0 && f.dtype_bytes <= 8.0) {
        return Err("bad sizes or dtype_bytes".into());
    }
    Ok(())
}

/// `org` (lower case, may be empty) and normalised repo name (lower case, `_` → `-`).
pub fn split_name(name: &str) -> (String, String) {
    let lower = name.trim().trim_end_matches('/').to_ascii_lowercase();
    let mut parts = lower.rsplit('/');
    let repo = parts.next().unwrap_or_default().replace('_', "-");
    let org = parts.next().unwrap_or_default().to_string();
    (org, repo)
}

/// Whether `hay` contains `needle` as whole `-`-separated parts.
pub fn contains_part(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        matches!(before, None | Some('-' | '/')) && matches!(after, None | Some('-' | '/' | '.'))
    })
}

fn pattern_matches(repo: &str, pattern: &str) -> bool {
    pattern.split('+').all(|part| {
        let (anchored, p) = match part.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, part),
        };
        if p.is_empty() {
            return false;
        }
        repo.match_indices(p).any(|(i, _)| {
            let ends_alnum = p
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
            let digit_after = repo[i + p.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit());
            (!anchored || i == 0) && !(ends_alnum && digit_after)
        })
    })
}

impl ModelTable {
    /// The built-in table, parsed once.
    pub fn builtin() -> &'static ModelTable {
        &BUILTIN
    }

    /// This table with extra entries in front (they win). Invalid entries are skipped, each
    /// with a note.
    pub fn with_extra(
        &self,
        models: &[ModelEntry],
        families: &[FamilyEntry],
        notes: &mut Vec<String>,
    ) -> ModelTable {
        let mut out = ModelTable::default();
        for m in models.iter().chain(&self.models) {
            match validate_model(m) {
                Ok(()) => {
                    let i = out.models.len();
                    for id in &m.ids {
                        out.exact.entry(id.trim().to_ascii_lowercase()).or_insert(i);
                    }
                    out.models.push(m.clone());
                }
                Err(e) => notes.push(format!("model entry {:?} ignored: {e}", m.ids)),
            }
        }
        for f in families.iter().chain(&self.families) {
            match validate_family(f) {
                Ok(()) => {
                    let mut f = f.clone();
                    f.sizes = f
                        .sizes
                        .into_iter()
                        .map(|(k, v)| (k.to_ascii_lowercase(), v))
                        .collect();
                    f.orgs.iter_mut().for_each(|o| *o = o.to_ascii_lowercase());
                    out.families.push(f);
                }
                Err(e) => notes.push(format!("model family '{}' ignored: {e}", f.name)),
            }
        }
        out
    }

    /// Look a model up by repo id (or a local path ending in `org/name`).
    pub fn lookup(&self, name: &str) -> Lookup {
        let lower = name.trim().to_ascii_lowercase();
        let (org, repo) = split_name(name);
        let short = format!("{org}/{}", lower.rsplit('/').next().unwrap_or_default());
        if let Some(&i) = self.exact.get(&lower).or_else(|| self.exact.get(&short)) {
            let m = &self.models[i];
            return Lookup::Known(ModelInfo {
                params_b: m.params_b,
                active_b: m.active_b,
                arch: m.arch.clone(),
                dtype_bytes: m.dtype_bytes,
                multimodal: m.multimodal,
                basis: format!("model table: {}", m.ids[0]),
            });
        }
        let Some(fam) = self.families.iter().find(|f| {
            f.patterns
                .iter()
                .any(|p| pattern_matches(&repo, &p.to_ascii_lowercase()))
        }) else {
            return Lookup::Unknown;
        };
        let mut labels: Vec<&String> = fam.sizes.keys().collect();
        labels.sort_by_key(|l| std::cmp::Reverse(l.len()));
        let label = labels
            .into_iter()
            .find(|l| contains_part(&repo, l))
            .cloned();
        let parsed = SIZE.captures(&repo).map(|c| c[1].to_string());
        let label = match (label, parsed) {
            (Some(l), _) => l,
            (None, Some(size)) => {
                return Lookup::Impossible {
                    family: fam.name.clone(),
                    size,
                    released: fam.sizes.keys().cloned().collect(),
                    official: org.is_empty()
                        || fam.orgs.contains(&org)
                        || REPACKAGERS.contains(&org.as_str()),
                };
            }
            (None, None) => match &fam.default_size {
                Some(d) if fam.sizes.contains_key(&d.to_ascii_lowercase()) => {
                    d.to_ascii_lowercase()
                }
                _ => return Lookup::Unknown,
            },
        };
        Lookup::Known(ModelInfo {
            params_b: fam.sizes[&label],
            active_b: fam.active.get(&label).copied(),
            arch: fam.size_arch.get(&label).unwrap_or(&fam.arch).clone(),
            dtype_bytes: fam.dtype_bytes,
            multimodal: fam.multimodal
                && !fam
                    .size_arch
                    .get(&label)
                    .is_some_and(|a| a.ends_with("ForCausalLM")),
            basis: format!("family {}, size {label} (from the name)", fam.name),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_is_valid() {
        let file = TableFile::parse(MODELS_TOML).unwrap();
        for m in &file.model {
            validate_model(m).unwrap();
        }
        for f in &file.family {
            validate_family(f).unwrap();
            if let Some(d) = &f.default_size {
                assert!(f.sizes.contains_key(d), "{}: default {d}", f.name);
            }
            for k in f.active.keys().chain(f.size_arch.keys()) {
                assert!(f.sizes.contains_key(k), "{}: {k}", f.name);
            }
        }
    }

    #[test]
    fn parts_and_patterns() {
        assert!(contains_part("qwen2.5-1.5b-instruct", "1.5b"));
        assert!(!contains_part("qwen2.5-1.5b-instruct", "5b"));
        assert!(pattern_matches("meta-llama-3-8b", "llama-3"));
        assert!(!pattern_matches("llama-30b", "llama-3"));
        assert!(pattern_matches("opt-125m", "^opt-"));
        assert!(!pattern_matches("xopt-125m", "^opt-"));
        assert!(pattern_matches("llama-3.2-11b-vision", "llama-3.2+vision"));
    }
}
