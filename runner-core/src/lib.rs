#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod backend;
pub mod benchmark;
pub mod build;
pub mod catalogue;
pub mod command;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod dataset;
pub mod digest;
pub mod engine;
pub mod exit;
pub mod failure;
pub mod gpu;
pub mod input;
pub mod lease;
pub mod metrics;
#[cfg(feature = "parquet")]
pub mod parquet_rows;
pub mod parse;
pub mod patch;
pub mod plan;
pub mod primary;
pub mod provenance;
pub mod record;
pub mod report;
pub mod samples;
pub mod session;
pub mod settings;
pub mod spec;
pub mod stats;
pub mod stepkit;
pub mod store;
pub mod task;
pub mod text;
pub mod triage;

pub use backend::{
    Backend, BackendError, Capabilities, Health, PreparedEnv, RunContext, StepOutput,
};
pub use benchmark::{Benchmark, ParseOutcome, RunOutput};
pub use build::{Artifact, BuildSpec};
pub use failure::Failure;
pub use gpu::GpuSpec;
pub use metrics::{MetricValue, Metrics, Provenance};
pub use spec::{BenchmarkSpec, Mode};
pub use task::{Task, Variant};
