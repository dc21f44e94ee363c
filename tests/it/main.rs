//! The plugin's integration tests, in one test binary: one link of the test code and its
//! dependencies instead of one a file (`cargo test --test it`, or one concern with a filter:
//! `cargo test --test it tls::`). Each module is one concern; `support` is what they share.
//!
//! Every test that needs a process of its own gets one: the conformance host and the mock
//! intake run as child processes. What the tests of this one process share is guarded in
//! `support`: the plugin loaded in process, and the lifecycle tests' measurements.

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
mod resume_file;
mod secrets;
mod support;
mod tls;
