//! Load scenarios against a running Lectern server; `main.rs` is the CLI.
//! The scenarios are a library so `cargo test` can run short smoke runs.

pub mod client;
pub mod janus;
pub mod media;
pub mod report;
pub mod scenarios;
