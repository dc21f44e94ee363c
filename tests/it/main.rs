//! The plugin's integration tests, in one test binary: one link of the test code and its
//! dependencies instead of one a file (`cargo test --test it`, or one concern with a filter:
//! `cargo test --test it tls::`). Each module is one concern.

mod compression;
mod conformance;
mod delivery;
mod detect;
mod edges;
mod examples;
mod exit;
mod fixtures;
mod fuzz_corpus;
mod library_path;
mod lifecycle;
mod metrics;
mod options_init;
mod partial_records;
mod properties;
mod readme_options;
mod secrets;
mod tls;
