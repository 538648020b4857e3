//! Helpers shared by perf-runner's integration tests.
