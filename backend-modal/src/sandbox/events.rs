//! What the reader task does with each line of the shim's stdout: replies complete the calls
//! waiting for them, output lines go into the processes' files (cut at [`OUTPUT_LINE_MAX`]),
//! exits are kept, a `hello` of another protocol refuses every call, and a line over the
//! reader's bound still fails the call it answers.

use serde_json::Value;

use super::{Link, lost};
use crate::lines::Line;
use crate::protocol::{ErrorEvent, Event, PROTOCOL_VERSION};
use runner_core::stepkit::Exit;

/// The longest output line kept (the shim cuts longer ones and says how much it dropped; this
/// side cuts again, whatever the shim did).
pub(crate) const OUTPUT_LINE_MAX: usize = 64 * 1024;

/// The `seq` of an event line from its first bytes (`{"seq": 12, …` or `{"event": "reply",
/// "seq": 12, …`).
fn seq_of(head: &str) -> Option<u64> {
    let at = head.find("\"seq\"")? + "\"seq\"".len();
    let rest = head[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

impl Link {
    pub(super) fn on_event(&self, ev: Event) {
        match ev {
            Event::Hello { protocol } if protocol != PROTOCOL_VERSION => {
                self.refuse(ErrorEvent {
                    class: "perf_runner.ProtocolMismatch".into(),
                    classes: vec!["perf_runner.ProtocolMismatch".into()],
                    message: format!(
                        "the shim speaks protocol {protocol}, this program {PROTOCOL_VERSION}: \
                         a `[modal] shim_override` from another version of perf-runner?"
                    ),
                    phase: Some("shim".into()),
                    ..ErrorEvent::default()
                });
            }
            Event::Stage {
                stage,
                detail,
                sandbox_id,
            } => {
                if let (Some(id), Ok(mut f)) = (sandbox_id, self.facts.lock()) {
                    f.sandbox_id = Some(id);
                }
                self.progress.event(&stage, &detail);
            }
            Event::Reply { seq, value } => self.answer(seq, Ok(value)),
            Event::Failed { seq, error } => self.answer(seq, Err(error)),
            Event::Output {
                id,
                stream,
                mut line,
                cut,
            } => {
                let mut cut = cut;
                if line.len() > OUTPUT_LINE_MAX {
                    let mut at = OUTPUT_LINE_MAX;
                    while !line.is_char_boundary(at) {
                        at -= 1;
                    }
                    cut += (line.len() - at) as u64;
                    line.truncate(at);
                }
                if cut > 0 {
                    line.push_str(&format!(
                        " [perf-runner: {cut} more bytes of this line dropped]"
                    ));
                }
                if let Some(p) = self.procs.lock().ok().as_mut().and_then(|m| m.get_mut(&id)) {
                    p.out.line(&stream, &line);
                }
            }
            Event::Exit {
                id,
                code,
                signal,
                error,
            } => {
                if let Some(p) = self.procs.lock().ok().as_mut().and_then(|m| m.get_mut(&id)) {
                    p.out.flush();
                    let ended = match error {
                        Some(e) => Err(e),
                        None => Ok(Exit { code, signal }),
                    };
                    p.ended.send_replace(Some(ended));
                }
            }
            Event::Terminated {
                sandbox_id,
                seconds,
            } => {
                if let Ok(mut f) = self.facts.lock() {
                    f.seconds = seconds.or(f.seconds);
                    f.sandbox_id = sandbox_id.or(f.sandbox_id.take());
                }
            }
            Event::Error(e) => {
                tracing::warn!(class = %e.class, "the shim reported: {}", e.message);
                if let Ok(mut f) = self.facts.lock() {
                    f.error = Some(e);
                }
            }
            _ => {}
        }
    }

    /// The shim cannot be spoken to (`e` says why): every call waiting and every later one
    /// fails with `e`.
    pub(super) fn refuse(&self, e: ErrorEvent) {
        tracing::warn!(class = %e.class, "{}", e.message);
        if let Ok(mut f) = self.facts.lock() {
            f.error = Some(e.clone());
        }
        if let Ok(mut r) = self.refused.lock() {
            *r = Some(e.clone());
        }
        let waiting: Vec<_> = match self.pending.lock() {
            Ok(mut m) => m.drain().collect(),
            Err(_) => Vec::new(),
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(e.clone()));
        }
    }

    /// A line the reader could not take whole (over the bound). A reply's `seq` comes before
    /// its value, so a reply too long to read still fails its call instead of leaving it
    /// waiting.
    pub(super) fn overlong(&self, line: &Line) {
        let head = String::from_utf8_lossy(&line.bytes[..line.bytes.len().min(200)]);
        let total = line.bytes.len() as u64 + line.dropped;
        tracing::warn!(
            bytes = total,
            "the shim wrote a line over {} bytes; dropped",
            line.bytes.len()
        );
        if let Some(seq) = seq_of(&head) {
            self.answer(
                seq,
                Err(ErrorEvent {
                    class: "perf_runner.ReplyTooLong".into(),
                    classes: vec!["perf_runner.ReplyTooLong".into()],
                    message: format!(
                        "the shim's reply was {total} bytes, over the {} this side reads",
                        line.bytes.len()
                    ),
                    phase: Some("shim".into()),
                    ..ErrorEvent::default()
                }),
            );
        }
    }

    fn answer(&self, seq: u64, r: Result<Value, ErrorEvent>) {
        if let Some(tx) = self.pending.lock().ok().and_then(|mut m| m.remove(&seq)) {
            let _ = tx.send(r);
        }
    }

    /// The shim's stdout ended: nothing more will be answered or end.
    pub(super) fn end(&self) {
        self.gone.cancel();
        if let Ok(mut m) = self.pending.lock() {
            m.clear();
        }
        if let Ok(mut m) = self.procs.lock() {
            for p in m.values_mut() {
                p.out.flush();
                if p.ended.borrow().is_none() {
                    p.ended
                        .send_replace(Some(Err(lost("the shim exited while it ran"))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::seq_of;

    #[test]
    fn a_reply_s_seq_is_read_off_its_first_bytes() {
        assert_eq!(
            seq_of(r#"{"seq": 12, "value": {"files": [{"name"#),
            Some(12)
        );
        assert_eq!(seq_of(r#"{"event":"reply","seq":7,"value":"AAAA"#), Some(7));
        assert_eq!(seq_of(r#"{"id": "client-3", "stream": "stdout""#), None);
        assert_eq!(seq_of(r#"{"seq": "x"}"#), None);
    }
}
