//! The `perf-runner` binary.
fn main() {}
