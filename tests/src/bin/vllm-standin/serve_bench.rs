//! The serving benchmark client (`vllm bench serve`, `benchmark_serving.py`): real streaming
//! requests to a real server, timed like vLLM's client (TTFT, ITL, latency per request).

use crate::args::Args;
use crate::argv::Entry;
use crate::client::{self, ClientError, Target};
use crate::faults::{self, Ctx};
use crate::logs::{err, log, out, tqdm};
use crate::numeric::{Rng, dur};
use crate::report::{self, Outcome};
use crate::serve_setup::{BodyMaker, make_requests, parse_opts, resolve, split_url};
use perf_runner_tests::standin::{Fault, StandinConfig};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
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
    let maker = Arc::new(BodyMaker {
        model: o.served_model_name.clone().unwrap_or_else(|| model.clone()),
        chat: o.chat,
        ignore_eos: o.ignore_eos,
        seed: o.seed,
    });
    let Some(&(first_len, first_max)) = requests.first() else {
        return report::finish(&o, &model, &[], 0.0);
    };
    out("Starting initial single prompt test run...");
    let body = maker.body(0, first_len, first_max);
    let test = one(
        &target,
        &o.endpoint,
        body,
        first_len,
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
    for (i, (prompt_len, max)) in requests.into_iter().enumerate() {
        if i > 0 && o.request_rate.is_finite() && o.request_rate > 0.0 {
            at += rng.exp(o.request_rate);
        }
        let (target, path, sem, maker) = (
            target.clone(),
            o.endpoint.clone(),
            sem.clone(),
            maker.clone(),
        );
        set.spawn(async move {
            tokio::time::sleep_until((start + dur(at)).into()).await;
            let _permit = match &sem {
                Some(s) => s.clone().acquire_owned().await.ok(),
                None => None,
            };
            let body = maker.body(i as u64, prompt_len, max);
            (
                i,
                one(&target, &path, body, prompt_len, maker.chat, start).await,
            )
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
        let (piece, completion_tokens) = parse_event(data, chat);
        if !piece.is_empty() {
            match ttft {
                None => ttft = Some(now.duration_since(st).as_secs_f64()),
                Some(_) => itl.push(now.duration_since(last).as_secs_f64()),
            }
            last = now;
            pieces += 1;
            text.push_str(&piece);
        }
        if completion_tokens.is_some() {
            usage = completion_tokens;
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

/// The text of one stream event and its `usage.completion_tokens`, if any. Plain token chunks
/// take a fast path (a scan, no JSON tree), so the client keeps up on a busy machine; anything
/// else (escapes, usage, other layouts) is parsed fully.
fn parse_event(data: &str, chat: bool) -> (String, Option<usize>) {
    let key = if chat {
        "\"content\":\""
    } else {
        "\"text\":\""
    };
    if !data.contains("\"usage\":{") {
        if let Some(start) = data.find(key).map(|i| i + key.len()) {
            if let Some(len) = data[start..].find('"') {
                let raw = &data[start..start + len];
                if !raw.contains('\\') {
                    return (raw.to_string(), None);
                }
            }
        }
    }
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return (String::new(), None);
    };
    let ptr = if chat {
        "/choices/0/delta/content"
    } else {
        "/choices/0/text"
    };
    let piece = v
        .pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let usage = v
        .pointer("/usage/completion_tokens")
        .and_then(Value::as_u64);
    (piece, usage.map(|u| u as usize))
}

#[cfg(test)]
mod tests {
    use super::parse_event;

    #[test]
    fn events_parse_fast_and_fully_alike() {
        let plain = r#"{"id":"c","choices":[{"index":0,"text":" the","finish_reason":null}]}"#;
        assert_eq!(parse_event(plain, false), (" the".to_string(), None));
        let escaped = r#"{"choices":[{"index":0,"text":"a\"b\n"}]}"#;
        assert_eq!(parse_event(escaped, false), ("a\"b\n".to_string(), None));
        let chat = r#"{"choices":[{"index":0,"delta":{"content":" x"}}]}"#;
        assert_eq!(parse_event(chat, true), (" x".to_string(), None));
        let usage = r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}"#;
        assert_eq!(parse_event(usage, false), (String::new(), Some(5)));
        assert_eq!(parse_event("not json", false), (String::new(), None));
    }
}
