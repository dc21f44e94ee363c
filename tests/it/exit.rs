//! Exit through the conformance host: an exit during a slow flush sends nothing more and
//! leaves the unsent records pending (RETRY), an exit for a context the plugin never issued
//! touches no instance, and Fluent Bit 1.9's repeated context still stops every instance.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, run_host};
use serde_json::json;

/// Five or more batches of 1000 records, sent one at a time to an intake that takes 1.5 s a request;
/// exit comes 0.5 s into the flush, while the first request is on the wire.
#[test]
fn exit_during_a_slow_flush_sends_nothing_more_and_keeps_the_rest_pending() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"delay_ms": 1500}]));
    let run = run_host(&json!({
        "instances": [{"options": common::opts(&mock.url, &[
            ("max_concurrency", "1"), ("timeout", "10s"),
        ])}],
        "flushes": [{"instance": 0, "generate": {"records": 5000, "per_chunk": 5000}}],
        "exit": "ctx",
        "exit_after_ms": 500,
    }));
    let requests = mock.requests();
    println!(
        "exit took {:.2}s; {requests} request(s) sent; flush codes {:?}",
        run.report["exit_s"].as_f64().unwrap_or(-1.0),
        run.final_codes(0)
    );
    assert_eq!(
        requests, 1,
        "only the request on the wire at exit:\n{}",
        run.stderr
    );
    assert_eq!(mock.objects().len(), 1000);
    assert_eq!(
        run.final_codes(0),
        vec![2],
        "the unsent records stay pending"
    );
    let exits = run.lines_with("] exit: ");
    assert_eq!(exits.len(), 1, "{}", run.stderr);
    assert!(!exits[0].contains("still running"), "{}", exits[0]);
}

/// A context the plugin never issued (NULL, or a number it never handed out) stops nothing:
/// the instances stay open (no summary line) until their own exit.
#[test]
fn exit_for_an_unknown_context_touches_no_instance() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [
            {"options": common::opts(&mock.url, &[])},
            {"options": common::opts(&mock.url, &[])},
        ],
        "stray_exits": [0, 999],
        "exit": "none",
    }));
    assert_eq!(run.report["init"], json!([1, 1]));
    assert!(
        run.lines_with("] exit: ").is_empty(),
        "an unknown context shut instances down:\n{}",
        run.stderr
    );
    assert_eq!(run.lines_with("never issued").len(), 2, "{}", run.stderr);
    // Their own contexts still stop them, once each.
    let run = run_host(&json!({
        "instances": [
            {"options": common::opts(&mock.url, &[])},
            {"options": common::opts(&mock.url, &[])},
        ],
        "stray_exits": [0, 999],
        "exit": "ctx",
    }));
    assert_eq!(run.lines_with("] exit: ").len(), 2, "{}", run.stderr);
}

/// Fluent Bit 1.9 passes the last instance's context to every ExitCtx, here while both
/// instances flush to a slow intake: both stop, each sending nothing more.
#[test]
fn fluent_bit_1_9_exit_during_slow_flushes_stops_both() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"delay_ms": 1500}]));
    let opts = || common::opts(&mock.url, &[("max_concurrency", "1"), ("timeout", "10s")]);
    let run = run_host(&json!({
        "instances": [{"options": opts()}, {"options": opts()}],
        "flushes": [
            {"instance": 0, "generate": {"records": 3000, "per_chunk": 3000}},
        ],
        "exit": "same_ctx",
        "exit_after_ms": 500,
    }));
    assert_eq!(mock.requests(), 1, "{}", run.stderr);
    assert_eq!(run.final_codes(0), vec![2]);
    let exits = run.lines_with("] exit: ");
    assert_eq!(exits.len(), 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("datadog_logs.0] exit:")
            && run.stderr.contains("datadog_logs.1] exit:")
    );
}
