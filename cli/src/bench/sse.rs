//! Server-sent events of an OpenAI-compatible stream: bytes in as they arrive, events out
//! (`data:` payloads), and the payload's token text and usage.

use std::borrow::Cow;

use serde::Deserialize;

/// The most unread bytes [`Events`] holds before the stream counts as malformed (the client reads
/// every complete event after each push, so this bounds the one event still arriving): a server
/// that never ends an event must not grow the client's memory without bound. vLLM's chunks are
/// well under a megabyte even with log-probabilities.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

/// Bytes received but not yet split into events.
#[derive(Debug, Default)]
pub struct Events {
    buf: Vec<u8>,
    /// Start of the unread part of `buf` (the current event's first byte).
    pos: usize,
    /// Start of the current event's first line not yet known to be complete.
    line: usize,
    /// How far the search for that line's end has read (`line ≤ scanned ≤ buf.len()`): a
    /// search resumes there, so an event arriving in many pieces is scanned once, not once per
    /// piece (vLLM's events are one long `data:` line).
    scanned: usize,
}

impl Events {
    /// Appends received bytes; `Err` when the current event would pass [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.buf.len() - self.pos + bytes.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "an SSE event longer than {} MiB (no blank line ends it)",
                MAX_EVENT_BYTES >> 20
            ));
        }
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.line -= self.pos;
            self.scanned -= self.pos;
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete event's data (its `data:` lines joined by `\n`); events without data
    /// (comments, pings) are skipped.
    pub fn next_event(&mut self) -> Option<String> {
        loop {
            let (end, next) = self.event_end()?;
            let data = data_of(&self.buf[self.pos..end]);
            self.pos = next;
            self.line = next;
            self.scanned = next;
            if let Some(data) = data {
                return Some(data);
            }
        }
    }

    /// At the end of the stream: what is left, as a last event (a server may end without the
    /// blank line after `data: [DONE]`).
    pub fn finish(&mut self) -> Option<String> {
        let data = data_of(&self.buf[self.pos..]);
        self.pos = self.buf.len();
        self.line = self.pos;
        self.scanned = self.pos;
        data
    }

    /// The end of the current event (before its blank line) and where the next one starts,
    /// both as offsets in `buf`; `None` until its blank line has arrived.
    fn event_end(&mut self) -> Option<(usize, usize)> {
        while let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
            let nl = self.scanned + i;
            let line = &self.buf[self.line..nl];
            if line.is_empty() || line == b"\r" {
                return Some((self.line, nl + 1));
            }
            self.line = nl + 1;
            self.scanned = nl + 1;
        }
        self.scanned = self.buf.len();
        None
    }
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
            e.push(&stream[..cut]).unwrap();
            while let Some(d) = e.next_event() {
                got.push(d);
            }
            e.push(&stream[cut..]).unwrap();
            while let Some(d) = e.next_event() {
                got.push(d);
            }
            assert_eq!(got, vec!["{\"a\":1}", "x\ny", "[DONE]"], "cut at {cut}");
            assert_eq!(e.finish(), None);
        }
        let mut e = Events::default();
        e.push(b"data: [DONE]").unwrap();
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

    #[test]
    fn an_event_that_never_ends_is_an_error_not_unbounded_memory() {
        let mut e = Events::default();
        let piece = vec![b'x'; 1 << 20];
        e.push(b"data: ").unwrap();
        let mut pushed = 0;
        let err = loop {
            match e.push(&piece) {
                Ok(()) => pushed += 1,
                Err(err) => break err,
            }
            assert_eq!(e.next_event(), None);
            assert!(pushed <= MAX_EVENT_BYTES >> 20, "no limit");
        };
        assert!(err.contains("longer than 16 MiB"), "{err}");
        // The limit is per event: many complete events, read as they come, never reach it.
        let mut e = Events::default();
        let event = format!("data: {}\n\n", "y".repeat(1 << 20));
        for _ in 0..40 {
            e.push(event.as_bytes()).unwrap();
            assert_eq!(e.next_event().map(|d| d.len()), Some(1 << 20));
        }
    }

    /// A stream's bytes: each event as `data:` lines (and maybe a comment), LF or CRLF endings.
    fn render(events: &[(Vec<String>, bool)], crlf: bool) -> Vec<u8> {
        let nl = if crlf { "\r\n" } else { "\n" };
        let mut out = String::new();
        for (lines, comment) in events {
            if *comment {
                out.push_str(&format!(": ping{nl}"));
            }
            for l in lines {
                out.push_str(&format!("data: {l}{nl}"));
            }
            out.push_str(nl);
        }
        out.into_bytes()
    }

    proptest::proptest! {
        /// However the network cuts a stream, the same events come out, in order.
        #[test]
        fn any_chunking_gives_the_same_events(
            events in proptest::collection::vec(
                (proptest::collection::vec("[^\r\n]{0,40}", 1..4), proptest::bool::ANY),
                0..12,
            ),
            crlf in proptest::bool::ANY,
            cuts in proptest::collection::vec(0usize..2000, 0..20),
        ) {
            let bytes = render(&events, crlf);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut e = Events::default();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                e.push(&bytes[w[0]..w[1]]).unwrap();
                while let Some(d) = e.next_event() {
                    got.push(d);
                }
            }
            proptest::prop_assert_eq!(e.finish(), None);
            let want: Vec<String> = events.iter().map(|(l, _)| l.join("\n")).collect();
            proptest::prop_assert_eq!(got, want);
        }

        /// Arbitrary bytes, cut anywhere, never panic, and every payload reads as a result.
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            cut in 0usize..600,
        ) {
            let cut = cut.min(bytes.len());
            let mut e = Events::default();
            let mut n = 0;
            for part in [&bytes[..cut], &bytes[cut..]] {
                e.push(part).unwrap();
                while let Some(d) = e.next_event() {
                    let _ = payload(&d, n % 2 == 0);
                    n += 1;
                }
            }
            if let Some(d) = e.finish() {
                let _ = payload(&d, false);
            }
            // Each event ends with a blank line: never more events than newlines.
            let newlines = bytes.iter().filter(|&&b| b == b'\n').count();
            proptest::prop_assert!(n <= newlines);
        }
    }
}
