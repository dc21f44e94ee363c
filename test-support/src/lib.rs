//! One copy of what the plugin's tests, benches, fuzz target and mock intake share:
//!
//! - [`msgpack`]: a msgpack value tree and its encoder, for building records (bin, ext,
//!   non-string and duplicate keys included);
//! - [`json`]: the duplicate-key JSON checker;
//! - [`damage`]: damaged chunks that test a decoder's resynchronisation work;
//! - with the default `harness` feature: [`mock`] (the mock intake as a child process and its
//!   control API), [`host`] (the in-process conformance host) and the helpers that run the
//!   `conformance_host` binary ([`run_host`] and friends).

pub mod damage;
pub mod json;
pub mod msgpack;

#[cfg(feature = "harness")]
mod harness;
#[cfg(feature = "harness")]
pub mod mock;
#[cfg(feature = "harness")]
pub use conformance_host as host;
#[cfg(feature = "harness")]
pub use harness::*;

/// A binary of this workspace (`mock_intake`, `conformance_host`), found beside the running
/// test executable in the same target directory; `FLB_DATADOG_BIN_DIR` overrides the
/// directory. `cargo test` at the workspace root builds every member's binaries first.
pub fn workspace_bin(name: &str) -> std::path::PathBuf {
    if let Ok(dir) = std::env::var("FLB_DATADOG_BIN_DIR") {
        return std::path::Path::new(&dir).join(name);
    }
    let exe = std::env::current_exe().expect("current_exe");
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "{name} not found near {}: run `cargo test` at the workspace root (it builds every \
         member's binaries) or set FLB_DATADOG_BIN_DIR",
        exe.display()
    );
}
