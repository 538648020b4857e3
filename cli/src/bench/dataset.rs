//! The prompts: vLLM's `random` dataset (token ids from the model's vocabulary, decoded and
//! re-encoded until the prompt has the exact token length) and `sharegpt` (the first two turns
//! of conversations from a file, filtered by length as vLLM does).

use std::path::Path;

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::args::ServeArgs;
use super::tokenizer::Tok;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The prompt text.
    pub prompt: String,
    /// Its length in tokens.
    pub prompt_len: usize,
    /// Tokens asked for (`max_tokens`).
    pub output_len: usize,
}

/// The dataset names the native client reads.
pub const SUPPORTED: &[&str] = &["random", "sharegpt"];

/// The samples of `a`'s dataset.
pub fn samples(a: &ServeArgs, tok: &Tok) -> Result<Vec<Sample>> {
    match a.dataset_name.as_str() {
        "random" => {
            if let Some(p) = &a.dataset_path {
                bail!(
                    "--dataset-name random takes no --dataset-path ({}); use sharegpt for a file",
                    p.display()
                );
            }
            random(a, tok)
        }
        "sharegpt" => {
            let path = a
                .dataset_path
                .as_deref()
                .context("--dataset-name sharegpt needs --dataset-path")?;
            sharegpt(
                path,
                a.num_prompts,
                a.output_len.or(a.sharegpt_output_len),
                a.seed,
                tok,
            )
        }
        other => bail!(
            "--dataset-name {other:?} is not supported by the native client (supported: {}); \
             use the engine's client for it",
            SUPPORTED.join(", ")
        ),
    }
}

/// Inclusive bounds of a length under a range ratio, as vLLM draws them.
fn bounds(len: usize, ratio: f64, min: usize) -> (usize, usize) {
    let lo = ((len as f64) * (1.0 - ratio)).floor().max(min as f64) as usize;
    let hi = ((len as f64) * (1.0 + ratio)).ceil() as usize;
    (lo, hi.max(lo))
}

fn random(a: &ServeArgs, tok: &Tok) -> Result<Vec<Sample>> {
    let r = a.random_range_ratio;
    if !(0.0..1.0).contains(&r) {
        bail!("--random-range-ratio must be in [0, 1), got {r}");
    }
    let input_len = a.input_len.unwrap_or(a.random_input_len);
    let output_len = a.output_len.unwrap_or(a.random_output_len);
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let vocab = tok.vocab_len();
    let prefix: Vec<u32> = (0..a.random_prefix_len)
        .map(|_| tok.vocab_id(rng.random_range(0..vocab)))
        .collect();
    let (ilo, ihi) = bounds(input_len, r, 0);
    let (olo, ohi) = bounds(output_len, r, 1);
    // Draws first (one sequential stream: the same samples for any thread count).
    let plan: Vec<(usize, usize, usize, u64)> = (0..a.num_prompts)
        .map(|_| {
            (
                rng.random_range(ilo..=ihi),
                rng.random_range(olo..=ohi),
                rng.random_range(0..vocab),
                rng.random(),
            )
        })
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = plan.len().div_ceil(threads).max(64);
    let mut out = Vec::with_capacity(plan.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = plan
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                let prefix = &prefix;
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(j, &(n, out_len, offset, seed))| {
                            let i = c * chunk + j;
                            let mut ids = prefix.clone();
                            ids.extend((0..n).map(|k| tok.vocab_id(offset + i + k)));
                            let (prompt, prompt_len) = exact(tok, ids, prefix.len() + n, seed);
                            Sample {
                                prompt,
                                prompt_len,
                                output_len: out_len,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking tokenizer thread is a bug; its prompts are not silently dropped.
            out.extend(h.join().unwrap_or_default());
        }
    });
    if out.len() != a.num_prompts {
        bail!("generating the random prompts failed");
    }
    Ok(out)
}

/// Decodes `ids` and re-encodes the text until it is `target` tokens long (a few rounds:
/// decoding can merge or split tokens), as vLLM's random dataset does. Returns the text and its
/// final token count.
fn exact(tok: &Tok, mut ids: Vec<u32>, target: usize, seed: u64) -> (String, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = tok.decode(&ids);
    for _ in 0..10 {
        let again = tok.encode(&text);
        if again.len() == target {
            return (text, target);
        }
        ids = again;
        if ids.len() > target {
            ids.truncate(target);
        } else {
            let vocab = tok.vocab_len();
            while ids.len() < target {
                ids.push(tok.vocab_id(rng.random_range(0..vocab)));
            }
        }
        text = tok.decode(&ids);
    }
    let n = tok.count(&text);
    (text, n)
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default, alias = "conversation")]
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    #[serde(default)]
    value: String,
}

/// ShareGPT: conversations with at least two turns, shuffled by `seed`; the first turn is the
/// prompt, the second's length the output length (unless `fixed_output`). Pairs vLLM rejects
/// (prompt or output < 4 tokens, prompt > 1024, both > 2048) are skipped; too few valid pairs
/// are oversampled, as vLLM does.
pub fn sharegpt(
    path: &Path,
    n: usize,
    fixed_output: Option<usize>,
    seed: u64,
    tok: &Tok,
) -> Result<Vec<Sample>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("opening the dataset {}", path.display()))?;
    let entries: Vec<Entry> = serde_json::from_reader(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a ShareGPT JSON array", path.display()))?;
    let mut pairs: Vec<(String, String)> = entries
        .into_iter()
        .filter(|e| e.conversations.len() >= 2)
        .map(|mut e| {
            let second = std::mem::take(&mut e.conversations[1].value);
            (std::mem::take(&mut e.conversations[0].value), second)
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    pairs.shuffle(&mut rng);
    let mut out = Vec::with_capacity(n);
    for (prompt, completion) in pairs {
        if out.len() >= n {
            break;
        }
        let prompt_len = tok.count(&prompt);
        let output_len = fixed_output.unwrap_or_else(|| tok.count(&completion));
        let too_short = prompt_len < 4 || (fixed_output.is_none() && output_len < 4);
        if too_short || prompt_len > 1024 || prompt_len + output_len > 2048 {
            continue;
        }
        out.push(Sample {
            prompt,
            prompt_len,
            output_len,
        });
    }
    if out.is_empty() && n > 0 {
        bail!(
            "{}: no conversation fits (two turns, prompt 4–1024 tokens, total ≤ 2048)",
            path.display()
        );
    }
    let valid = out.len();
    while out.len() < n {
        let pick = out[rng.random_range(0..valid)].clone();
        out.push(pick);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: ServeArgs,
    }

    fn args(extra: &[&str]) -> ServeArgs {
        let mut v = vec!["x"];
        v.extend(extra);
        P::parse_from(v).a
    }

    #[test]
    fn random_prompts_have_exact_lengths_prefix_and_ratio() {
        let a = args(&[
            "--num-prompts",
            "200",
            "--random-input-len",
            "20",
            "--random-output-len",
            "10",
            "--random-range-ratio",
            "0.5",
            "--random-prefix-len",
            "5",
        ]);
        let s = samples(&a, &Tok::Words).unwrap();
        assert_eq!(s.len(), 200);
        let first: Vec<&str> = s[0].prompt.split(' ').take(5).collect();
        for x in &s {
            assert_eq!(Tok::Words.count(&x.prompt), x.prompt_len);
            assert!((15..=35).contains(&x.prompt_len), "{}", x.prompt_len);
            assert!((5..=15).contains(&x.output_len));
            assert_eq!(x.prompt.split(' ').take(5).collect::<Vec<_>>(), first);
        }
        let again = samples(&a, &Tok::Words).unwrap();
        assert_eq!(again[7].prompt, s[7].prompt, "seeded");
    }

    #[test]
    fn sharegpt_filters_and_oversamples() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.json");
        let conv = |a: &str, b: &str| serde_json::json!({"conversations": [{"from": "human", "value": a}, {"from": "gpt", "value": b}]});
        let data = serde_json::json!([
            conv("one two three four five", "a b c d e f"),
            conv("too short", "a b c d e"),
            {"conversations": [{"from": "human", "value": "lonely turn here ok"}]},
        ]);
        std::fs::write(&p, data.to_string()).unwrap();
        let s = sharegpt(&p, 3, None, 0, &Tok::Words).unwrap();
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.prompt_len == 5 && x.output_len == 6));
        assert!(sharegpt(&dir.path().join("none"), 1, None, 0, &Tok::Words).is_err());
        std::fs::write(&p, "{not json").unwrap();
        assert!(sharegpt(&p, 1, None, 0, &Tok::Words).is_err());
    }
}
