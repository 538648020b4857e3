//! The serving benchmark's set-up: its options (argparse-like), where the server is (no DNS for
//! IPs and `localhost`), the request lengths and the request bodies.

use crate::args::{ArgError, Args};
use crate::numeric::{Rng, prompt_text};
use crate::report::Opts;
use serde_json::json;
use std::net::{IpAddr, SocketAddr};

/// The benchmark's options from its arguments.
pub fn parse_opts(args: &Args, script: bool, old: bool) -> Result<Opts, ArgError> {
    let backend = args.string_or("backend", if script && old { "vllm" } else { "openai" })?;
    let chat = backend == "openai-chat";
    let dataset = args.string_or(
        "dataset-name",
        if script && old { "sharegpt" } else { "random" },
    )?;
    let (input_len, output_len) = match dataset.as_str() {
        "sonnet" => (
            args.usize_or("sonnet-input-len", 550)?,
            args.usize_or("sonnet-output-len", 150)?,
        ),
        _ => {
            let i = args.usize_or("input-len", 1024)?;
            let o = args.usize_or("output-len", 128)?;
            (
                args.usize_or("random-input-len", i)?,
                args.usize_or("random-output-len", o)?,
            )
        }
    };
    let split = |s: String| -> Vec<String> {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    };
    let mut metric_percentiles = Vec::new();
    for p in split(args.string_or("metric-percentiles", "99")?) {
        let v: f64 = p.parse().map_err(|_| {
            ArgError(format!(
                "argument --metric-percentiles: invalid value: '{p}'"
            ))
        })?;
        metric_percentiles.push(v);
    }
    Ok(Opts {
        backend: backend.clone(),
        endpoint: args.string_or(
            "endpoint",
            if chat {
                "/v1/chat/completions"
            } else {
                "/v1/completions"
            },
        )?,
        chat,
        base_url: args.value("base-url")?.map(str::to_string),
        host: args.string_or("host", if script { "localhost" } else { "127.0.0.1" })?,
        port: u16::try_from(args.usize_or("port", 8000)?)
            .map_err(|_| ArgError("argument --port: invalid port".into()))?,
        model: args.value("model")?.map(str::to_string),
        tokenizer: args.value("tokenizer")?.map(str::to_string),
        served_model_name: args.value("served-model-name")?.map(str::to_string),
        num_prompts: args.usize_or("num-prompts", 1000)?,
        dataset,
        dataset_path: args.value("dataset-path")?.map(str::to_string),
        input_len,
        output_len,
        range_ratio: args.f64_or("random-range-ratio", 0.0)?.clamp(0.0, 1.0),
        sharegpt_output_len: args.opt_usize("sharegpt-output-len")?,
        request_rate: args.f64_or("request-rate", f64::INFINITY)?,
        burstiness: args.f64_or("burstiness", 1.0)?,
        max_concurrency: args.opt_usize("max-concurrency")?,
        seed: args.u64_or("seed", 0)?,
        ignore_eos: args.has("ignore-eos"),
        save_result: args.has("save-result"),
        save_detailed: args.has("save-detailed"),
        result_dir: args.value("result-dir")?.map(str::to_string),
        result_filename: args.value("result-filename")?.map(str::to_string),
        label: args.value("label")?.map(str::to_string),
        percentile_metrics: split(args.string_or("percentile-metrics", "ttft,tpot,itl")?),
        metric_percentiles,
        disable_tqdm: args.has("disable-tqdm"),
        old,
    })
}

/// Splits `http://host:port/…` into host and port (no DNS).
pub fn split_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            Some((h.to_string(), p.parse().ok()?))
        }
        _ => Some((authority.to_string(), 80)),
    }
}

/// The server's address: IPs and `localhost` directly, other names by DNS once.
pub async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    let ip = match host {
        "localhost" | "" => Some(IpAddr::from([127, 0, 0, 1])),
        h => h.trim_start_matches('[').trim_end_matches(']').parse().ok(),
    };
    match ip {
        Some(ip) => Some(SocketAddr::new(ip, port)),
        // DNS only for a real host name, once, never in the request path.
        None => tokio::net::lookup_host((host, port)).await.ok()?.next(),
    }
}

/// Builds request bodies; prompts are made when a request is sent, so memory stays bounded.
pub struct BodyMaker {
    /// The model name sent.
    pub model: String,
    /// Chat completions instead of completions.
    pub chat: bool,
    /// Send `ignore_eos`.
    pub ignore_eos: bool,
    /// Seed of the prompts.
    pub seed: u64,
}

impl BodyMaker {
    /// The JSON body of request `i` with a prompt of `prompt_len` tokens.
    pub fn body(&self, i: u64, prompt_len: usize, max: usize) -> Vec<u8> {
        let prompt = prompt_text(&mut Rng::new(self.seed, i.wrapping_add(1)), prompt_len);
        let mut b = if self.chat {
            json!({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "temperature": 0.0, "max_completion_tokens": max, "stream": true,
                "stream_options": {"include_usage": true}})
        } else {
            json!({"model": self.model, "prompt": prompt, "temperature": 0.0, "max_tokens": max,
                "logprobs": null, "stream": true, "stream_options": {"include_usage": true}})
        };
        if self.ignore_eos {
            b["ignore_eos"] = json!(true);
        }
        b.to_string().into_bytes()
    }
}

/// (prompt_len, max_tokens) for every request.
pub fn make_requests(o: &Opts) -> Vec<(usize, usize)> {
    let mut rng = Rng::new(o.seed, 0xDA7A);
    (0..o.num_prompts)
        .map(|_| {
            let (i, out) = if o.dataset == "random" || o.dataset == "sonnet" {
                let vary = |n: usize, rng: &mut Rng| {
                    let lo = (n as f64 * (1.0 - o.range_ratio)).round() as usize;
                    let hi = (n as f64 * (1.0 + o.range_ratio)).round() as usize;
                    lo + rng.below(hi.saturating_sub(lo).saturating_add(1))
                };
                (
                    vary(o.input_len, &mut rng).max(1),
                    vary(o.output_len, &mut rng).max(1),
                )
            } else {
                (
                    16 + rng.below(500),
                    o.sharegpt_output_len.unwrap_or(16 + rng.below(240)),
                )
            };
            (i, out)
        })
        .collect()
}
