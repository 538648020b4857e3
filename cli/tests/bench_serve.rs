//! `perf-runner bench serve`, the real binary, against the stand-in engine's streaming server
//! (known first-token delay and token rate) and against tiny broken servers of the test.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use perf_runner_tests::standin::{StandinConfig, StandinServer, free_port, standin_binary};
use serde_json::Value;

fn perf_runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_perf-runner"))
        .args(args)
        .env_remove("OPENAI_API_KEY")
        .env("HF_HUB_CACHE", "/nonexistent-hub-cache")
        .output()
        .expect("run perf-runner")
}

/// `bench serve` of `prompts` tiny requests (4 tokens in, 4 out) to `model` on `port`, plus
/// `extra` flags.
fn tiny_bench(port: &str, model: &str, prompts: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "bench",
        "serve",
        "--port",
        port,
        "--model",
        model,
        "--num-prompts",
        prompts,
        "--random-input-len",
        "4",
        "--random-output-len",
        "4",
    ];
    args.extend_from_slice(extra);
    perf_runner(&args)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A stand-in server: `ttft_ms` to the first token, then one token every `1000 / tokens_per_s`
/// ms, no jitter.
fn server(ttft_ms: f64, tokens_per_s: f64) -> StandinServer {
    let cfg = StandinConfig {
        ttft_ms,
        tokens_per_s,
        jitter: 0.0,
        startup_ms: 50,
        log_interval_ms: 60_000,
        ..StandinConfig::default()
    };
    let mut s = StandinServer::start(&standin_binary(), Some(&cfg), "m", &[]).expect("spawn");
    s.wait_ready(Duration::from_secs(20)).expect("server ready");
    s
}

/// The number after `label` on the block line starting with it.
fn metric(out: &str, label: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"));
    line[label.len()..].trim().parse().expect("a number")
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("result file")).expect("JSON")
}

#[test]
fn tpot_is_the_configured_token_delay_at_100_rps_and_parse_reads_the_result() {
    let srv = server(20.0, 100.0);
    let dir = tempfile::tempdir().unwrap();
    let port = srv.port().to_string();
    let d = dir.path().to_str().unwrap();
    let o = perf_runner(&[
        "bench",
        "serve",
        "--port",
        &port,
        "--model",
        "m",
        "--dataset-name",
        "random",
        "--random-input-len",
        "16",
        "--random-output-len",
        "21",
        "--num-prompts",
        "200",
        "--request-rate",
        "100",
        "--seed",
        "3",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
        "--metric-percentiles",
        "50,99",
        "--save-result",
        "--save-detailed",
        "--result-dir",
        d,
        "--result-filename",
        "r.json",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("============ Serving Benchmark Result ============"));
    assert_eq!(metric(&out, "Successful requests:"), 200.0);
    assert_eq!(metric(&out, "Total input tokens:"), 200.0 * 16.0);
    assert_eq!(metric(&out, "Total generated tokens:"), 200.0 * 21.0);
    let j = read_json(&dir.path().join("r.json"));
    let tpot = j["mean_tpot_ms"].as_f64().unwrap();
    let error = (tpot - 10.0).abs() / 10.0;
    eprintln!(
        "mean TPOT {tpot:.4} ms for a 10 ms token delay: error {:.3} %",
        error * 100.0
    );
    assert!(error < 0.02, "mean TPOT {tpot} ms, configured 10 ms");
    let ttft = j["mean_ttft_ms"].as_f64().unwrap();
    assert!(
        (20.0..40.0).contains(&ttft),
        "TTFT {ttft} ms for 20 ms configured"
    );
    assert_eq!(j["itls"][0].as_array().unwrap().len(), 20);
    assert_eq!(j["request_rate"], 100.0);
    assert_eq!(j["tokenizer_approximated"], true);
    let started = j["start_to_first_request_ms"].as_f64().unwrap();
    eprintln!(
        "start to first request {started:.1} ms; overhead {} ms/request",
        j["client_overhead_mean_ms"]
    );
    assert!(started <= 200.0, "start to first request {started} ms");

    // `perf-runner parse` reads the JSON and the printed block into the same metrics.
    let block = dir.path().join("stdout.txt");
    std::fs::write(&block, &out).unwrap();
    let result = dir.path().join("r.json");
    let p = perf_runner(&[
        "parse",
        "--format",
        "json",
        result.to_str().unwrap(),
        block.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&p.stdout).expect("parse JSON");
    let (from_json, from_text) = (&v["results"][0], &v["results"][1]);
    assert_eq!(from_json["format"], "serving_json");
    assert_eq!(from_text["format"], "serving_text");
    for key in [
        "completed",
        "request_throughput_rps",
        "output_throughput_tps",
        "ttft_mean_ms",
        "ttft_median_ms",
        "ttft_p99_ms",
        "tpot_mean_ms",
        "tpot_p50_ms",
        "itl_p99_ms",
        "e2el_median_ms",
        "total_throughput_tps",
        "peak_concurrent_requests",
    ] {
        let (a, b) = (&from_json["metrics"][key], &from_text["metrics"][key]);
        let (a, b) = (
            a.as_f64().unwrap_or(f64::NAN),
            b.as_f64().unwrap_or(f64::NAN),
        );
        assert!((a - b).abs() <= 0.006, "{key}: JSON {a} vs text {b}");
    }
}

/// A WordLevel `tokenizer.json` of `n` words (`t0`…), whitespace pre-tokenized.
fn word_tokenizer(dir: &Path, n: usize) {
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for i in 1..n {
        vocab.insert(format!("t{i}"), i.into());
    }
    let t = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 0, "content": "[UNK]", "single_word": false, "lstrip": false,
                          "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    std::fs::write(dir.join("tokenizer.json"), t.to_string()).unwrap();
}

#[test]
fn a_tokenizer_json_gives_exact_prompt_lengths_and_chat_sharegpt_goodput_work() {
    let srv = server(5.0, 1000.0);
    let dir = tempfile::tempdir().unwrap();
    word_tokenizer(dir.path(), 300);
    let (port, d) = (srv.port().to_string(), dir.path().to_str().unwrap());
    let o = perf_runner(&[
        "bench",
        "serve",
        "--port",
        &port,
        "--model",
        "m",
        "--tokenizer",
        d,
        "--random-input-len",
        "32",
        "--random-prefix-len",
        "8",
        "--random-output-len",
        "4",
        "--random-range-ratio",
        "0.25",
        "--num-prompts",
        "30",
        "--max-concurrency",
        "3",
        "--save-result",
        "--result-dir",
        d,
        "--result-filename",
        "r.json",
        "--save-detailed",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(!err.contains("APPROXIMATED"), "{err}");
    assert_eq!(metric(&out, "Maximum request concurrency:"), 3.0);
    let j = read_json(&dir.path().join("r.json"));
    // At most 3 in flight, as the server counted them. Peak concurrency counts, as vLLM's
    // client does, every request alive in a one-second bucket: within one second, all 30.
    let (code, body) = perf_runner_tests::standin::http_get(
        srv.port(),
        "/standin/peak_running",
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let server: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(server["peak_running"], 3, "{body}");
    let duration = j["duration"].as_f64().unwrap();
    let peak = metric(&out, "Peak concurrent requests:");
    match duration < 1.0 {
        true => assert_eq!(peak, 30.0),
        false => assert!((3.0..=30.0).contains(&peak), "peak {peak}"),
    }
    assert_eq!(j["tokenizer_approximated"], false);
    // The server counts words; every prompt is exactly prefix + drawn length tokens.
    for len in j["input_lens"].as_array().unwrap() {
        let len = len.as_u64().unwrap();
        assert!((8 + 24..=8 + 40).contains(&len), "prompt of {len} tokens");
    }

    let conv = |a: &str, b: &str| serde_json::json!({"conversations": [{"from": "human", "value": a}, {"from": "gpt", "value": b}]});
    let data = serde_json::json!([
        conv("t1 t2 t3 t4 t5 t6", "t7 t8 t9 t10 t11"),
        conv("t9 t8 t7 t6 t5 t4 t3 t2", "t1 t2 t3 t4"),
    ]);
    let path = dir.path().join("sharegpt.json");
    std::fs::write(&path, data.to_string()).unwrap();
    let o = perf_runner(&[
        "bench",
        "serve",
        "--base-url",
        &format!("http://127.0.0.1:{port}"),
        "--backend",
        "openai-chat",
        "--endpoint",
        "/v1/chat/completions",
        "--model",
        "m",
        "--tokenizer",
        d,
        "--dataset-name",
        "sharegpt",
        "--dataset-path",
        path.to_str().unwrap(),
        "--num-prompts",
        "6",
        "--goodput",
        "ttft:5000",
        "tpot:1",
        "--request-rate",
        "50",
        "--burstiness",
        "0.5",
        "--disable-tqdm",
    ]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert_eq!(metric(&out, "Successful requests:"), 6.0);
    assert!(metric(&out, "Total generated tokens:") >= 24.0);
    assert!(out.contains("Request goodput (req/s):"), "{out}");
}

#[test]
fn a_server_that_is_down_fails_every_request_and_exits_non_zero_with_the_first_error() {
    let port = free_port().unwrap().to_string();
    let o = tiny_bench(&port, "m", "4", &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}\n{err}");
    assert_eq!(metric(&out, "Failed requests:"), 4.0);
    assert!(
        err.contains("all 4 requests failed; the first error: request failed"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("connect"), "{err}");
}

#[test]
fn an_unknown_model_is_an_http_404_per_request() {
    let srv = server(1.0, 1000.0);
    let port = srv.port().to_string();
    let o = tiny_bench(&port, "other", "3", &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(4), "{out}\n{err}");
    assert!(err.contains("HTTP 404 Not Found"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

/// A one-shot-per-connection HTTP server answering every request with `reply`. A reply that
/// ends cleanly must say `connection: close`: otherwise the client may pool the connection and
/// send its next request on it just as this server drops it, and fail that request with
/// "connection closed before message completed" instead of the reason under test.
fn tiny_server(reply: &'static [u8]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut got = Vec::new();
                // Headers, then the Content-Length body.
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = c.write_all(reply);
                // Dropped: the connection closes (mid-stream for a chunked reply).
            });
        }
    });
    port
}

#[test]
fn malformed_events_and_resets_are_failed_requests_with_reasons() {
    const HEAD: &str =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
    let bad: &'static [u8] = Box::leak(
        format!(
            "{HEAD}data: {{\"choices\":[{{\"text\":\"a\"}}]}}\n\ndata: {{\"choices\": [oops\n\n"
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let event = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
    let reset: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
             transfer-encoding: chunked\r\n\r\n{:x}\r\n{event}\r\n",
            event.len()
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    // An error page of 4 MiB: the reason quotes its start.
    let big: &'static [u8] = Box::leak(
        format!(
            "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{}",
            4 << 20,
            "z".repeat(4 << 20)
        )
        .into_bytes()
        .into_boxed_slice(),
    );
    let big_reason = format!("HTTP 500 Internal Server Error: {}…", "z".repeat(300));
    for (reply, reason) in [
        (big, big_reason.as_str()),
        (bad, "malformed SSE event"),
        (reset, "stream broken after 1 chunks"),
        (
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            "stream ended without `data: [DONE]` after 0 chunks",
        ),
        (
            &b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 14\r\n\r\ndata: [DONE]\n\n"[..],
            "Never received a valid chunk",
        ),
        (
            &b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 4\r\n\r\nbusy"[..],
            "HTTP 503 Service Unavailable: busy",
        ),
    ] {
        let port = tiny_server(reply).to_string();
        let o = tiny_bench(&port, "m", "3", &["--disable-tqdm"]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(4), "{reason}: {out}\n{err}");
        assert_eq!(metric(&out, "Failed requests:"), 3.0);
        assert!(err.contains(reason), "{reason}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn bad_flags_are_usage_errors_not_panics() {
    for args in [
        &["--request-rate", "-1"][..],
        &["--request-rate", "fast"],
        &["--percentile-metrics", "ttft,bogus"],
        &["--goodput", "itl:5"],
        &["--max-concurrency", "0"],
        &["--burstiness", "0"],
        &["--dataset-name", "sonnet"],
        &["--dataset-name", "sharegpt"],
        &["--extra-body", "[1]"],
        &["--random-range-ratio", "1.5"],
        &["--num-prompts", "0"],
    ] {
        let mut v = vec!["bench", "serve", "--port", "9", "--model", "m"];
        v.extend(args);
        let o = perf_runner(&v);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}\n{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
