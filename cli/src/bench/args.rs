//! The flags of `perf-runner bench serve`: those of `vllm bench serve` that perf commands use,
//! with the same names, defaults and meanings.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// The request format (vLLM's `--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// `/v1/completions`, streamed.
    Openai,
    /// `/v1/chat/completions`, streamed.
    #[value(name = "openai-chat")]
    OpenaiChat,
    /// vLLM's own name for the completions format.
    Vllm,
}

impl Backend {
    /// The name as given on the command line (and saved in the result).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Openai => "openai",
            Backend::OpenaiChat => "openai-chat",
            Backend::Vllm => "vllm",
        }
    }

    /// Whether requests use the chat format.
    pub fn chat(self) -> bool {
        self == Backend::OpenaiChat
    }

    /// The default endpoint of the format.
    pub fn default_endpoint(self) -> &'static str {
        if self.chat() {
            "/v1/chat/completions"
        } else {
            "/v1/completions"
        }
    }
}

/// `bench serve` options.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Request format.
    #[arg(long, value_enum, default_value = "openai")]
    pub backend: Backend,
    /// Server base URL (`http://host:port`), instead of --host/--port.
    #[arg(long)]
    pub base_url: Option<String>,
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Server port.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// API path (default: the backend's, `/v1/completions` or `/v1/chat/completions`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Extra request headers, `KEY=VALUE`.
    #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
    pub header: Vec<String>,
    /// Model name (default: the first of the server's `/v1/models`).
    #[arg(long)]
    pub model: Option<String>,
    /// Model name sent in requests, when it differs from --model.
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Tokenizer: a `tokenizer.json`, a folder holding one, or a Hugging Face id found in the
    /// local cache (default: --model).
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Accepted for compatibility; only the fast `tokenizer.json` is read.
    #[arg(long, default_value = "auto")]
    pub tokenizer_mode: String,
    /// Accepted for compatibility; nothing is executed from a tokenizer folder.
    #[arg(long)]
    pub trust_remote_code: bool,
    /// Dataset: `random` or `sharegpt`.
    #[arg(long, default_value = "random")]
    pub dataset_name: String,
    /// Dataset file (sharegpt: a JSON array of conversations).
    #[arg(long)]
    pub dataset_path: Option<PathBuf>,
    /// Number of requests.
    #[arg(long, default_value_t = 1000)]
    pub num_prompts: usize,
    /// General input length (sets --random-input-len).
    #[arg(long)]
    pub input_len: Option<usize>,
    /// General output length (sets --random-output-len and --sharegpt-output-len).
    #[arg(long)]
    pub output_len: Option<usize>,
    /// Random dataset: input tokens per request (after the prefix).
    #[arg(long, default_value_t = 1024)]
    pub random_input_len: usize,
    /// Random dataset: output tokens per request.
    #[arg(long, default_value_t = 128)]
    pub random_output_len: usize,
    /// Random dataset: lengths drawn uniformly from [len·(1−r), len·(1+r)], 0 ≤ r < 1.
    #[arg(long, default_value_t = 0.0)]
    pub random_range_ratio: f64,
    /// Random dataset: tokens of a prefix shared by every request.
    #[arg(long, default_value_t = 0)]
    pub random_prefix_len: usize,
    /// ShareGPT: output tokens per request (default: the reference answer's length).
    #[arg(long)]
    pub sharegpt_output_len: Option<usize>,
    /// Requests per second, or `inf` (all at once).
    #[arg(long, default_value = "inf", value_parser = parse_rate)]
    pub request_rate: f64,
    /// Burstiness of arrivals (gamma shape; 1 = Poisson), > 0.
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// Most requests in flight at once.
    #[arg(long)]
    pub max_concurrency: Option<usize>,
    /// Random seed (dataset and arrivals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Ask the server to ignore end-of-sequence tokens (always on for `random`, as in vLLM).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Warm-up requests (the first prompt) before the measured run.
    #[arg(long, default_value_t = 0)]
    pub num_warmups: usize,
    /// Seconds to wait for the endpoint with a test request before the run (0: no check).
    #[arg(long, default_value_t = 0)]
    pub ready_check_timeout_sec: u64,
    /// Metrics with percentiles: ttft,tpot,itl,e2el,client_queue_time,e2el_including_client_queue.
    #[arg(long, default_value = "ttft,tpot,itl")]
    pub percentile_metrics: String,
    /// Percentiles reported, comma-separated.
    #[arg(long, default_value = "99")]
    pub metric_percentiles: String,
    /// Service-level objectives for goodput, `KEY:VALUE` in ms (ttft, tpot, e2el).
    #[arg(long, num_args = 1.., value_name = "KEY:VALUE")]
    pub goodput: Vec<String>,
    /// Sampling: temperature.
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Sampling: top-p.
    #[arg(long)]
    pub top_p: Option<f64>,
    /// Sampling: top-k.
    #[arg(long, allow_negative_numbers = true)]
    pub top_k: Option<i64>,
    /// Sampling: min-p.
    #[arg(long)]
    pub min_p: Option<f64>,
    /// Extra JSON merged into every request body.
    #[arg(long)]
    pub extra_body: Option<String>,
    /// Save the result JSON.
    #[arg(long)]
    pub save_result: bool,
    /// With --save-result: also the per-request arrays.
    #[arg(long)]
    pub save_detailed: bool,
    /// Folder of the result JSON (created).
    #[arg(long)]
    pub result_dir: Option<PathBuf>,
    /// Name of the result JSON (default: `{label}-{rate}qps[-concurrency{C}]-{model}-{date}.json`).
    #[arg(long)]
    pub result_filename: Option<String>,
    /// Label of the result (default: --backend).
    #[arg(long)]
    pub label: Option<String>,
    /// `KEY=VALUE` pairs saved in the result JSON.
    #[arg(long, num_args = 0.., value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// No progress lines.
    #[arg(long)]
    pub disable_tqdm: bool,
    /// Seconds one request may take before it fails.
    #[arg(long, default_value_t = 6.0 * 3600.0)]
    pub request_timeout_s: f64,
}

/// `inf` or a positive number.
fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("not a number or inf: {s:?}"))?;
    if v.is_nan() || v <= 0.0 {
        return Err(format!("must be > 0 (or inf), got {s}"));
    }
    Ok(v)
}

/// The comma-separated percentiles of --metric-percentiles, each in [0, 100].
pub fn percentiles(s: &str) -> Result<Vec<f64>, String> {
    s.split(',')
        .map(|p| {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("--metric-percentiles: not a number: {p:?}"))?;
            if (0.0..=100.0).contains(&v) {
                Ok(v)
            } else {
                Err(format!("--metric-percentiles: {v} is not in [0, 100]"))
            }
        })
        .collect()
}

/// Metric names --percentile-metrics accepts.
pub const METRICS: &[&str] = &[
    "ttft",
    "tpot",
    "itl",
    "e2el",
    "client_queue_time",
    "e2el_including_client_queue",
];

/// The selected metrics of --percentile-metrics.
pub fn metric_names(s: &str) -> Result<Vec<String>, String> {
    s.split(',')
        .map(|m| {
            let m = m.trim();
            if METRICS.contains(&m) {
                Ok(m.to_string())
            } else {
                Err(format!(
                    "--percentile-metrics: unknown metric {m:?} (known: {})",
                    METRICS.join(", ")
                ))
            }
        })
        .collect()
}

/// The service-level objectives of --goodput, in ms.
pub fn goodput(pairs: &[String]) -> Result<Vec<(String, f64)>, String> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p.split_once(':').ok_or_else(|| {
                format!("--goodput: {p:?} is not KEY:VALUE (a metric name and milliseconds)")
            })?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("--goodput: {p:?}: not a number of milliseconds"))?;
            if !matches!(k, "ttft" | "tpot" | "e2el") {
                return Err(format!("--goodput: {k:?} is not one of ttft, tpot, e2el"));
            }
            if v.is_nan() || v < 0.0 || v.is_infinite() {
                return Err(format!("--goodput: {k}: {v} must be a finite value ≥ 0"));
            }
            Ok((k.to_string(), v))
        })
        .collect()
}

/// `KEY=VALUE` pairs (--header, --metadata).
pub fn key_values(flag: &str, pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("{flag}: {p:?} is not KEY=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_percentiles_and_goodput_parse_like_vllm() {
        assert_eq!(parse_rate("inf"), Ok(f64::INFINITY));
        assert_eq!(parse_rate("12.5"), Ok(12.5));
        assert!(parse_rate("0").is_err() && parse_rate("nan").is_err());
        assert_eq!(percentiles("50, 99.9"), Ok(vec![50.0, 99.9]));
        assert!(percentiles("101").is_err());
        assert_eq!(
            goodput(&["ttft:100".into(), "tpot:5".into()]),
            Ok(vec![("ttft".into(), 100.0), ("tpot".into(), 5.0)])
        );
        assert!(goodput(&["itl:5".into()]).is_err());
        assert!(goodput(&["ttft".into()]).is_err());
        assert!(metric_names("ttft,foo").is_err());
    }
}
