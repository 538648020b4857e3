//! Bounded loading of hostile datasets: a dataset whose one row carries a 12 MB
//! `perf_command` is loaded (the row becomes a `bad_config` task: the command is refused by
//! length before it is tokenized), and `/dev/zero` and an over-cap file are refused. Prints
//! the times and the peak RSS of the process.
//!
//! Run with `cargo bench -p runner-core --bench hostile_dataset`. Target: peak RSS under
//! 100 MB (the file is written in chunks, so the figure is the loader's), each refusal under
//! 10 ms. Exits non-zero when the RSS target is missed.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use runner_core::dataset::Dataset;
use runner_core::input::Cap;
use runner_core::settings::Limits;

const COMMAND_BYTES: usize = 12 * 1024 * 1024;
const RSS_TARGET_MB: f64 = 100.0;

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Write the dataset without ever holding the command in memory.
fn write_dataset(path: &Path) -> std::io::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    write!(
        f,
        "{{\"commit_hash\": \"{:040x}\", \"parent_commit\": \"{:040x}\", \
         \"perf_command\": \"python benchmarks/benchmark_serving.py --model m/x",
        1u128, 2u128
    )?;
    let chunk = " --num-prompts 1000".repeat(1024);
    let mut written = 0;
    while written < COMMAND_BYTES {
        f.write_all(chunk.as_bytes())?;
        written += chunk.len();
    }
    writeln!(f, "\", \"gpu_config\": \"H100:1\"}}")?;
    f.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

fn main() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("hostile.jsonl");
    let size = write_dataset(&path)?;
    let rss_before = status_kib("VmHWM:");
    let limits = Limits::default();

    let start = Instant::now();
    let ds = Dataset::load_with(&path, &Default::default(), limits.dataset())
        .map_err(std::io::Error::other)?;
    let loaded = start.elapsed();
    let task = &ds.tasks[0];
    println!(
        "hostile_dataset: one row with a {:.1} MB perf_command ({:.1} MB file)",
        COMMAND_BYTES as f64 / 1e6,
        size as f64 / 1e6
    );
    println!(
        "  load:            {:>8.1} ms  ({} task(s), {} row error(s))",
        loaded.as_secs_f64() * 1e3,
        ds.tasks.len(),
        ds.errors.len()
    );
    println!(
        "  task status:     {}",
        task.command_error
            .as_deref()
            .unwrap_or("accepted (unexpected)")
    );
    let peak = status_kib("VmHWM:");
    if let (Some(before), Some(peak)) = (rss_before, peak) {
        println!(
            "  peak RSS:        {:>8.1} MB  (before loading {:.1} MB; target < {RSS_TARGET_MB} MB)",
            peak as f64 / 1024.0,
            before as f64 / 1024.0
        );
    }
    drop(ds);

    let start = Instant::now();
    let zero = Dataset::load_with(
        Path::new("/dev/zero"),
        &Default::default(),
        limits.dataset(),
    );
    println!(
        "  /dev/zero:       {:>8.3} ms  refused: {}",
        start.elapsed().as_secs_f64() * 1e3,
        zero.is_err()
    );
    let small = Cap::new(size / 2, "limits.max_dataset_bytes");
    let start = Instant::now();
    let over = Dataset::load_with(&path, &Default::default(), small);
    println!(
        "  over the cap:    {:>8.3} ms  refused: {}",
        start.elapsed().as_secs_f64() * 1e3,
        over.is_err()
    );
    if let Err(e) = over {
        println!("    {e}");
    }
    if peak.is_some_and(|p| p as f64 / 1024.0 >= RSS_TARGET_MB) {
        eprintln!("peak RSS over the {RSS_TARGET_MB} MB target");
        std::process::exit(1);
    }
    Ok(())
}
