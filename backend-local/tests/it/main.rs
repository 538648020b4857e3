//! Integration tests of the local backend: real venvs made by real `uv` (or `python -m venv` +
//! pip), a real wheel of a fake `vllm` built by the test, real processes, ports and signals.
//! Only `nvidia-smi` is faked (no GPU in CI).

mod agent;
mod common;
mod conformance;
mod execute;
mod gpu_host;
mod lease;
mod prepare;
