//! The benchmark's own arguments: flags (normalised, with their values and sides), the
//! endpoint flags the run replaces, and positionals.

use super::CommandError;
use super::flags::{Arity, Class, FlagInfo, flag_info, normalise};
use super::placeholder::{check_attached, check_flag_name, check_value};
use super::tokenize::Word;
use crate::spec::{Flag, Mode, Side};

/// The arguments after the entry point, classified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// Flags in command order, endpoint flags excluded in serving mode.
    pub flags: Vec<Flag>,
    /// Positionals, in order (a `--` separator is kept as the first of those after it).
    pub positionals: Vec<String>,
    /// `--host`/`--port`/`--base-url` removed in serving mode.
    pub replaced: Vec<Flag>,
}

/// Whether `text` is a negative number (`-1`, `-0.5`), which argparse reads as a value.
fn is_negative_number(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') && rest.parse::<f64>().is_ok()
}

/// Whether argparse would read `text` as an option rather than a value.
pub fn is_flag_like(text: &str) -> bool {
    text.len() > 1 && text.starts_with('-') && !is_negative_number(text)
}

fn unsupported(token: &str, reason: String) -> CommandError {
    CommandError::Unsupported {
        token: token.to_string(),
        reason,
    }
}

struct Parser<'a> {
    words: &'a [Word],
    i: usize,
    mode: Mode,
    out: Args,
    /// The side of the most recent flag, if any.
    last_side: Option<(Side, String)>,
    /// The first positional seen, if any: no flag may follow it.
    first_positional: Option<String>,
}

/// Classify the words after the entry point.
pub fn parse_args(words: &[Word], mode: Mode) -> Result<Args, CommandError> {
    let mut p = Parser {
        words,
        i: 0,
        mode,
        out: Args::default(),
        last_side: None,
        first_positional: None,
    };
    while let Some(word) = words.get(p.i) {
        p.i += 1;
        if word.text == "--" {
            p.out.positionals.push(word.text.clone());
            for rest in words.iter().skip(p.i) {
                p.positional(rest)?;
            }
            break;
        }
        if is_flag_like(&word.text) {
            p.flag(word)?;
        } else {
            p.positional(word)?;
        }
    }
    Ok(p.out)
}

impl<'a> Parser<'a> {
    fn positional(&mut self, word: &Word) -> Result<(), CommandError> {
        check_value(word)?;
        if let (Mode::Serving, Some((Side::Server | Side::Both, flag))) =
            (self.mode, &self.last_side)
        {
            return Err(unsupported(
                &word.text,
                format!(
                    "'{}' follows the server flag '{flag}' but would go to the client: give \
                     that flag a single value, or drop the stray argument",
                    word.text
                ),
            ));
        }
        self.first_positional
            .get_or_insert_with(|| word.text.clone());
        self.out.positionals.push(word.text.clone());
        Ok(())
    }

    /// The next word, if it can be a value.
    fn next_value(&self) -> Option<&'a Word> {
        self.words
            .get(self.i)
            .filter(|w| w.text != "--" && !is_flag_like(&w.text))
    }

    fn flag(&mut self, word: &Word) -> Result<(), CommandError> {
        if let Some(p) = &self.first_positional {
            return Err(unsupported(
                p,
                format!(
                    "'{p}' is followed by the flag '{}': the spec keeps positionals after all \
                     flags, so its place would change; several values for one flag are not \
                     supported yet — write one value per flag and put positionals last",
                    word.text
                ),
            ));
        }
        let (raw_name, attached) = match word.text.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (word.text.as_str(), None),
        };
        check_flag_name(raw_name)?;
        let (name, info, attached) = self.resolve(raw_name, attached);
        let arity = info.map(|i| i.arity);
        let value = match (attached, arity) {
            (Some(v), Some(Arity::Value | Arity::Many)) if v.is_empty() => {
                return Err(CommandError::MissingValue {
                    flag: word.text.clone(),
                    next: None,
                });
            }
            (Some(v), _) => {
                check_attached(&v, word.quoted)?;
                Some(v)
            }
            (None, Some(Arity::Switch)) => self.take_bool(),
            (None, Some(Arity::Value | Arity::Many)) => match self.next_value() {
                Some(next) => Some(self.take(next)?),
                None => {
                    return Err(CommandError::MissingValue {
                        flag: raw_name.to_string(),
                        next: self.words.get(self.i).map(|w| w.text.clone()),
                    });
                }
            },
            (None, None) => match self.next_value() {
                Some(next) => Some(self.take(next)?),
                None => None,
            },
        };
        self.push(name, value, info);
        Ok(())
    }

    fn take(&mut self, next: &Word) -> Result<String, CommandError> {
        check_value(next)?;
        self.i += 1;
        Ok(next.text.clone())
    }

    /// A literal `true`/`false` after a switch (vLLM's `StoreBoolean`).
    fn take_bool(&mut self) -> Option<String> {
        let words = self.words;
        let next = words.get(self.i)?;
        let lower = next.text.to_ascii_lowercase();
        (lower == "true" || lower == "false").then(|| {
            self.i += 1;
            next.text.clone()
        })
    }

    /// Canonical name and knowledge of a flag; `-O3` is `-O` with the value `3`.
    fn resolve(
        &self,
        raw: &str,
        attached: Option<&str>,
    ) -> (String, Option<FlagInfo>, Option<String>) {
        let attached = attached.map(str::to_string);
        if self.mode == Mode::Other {
            return (raw.to_string(), flag_info(raw), attached);
        }
        if let Some(level) = raw.strip_prefix("-O") {
            let server = Some(FlagInfo {
                arity: Arity::Value,
                class: Class::Server,
            });
            if !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit()) && attached.is_none()
            {
                return ("-O".to_string(), server, Some(level.to_string()));
            }
            if level.starts_with('.') {
                return (raw.to_string(), server, attached);
            }
        }
        let (name, info) = normalise(raw);
        (name, info, attached)
    }

    fn push(&mut self, name: String, value: Option<String>, info: Option<FlagInfo>) {
        let known = info.is_some();
        let side = match (self.mode, info.map(|i| i.class)) {
            (Mode::Serving, Some(Class::Endpoint)) => {
                self.out.replaced.push(Flag {
                    name,
                    value,
                    side: Side::Both,
                    known,
                });
                return;
            }
            (Mode::Serving, Some(Class::Server)) => Side::Server,
            (Mode::Serving, Some(Class::Both)) if name == "--lora-modules" => {
                lora_modules_side(value.as_deref())
            }
            (Mode::Serving, Some(Class::Both)) => Side::Both,
            _ => Side::Client,
        };
        self.last_side = Some((side, name.clone()));
        self.out.flags.push(Flag {
            name,
            value,
            side,
            known,
        });
    }
}

/// `--lora-modules name=path` (or JSON) configures the server; a bare adapter name is
/// `benchmark_serving.py`'s choice of adapters to request.
fn lora_modules_side(value: Option<&str>) -> Side {
    match value {
        Some(v) if v.contains('=') || v.trim_start().starts_with('{') => Side::Server,
        _ => Side::Client,
    }
}
