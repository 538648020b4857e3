//! Benchmark implementations per mode: result-file flags, output parsing and failure
//! classification.

use crate::benchmark::Benchmark;
use crate::spec::Mode;

/// The [`Benchmark`] implementation for a mode.
pub fn benchmark_for(mode: Mode) -> &'static dyn Benchmark {
    let _ = mode;
    unimplemented!("benchmark implementations land with the benchmark-layer work")
}
