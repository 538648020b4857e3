//! Untrusted text made safe to show: on a terminal, in a markdown report, in JSON.
//!
//! Dataset rows, logs, result files and error messages that echo them are untrusted. Printed
//! raw, an `ESC` starts a terminal control sequence (colours, cursor moves, window titles,
//! hyperlinks), `CR` overwrites what was printed, a C1 control such as U+009B is an 8-bit CSI,
//! and a bidi override (U+202E) reorders what the reader sees. Every function here turns such
//! characters into visible escapes — `\x1b` for C0 controls and DEL, `\u{202e}` for the others —
//! so the reader sees that they were there, and the output cannot be steered by them.
//!
//! Which characters are escaped ([`needs_escape`]):
//! - C0 controls U+0000–U+001F and DEL U+007F (`\t`, `\n`, `\r` as `\t`, `\n`, `\r`);
//! - C1 controls U+0080–U+009F;
//! - bidi controls: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069;
//! - invisible format characters: zero-width space and joiners (U+200B–U+200D), word joiner and
//!   invisible operators (U+2060–U+2064), deprecated format controls (U+206A–U+206F), the line
//!   and paragraph separators (U+2028, U+2029), soft hyphen (U+00AD), U+180E, the byte-order
//!   mark (U+FEFF), interlinear annotations (U+FFF9–U+FFFB), Hangul fillers (U+115F, U+1160,
//!   U+3164, U+FFA0), shorthand and musical format controls (U+1BCA0–U+1BCA3, U+1D173–U+1D17A),
//!   tag characters (U+E0000–U+E007F) and supplementary variation selectors (U+E0100–U+E01EF),
//!   which can carry hidden text.
//!
//! Backslashes are not doubled: the result is for reading, not for parsing back.
//!
//! Table cells, on a terminal and in markdown, show tabs and newlines as spaces: a cell is one
//! line, whitespace runs become one space ([`cell`], [`md_cell`]). Exact single values (a
//! command, a path, a log field) keep them visible as `\t` and `\n` ([`escape`]); multi-line
//! messages keep their lines ([`escape_lines`]).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` is shown as an escape (see the module documentation for the classes).
pub fn needs_escape(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{61c}'
        | '\u{115f}' | '\u{1160}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{3164}'
        | '\u{feff}'
        | '\u{ffa0}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e007f}'
        | '\u{e0100}'..='\u{e01ef}'
    )
}

/// Append the visible escape of `c` (which [`needs_escape`]).
fn push_escape(out: &mut String, c: char) {
    let _ = match c {
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\u{0}'..='\u{1f}' | '\u{7f}' => write!(out, "\\x{:02x}", c as u32),
        _ => write!(out, "\\u{{{:x}}}", c as u32),
    };
}

/// `s` with every character that `escape_if` selects escaped; borrowed when there is none.
fn escape_with(s: &str, escape_if: impl Fn(char) -> bool) -> Cow<'_, str> {
    // Printable ASCII is the common case and needs no look at characters.
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Cow::Borrowed(s);
    }
    let Some(first) = s
        .char_indices()
        .find(|&(_, c)| escape_if(c))
        .map(|(i, _)| i)
    else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 16);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        if escape_if(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One line safe for a terminal: every control, bidi and invisible format character (tabs and
/// newlines included) becomes a visible escape. Borrowed when `s` has none.
///
/// ```
/// use runner_core::text::escape;
/// assert_eq!(escape("a\u{1b}[2Jb\u{202e}c\n"), "a\\x1b[2Jb\\u{202e}c\\n");
/// assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed("plain")));
/// ```
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, needs_escape)
}

/// Like [`escape`], but `\n` and `\t` stay as they are: for multi-line messages (an error with
/// a log tail) printed to a terminal. `\r` is escaped: it would overwrite the line.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c != '\n' && c != '\t' && needs_escape(c))
}

/// A table cell: one line, whitespace runs (tabs, newlines, Unicode separators) as one space,
/// trimmed, the rest as [`escape`] does. Borrowed when `s` needs none of that.
pub fn cell(s: &str) -> Cow<'_, str> {
    if is_single_spaced(s) {
        return escape(s);
    }
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    Cow::Owned(escape(&one_line).into_owned())
}

/// Whether `s` is already trimmed with single ASCII spaces between its words.
fn is_single_spaced(s: &str) -> bool {
    let mut prev_space = true;
    for c in s.chars() {
        if c.is_whitespace() {
            if c != ' ' || prev_space {
                return false;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
    }
    !prev_space || s.is_empty()
}

/// A markdown table cell (also safe in a list item or heading): [`cell`], then `\` and `|`
/// backslash-escaped (GitHub-flavoured tables split rows on unescaped pipes, and a backslash
/// before a pipe would pair with it), a `]` that would close a link's or image's text (before
/// `(` or `[`) backslash-escaped (no link whose text hides where it goes; `[Perf] …` stays as
/// it is) and `&`, `<`, `>` as entities (no raw HTML, no autolink in angle brackets). Borrowed
/// when `s` needs none of that.
pub fn md_cell(s: &str) -> Cow<'_, str> {
    let c = cell(s);
    if !c.contains(['\\', '|', '&', '<', '>']) && !c.contains("](") && !c.contains("][") {
        return c;
    }
    let mut out = String::with_capacity(c.len() + 8);
    let mut chars = c.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            ']' if matches!(chars.peek(), Some('(' | '[')) => out.push_str("\\]"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(ch),
        }
    }
    Cow::Owned(out)
}

/// A code span for a markdown table cell: [`cell`] text shown literally between backtick fences
/// longer than any backtick run inside it (so a backtick cannot end the span early), pipes
/// escaped for the table (an odd run of backslashes before a pipe gets one more, so the table
/// still sees an escaped pipe). Empty text is an empty string.
pub fn md_code(s: &str) -> String {
    let c = cell(s);
    if c.is_empty() {
        return String::new();
    }
    let longest = c.split(|ch| ch != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    let pad = if c.starts_with('`') || c.ends_with('`') {
        " "
    } else {
        ""
    };
    let mut body = String::with_capacity(c.len() + 4);
    let mut backslashes = 0usize;
    for ch in c.chars() {
        match ch {
            '|' => {
                if backslashes % 2 == 1 {
                    body.push('\\');
                }
                body.push_str("\\|");
                backslashes = 0;
            }
            '\\' => {
                body.push('\\');
                backslashes += 1;
            }
            _ => {
                body.push(ch);
                backslashes = 0;
            }
        }
    }
    format!("{fence}{pad}{body}{pad}{fence}")
}

/// Pretty JSON whose strings escape, besides what JSON requires, every character that
/// [`needs_escape`] selects (`\u202e`, `\u009b`, …): still valid JSON with the same values, and
/// safe to print on a terminal.
pub fn json_pretty<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut buf = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, SafeFormatter::default());
    value.serialize(&mut ser)?;
    // The serializer writes only UTF-8 (escapes are ASCII; the rest is copied from `str`s).
    Ok(String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into()))
}

/// serde_json's pretty formatter with [`needs_escape`] characters as `\uXXXX` in strings.
#[derive(Default)]
struct SafeFormatter(serde_json::ser::PrettyFormatter<'static>);

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $name<W: ?Sized + std::io::Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> std::io::Result<()> {
            self.0.$name(w $(, $arg)*)
        }
    )*};
}

impl serde_json::ser::Formatter for SafeFormatter {
    delegate! {
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
        begin_object();
        end_object();
        begin_object_key(first: bool);
        end_object_key();
        begin_object_value();
        end_object_value();
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut rest = fragment;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
            w.write_all(&rest.as_bytes()[..i])?;
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                write!(w, "\\u{:04x}", u)?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
