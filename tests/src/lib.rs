#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod cli;
pub mod fake_gpus;
pub mod git;
pub mod require;
pub mod rootfs;
pub mod standin;
