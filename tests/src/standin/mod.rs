//! The stand-in engine's library side: its configuration, packaging (wheel, source tree), the
//! binary locator and a small harness to run it from tests. See the crate's README.

mod config;
mod harness;
mod locate;
mod source_tree;
mod wheel;
mod zip;

pub use config::{CONFIG_ENV, CONFIG_FILE_NAME, FAULT_ENV, Fault, StandinConfig};
pub use harness::{Finished, StandinServer, free_port, http_get, http_request, run_standin};
pub use locate::{BINARY_ENV, standin_binary, try_standin_binary};
pub use source_tree::{BENCHMARK_SCRIPTS, write_source_tree};
pub use wheel::{
    SharedWheels, StandinBuild, build_standin_wheel, is_pep440_version, shared_wheels,
    wheel_file_name,
};
