//! Offline benchmarks (no server): throughput, latency and prefix caching. "The engine" sleeps
//! as the build's speed says, prints vLLM-like noise on stderr and vLLM's result lines on stdout.

use crate::args::{ArgError, Args};
use crate::argv::{Entry, Mode};
use crate::faults::{self, Ctx, Start};
use crate::logs::{err, log, out, py_float, tqdm};
use crate::numeric::{Rng, dur, mean, percentile};
use perf_runner_tests::standin::{Fault, StandinConfig};
use serde_json::json;
use std::time::{Duration, Instant};

/// The simulated engine of one offline run.
struct Engine {
    cfg: StandinConfig,
    ctx: Ctx,
    rng: Rng,
    processed: u64,
}

impl Engine {
    /// Seconds one batch of `batch` sequences takes: prefill, first token, `out` decode steps.
    fn batch_secs(&mut self, batch: usize, input: usize, out: usize) -> f64 {
        let c = &self.cfg;
        let prefill = (batch * input) as f64 / c.prefill_tokens_per_s;
        let decode = out.saturating_sub(1) as f64 / c.tokens_per_s * (1.0 + batch as f64 / 1024.0);
        (c.ttft_ms / 1000.0 + prefill + decode) / c.speed * self.rng.factor(c.jitter)
    }

    /// Sleeps `secs`, then counts `done` prompts; `crash_mid_run` strikes past `fault_after`.
    fn run(&mut self, secs: f64, done: usize) {
        std::thread::sleep(dur(secs));
        self.processed += done as u64;
        if self.cfg.fault == Some(Fault::CrashMidRun) && self.processed > self.cfg.fault_after {
            faults::crash_mid_run(&self.ctx);
            std::process::exit(1);
        }
    }
}

fn hang(unkillable: bool) -> ! {
    if unkillable {
        // SAFETY: setting a signal disposition to SIG_IGN has no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGTERM, libc::SIG_IGN);
            libc::signal(libc::SIGINT, libc::SIG_IGN);
        }
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Runs an offline benchmark; returns the exit code.
pub fn run(mode: Mode, entry: &Entry, args: &Args, cfg: StandinConfig) -> i32 {
    if args.wants_help() {
        return args.help();
    }
    if let Some(code) = faults::argparse_fault(&cfg, args) {
        return code;
    }
    let model = match args.string_or("model", "facebook/opt-125m") {
        Ok(m) => m,
        Err(e) => return args.fail(&e),
    };
    let old = cfg.old_format;
    let ctx = Ctx::new(entry, &model, old);
    log(
        "INFO",
        "__init__.py:239",
        "Automatically detected platform cuda.",
        old,
    );
    out(&format!(
        "Namespace(model='{model}', seed=0, tensor_parallel_size=1, enforce_eager=False)"
    ));
    log(
        "INFO",
        "llm_engine.py:175",
        &format!(
            "Initializing an LLM engine (v{}) with config: model='{model}', tokenizer='{model}', dtype=torch.bfloat16, seed=0",
            cfg.version
        ),
        old,
    );
    std::thread::sleep(Duration::from_millis(cfg.startup_ms / 2));
    match faults::engine_start(&cfg, &ctx) {
        Start::Exit(code) => return code,
        Start::Hang { unkillable } => {
            log(
                "INFO",
                "model_runner.py:719",
                &format!("Starting to load model {model}..."),
                old,
            );
            hang(unkillable);
        }
        Start::Continue => {}
    }
    log(
        "INFO",
        "model_runner.py:731",
        "Loading model weights took 14.9595 GB",
        old,
    );
    std::thread::sleep(Duration::from_millis(cfg.startup_ms - cfg.startup_ms / 2));
    log(
        "INFO",
        "gpu_executor.py:102",
        "# GPU blocks: 27901, # CPU blocks: 2048",
        old,
    );
    let seed = cfg.seed;
    let mut engine = Engine {
        cfg,
        ctx,
        rng: Rng::new(seed, 0x0FF),
        processed: 0,
    };
    let result = match mode {
        Mode::Throughput => throughput(args, &mut engine),
        Mode::Latency => latency(args, &mut engine),
        _ => prefix_caching(args, &mut engine),
    };
    match result {
        Ok(code) => code,
        Err(e) => args.fail(&e),
    }
}

fn write_json(args: &Args, value: serde_json::Value) -> Result<i32, ArgError> {
    if let Some(path) = args.value("output-json")? {
        if let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&value).unwrap_or_default(),
        ) {
            err(&format!(
                "FileNotFoundError: [Errno {}] {e}: '{path}'",
                e.raw_os_error().unwrap_or(2)
            ));
            return Ok(1);
        }
    }
    Ok(0)
}

fn speed_postfix(n: usize, input: usize, output: usize, elapsed: f64) -> String {
    let e = elapsed.max(1e-9);
    format!(
        "est. speed input: {:.2} toks/s, output: {:.2} toks/s",
        n as f64 * input as f64 / e,
        n as f64 * output as f64 / e
    )
}

/// Runs `n` prompts in waves of `max_seqs`, printing tqdm lines; returns the elapsed seconds.
fn process(
    e: &mut Engine,
    n: usize,
    input: usize,
    output: usize,
    max_seqs: usize,
    input_cost: f64,
) -> f64 {
    let start = Instant::now();
    err(&tqdm(
        "Processed prompts",
        0,
        n,
        0.0,
        &speed_postfix(0, input, output, 1.0),
    ));
    let mut done = 0;
    while done < n {
        let wave = (n - done).min(max_seqs.max(1));
        let secs = e.batch_secs(wave, (input as f64 * input_cost) as usize, output);
        e.run(secs, wave);
        done += wave;
        let el = start.elapsed().as_secs_f64();
        err(&tqdm(
            "Processed prompts",
            done,
            n,
            el,
            &speed_postfix(done, input, output, el),
        ));
    }
    start.elapsed().as_secs_f64()
}

fn throughput(args: &Args, e: &mut Engine) -> Result<i32, ArgError> {
    let input = args.usize_or("input-len", 1024)?;
    let output = args.usize_or("output-len", 128)?;
    let n = args.usize_or("num-prompts", 1000)?;
    let max_seqs = args.usize_or("max-num-seqs", 256)?;
    let elapsed = process(e, n, input, output, max_seqs, 1.0).max(1e-9);
    let (prompt_tokens, output_tokens) = (n * input, n * output);
    let total = prompt_tokens + output_tokens;
    if e.cfg.old_format {
        out(&format!(
            "Throughput: {:.2} requests/s, {:.2} tokens/s",
            n as f64 / elapsed,
            total as f64 / elapsed
        ));
    } else {
        out(&format!(
            "Throughput: {:.2} requests/s, {:.2} total tokens/s, {:.2} output tokens/s",
            n as f64 / elapsed,
            total as f64 / elapsed,
            output_tokens as f64 / elapsed
        ));
        out(&format!("Total num prompt tokens:  {prompt_tokens}"));
        out(&format!("Total num output tokens:  {output_tokens}"));
    }
    write_json(
        args,
        json!({
            "elapsed_time": elapsed, "num_requests": n, "total_num_tokens": total,
            "requests_per_second": n as f64 / elapsed, "tokens_per_second": total as f64 / elapsed,
        }),
    )
}

fn latency(args: &Args, e: &mut Engine) -> Result<i32, ArgError> {
    let input = args.usize_or("input-len", 32)?;
    let output = args.usize_or("output-len", 128)?;
    let batch = args.usize_or("batch-size", 8)?;
    let iters = args.usize_or("num-iters", 30)?;
    let warmup = args.usize_or("num-iters-warmup", 10)?;
    let run_iters = |desc: &str, k: usize, e: &mut Engine| -> Vec<f64> {
        let start = Instant::now();
        err(&tqdm(desc, 0, k, 0.0, ""));
        let mut lat = Vec::with_capacity(k);
        for i in 0..k {
            let t = Instant::now();
            let secs = e.batch_secs(batch, input, output);
            e.run(secs, batch);
            lat.push(t.elapsed().as_secs_f64());
            err(&tqdm(desc, i + 1, k, start.elapsed().as_secs_f64(), ""));
        }
        lat
    };
    out("Warming up...");
    run_iters("Warmup iterations", warmup, e);
    let lat = run_iters("Profiling iterations", iters, e);
    let avg = mean(&lat);
    out(&format!("Avg latency: {} seconds", py_float(avg)));
    let mut pct = serde_json::Map::new();
    for p in [10, 25, 50, 75, 90, 99] {
        let v = percentile(&lat, f64::from(p));
        out(&format!("{p}% percentile latency: {} seconds", py_float(v)));
        pct.insert(p.to_string(), json!(v));
    }
    write_json(
        args,
        json!({"avg_latency": avg, "latencies": lat, "percentiles": pct}),
    )
}

fn prefix_caching(args: &Args, e: &mut Engine) -> Result<i32, ArgError> {
    let output = args.usize_or("output-len", 10)?;
    let n = args
        .usize_or("num-prompts", 1)?
        .saturating_mul(args.usize_or("repeat-count", 100)?);
    let range = args.string_or("input-length-range", "128:256")?;
    let (lo, hi) = range
        .split_once(':')
        .and_then(|(a, b)| {
            Some((
                a.trim().parse::<usize>().ok()?,
                b.trim().parse::<usize>().ok()?,
            ))
        })
        .ok_or_else(|| {
            ArgError(format!(
                "argument --input-length-range: invalid value: '{range}'"
            ))
        })?;
    let input = (lo + hi.max(lo)) / 2;
    let cached = args.has("enable-prefix-caching");
    if args.has("dataset-path") {
        out("Testing filtered datasets");
    }
    out("------warm up------");
    let t = process(e, n, input, output, 256, 1.0);
    out(&format!("cost time {}", py_float(t)));
    out("------start generating------");
    let t = process(e, n, input, output, 256, if cached { 0.1 } else { 1.0 });
    out(&format!("cost time {}", py_float(t)));
    Ok(0)
}
