//! Nothing lost at the edges: an intake that refuses every payload, a sender thread that
//! panics, and the statuses outside Datadog's documented set. Through the conformance host
//! into the mock intake; the panics are injected by the `test-hooks` feature, which
//! `cargo test` at the workspace root builds into the library (see conformance-host's
//! Cargo.toml).

use crate::support as common;
use common::tally;

use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host, run_host_env};
use serde_json::json;

fn flush(
    url: &str,
    extra: &[(&str, &str)],
    records: usize,
    retries: usize,
    env: &[(&str, &str)],
) -> Run {
    run_host_env(
        &json!({
            "instances": [{"options": opts(url, extra)}],
            "flushes": [{"instance": 0, "generate": {"records": records, "per_chunk": records},
                         "retries": retries, "retry_pause_ms": 50}],
        }),
        env,
    )
}

#[test]
fn an_intake_answering_400_to_everything_costs_a_few_dozen_requests_and_fails_the_chunk() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 400, "body": "{\"errors\":[\"relay says no\"]}"}]));
    let run = flush(&mock.url, &[], 3000, 0, &[]);
    let requests = mock.received()["requests"].as_u64().unwrap();
    eprintln!("all-400: {requests} requests for 3000 logs in 3 batches");
    assert_eq!(run.final_codes(0), [0], "ERROR: the host sees the drop");
    assert!(requests <= 60, "{requests} requests");
    assert_eq!(run.counter("dropped_400"), 0, "no log is blamed alone");
    assert_eq!(run.counter("dropped_rejected"), 3000);
    let lines = run.lines_with("refuses the whole payload");
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    let host = mock.url.trim_start_matches("http://");
    for part in [
        "[error]",
        "HTTP 400",
        host,
        "not one log",
        "relay says no",
        "3000 log(s)",
    ] {
        assert!(lines[0].contains(part), "{part}: {}", lines[0]);
    }
}

#[test]
fn a_few_poisoned_logs_among_good_ones_are_still_isolated_alone() {
    let mock = MockIntake::start(Some(KEY));
    // Records 0, 437 and 900 of a 1000-record batch. The first is refused alone before any
    // part of the batch is accepted: it is held, then dropped alone once record 1 is accepted.
    mock.set_rules(json!([
        {"status": 400, "poison": "/orders/0\\\""},
        {"status": 400, "poison": "/orders/437\\\""},
        {"status": 400, "poison": "/orders/900\\\""},
    ]));
    let run = flush(&mock.url, &[], 1000, 0, &[]);
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(tally(&mock.objects()), (997, 0));
    assert_eq!(run.counter("dropped_400"), 3);
    assert_eq!(
        run.lines_with("dropped one log of").len(),
        1,
        "rate-limited"
    );
}

#[test]
fn a_panicking_sender_thread_keeps_its_batch_pending() {
    // 3 batches on 3 sender threads; the thread of the second request panics.
    let mock = MockIntake::start(Some(KEY));
    let run = flush(
        &mock.url,
        &[],
        3000,
        2,
        &[("FLUENT_BIT_DATADOG_FAULT", "send_panic:2")],
    );
    assert!(
        run.stderr
            .contains("injected fault: request 2's thread panics"),
        "the library was built without the test-hooks feature:\n{}",
        run.stderr
    );
    assert_eq!(run.codes(0), [vec![2, 1]], "RETRY, then OK");
    assert_eq!(tally(&mock.objects()), (3000, 0));
    assert_eq!(run.counter("objects_sent"), 3000);
}

#[test]
fn a_panic_on_the_flush_thread_after_a_partial_acceptance_keeps_what_was_accepted() {
    // One sender: the batches go out from the flush thread itself, whose panic used to lose
    // the flags of the batch already accepted (its retry sent it again).
    let mock = MockIntake::start(Some(KEY));
    let run = flush(
        &mock.url,
        &[("max_concurrency", "1")],
        3000,
        2,
        &[("FLUENT_BIT_DATADOG_FAULT", "send_panic:2")],
    );
    assert!(run.stderr.contains("injected fault"), "{}", run.stderr);
    assert_eq!(run.codes(0), [vec![2, 1]], "RETRY, then OK");
    assert_eq!(tally(&mock.objects()), (3000, 0), "no batch sent twice");
}

#[test]
fn every_status_class_has_its_answer() {
    // gzip: how a status is answered does not depend on the codec, and a 415 for zstd is the
    // fallback's (tests/compression.rs).
    // (status, final code after one retry, what the line says)
    let cases = [
        (301, 0, "The endpoint redirects to"),
        (404, 2, "HTTP 404"),
        (409, 2, "HTTP 409"),
        (415, 0, "HTTP 415"),
        (422, 0, "refuses the whole payload"),
    ];
    for (status, code, line) in cases {
        let mock = MockIntake::start(Some(KEY));
        mock.set_rules(json!([{"status": status}]));
        let run = run_host(&json!({
            "instances": [{"options": opts(&mock.url, &[("compress", "gzip")])}],
            "flushes": [{"instance": 0, "generate": {"records": 100, "per_chunk": 100},
                         "retries": 1, "retry_pause_ms": 10}],
        }));
        assert_eq!(
            *run.codes(0)[0].last().unwrap(),
            code,
            "{status}: {}",
            run.stderr
        );
        // Once (rate-limited); a repeat held back is only counted on the line after the
        // exit summary.
        let told: Vec<&str> = run
            .lines_with(line)
            .into_iter()
            .filter(|l| !l.contains("lines held back"))
            .collect();
        assert_eq!(told.len(), 1, "{status}: {}", run.stderr);
    }
}

#[test]
fn a_chunk_retried_with_nothing_accepted_is_remembered_too() {
    // One request, refused with 503: nothing of the chunk was accepted, and its retry is
    // still found in memory (so its logs count as retried logs).
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 503, "times": 1}]));
    let run = flush(&mock.url, &[], 500, 1, &[]);
    assert_eq!(run.codes(0), [vec![2, 1]]);
    assert_eq!(tally(&mock.objects()), (500, 0));
    assert_eq!(run.lines_with("(resumed retry)").len(), 1, "{}", run.stderr);
}
