//! What the dummy's "engine" measures: vLLM-format results computed from a build's speed, in
//! the same shapes vLLM's benchmark tools print and write (`benchmark_latency.py`,
//! `benchmark_throughput.py`, `vllm bench serve` / `benchmark_serving.py`).

use runner_core::Mode;
use serde_json::{Value, json};

/// Requests in one simulated run.
const REQUESTS: u32 = 100;
/// Prompt and output tokens per request.
const INPUT_TOKENS: u32 = 128;
/// Output tokens per request.
const OUTPUT_TOKENS: u32 = 128;

/// One run's captured stdout and, for modes whose tool writes one, its JSON result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// The client's stdout, as the vLLM tool prints it.
    pub stdout: String,
    /// The `--output-json` / `--save-result` content.
    pub json: Value,
}

/// The results of one run of `mode` on a build of relative speed `speed` (1.0 = `base`),
/// where `base` is the latency in seconds at speed 1 (every other figure follows from it).
/// `None` for the modes the dummy does not simulate.
pub fn measure(mode: Mode, base_latency_s: f64, speed: f64) -> Option<Measured> {
    let latency = base_latency_s / speed;
    match mode {
        Mode::Latency => Some(latency_run(latency)),
        Mode::Throughput => Some(throughput_run(latency)),
        Mode::Serving => Some(serving_run(latency)),
        Mode::PrefixCaching | Mode::Other => None,
    }
}

fn latency_run(avg: f64) -> Measured {
    let pcts = [10, 25, 50, 75, 90, 99];
    // A spread around the mean: the p-th percentile is avg × (0.9 + 0.2·p/100).
    let at = |p: u32| avg * (0.9 + 0.2 * f64::from(p) / 100.0);
    let mut stdout = format!("Avg latency: {avg} seconds\n");
    for p in pcts {
        stdout.push_str(&format!("{p}% percentile latency: {} seconds\n", at(p)));
    }
    let percentiles: serde_json::Map<String, Value> = pcts
        .iter()
        .map(|p| (p.to_string(), json!(at(*p))))
        .collect();
    Measured {
        stdout,
        json: json!({
            "avg_latency": avg,
            "latencies": [at(25), avg, at(75)],
            "percentiles": percentiles,
        }),
    }
}

fn throughput_run(per_request_s: f64) -> Measured {
    let elapsed = per_request_s * f64::from(REQUESTS) / 10.0;
    let rps = f64::from(REQUESTS) / elapsed;
    let tokens = REQUESTS * (INPUT_TOKENS + OUTPUT_TOKENS);
    let tps = f64::from(tokens) / elapsed;
    let out_tps = f64::from(REQUESTS * OUTPUT_TOKENS) / elapsed;
    Measured {
        stdout: format!(
            "Throughput: {rps:.2} requests/s, {tps:.2} total tokens/s, {out_tps:.2} output tokens/s\n"
        ),
        json: json!({
            "elapsed_time": elapsed,
            "num_requests": REQUESTS,
            "total_num_tokens": tokens,
            "requests_per_second": rps,
            "tokens_per_second": tps,
        }),
    }
}

fn serving_run(e2el_s: f64) -> Measured {
    let duration = e2el_s * f64::from(REQUESTS) / 10.0;
    let rps = f64::from(REQUESTS) / duration;
    let in_tokens = REQUESTS * INPUT_TOKENS;
    let out_tokens = REQUESTS * OUTPUT_TOKENS;
    let out_tps = f64::from(out_tokens) / duration;
    let total_tps = f64::from(in_tokens + out_tokens) / duration;
    let e2el_ms = e2el_s * 1000.0;
    let ttft_ms = e2el_ms * 0.1;
    let tpot_ms = (e2el_ms - ttft_ms) / f64::from(OUTPUT_TOKENS - 1);
    let rule = "=".repeat(50);
    let stdout = format!(
        "{:=^50}\nSuccessful requests:                     {REQUESTS}\n\
         Benchmark duration (s):                  {duration:.2}\n\
         Total input tokens:                      {in_tokens}\n\
         Total generated tokens:                  {out_tokens}\n\
         Request throughput (req/s):              {rps:.2}\n\
         Output token throughput (tok/s):         {out_tps:.2}\n\
         Total Token throughput (tok/s):          {total_tps:.2}\n\
         Mean TTFT (ms):                          {ttft_ms:.2}\n\
         Median TTFT (ms):                        {ttft_ms:.2}\n\
         P99 TTFT (ms):                           {:.2}\n\
         Mean TPOT (ms):                          {tpot_ms:.2}\n\
         Median TPOT (ms):                        {tpot_ms:.2}\n\
         P99 TPOT (ms):                           {:.2}\n\
         Mean E2EL (ms):                          {e2el_ms:.2}\n{rule}\n",
        " Serving Benchmark Result ",
        ttft_ms * 1.5,
        tpot_ms * 1.5,
    );
    Measured {
        stdout,
        json: json!({
            "completed": REQUESTS,
            "failed": 0,
            "duration": duration,
            "total_input_tokens": in_tokens,
            "total_output_tokens": out_tokens,
            "request_throughput": rps,
            "output_throughput": out_tps,
            "total_token_throughput": total_tps,
            "mean_ttft_ms": ttft_ms,
            "median_ttft_ms": ttft_ms,
            "p99_ttft_ms": ttft_ms * 1.5,
            "mean_tpot_ms": tpot_ms,
            "median_tpot_ms": tpot_ms,
            "p99_tpot_ms": tpot_ms * 1.5,
            "mean_e2el_ms": e2el_ms,
        }),
    }
}

/// What a client that ran out of GPU memory prints on stderr (vLLM / PyTorch's message).
pub const OOM_STDERR: &str = "Traceback (most recent call last):\n  File \"benchmark.py\", line 1, in <module>\n\
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total \
capacity of 79.11 GiB of which 1.02 GiB is free.\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_faster_build_measures_faster_in_every_simulated_mode() {
        let lat = |s| measure(Mode::Latency, 1.0, s).unwrap().json["avg_latency"].clone();
        assert_eq!((lat(1.0), lat(2.0)), (json!(1.0), json!(0.5)));
        let tp = |s| measure(Mode::Throughput, 1.0, s).unwrap().json["tokens_per_second"].clone();
        assert!(tp(2.0).as_f64() > tp(1.0).as_f64());
        let sv = |s| measure(Mode::Serving, 1.0, s).unwrap().json["output_throughput"].clone();
        assert!(sv(1.25).as_f64() > sv(1.0).as_f64());
        assert_eq!(measure(Mode::Other, 1.0, 1.0), None);
    }
}
