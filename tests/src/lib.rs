//! Helpers shared by perf-runner's integration tests, and the **stand-in engine**: a test double
//! of vLLM (the `vllm-standin` binary of this crate) that behaves like vLLM at its edges, so the
//! whole pipeline can be tested without a GPU. It is never a product feature.
//!
//! - [`standin::StandinConfig`]: one "build" of the stand-in (version, speed, faults).
//! - [`standin::build_standin_wheel`]: a real PEP 427 wheel `vllm-<version>-py3-none-any.whl`
//!   that a real `uv`/`pip` installs into a real venv.
//! - [`standin::write_source_tree`]: a fake vLLM source tree with the old `benchmarks/*.py`.
//! - [`standin::standin_binary`]: where the built `vllm-standin` binary is, for any crate's tests.
//! - [`standin::StandinServer`]: start a stand-in server on a free loopback port and wait for it.

pub mod standin;
