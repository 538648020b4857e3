//! A fake vLLM source tree for the old benchmark scripts (`python benchmarks/benchmark_*.py`): a
//! run passes `{VLLM_SOURCE}` = that folder.

use std::io;
use std::path::Path;

/// The benchmark scripts a fake source tree holds, relative to its root.
pub const BENCHMARK_SCRIPTS: [&str; 4] = [
    "benchmarks/benchmark_serving.py",
    "benchmarks/benchmark_throughput.py",
    "benchmarks/benchmark_latency.py",
    "benchmarks/benchmark_prefix_caching.py",
];

fn script(name: &str, binary: &str) -> String {
    format!(
        r#"#!/usr/bin/env python3
"""Stand-in for vLLM's benchmarks/{name} (perf-runner test double, not vLLM).

Like the real script it uses the installed `vllm`: when that is the stand-in wheel, its bundled
binary runs (so the build's speed and faults apply); otherwise the binary this tree was made for.
"""
import os
import sys

FALLBACK_BINARY = {binary}

try:
    from vllm._standin import binary_path

    exe = binary_path()
except ImportError:
    exe = FALLBACK_BINARY
sys.stdout.flush()
os.execv(exe, [exe, os.path.abspath(__file__)] + sys.argv[1:])
"#
    )
}

/// Creates a fake vLLM source tree in `dir` whose `benchmarks/benchmark_{{serving,throughput,
/// latency,prefix_caching}}.py` exec the stand-in. A stand-in also recognises these scripts by
/// name when it is itself `python3` (e.g. in a `FROM scratch` image), without reading them.
pub fn write_source_tree(dir: &Path, binary: &Path) -> io::Result<()> {
    let bench = dir.join("benchmarks");
    std::fs::create_dir_all(&bench)?;
    let binary = std::path::absolute(binary)?;
    let literal = serde_json::to_string(&binary.to_string_lossy())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for rel in BENCHMARK_SCRIPTS {
        let name = rel.rsplit('/').next().unwrap_or(rel);
        let path = dir.join(rel);
        std::fs::write(&path, script(name, &literal))?;
        set_mode(&path, 0o755)?;
    }
    std::fs::write(
        dir.join("README.md"),
        "# Fake vLLM source tree\n\nWritten by perf-runner's tests: the benchmark scripts exec \
         the stand-in engine (a test double). This is not vLLM.\n",
    )?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
