//! vLLM's serving metrics from the requests' outcomes: TTFT, TPOT per request
//! (`(latency − ttft) / (output tokens − 1)`), ITL per chunk, E2EL, throughputs over the whole
//! run, goodput against SLOs, peak output tokens per second and peak concurrency. Statistics as
//! numpy computes them (population std, linearly interpolated percentiles, 0 when empty).

use super::request::Outcome;
use super::tokenizer::Tok;

/// Mean, 0 for no values.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Population standard deviation, 0 for no values.
pub fn std_dev(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
}

/// The `p`-th percentile, linear between closest ranks (numpy's default), 0 for no values.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (p / 100.0).clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (rank - lo as f64)
}

/// One metric's statistics, in ms.
#[derive(Debug, Clone)]
pub struct Stat {
    /// Its name (`ttft`, …).
    pub name: String,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
    /// Standard deviation.
    pub std: f64,
    /// (percentile, value).
    pub percentiles: Vec<(f64, f64)>,
}

/// Everything the result block and JSON report.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub completed: usize,
    pub failed: usize,
    pub total_input: usize,
    pub total_output: usize,
    /// Output tokens per request (0 for failed ones).
    pub output_lens: Vec<usize>,
    pub request_throughput: f64,
    pub request_goodput: f64,
    pub output_throughput: f64,
    pub total_token_throughput: f64,
    pub max_output_tokens_per_s: f64,
    pub max_concurrent_requests: usize,
    /// Selected metrics, in the order asked.
    pub stats: Vec<Stat>,
}

/// Per-request values of `name` in seconds (successful requests only).
fn values(name: &str, ok: &[(&Outcome, usize)]) -> Vec<f64> {
    match name {
        "ttft" => ok.iter().map(|(o, _)| o.ttft).collect(),
        "tpot" => ok
            .iter()
            .filter(|(_, n)| *n > 1)
            .map(|(o, n)| (o.latency - o.ttft) / (*n - 1) as f64)
            .collect(),
        "itl" => ok.iter().flat_map(|(o, _)| o.itl.iter().copied()).collect(),
        "e2el" => ok.iter().map(|(o, _)| o.latency).collect(),
        "client_queue_time" => ok.iter().map(|(o, _)| o.queue).collect(),
        "e2el_including_client_queue" => ok.iter().map(|(o, _)| o.latency + o.queue).collect(),
        _ => Vec::new(),
    }
}

/// Computes the summary. `goodput`: SLOs in ms by metric (ttft, tpot, e2el).
pub fn summarize(
    outcomes: &[Outcome],
    duration: f64,
    tok: &Tok,
    metrics: &[String],
    percentiles: &[f64],
    goodput: &[(String, f64)],
) -> Summary {
    let output_lens: Vec<usize> = outcomes
        .iter()
        .map(|o| match (o.success, o.usage_output) {
            (false, _) => 0,
            (true, Some(n)) if n > 0 => n,
            (true, _) => tok.count(&o.text),
        })
        .collect();
    let ok: Vec<(&Outcome, usize)> = outcomes
        .iter()
        .zip(&output_lens)
        .filter(|(o, _)| o.success)
        .map(|(o, n)| (o, *n))
        .collect();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };
    let total_input: usize = ok.iter().map(|(o, _)| o.prompt_len).sum();
    let total_output: usize = output_lens.iter().sum();
    let good = ok
        .iter()
        .filter(|(o, n)| {
            goodput.iter().all(|(k, slo_ms)| {
                let v = match k.as_str() {
                    "ttft" => o.ttft,
                    // A request of one token has TPOT 0 here, as in vLLM.
                    "tpot" if *n > 1 => (o.latency - o.ttft) / (*n - 1) as f64,
                    "tpot" => 0.0,
                    _ => o.latency,
                };
                v * 1000.0 <= *slo_ms
            })
        })
        .count();
    let (peak_tps, peak_conc) = peaks(&ok);
    let stats = metrics
        .iter()
        .map(|name| {
            let v: Vec<f64> = values(name, &ok).into_iter().map(|x| x * 1000.0).collect();
            Stat {
                name: name.clone(),
                mean: mean(&v),
                median: percentile(&v, 50.0),
                std: std_dev(&v),
                percentiles: percentiles
                    .iter()
                    .map(|p| (*p, percentile(&v, *p)))
                    .collect(),
            }
        })
        .collect();
    Summary {
        completed: ok.len(),
        failed: outcomes.len() - ok.len(),
        total_input,
        total_output,
        output_lens,
        request_throughput: per_s(ok.len() as f64),
        request_goodput: per_s(good as f64),
        output_throughput: per_s(total_output as f64),
        total_token_throughput: per_s((total_input + total_output) as f64),
        max_output_tokens_per_s: peak_tps,
        max_concurrent_requests: peak_conc,
        stats,
    }
}

/// Peak chunks in one second and peak concurrent requests, both over one-second buckets counted
/// from the first successful send, as vLLM's client defines them: a chunk counts in the bucket
/// it arrived in; a request counts in every bucket from the one it was sent in to the one it
/// ended in, so a request alive at any moment of a second is concurrent in that second (higher
/// than an instantaneous peak: 72–76 against 29–32 for one workload on real vLLM).
fn peaks(ok: &[(&Outcome, usize)]) -> (f64, usize) {
    let Some(t0) = ok.iter().map(|(o, _)| o.start).min_by(f64::total_cmp) else {
        return (0.0, 0);
    };
    let end = ok
        .iter()
        .map(|(o, _)| o.start + o.latency)
        .fold(t0, f64::max);
    let seconds = ((end - t0).ceil() as usize).saturating_add(1).min(1 << 24);
    // The bucket of time `t`, if inside the run (times are seconds since t0, truncated).
    let bucket = |t: f64| {
        let b = (t - t0).floor();
        (b >= 0.0 && (b as usize) < seconds).then_some(b as usize)
    };
    let mut chunks = vec![0u64; seconds];
    // Concurrency as a difference array: +1 at the first bucket, −1 after the last.
    let mut alive = vec![0i64; seconds + 1];
    for (o, _) in ok {
        let mut t = o.start + o.ttft;
        if let Some(b) = bucket(t) {
            chunks[b] += 1;
        }
        for d in &o.itl {
            t += d;
            if let Some(b) = bucket(t) {
                chunks[b] += 1;
            }
        }
        // A request ending past the last bucket counts up to it, as vLLM's client clamps it.
        let last = bucket(o.start + o.latency).unwrap_or(seconds - 1);
        if let Some(first) = bucket(o.start).filter(|f| *f <= last) {
            alive[first] += 1;
            alive[last + 1] -= 1;
        }
    }
    let (mut cur, mut peak) = (0i64, 0i64);
    for d in alive {
        cur += d;
        peak = peak.max(cur);
    }
    (
        chunks.into_iter().max().unwrap_or(0) as f64,
        peak.max(0) as usize,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(start: f64, ttft: f64, itl: Vec<f64>, tokens: usize) -> Outcome {
        let latency = ttft + itl.iter().sum::<f64>();
        Outcome {
            success: true,
            prompt_len: 10,
            usage_output: Some(tokens),
            chunks: itl.len() + 1,
            ttft,
            itl,
            latency,
            start,
            ..Outcome::default()
        }
    }

    #[test]
    fn numpy_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
        assert_eq!(percentile(&[], 99.0), 0.0);
        assert!((std_dev(&v) - 1.118033988749895).abs() < 1e-12);
        assert_eq!(mean(&[]), 0.0);
    }

    #[test]
    fn vllm_definitions_of_tpot_itl_throughput_goodput_and_peaks() {
        let outs = vec![
            ok(0.0, 0.1, vec![0.01; 10], 11),
            ok(0.15, 0.2, vec![0.02; 4], 5),
            Outcome {
                error: "HTTP 500".into(),
                ..Outcome::default()
            },
        ];
        let names: Vec<String> = ["ttft", "tpot", "itl", "e2el"].map(String::from).to_vec();
        let goodput = [("ttft".to_string(), 150.0)];
        let s = summarize(&outs, 2.0, &Tok::Words, &names, &[50.0, 99.0], &goodput);
        assert_eq!((s.completed, s.failed), (2, 1));
        assert_eq!((s.total_input, s.total_output), (20, 16));
        assert_eq!(s.output_lens, vec![11, 5, 0]);
        assert_eq!(s.request_throughput, 1.0);
        assert_eq!(s.output_throughput, 8.0);
        assert_eq!(s.total_token_throughput, 18.0);
        assert_eq!(s.request_goodput, 0.5, "one request meets ttft ≤ 150 ms");
        let tpot = &s.stats[1];
        assert!(
            (tpot.mean - 15.0).abs() < 1e-9,
            "(10 + 20) / 2 ms: {}",
            tpot.mean
        );
        let itl = &s.stats[2];
        assert!((itl.mean - (10.0 * 10.0 + 4.0 * 20.0) / 14.0).abs() < 1e-9);
        assert!((s.stats[0].percentiles[0].1 - 150.0).abs() < 1e-9);
        assert_eq!(s.max_concurrent_requests, 2);
        assert_eq!(s.max_output_tokens_per_s, 16.0);
    }

    #[test]
    fn peak_concurrency_counts_requests_alive_in_the_same_second() {
        // Three requests that never overlap in time, all inside the first second: at no instant
        // are two in flight, but vLLM's client counts 3 in that second's bucket. A fourth, sent
        // at 1.5 s and ending at 3.2 s, is alive in buckets 1, 2 and 3.
        let outs = vec![
            ok(0.0, 0.1, vec![0.1], 2),
            ok(0.3, 0.1, vec![0.1], 2),
            ok(0.6, 0.1, vec![0.1], 2),
            ok(1.5, 0.2, vec![1.5], 2),
        ];
        let s = summarize(&outs, 3.2, &Tok::Words, &[], &[], &[]);
        assert_eq!(s.max_concurrent_requests, 3);
        let (tps, conc) = peaks(&outs.iter().map(|o| (o, 2)).collect::<Vec<_>>());
        assert_eq!((tps, conc), (6.0, 3));
        let late = [ok(0.0, 0.1, vec![0.1], 2), ok(1.5, 0.2, vec![1.5], 2)];
        let (_, conc) = peaks(&late.iter().map(|o| (o, 2)).collect::<Vec<_>>());
        assert_eq!(conc, 1, "buckets 0 and 1–3 do not share a second");
    }

    #[test]
    fn missing_usage_counts_the_text_and_nothing_is_nan() {
        let mut o = ok(0.0, 0.1, vec![], 0);
        o.usage_output = None;
        o.text = "a b c".into();
        let s = summarize(&[o], 0.0, &Tok::Words, &["tpot".into()], &[99.0], &[]);
        assert_eq!(s.total_output, 3);
        assert_eq!(s.request_throughput, 0.0);
        assert_eq!(s.stats[0].mean, 0.0);
        let none = summarize(&[], 1.0, &Tok::Words, &["ttft".into()], &[99.0], &[]);
        assert_eq!(none.max_concurrent_requests, 0);
    }
}
