//! Shell-like splitting of a perf command into words. Nothing is ever expanded or executed:
//! quotes and backslashes are removed the way POSIX `sh` would remove them, and every
//! unquoted shell operator (chains, pipes, redirections, substitutions, background `&`,
//! subshells, comments, a second command on a new line) is rejected.

use super::CommandError;

/// One word of a perf command after quote and escape removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The text, quotes and escaping backslashes removed.
    pub text: String,
    /// Whether any part of the word was quoted or backslash-escaped.
    pub quoted: bool,
    /// Byte length of the leading part of `text` that was neither quoted nor escaped.
    pub bare_prefix: usize,
}

/// Characters that separate words (a newline is handled apart: it separates commands).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\x0b' | '\x0c')
}

/// A word being built.
#[derive(Default)]
struct Builder {
    text: String,
    started: bool,
    bare_prefix: Option<usize>,
}

impl Builder {
    fn push(&mut self, c: char) {
        self.started = true;
        self.text.push(c);
    }

    fn mark_quoted(&mut self) {
        self.started = true;
        if self.bare_prefix.is_none() {
            self.bare_prefix = Some(self.text.len());
        }
    }

    fn flush(&mut self, out: &mut Vec<Word>) {
        if self.started {
            let b = std::mem::take(self);
            let len = b.text.len();
            out.push(Word {
                quoted: b.bare_prefix.is_some(),
                bare_prefix: b.bare_prefix.unwrap_or(len),
                text: b.text,
            });
        }
    }

    /// Whether the word so far is an unquoted file-descriptor number (`2` of `2>&1`).
    fn is_fd_number(&self) -> bool {
        self.bare_prefix.is_none()
            && !self.text.is_empty()
            && self.text.bytes().all(|b| b.is_ascii_digit())
    }
}

fn operator(op: impl Into<String>) -> CommandError {
    CommandError::ShellOperator {
        operator: op.into(),
    }
}

/// At most `max` characters of `chars[from..]`, for error messages.
fn excerpt(chars: &[char], from: usize, max: usize) -> String {
    chars.iter().skip(from).take(max).collect()
}

/// Split `raw` into words the way a POSIX shell would, without expanding anything.
///
/// Rejects unquoted shell operators with [`CommandError::ShellOperator`], an unquoted
/// `<placeholder>` with [`CommandError::Placeholder`], and unterminated quotes or a dangling
/// backslash with [`CommandError::Invalid`].
pub fn tokenize(raw: &str) -> Result<Vec<Word>, CommandError> {
    let chars: Vec<char> = raw.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut cur = Builder::default();
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            c if is_blank(c) => {
                cur.flush(&mut out);
                i += 1;
            }
            '\n' => {
                cur.flush(&mut out);
                let more = chars.iter().skip(i + 1).any(|c| !c.is_whitespace());
                if !out.is_empty() && more {
                    return Err(operator("newline"));
                }
                i += 1;
            }
            '\\' => match at(i + 1) {
                None => {
                    return Err(CommandError::Invalid {
                        message: "dangling backslash at the end of the perf command: remove it or \
                                  escape a character with it"
                            .into(),
                        token: "\\".into(),
                    });
                }
                Some('\n') => i += 2,
                Some('\r') if at(i + 2) == Some('\n') => i += 3,
                Some(next) => {
                    cur.mark_quoted();
                    cur.push(next);
                    i += 2;
                }
            },
            '\'' => {
                cur.mark_quoted();
                let Some(len) = chars.iter().skip(i + 1).position(|&c| c == '\'') else {
                    return Err(unterminated('\'', &chars, i));
                };
                chars
                    .iter()
                    .skip(i + 1)
                    .take(len)
                    .for_each(|&c| cur.push(c));
                i += len + 2;
            }
            '"' => {
                cur.mark_quoted();
                i = double_quoted(&chars, i, &mut cur)?;
            }
            '`' => return Err(operator("`")),
            '$' if at(i + 1) == Some('(') => {
                let op = if at(i + 2) == Some('(') { "$((" } else { "$(" };
                return Err(operator(op));
            }
            ';' => return Err(operator(if at(i + 1) == Some(';') { ";;" } else { ";" })),
            '&' => {
                return Err(operator(match at(i + 1) {
                    Some('&') => "&&",
                    Some('>') => "&>",
                    _ => "&",
                }));
            }
            '|' => {
                return Err(operator(match at(i + 1) {
                    Some('|') => "||",
                    Some('&') => "|&",
                    _ => "|",
                }));
            }
            '>' => return Err(redirection(&chars, i, &cur)),
            '<' => {
                if let Some(token) = angle_placeholder(&chars, i) {
                    return Err(CommandError::Placeholder { token });
                }
                return Err(redirection(&chars, i, &cur));
            }
            '(' | ')' => return Err(operator(c)),
            '#' if !cur.started => return Err(operator("#")),
            _ => {
                cur.push(c);
                i += 1;
            }
        }
    }
    cur.flush(&mut out);
    Ok(out)
}

fn unterminated(quote: char, chars: &[char], from: usize) -> CommandError {
    let name = if quote == '"' { "double" } else { "single" };
    CommandError::Invalid {
        message: format!("unterminated {name} quote in the perf command: close it with {quote}"),
        token: excerpt(chars, from, 40),
    }
}

/// Consume a double-quoted part starting at `chars[open] == '"'`; returns the index after the
/// closing quote.
fn double_quoted(chars: &[char], open: usize, cur: &mut Builder) -> Result<usize, CommandError> {
    let mut i = open + 1;
    loop {
        match chars.get(i).copied() {
            None => return Err(unterminated('"', chars, open)),
            Some('"') => return Ok(i + 1),
            Some('\\') => match chars.get(i + 1).copied() {
                Some('\n') => i += 2,
                Some(c @ ('$' | '`' | '"' | '\\')) => {
                    cur.push(c);
                    i += 2;
                }
                _ => {
                    cur.push('\\');
                    i += 1;
                }
            },
            Some('`') => return Err(operator("`")),
            Some('$') if chars.get(i + 1) == Some(&'(') => return Err(operator("$(")),
            Some(c) => {
                cur.push(c);
                i += 1;
            }
        }
    }
}

/// The text of a redirection operator at `chars[i]` (`>`, `>>`, `2>&1`, `<`, `<<`, `<(` …),
/// with the file-descriptor number that precedes it, if any.
fn redirection(chars: &[char], i: usize, cur: &Builder) -> CommandError {
    let mut op = if cur.is_fd_number() {
        cur.text.clone()
    } else {
        String::new()
    };
    op.push(chars[i]);
    let tail = chars
        .iter()
        .skip(i + 1)
        .take(4)
        .take_while(|&&c| matches!(c, '>' | '<' | '&' | '(' | '-') || c.is_ascii_digit());
    op.extend(tail);
    operator(op)
}

/// `<model>`-style usage syntax at `chars[open] == '<'`: a short run of characters up to the
/// next `>` that neither starts nor ends with a blank (so `< in.txt > out` stays a redirection).
fn angle_placeholder(chars: &[char], open: usize) -> Option<String> {
    let inner: Vec<char> = chars
        .iter()
        .skip(open + 1)
        .take(80)
        .take_while(|&&c| !matches!(c, '<' | '>' | '\n' | '|' | '&' | ';'))
        .copied()
        .collect();
    let closed = chars.get(open + 1 + inner.len()) == Some(&'>');
    let first = *inner.first()?;
    let last = *inner.last()?;
    if closed && !first.is_whitespace() && !last.is_whitespace() && !matches!(first, '(' | '-') {
        let mut token = String::from("<");
        token.extend(inner);
        token.push('>');
        return Some(token);
    }
    None
}
