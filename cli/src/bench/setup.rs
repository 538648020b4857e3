//! Everything decided before the first request: the URL, headers, HTTP client, model (asked of
//! the server when not given), tokenizer, prompts and the request bodies, built up front so the
//! send path only clones bytes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value, json};

use super::args::{Backend, ServeArgs, key_values};
use super::dataset::{self, Sample};
use super::request::{Target, chain};
use super::tokenizer::Tok;

/// The prepared run.
pub struct Setup {
    pub target: Target,
    pub model_id: String,
    pub tokenizer_id: String,
    pub tok: Tok,
    pub samples: Vec<Sample>,
    pub bodies: Vec<Vec<u8>>,
}

/// `--base-url`, else `http://host:port` (IPv6 hosts bracketed).
pub fn base_url(a: &ServeArgs) -> String {
    match &a.base_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None if a.host.contains(':') && !a.host.starts_with('[') => {
            format!("http://[{}]:{}", a.host, a.port)
        }
        None => format!("http://{}:{}", a.host, a.port),
    }
}

fn headers(a: &ServeArgs) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(key) = std::env::var("OPENAI_API_KEY") {
        if !key.is_empty() {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .context("OPENAI_API_KEY is not a valid header value")?;
            v.set_sensitive(true);
            h.insert(AUTHORIZATION, v);
        }
    }
    for (k, v) in key_values("--header", &a.header).map_err(anyhow::Error::msg)? {
        let name = HeaderName::from_bytes(k.as_bytes())
            .with_context(|| format!("--header: {k:?} is not a header name"))?;
        let value = HeaderValue::from_str(&v)
            .with_context(|| format!("--header: the value of {k} is not a header value"))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// The first model the server lists: (`id`, `root` when given).
async fn first_model(
    client: &reqwest::Client,
    base: &str,
    h: &HeaderMap,
) -> Result<(String, Option<String>)> {
    let url = format!("{base}/v1/models");
    let fail = |e: String| anyhow::anyhow!("fetching the models from {url}: {e}");
    let resp = client
        .get(&url)
        .headers(h.clone())
        .send()
        .await
        .map_err(|e| fail(chain(&e)))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let v: Value = resp.json().await.map_err(|e| fail(chain(&e)))?;
    let first = v.pointer("/data/0").context("the server lists no model")?;
    let id = first
        .get("id")
        .and_then(Value::as_str)
        .context("the server's first model has no id")?;
    let root = first
        .get("root")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((id.to_string(), root))
}

/// The JSON body of one request.
fn body(
    backend: Backend,
    model: &str,
    s: &Sample,
    ignore_eos: bool,
    extra: &Map<String, Value>,
) -> Vec<u8> {
    let mut b = Map::new();
    b.insert("model".into(), json!(model));
    if backend.chat() {
        b.insert(
            "messages".into(),
            json!([{"role": "user", "content": s.prompt}]),
        );
        b.insert("max_completion_tokens".into(), json!(s.output_len));
    } else {
        b.insert("prompt".into(), json!(s.prompt));
        b.insert("repetition_penalty".into(), json!(1.0));
        b.insert("max_tokens".into(), json!(s.output_len));
        b.insert("logprobs".into(), Value::Null);
    }
    b.insert("stream".into(), json!(true));
    b.insert("stream_options".into(), json!({"include_usage": true}));
    if ignore_eos {
        b.insert("ignore_eos".into(), json!(true));
    }
    for (k, v) in extra {
        b.insert(k.clone(), v.clone());
    }
    serde_json::to_vec(&Value::Object(b)).unwrap_or_default()
}

/// Sampling flags and --extra-body, merged (the latter wins).
fn extra_body(a: &ServeArgs) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for (k, v) in [
        ("temperature", a.temperature),
        ("top_p", a.top_p),
        ("min_p", a.min_p),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    if let Some(k) = a.top_k {
        m.insert("top_k".into(), json!(k));
    }
    if let Some(text) = &a.extra_body {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(o)) => m.extend(o),
            Ok(_) => bail!("--extra-body must be a JSON object"),
            Err(e) => bail!("--extra-body is not JSON: {e}"),
        }
    }
    Ok(m)
}

/// Prepares the run (validating what vLLM validates before sending anything).
pub async fn prepare(a: &ServeArgs) -> Result<Setup> {
    if a.max_concurrency == Some(0) {
        bail!("--max-concurrency must be greater than 0");
    }
    if a.request_timeout_s.is_nan()
        || a.request_timeout_s <= 0.0
        || a.request_timeout_s.is_infinite()
    {
        bail!("--request-timeout-s must be a finite number > 0");
    }
    let extra = extra_body(a)?;
    let h = headers(a)?;
    let base = base_url(a);
    let endpoint = a
        .endpoint
        .clone()
        .unwrap_or_else(|| a.backend.default_endpoint().to_string());
    // A pooled connection is dropped after 4 s idle: vLLM's server (uvicorn) closes an idle
    // keep-alive connection after 5 s (VLLM_HTTP_TIMEOUT_KEEP_ALIVE), and a request sent on a
    // connection the server is closing fails ("connection closed before message completed").
    // At low request rates that would turn idle gaps into failed requests.
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(usize::MAX)
        .build()
        .context("building the HTTP client")?;
    let (model_name, model_id) = match &a.model {
        Some(m) => (a.served_model_name.clone().unwrap_or(m.clone()), m.clone()),
        None => {
            outln!("Model not specified, fetching first model from server...");
            let (id, root) = first_model(&client, &base, &h).await?;
            outln!(
                "First model name: {id}, first model id: {}",
                root.as_deref().unwrap_or(&id)
            );
            (id.clone(), root.unwrap_or(id))
        }
    };
    let tokenizer_id = a.tokenizer.clone().unwrap_or_else(|| model_id.clone());
    let tok = Tok::load(&tokenizer_id)?;
    let samples = dataset::samples(a, &tok)?;
    // vLLM asks OpenAI-compatible servers to ignore EOS for random prompts.
    let ignore_eos = a.ignore_eos || a.dataset_name == "random";
    let bodies = samples
        .iter()
        .map(|s| body(a.backend, &model_name, s, ignore_eos, &extra))
        .collect();
    Ok(Setup {
        target: Target {
            client,
            url: format!("{base}{endpoint}"),
            headers: h,
            chat: a.backend.chat(),
            timeout: Duration::from_secs_f64(a.request_timeout_s),
        },
        model_id,
        tokenizer_id,
        tok,
        samples,
        bodies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_of_completions_and_chat() {
        let s = Sample {
            prompt: "a b".into(),
            prompt_len: 2,
            output_len: 7,
        };
        let mut extra = Map::new();
        extra.insert("temperature".into(), json!(0.0));
        let v: Value =
            serde_json::from_slice(&body(Backend::Openai, "m", &s, true, &extra)).unwrap();
        assert_eq!(v["prompt"], "a b");
        assert_eq!(v["max_tokens"], 7);
        assert_eq!(v["ignore_eos"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["temperature"], 0.0);
        let c: Value =
            serde_json::from_slice(&body(Backend::OpenaiChat, "m", &s, false, &Map::new()))
                .unwrap();
        assert_eq!(c["messages"][0]["content"], "a b");
        assert_eq!(c["max_completion_tokens"], 7);
        assert!(c.get("ignore_eos").is_none());
    }
}
