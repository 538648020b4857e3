//! backend-docker against a real Docker Engine, with `FROM scratch` images of a C stand-in
//! engine. Every test skips (printing why) when no engine is reachable.

#[path = "../support/mod.rs"]
mod support;

mod conformance;
mod faults;
mod images;
mod inspect;
mod leases;
mod restart;
mod serving;
