//! Documented process exit codes of the `perf-runner` binary.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success: everything asked for was done |
//! | 1 | an unexpected internal error |
//! | 2 | usage error: a bad flag, argument or config value; also `--resume` of a run that another live process is running |
//! | 3 | input error: a dataset or file could not be read, or some rows were rejected |
//! | 4 | the work ran but some tasks failed or were not verifiable |
//! | 5 | a backend is unusable here (e.g. no Docker Engine, no GPU) |
//! | 130 | interrupted (Ctrl-C, SIGTERM or SIGHUP) |

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// An unexpected internal error.
pub const INTERNAL: i32 = 1;
/// A bad flag, argument or config value (or a run that another live process is running).
pub const USAGE: i32 = 2;
/// A dataset or file could not be read, or some of its rows were rejected.
pub const INPUT: i32 = 3;
/// The work ran, but some tasks failed or were not verifiable.
pub const TASKS_FAILED: i32 = 4;
/// A backend is unusable here.
pub const BACKEND_UNAVAILABLE: i32 = 5;
/// Interrupted by Ctrl-C, SIGTERM or SIGHUP.
pub const INTERRUPTED: i32 = 130;
