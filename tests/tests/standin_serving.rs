//! The stand-in server and the real `bench serve` client against it, over real loopback HTTP.

mod common;

use common::{bench_serve, bin, fast, metric, run, server};
use perf_runner_tests::standin::{
    StandinConfig, free_port, http_get, http_request, write_source_tree,
};
use serde_json::Value;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(5);

#[test]
fn bench_serve_prints_vllms_block_and_saves_its_json() {
    let cfg = fast(1.0);
    let srv = server(&cfg);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let args = [
        "--num-prompts",
        "12",
        "--random-input-len",
        "32",
        "--random-output-len",
        "16",
        "--max-concurrency",
        "4",
        "--ignore-eos",
        "--save-result",
        "--save-detailed",
        "--result-dir",
        d,
        "--result-filename",
        "r.json",
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
    ];
    let r = bench_serve(&cfg, srv.port(), &args);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    let out = &r.stdout;
    assert!(
        out.contains("============ Serving Benchmark Result ============"),
        "{out}"
    );
    assert!(out.contains("---------------Time to First Token----------------"));
    assert!(out.contains("-----Time per Output Token (excl. 1st token)------"));
    assert!(out.contains("----------------End-to-end Latency----------------"));
    assert_eq!(metric(out, "Successful requests:"), 12.0);
    assert_eq!(metric(out, "Total input tokens:"), 12.0 * 32.0);
    assert_eq!(metric(out, "Total generated tokens:"), 12.0 * 16.0);
    assert!(metric(out, "Output token throughput (tok/s):") > 0.0);
    let tpot = metric(out, "Mean TPOT (ms):");
    assert!((1.5..10.0).contains(&tpot), "TPOT {tpot} ms for 400 tok/s");
    assert!(metric(out, "Mean TTFT (ms):") >= 15.0);
    assert!(out.trim_end().ends_with(&"=".repeat(50)));

    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    for k in [
        "date",
        "backend",
        "model_id",
        "tokenizer_id",
        "num_prompts",
        "request_rate",
        "duration",
        "completed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "output_throughput",
        "total_token_throughput",
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
        "p99_e2el_ms",
    ] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    assert_eq!(j["request_rate"], "inf");
    assert_eq!(j["completed"], 12);
    assert_eq!(j["output_lens"].as_array().unwrap().len(), 12);
    assert_eq!(j["itls"][0].as_array().unwrap().len(), 15);
    let ttft = j["ttfts"][0].as_f64().unwrap();
    assert!(ttft > 0.01 && ttft < 1.0, "ttfts are seconds: {ttft}");
    let printed = metric(out, "Output token throughput (tok/s):");
    assert!((j["output_throughput"].as_f64().unwrap() - printed).abs() < 0.01);

    // The server logged like vLLM: uvicorn lines, engine stats lines a parser must ignore, access log.
    let log = srv.stderr_text();
    assert!(
        log.contains(&format!(
            "Uvicorn running on http://127.0.0.1:{}",
            srv.port()
        )),
        "{log}"
    );
    assert!(log.contains("INFO:     Started server process"));
    assert!(
        log.contains("Avg prompt throughput:") && log.contains("Avg generation throughput:"),
        "{log}"
    );
    assert!(
        srv.stdout_text()
            .contains("\"POST /v1/completions HTTP/1.1\" 200 OK")
    );
}

#[test]
fn a_faster_build_gives_measurably_higher_output_throughput() {
    // Few, slow tokens keep both processes far from CPU-bound on a busy machine; noise only
    // ever slows a run, so the best of three interleaved runs per build is compared.
    let build = |speed| StandinConfig {
        tokens_per_s: 100.0,
        ..fast(speed)
    };
    let (base_cfg, fast_cfg) = (build(1.0), build(1.25));
    let (base, quick) = (server(&base_cfg), server(&fast_cfg));
    let args = [
        "--num-prompts",
        "12",
        "--random-input-len",
        "16",
        "--random-output-len",
        "16",
        "--max-concurrency",
        "6",
        "--ignore-eos",
        "--disable-tqdm",
    ];
    let tput = |cfg, port| {
        let r = bench_serve(cfg, port, &args);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        metric(&r.stdout, "Output token throughput (tok/s):")
    };
    let (mut b, mut f) = (0.0f64, 0.0f64);
    for _ in 0..3 {
        b = b.max(tput(&base_cfg, base.port()));
        f = f.max(tput(&fast_cfg, quick.port()));
    }
    eprintln!("best output throughput: {b:.1} tok/s at speed 1.0, {f:.1} tok/s at 1.25");
    assert!(
        f > 1.1 * b,
        "speed 1.25 gave {f:.1} tok/s vs {b:.1} tok/s at speed 1.0"
    );
}

#[test]
fn completions_chat_models_and_errors_over_plain_http() {
    let srv = server(&fast(1.0));
    let p = srv.port();
    let (code, body) = http_get(p, "/v1/models", T).unwrap();
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["data"][0]["id"],
        "m"
    );
    let (code, body) = http_request(
        p,
        "POST",
        "/v1/completions",
        Some(r#"{"model":"m","prompt":"a b c","max_tokens":5}"#),
        T,
    )
    .unwrap();
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 5);
    assert_eq!(v["usage"]["prompt_tokens"], 3);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let chat = r#"{"model":"m","messages":[{"role":"user","content":"hi there"}],"max_tokens":3,"stream":true}"#;
    let (code, body) = http_request(p, "POST", "/v1/chat/completions", Some(chat), T).unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("chat.completion.chunk") && body.contains("data: [DONE]"),
        "{body}"
    );
    assert_eq!(
        body.matches("\"content\":\"").count(),
        4,
        "role chunk + 3 tokens: {body}"
    );
    let (code, body) = http_request(
        p,
        "POST",
        "/v1/completions",
        Some(r#"{"model":"x","prompt":"a"}"#),
        T,
    )
    .unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("The model `x` does not exist."));
    assert_eq!(
        http_request(p, "POST", "/v1/completions", Some("{oops"), T)
            .unwrap()
            .0,
        400
    );
    assert_eq!(http_get(p, "/nope", T).unwrap().0, 404);
    assert_eq!(http_get(p, "/v1/completions", T).unwrap().0, 405);
}

#[test]
fn bench_serve_without_a_server_fails_like_vllm() {
    let port = free_port().unwrap();
    let start = Instant::now();
    let r = bench_serve(&fast(1.0), port, &["--num-prompts", "3"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr.contains("ValueError: Initial test run failed"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("Cannot connect to host 127.0.0.1:{port}"))
    );
    assert!(!r.stdout.contains("Serving Benchmark Result"));
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[test]
fn old_script_through_a_source_tree_prints_the_old_layout() {
    let cfg = perf_runner_tests::standin::StandinConfig {
        old_format: true,
        ..fast(1.0)
    };
    let srv = server(&cfg);
    let src = tempfile::tempdir().unwrap();
    write_source_tree(src.path(), bin()).unwrap();
    let script = src.path().join("benchmarks/benchmark_serving.py");
    let res = src.path().join("res");
    let port = srv.port().to_string();
    // As a `FROM scratch` image runs it: the stand-in is `python3` and gets the script's path.
    let args = [
        script.to_str().unwrap(),
        "--backend",
        "vllm",
        "--model",
        "m",
        "--dataset-name",
        "random",
        "--random-input-len",
        "8",
        "--random-output-len",
        "8",
        "--num-prompts",
        "4",
        "--port",
        &port,
        "--save-result",
        "--result-dir",
        res.to_str().unwrap(),
    ];
    let r = run(&cfg, &args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("Input token throughput (tok/s):"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("Total Token throughput"));
    let file = std::fs::read_dir(&res)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let name = file.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("vllm-infqps-m-") && name.ends_with(".json"),
        "{name}"
    );
    let j: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(
        j["ttfts"].as_array().unwrap().len(),
        4,
        "old versions always save per-request arrays"
    );
    // The script itself, run by a real Python, execs the same stand-in.
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let py = std::process::Command::new("python3")
            .arg(&script)
            .args([
                "--port",
                &port,
                "--model",
                "m",
                "--num-prompts",
                "2",
                "--random-input-len",
                "4",
            ])
            .args(["--random-output-len", "4", "--dataset-name", "random"])
            .env("VLLM_STANDIN_CONFIG", srv.dir().join("standin-config.json"))
            .output()
            .unwrap();
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        assert!(String::from_utf8_lossy(&py.stdout).contains("Serving Benchmark Result"));
    }
}
