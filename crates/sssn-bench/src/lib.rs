//! The library behind the `sssn-bench` binary: scenarios that measure sssn's hot paths
//! next to their baselines in the same run, and the report they produce.
//!
//! Run it with `cargo run --release -p sssn-bench -- [SCENARIO…] [--json] [--quick]`;
//! `docs/benchmarks.md` explains every figure.

pub mod machine;
pub mod report;
pub mod scenarios;
