//! The OpenAI-compatible routes: `/health`, `/v1/models`, `/version`, `/v1/completions` and
//! `/v1/chat/completions` (SSE streaming, one token per chunk, or one JSON answer), paced by the
//! build's speed.

use crate::faults;
use crate::http::{self, Request};
use crate::numeric::{Rng, WORDS, dur};
use crate::server::State;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWrite;
use tokio::time::{Instant, sleep_until};

/// The context length when `--max-model-len` is not given.
pub const DEFAULT_MAX_MODEL_LEN: usize = 32768;

/// vLLM's error JSON.
pub fn error_body(code: u16, message: &str) -> String {
    let kind = match code {
        404 => "NotFoundError",
        400 => "BadRequestError",
        _ => "InternalServerError",
    };
    json!({"object": "error", "message": message, "type": kind, "param": null, "code": code})
        .to_string()
}

/// Answers one request; returns the status code sent (for the access log).
pub async fn route<W: AsyncWrite + Unpin>(
    req: &Request,
    w: &mut W,
    state: &State,
    keep: bool,
) -> std::io::Result<u16> {
    let json_reply = |code: u16, body: String| (code, body);
    let served = state.requests.load(Ordering::SeqCst);
    if let Some((code, body)) =
        crate::sleep::route(&req.method, &req.path, &state.sleep, &state.cfg, served).await
    {
        http::write_response(w, code, "application/json", body.as_bytes(), keep).await?;
        return Ok(code);
    }
    let (code, body) = match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health" | "/ping") => json_reply(200, String::new()),
        ("GET", "/version") => json_reply(200, json!({"version": state.cfg.version}).to_string()),
        ("GET", "/standin/peak_running") => json_reply(
            200,
            json!({"peak_running": state.peak_running.load(Ordering::SeqCst)}).to_string(),
        ),
        ("GET", "/v1/models") => json_reply(200, models(state)),
        ("POST", "/v1/completions") => return generate(req, w, state, keep, false).await,
        ("POST", "/v1/chat/completions") => return generate(req, w, state, keep, true).await,
        (
            _,
            "/health"
            | "/ping"
            | "/version"
            | "/v1/models"
            | "/v1/completions"
            | "/v1/chat/completions",
        ) => json_reply(405, json!({"detail": "Method Not Allowed"}).to_string()),
        _ => json_reply(404, json!({"detail": "Not Found"}).to_string()),
    };
    http::write_response(w, code, "application/json", body.as_bytes(), keep).await?;
    Ok(code)
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn models(state: &State) -> String {
    json!({"object": "list", "data": [{
        "id": state.model, "object": "model", "created": now_secs(), "owned_by": "vllm",
        "root": state.model, "parent": null, "max_model_len": state.max_model_len.unwrap_or(DEFAULT_MAX_MODEL_LEN),
    }]})
    .to_string()
}

/// A validated generation request.
struct Gen {
    stream: bool,
    include_usage: bool,
    prompt_tokens: usize,
    max_tokens: usize,
    index: u64,
}

fn count_words(s: &str) -> usize {
    s.split_whitespace().count().max(1)
}

fn prompt_tokens(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(count_words(s)),
        Value::Array(items) if items.iter().all(Value::is_u64) => Some(items.len().max(1)),
        Value::Array(items) => items.iter().map(prompt_tokens).sum(),
        _ => None,
    }
}

fn parse_gen(req: &Request, state: &State, chat: bool, index: u64) -> Result<Gen, (u16, String)> {
    let bad = |m: &str| (400, error_body(400, m));
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| bad(&format!("Expecting value: line 1 column 1 (char 0) ({e})")))?;
    if let Some(m) = body.get("model").and_then(Value::as_str) {
        if m != state.model {
            return Err((
                404,
                error_body(404, &format!("The model `{m}` does not exist.")),
            ));
        }
    }
    let prompt_tokens = if chat {
        let msgs = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("Field required: messages"))?;
        msgs.iter()
            .map(|m| {
                m.get("content")
                    .and_then(Value::as_str)
                    .map(count_words)
                    .unwrap_or(1)
            })
            .sum::<usize>()
    } else {
        body.get("prompt")
            .and_then(prompt_tokens)
            .ok_or_else(|| bad("Either prompt or prompt_embeds must be provided and non-empty."))?
    };
    let max = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"));
    let max_tokens = match max {
        None | Some(Value::Null) => 16,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return Err(bad(&format!("max_tokens must be at least 1, got {v}."))),
        },
    };
    let limit = state.max_model_len.unwrap_or(DEFAULT_MAX_MODEL_LEN);
    {
        if prompt_tokens.saturating_add(max_tokens) > limit {
            return Err(bad(&format!(
                "This model's maximum context length is {limit} tokens. However, you requested {} \
                 tokens ({prompt_tokens} in the messages, {max_tokens} in the completion). Please \
                 reduce the length of the messages or completion.",
                prompt_tokens.saturating_add(max_tokens)
            )));
        }
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Gen {
        stream,
        include_usage,
        prompt_tokens,
        max_tokens,
        index,
    })
}

/// Decrements the running count when a request ends, however it ends.
struct Running<'a>(&'a State);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn generate<W: AsyncWrite + Unpin>(
    req: &Request,
    w: &mut W,
    state: &State,
    keep: bool,
    chat: bool,
) -> std::io::Result<u16> {
    if state.sleep.is_asleep() {
        let body = error_body(503, "The engine is sleeping; POST /wake_up first.");
        http::write_response(w, 503, "application/json", body.as_bytes(), keep).await?;
        return Ok(503);
    }
    let n = state.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let cfg = &state.cfg;
    if cfg.fault == Some(perf_runner_tests::standin::Fault::CrashMidRun) && n > cfg.fault_after {
        faults::crash_mid_run(&state.ctx);
        std::process::exit(1);
    }
    let g = match parse_gen(req, state, chat, n) {
        Ok(g) => g,
        Err((code, body)) => {
            http::write_response(w, code, "application/json", body.as_bytes(), keep).await?;
            return Ok(code);
        }
    };
    let now = state.running.fetch_add(1, Ordering::SeqCst) + 1;
    state.peak_running.fetch_max(now, Ordering::SeqCst);
    let _running = Running(state);
    state
        .prompt_tokens
        .fetch_add(g.prompt_tokens as u64, Ordering::SeqCst);
    let (id, created) = (
        format!(
            "{}-{:032x}",
            if chat { "chatcmpl" } else { "cmpl" },
            g.index
        ),
        now_secs(),
    );
    let (object, chunk_object) = if chat {
        ("chat.completion", "chat.completion.chunk")
    } else {
        ("text_completion", "text_completion")
    };
    let mut rng = Rng::new(cfg.seed, g.index);
    let ttft =
        (cfg.ttft_ms / 1000.0 + g.prompt_tokens as f64 / cfg.prefill_tokens_per_s) / cfg.speed;
    let step = 1.0 / (cfg.tokens_per_s * cfg.speed);
    let start = Instant::now();
    let mut deadline = start + dur(ttft * rng.factor(cfg.jitter));
    let model_json = Value::from(state.model.as_str()).to_string();
    let head = format!(
        "data: {{\"id\":\"{id}\",\"object\":\"{chunk_object}\",\"created\":{created},\"model\":{model_json},\"choices\":[{{\"index\":0,"
    );
    if g.stream {
        http::write_stream_head(w).await?;
    }
    let mut text = String::new();
    for i in 0..g.max_tokens {
        if i > 0 {
            deadline += dur(step * rng.factor(cfg.jitter));
        }
        sleep_until(deadline).await;
        let word = WORDS[rng.below(WORDS.len())];
        state.gen_tokens.fetch_add(1, Ordering::SeqCst);
        if !g.stream {
            text.push_str(word);
            continue;
        }
        let finish = if i + 1 == g.max_tokens {
            "\"length\""
        } else {
            "null"
        };
        let mut events = String::new();
        if chat && i == 0 {
            events.push_str(&format!("{head}\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"));
        }
        // Hand-built JSON (the words need no escaping): cheap enough for thousands of tokens/s.
        let field = if chat {
            format!("\"delta\":{{\"content\":\"{word}\"}}")
        } else {
            format!("\"text\":\"{word}\"")
        };
        events.push_str(&format!(
            "{head}{field},\"logprobs\":null,\"finish_reason\":{finish},\"stop_reason\":null}}]}}\n\n"
        ));
        http::write_chunk(w, events.as_bytes()).await?;
    }
    let usage = json!({"prompt_tokens": g.prompt_tokens, "total_tokens": g.prompt_tokens + g.max_tokens,
        "completion_tokens": g.max_tokens, "prompt_tokens_details": null});
    if g.stream {
        let mut tail = String::new();
        if g.include_usage {
            let u = json!({"id": id, "object": chunk_object, "created": created, "model": state.model, "choices": [], "usage": usage});
            tail.push_str(&format!("data: {u}\n\n"));
        }
        tail.push_str("data: [DONE]\n\n");
        http::write_chunk(w, tail.as_bytes()).await?;
        http::write_chunk(w, b"").await?;
        return Ok(200);
    }
    let choice = if chat {
        json!({"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
            "logprobs": null, "finish_reason": "length", "stop_reason": null})
    } else {
        json!({"index": 0, "text": text, "logprobs": null, "finish_reason": "length", "stop_reason": null, "prompt_logprobs": null})
    };
    let body = json!({"id": id, "object": object, "created": created, "model": state.model,
        "choices": [choice], "usage": usage});
    http::write_response(
        w,
        200,
        "application/json",
        body.to_string().as_bytes(),
        keep,
    )
    .await?;
    Ok(200)
}
