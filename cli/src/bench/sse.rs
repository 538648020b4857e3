//! Server-sent events of an OpenAI-compatible stream: bytes in as they arrive, events out
//! (`data:` payloads), and the payload's token text and usage.

use std::borrow::Cow;

use serde::Deserialize;

/// Bytes received but not yet split into events.
#[derive(Debug, Default)]
pub struct Events {
    buf: Vec<u8>,
    /// Start of the unread part of `buf`.
    pos: usize,
}

impl Events {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event's data (its `data:` lines joined by `\n`); events without data
    /// (comments, pings) are skipped.
    pub fn next_event(&mut self) -> Option<String> {
        loop {
            let (end, next) = event_end(&self.buf[self.pos..])?;
            let raw = &self.buf[self.pos..self.pos + end];
            self.pos += next;
            if let Some(data) = data_of(raw) {
                return Some(data);
            }
        }
    }

    /// At the end of the stream: what is left, as a last event (a server may end without the
    /// blank line after `data: [DONE]`).
    pub fn finish(&mut self) -> Option<String> {
        let rest = &self.buf[self.pos..];
        let data = data_of(rest);
        self.pos = self.buf.len();
        data
    }
}

/// The end of the first event (before its blank line) and where the next one starts.
fn event_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while let Some(i) = memchr::memchr(b'\n', &b[line_start..]) {
        let nl = line_start + i;
        let line = &b[line_start..nl];
        if line.is_empty() || line == b"\r" {
            return Some((line_start, nl + 1));
        }
        line_start = nl + 1;
    }
    None
}

fn data_of(raw: &[u8]) -> Option<String> {
    let mut data: Option<String> = None;
    for line in raw.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"data:") else {
            continue;
        };
        let rest = rest.strip_prefix(b" ").unwrap_or(rest);
        let text = String::from_utf8_lossy(rest);
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(&text);
            }
            None => data = Some(text.into_owned()),
        }
    }
    data
}

/// What one `data:` payload says.
#[derive(Debug, PartialEq)]
pub enum Payload {
    /// `[DONE]`.
    Done,
    /// A chunk with choices: one step of output (its text may be empty).
    Token(String),
    /// A chunk without choices carrying usage.
    Usage {
        /// `usage.prompt_tokens`.
        prompt: Option<usize>,
        /// `usage.completion_tokens`.
        completion: Option<usize>,
    },
    /// An error object sent in the stream.
    Error(String),
    /// Valid JSON saying nothing the client uses.
    Other,
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
}

/// Reads one payload; `Err` names what is malformed.
pub fn payload(data: &str, chat: bool) -> Result<Payload, String> {
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Payload::Done);
    }
    let c: Chunk<'_> = serde_json::from_str(data).map_err(|e| e.to_string())?;
    if let Some(e) = c.error {
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Ok(Payload::Error(msg));
    }
    match c.choices {
        Some(choices) if !choices.is_empty() => {
            let first = choices.into_iter().next();
            let text = first.and_then(|ch| {
                if chat {
                    ch.delta.and_then(|d| d.content)
                } else {
                    ch.text
                }
            });
            Ok(Payload::Token(
                text.map(Cow::into_owned).unwrap_or_default(),
            ))
        }
        _ => match c.usage {
            Some(u) => Ok(Payload::Usage {
                prompt: u.prompt_tokens,
                completion: u.completion_tokens,
            }),
            None => Ok(Payload::Other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_any_byte_boundary() {
        let stream = b": ping\n\ndata: {\"a\":1}\n\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]\n\n";
        for cut in 0..stream.len() {
            let mut e = Events::default();
            let mut got = Vec::new();
            e.push(&stream[..cut]);
            while let Some(d) = e.next_event() {
                got.push(d);
            }
            e.push(&stream[cut..]);
            while let Some(d) = e.next_event() {
                got.push(d);
            }
            assert_eq!(got, vec!["{\"a\":1}", "x\ny", "[DONE]"], "cut at {cut}");
            assert_eq!(e.finish(), None);
        }
        let mut e = Events::default();
        e.push(b"data: [DONE]");
        assert_eq!(e.next_event(), None);
        assert_eq!(e.finish().as_deref(), Some("[DONE]"));
    }

    #[test]
    fn payloads_of_completions_chat_usage_and_errors() {
        let t = r#"{"id":"c","choices":[{"index":0,"text":" the","finish_reason":null}]}"#;
        assert_eq!(payload(t, false), Ok(Payload::Token(" the".into())));
        let esc = r#"{"choices":[{"text":"a\"b\n"}]}"#;
        assert_eq!(payload(esc, false), Ok(Payload::Token("a\"b\n".into())));
        let chat = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#;
        assert_eq!(payload(chat, true), Ok(Payload::Token(String::new())));
        let u = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        assert_eq!(
            payload(u, false),
            Ok(Payload::Usage {
                prompt: Some(3),
                completion: Some(5)
            })
        );
        let err = r#"{"error":{"message":"engine dead","code":500}}"#;
        assert_eq!(
            payload(err, false),
            Ok(Payload::Error("engine dead".into()))
        );
        assert_eq!(payload(" [DONE] ", false), Ok(Payload::Done));
        assert_eq!(payload("{}", false), Ok(Payload::Other));
        assert!(payload("{\"choices\":[{\"text\":", false).is_err());
        assert!(payload("not json", false).is_err());
        assert!(payload(r#"{"choices":7}"#, false).is_err());
    }
}
