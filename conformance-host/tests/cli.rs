//! The `conformance_host` binary's command line: usage and scenario errors exit with 2.
//!
//! Also why this file exists beside the plugin's tests: an integration test here makes
//! `cargo test` build the `conformance_host` binary (cargo builds a package's binaries only
//! for its own integration tests), which the plugin's tests in `tests/` run.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_conformance_host");

#[test]
fn usage_and_bad_scenarios_exit_with_2() {
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: conformance_host"));

    let out = Command::new(BIN)
        .arg("/nonexistent/scenario.json")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    let mut child = Command::new(BIN)
        .arg("-")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{not json").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad scenario JSON"));
}
