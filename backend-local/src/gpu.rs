//! GPU discovery with `nvidia-smi` and SKU matching: runner-core's host lease discovery
//! ([`runner_core::lease::discovery`]), which the Docker backend shares.

pub use runner_core::lease::discovery::{
    DiscoveryError, GpuStatus, QUERY_ARGS, driver_version, matches_kind, parse_query, query,
    query_blocking, report, sku,
};
