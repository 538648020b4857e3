//! The serving benchmark client (`vllm bench serve`, `benchmark_serving.py`): real streaming
//! requests to a real server, timed like vLLM's client (TTFT, ITL, latency per request).

use crate::args::{ArgError, Args};
use crate::argv::Entry;
use crate::client::{self, ClientError, Target};
use crate::faults::{self, Ctx};
use crate::logs::{err, log, out, tqdm};
use crate::numeric::{Rng, dur, prompt_text};
use crate::report::{self, Opts, Outcome};
use perf_runner_tests::standin::{Fault, StandinConfig};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

fn parse_opts(args: &Args, script: bool, old: bool) -> Result<Opts, ArgError> {
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
        seed: args.usize_or("seed", 0)? as u64,
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
fn split_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            Some((h.to_string(), p.parse().ok()?))
        }
        _ => Some((authority.to_string(), 80)),
    }
}

async fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
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

/// Runs the benchmark; returns the exit code.
pub async fn run(entry: &Entry, args: &Args, cfg: StandinConfig) -> i32 {
    if args.wants_help() {
        return args.help();
    }
    if let Some(code) = faults::argparse_fault(&cfg, args) {
        return code;
    }
    let script = matches!(entry, Entry::Script(_));
    let mut o = match parse_opts(args, script, cfg.old_format) {
        Ok(o) => o,
        Err(e) => return args.fail(&e),
    };
    let mut ctx = Ctx::new(
        &Entry::Cli,
        o.model.as_deref().unwrap_or(""),
        cfg.old_format,
    );
    if script {
        ctx = Ctx::new(entry, &ctx.model, cfg.old_format);
    }
    log(
        "INFO",
        "__init__.py:239",
        "Automatically detected platform cuda.",
        cfg.old_format,
    );
    out(&format!(
        "Namespace(backend='{}', base_url={:?}, host='{}', port={}, endpoint='{}', dataset_name='{}', \
         model={:?}, num_prompts={}, request_rate={}, max_concurrency={:?}, seed={}, ignore_eos={})",
        o.backend,
        o.base_url,
        o.host,
        o.port,
        o.endpoint,
        o.dataset,
        o.model,
        o.num_prompts,
        o.request_rate,
        o.max_concurrency,
        o.seed,
        if o.ignore_eos { "True" } else { "False" }
    ));
    if faults::transient_once(&cfg, &ctx) {
        return 1;
    }
    let (host, port) = match &o.base_url {
        Some(u) => split_url(u).unwrap_or((o.host.clone(), o.port)),
        None => (o.host.clone(), o.port),
    };
    let Some(addr) = resolve(&host, port).await else {
        err(&format!(
            "Traceback (most recent call last):\n{}\nsocket.gaierror: [Errno -2] Name or service not known",
            ctx.top
        ));
        return 1;
    };
    let target = Target {
        addr,
        host: format!("{host}:{port}"),
    };
    if o.model.is_none() {
        match client::request(&target, "GET", "/v1/models", None, |_, _| {}).await {
            Ok(body) => {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                o.model = v
                    .pointer("/data/0/id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
            }
            Err(e) => {
                faults::initial_run_failed(&ctx, &e.text());
                return 1;
            }
        }
    }
    let model = o
        .model
        .clone()
        .unwrap_or_else(|| "facebook/opt-125m".to_string());
    ctx.model = model.clone();
    if o.dataset != "random" {
        if let Some(p) = o
            .dataset_path
            .as_deref()
            .filter(|p| !std::path::Path::new(p).exists())
        {
            err(&format!(
                "Traceback (most recent call last):\n{}\nFileNotFoundError: [Errno 2] No such file or directory: '{p}'",
                ctx.top
            ));
            return 1;
        }
    }
    let requests = make_requests(&o);
    if o.dataset == "random" {
        let (i, oo) = (o.input_len, o.output_len);
        log(
            "INFO",
            "datasets.py:355",
            &format!("Sampling input_len from [{i}, {i}] and output_len from [{oo}, {oo}]"),
            cfg.old_format,
        );
    }
    let request_model = o.served_model_name.clone().unwrap_or_else(|| model.clone());
    let body_of = |prompt: &str, max: usize| -> Vec<u8> {
        let mut b = if o.chat {
            json!({"model": request_model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0,
                "max_completion_tokens": max, "stream": true, "stream_options": {"include_usage": true}})
        } else {
            json!({"model": request_model, "prompt": prompt, "temperature": 0.0, "max_tokens": max,
                "logprobs": null, "stream": true, "stream_options": {"include_usage": true}})
        };
        if o.ignore_eos {
            b["ignore_eos"] = json!(true);
        }
        b.to_string().into_bytes()
    };
    let Some(first) = requests.first() else {
        return report::finish(&o, &model, &[], 0.0);
    };
    out("Starting initial single prompt test run...");
    let test = one(
        &target,
        &o.endpoint,
        body_of(&first.0, first.2),
        first.1,
        o.chat,
        Instant::now(),
    )
    .await;
    if !test.success {
        faults::initial_run_failed(&ctx, &test.error);
        return 1;
    }
    out("Initial test run completed. Starting main benchmark run...");
    out(&format!(
        "Traffic request rate: {}",
        crate::logs::py_float(o.request_rate)
    ));
    out(&format!(
        "Burstiness factor: {} (Poisson process)",
        crate::logs::py_float(o.burstiness)
    ));
    out(&format!(
        "Maximum request concurrency: {}",
        o.max_concurrency.map_or("None".into(), |c| c.to_string())
    ));

    let crash_at = (cfg.fault == Some(Fault::ClientCrash))
        .then(|| (cfg.fault_after as usize).min(requests.len() / 2).max(1));
    let sem = o
        .max_concurrency
        .map(|c| Arc::new(Semaphore::new(c.max(1))));
    let total = requests.len();
    let start = Instant::now();
    let mut rng = Rng::new(o.seed, 0xA11);
    let mut set = JoinSet::new();
    let mut at = 0.0;
    for (i, (prompt, prompt_len, max)) in requests.into_iter().enumerate() {
        if i > 0 && o.request_rate.is_finite() && o.request_rate > 0.0 {
            at += rng.exp(o.request_rate);
        }
        let (target, path, body, sem) = (
            target.clone(),
            o.endpoint.clone(),
            body_of(&prompt, max),
            sem.clone(),
        );
        let chat = o.chat;
        set.spawn(async move {
            tokio::time::sleep_until((start + dur(at)).into()).await;
            let _permit = match &sem {
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            (i, one(&target, &path, body, prompt_len, chat, start).await)
        });
    }
    if !o.disable_tqdm {
        err(&tqdm("", 0, total, 0.0, ""));
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; total];
    let mut done = 0;
    while let Some(joined) = set.join_next().await {
        let Ok((i, outcome)) = joined else { continue };
        outcomes[i] = Some(outcome);
        done += 1;
        if crash_at == Some(done) {
            faults::client_crash(&ctx);
            std::process::exit(1);
        }
        if !o.disable_tqdm
            && (done * 10 / total.max(1) != (done - 1) * 10 / total.max(1) || done == total)
        {
            err(&tqdm("", done, total, start.elapsed().as_secs_f64(), ""));
        }
    }
    let duration = start.elapsed().as_secs_f64();
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    report::finish(&o, &model, &outcomes, duration)
}

/// (prompt, prompt_len, max_tokens) for every request.
fn make_requests(o: &Opts) -> Vec<(String, usize, usize)> {
    let mut rng = Rng::new(o.seed, 0xDA7A);
    (0..o.num_prompts)
        .map(|_| {
            let (i, out) = if o.dataset == "random" || o.dataset == "sonnet" {
                let vary = |n: usize, rng: &mut Rng| {
                    let lo = (n as f64 * (1.0 - o.range_ratio)).round() as usize;
                    let hi = (n as f64 * (1.0 + o.range_ratio)).round() as usize;
                    lo + rng.below(hi - lo + 1)
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
            (prompt_text(&mut rng, i), i, out)
        })
        .collect()
}

async fn one(
    t: &Target,
    path: &str,
    body: Vec<u8>,
    prompt_len: usize,
    chat: bool,
    bench_start: Instant,
) -> Outcome {
    let st = Instant::now();
    let (mut ttft, mut last, mut itl, mut text, mut usage, mut pieces) =
        (None, st, Vec::new(), String::new(), None, 0);
    let res = client::request(t, "POST", path, Some(&body), |data, now| {
        if data == "[DONE]" {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let ptr = if chat {
            "/choices/0/delta/content"
        } else {
            "/choices/0/text"
        };
        let piece = v.pointer(ptr).and_then(Value::as_str).unwrap_or("");
        if !piece.is_empty() {
            match ttft {
                None => ttft = Some(now.duration_since(st).as_secs_f64()),
                Some(_) => itl.push(now.duration_since(last).as_secs_f64()),
            }
            last = now;
            pieces += 1;
            text.push_str(piece);
        }
        if let Some(u) = v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
        {
            usage = Some(u as usize);
        }
    })
    .await;
    let mut o = Outcome {
        prompt_len,
        output_len: usage.unwrap_or(pieces),
        ttft: ttft.unwrap_or(0.0),
        itl,
        latency: last.duration_since(st).as_secs_f64(),
        success: false,
        error: String::new(),
        text,
        start: st.duration_since(bench_start).as_secs_f64(),
    };
    match res {
        Ok(_) if ttft.is_some() => o.success = true,
        Ok(_) => o.error = "Never received a valid chunk to calculate TTFT.This response will be marked as failed!".into(),
        Err(ClientError::Status(reason)) => o.error = reason,
        Err(e) => o.error = e.text(),
    }
    o
}
