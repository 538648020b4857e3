//! One streamed request, timed like vLLM's client: TTFT from the send to the first chunk with
//! choices, ITL between such chunks, latency to the last one; timestamps are monotonic and
//! taken as each network chunk arrives. Every failure (connection, HTTP status, malformed
//! stream, error event, reset, timeout) is an outcome with a reason, never a panic.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use super::sse::{Events, Payload, payload};

/// One request's result (vLLM's `RequestFuncOutput`), times in seconds.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Whether it completed.
    pub success: bool,
    /// Why not.
    pub error: String,
    /// Prompt tokens (the server's usage when reported).
    pub prompt_len: usize,
    /// `usage.completion_tokens`, when the server reported it.
    pub usage_output: Option<usize>,
    /// Chunks with choices received.
    pub chunks: usize,
    /// Time to the first chunk.
    pub ttft: f64,
    /// Gaps between chunks.
    pub itl: Vec<f64>,
    /// Send to last chunk.
    pub latency: f64,
    /// When it was sent, after the start of the run.
    pub start: f64,
    /// When it was sent.
    pub sent_at: Option<Instant>,
    /// Waiting for a concurrency slot.
    pub queue: f64,
    /// Late start: from when it could be sent (its arrival time and a free slot) to the send.
    pub lag: f64,
    /// Time the client spent on its bytes (splitting and parsing events).
    pub work: f64,
    /// The generated text.
    pub text: String,
}

/// What a request needs.
#[derive(Debug, Clone)]
pub struct Target {
    /// The HTTP client (shared: one connection pool).
    pub client: reqwest::Client,
    /// The endpoint URL.
    pub url: String,
    /// Headers of every request.
    pub headers: HeaderMap,
    /// Chat format.
    pub chat: bool,
    /// Per-request time limit.
    pub timeout: Duration,
}

/// A reqwest error with its causes, on one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Sends `body` and reads the stream. `prompt_len` is the dataset's count, replaced by the
/// server's usage when it reports one.
pub async fn send(t: &Target, body: Vec<u8>, prompt_len: usize) -> Outcome {
    let st = Instant::now();
    let mut o = Outcome {
        prompt_len,
        sent_at: Some(st),
        ..Outcome::default()
    };
    let res = tokio::time::timeout(t.timeout, stream(t, body, st, &mut o)).await;
    let res = res.unwrap_or_else(|_| {
        Err(format!(
            "timed out after {:.0} s (--request-timeout-s)",
            t.timeout.as_secs_f64()
        ))
    });
    match res {
        Ok(()) if o.chunks == 0 => {
            o.error = "Never received a valid chunk to calculate TTFT. This response will be \
                       marked as failed!"
                .into();
        }
        Ok(()) => o.success = true,
        Err(e) => o.error = e,
    }
    o
}

async fn stream(t: &Target, body: Vec<u8>, st: Instant, o: &mut Outcome) -> Result<(), String> {
    let resp = t
        .client
        .post(&t.url)
        .headers(t.headers.clone())
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {}", chain(&e)))?;
    let status = resp.status();
    if status != reqwest::StatusCode::OK {
        let reason = status.canonical_reason().unwrap_or("");
        let text = error_body(resp).await;
        let mut excerpt: String = text.chars().take(300).collect();
        if excerpt.len() < text.len() {
            excerpt.push('…');
        }
        return Err(format!(
            "HTTP {} {reason}: {}",
            status.as_u16(),
            excerpt.trim()
        ));
    }
    let mut resp = resp;
    let mut events = Events::default();
    let mut last = st;
    let mut done = false;
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| format!("stream broken after {} chunks: {}", o.chunks, chain(&e)))?;
        let now = Instant::now();
        let Some(bytes) = chunk else { break };
        events
            .push(&bytes)
            .map_err(|e| format!("malformed stream after {} chunks: {e}", o.chunks))?;
        while let Some(data) = events.next_event() {
            handle(&data, now, st, &mut last, o, t.chat, &mut done)?;
        }
        o.work += now.elapsed().as_secs_f64();
        if done {
            break;
        }
    }
    if !done {
        let now = Instant::now();
        if let Some(data) = events.finish() {
            handle(&data, now, st, &mut last, o, t.chat, &mut done)?;
        }
    }
    o.latency = last.duration_since(st).as_secs_f64();
    if !done {
        return Err(format!(
            "stream ended without `data: [DONE]` after {} chunks",
            o.chunks
        ));
    }
    Ok(())
}

/// The start of an error response's body (at most 64 KiB are read: the excerpt needs far less, and
/// a server's error page must not fill the client's memory).
async fn error_body(mut resp: reqwest::Response) -> String {
    const MAX: usize = 64 << 10;
    let mut body = Vec::new();
    while body.len() < MAX {
        match resp.chunk().await {
            Ok(Some(b)) => body.extend_from_slice(&b[..b.len().min(MAX - body.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

fn handle(
    data: &str,
    now: Instant,
    st: Instant,
    last: &mut Instant,
    o: &mut Outcome,
    chat: bool,
    done: &mut bool,
) -> Result<(), String> {
    match payload(data, chat) {
        Ok(Payload::Done) => *done = true,
        Ok(Payload::Token(text)) => {
            if o.chunks == 0 {
                o.ttft = now.duration_since(st).as_secs_f64();
            } else {
                o.itl.push(now.duration_since(*last).as_secs_f64());
            }
            *last = now;
            o.chunks += 1;
            o.text.push_str(&text);
        }
        Ok(Payload::Usage { prompt, completion }) => {
            if let Some(p) = prompt {
                o.prompt_len = p;
            }
            o.usage_output = completion.or(o.usage_output);
        }
        Ok(Payload::Error(msg)) => {
            o.latency = last.duration_since(st).as_secs_f64();
            return Err(format!("error event in the stream: {msg}"));
        }
        Ok(Payload::Other) => {}
        Err(e) => {
            o.latency = last.duration_since(st).as_secs_f64();
            let mut excerpt: String = data.chars().take(120).collect();
            if excerpt.len() < data.len() {
                excerpt.push('…');
            }
            return Err(format!("malformed SSE event {excerpt:?}: {e}"));
        }
    }
    Ok(())
}
