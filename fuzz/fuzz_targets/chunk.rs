//! Fuzz target: chunk bytes -> request payloads, through the plugin's whole mapping path.
//!
//! Whatever the bytes, `batch::build` must not panic, every batch must be one valid JSON
//! array of objects whose count matches, no object may have duplicate keys at any depth,
//! and every object must fit Datadog's 1 MB log limit.
#![no_main]

#[path = "../check.rs"]
mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check::chunk_to_payloads(data);
});
