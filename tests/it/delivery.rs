//! The fault matrix: each failure the intake or the network can produce, through the
//! conformance host into the mock intake, with exact counts of distinct logs delivered and of
//! duplicates (always 0), and the plugin's counters.

use crate::support as common;
use common::tally;

use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host};
use serde_json::json;

/// Flushes `records` generated FireLens records (in chunks of `per_chunk`), retrying each
/// chunk up to `retries` times as Fluent Bit's scheduler would.
fn flush_generated(
    url: &str,
    extra: &[(&str, &str)],
    records: usize,
    per_chunk: usize,
    retries: usize,
) -> Run {
    run_host(&json!({
        "instances": [{"options": opts(url, extra)}],
        "flushes": [{"instance": 0, "generate": {"records": records, "per_chunk": per_chunk},
                     "retries": retries, "retry_pause_ms": 50}],
    }))
}

fn counter(run: &Run, name: &str) -> u64 {
    let line = run.lines_with("] exit: ").pop().expect("exit summary line");
    common::summary_value(line, name)
}

#[test]
fn status_500_for_the_first_requests_then_delivered_once() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 500, "times": 2}]));
    let run = flush_generated(&mock.url, &[("max_concurrency", "1")], 3000, 3000, 5);
    assert_eq!(run.codes(0), [vec![2, 1]], "RETRY then OK");
    assert_eq!(tally(&mock.objects()), (3000, 0));
    // 3 requests: the first two fail; the retry sends those two only.
    assert_eq!(mock.received()["requests"], 5);
    assert_eq!(counter(&run, "objects_sent"), 3000);
    assert_eq!(counter(&run, "retries"), 1);
}

#[test]
fn status_503_on_every_third_request() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 503, "every": 3}]));
    let run = flush_generated(&mock.url, &[], 12_000, 2000, 6);
    assert!(
        run.final_codes(0).iter().all(|&c| c == 1),
        "{:?}",
        run.codes(0)
    );
    assert_eq!(tally(&mock.objects()), (12_000, 0));
    assert!(counter(&run, "retries") >= 1);
}

#[test]
fn status_429_and_408_are_retried() {
    for status in [429, 408] {
        let mock = MockIntake::start(Some(KEY));
        mock.set_rules(json!([{"status": status, "times": 1}]));
        let run = flush_generated(&mock.url, &[], 500, 500, 3);
        assert_eq!(run.codes(0), [vec![2, 1]], "{status}");
        assert_eq!(tally(&mock.objects()), (500, 0));
    }
}

#[test]
fn connection_refused_for_a_while_then_accepted() {
    let addr = MockIntake::reserve_addr();
    let url = format!("http://{addr}");
    let starter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(600));
        MockIntake::start_on(&addr, Some(KEY))
    });
    let run = run_host(&json!({
        "instances": [{"options": opts(&url, &[("timeout", "2s")])}],
        "flushes": [{"instance": 0, "generate": {"records": 1500, "per_chunk": 1500},
                     "retries": 20, "retry_pause_ms": 200}],
    }));
    let mock = starter.join().unwrap();
    let codes = &run.codes(0)[0];
    assert!(
        codes.len() >= 2 && codes[0] == 2 && *codes.last().unwrap() == 1,
        "{codes:?}"
    );
    assert_eq!(tally(&mock.objects()), (1500, 0));
    assert!(run.stderr.contains("connection error"), "{}", run.stderr);
}

#[test]
fn responses_slower_than_timeout_are_retried() {
    // Slow and then failing: the retry delivers everything exactly once.
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"delay_ms": 2500, "status": 503, "times": 1}]));
    let run = flush_generated(&mock.url, &[("timeout", "1s")], 800, 800, 3);
    assert_eq!(run.codes(0), [vec![2, 1]]);
    assert_eq!(tally(&mock.objects()), (800, 0));
    assert!(run.stderr.contains("timeout"), "{}", run.stderr);

    // Slow but accepted after the client gave up: delivered at least once. The intake may
    // keep a request whose answer never arrived; no HTTP client can know (README, Delivery).
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"delay_ms": 2500, "times": 1}]));
    let run = flush_generated(&mock.url, &[("timeout", "1s")], 800, 800, 3);
    assert_eq!(run.codes(0), [vec![2, 1]]);
    std::thread::sleep(std::time::Duration::from_millis(1800));
    let (distinct, _) = tally(&mock.objects());
    assert_eq!(distinct, 800);
}

#[test]
fn status_413_over_a_size_splits_until_it_fits() {
    let mock = MockIntake::start(Some(KEY));
    // Any request over 200 kB of JSON is refused: 1000-object requests (~500 kB) must split.
    mock.set_rules(json!([{"status": 413, "over_bytes": 200_000}]));
    let run = flush_generated(&mock.url, &[], 2000, 2000, 0);
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(tally(&mock.objects()), (2000, 0));
    assert_eq!(counter(&run, "dropped_413"), 0);
    for entry in mock.received()["log"].as_array().unwrap() {
        if entry["status"] == 202 {
            assert!(entry["bytes_json"].as_u64().unwrap() <= 200_000);
        }
    }
}

#[test]
fn status_413_for_a_single_object_drops_only_it() {
    let mock = MockIntake::start(Some(KEY));
    // The 2 MB record is cut to 1 MB; the intake refuses anything over 900 kB.
    mock.set_rules(json!([{"status": 413, "over_bytes": 900_000}]));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-forward-1.msgpack"}],
    }));
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(tally(&mock.objects()), (142, 0));
    assert_eq!(counter(&run, "dropped_413"), 1);
    let line = run.lines_with("dropped one log of");
    assert_eq!(line.len(), 1, "{}", run.stderr);
    assert!(line[0].contains("413") && !line[0].contains("xxxxxxxx"));
}

#[test]
fn status_400_for_one_poisoned_object_in_a_request_of_1000() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 400, "poison": "/orders/437\\\""}]));
    let run = flush_generated(&mock.url, &[], 1000, 1000, 0);
    assert_eq!(run.final_codes(0), [1]);
    let objects = mock.objects();
    assert_eq!(tally(&objects), (999, 0));
    assert!(
        !common::messages(&objects)
            .iter()
            .any(|m| m.contains("/orders/437\""))
    );
    assert_eq!(counter(&run, "dropped_400"), 1);
    assert_eq!(counter(&run, "objects_sent"), 999);
    // Bisection: about 2 x log2(1000) requests, not 1000.
    let requests = mock.received()["requests"].as_u64().unwrap();
    assert!(requests <= 25, "{requests}");
}

#[test]
fn status_403_with_a_wrong_key_is_explained_and_not_retried() {
    let mock = MockIntake::start(Some("another-key-entirely-0000000000"));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "repeat": 3, "retries": 2}],
    }));
    assert_eq!(run.codes(0), [vec![0], vec![0], vec![0]], "ERROR, no retry");
    let (held, lines): (Vec<&str>, Vec<&str>) = run
        .lines_with("HTTP 403")
        .into_iter()
        .partition(|l| l.contains("lines held back"));
    assert_eq!(lines.len(), 1, "rate-limited:\n{}", run.stderr);
    // The two repeats held back are told at exit.
    assert_eq!(held.len(), 1, "{}", run.stderr);
    assert!(held[0].contains("(HTTP 403) x2"), "{}", held[0]);
    assert!(lines[0].contains("[error]"));
    assert!(lines[0].contains("rejected by"));
    assert!(lines[0].contains("check `site`"));
    assert!(lines[0].contains("Forbidden"));
    assert!(!run.stderr.contains(KEY));
    assert_eq!(counter(&run, "dropped_rejected"), 3);
}

#[test]
fn status_403_names_the_site_where_the_key_is_valid() {
    let us1 = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let eu1 = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let ap1 = MockIntake::start(Some(KEY));
    let probe = format!(
        "datadoghq.com={},datadoghq.eu={},ap1.datadoghq.com={}",
        us1.url, eu1.url, ap1.url
    );
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": KEY, "endpoint": us1.url, "site_probe": probe}}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"}],
    }));
    assert_eq!(run.final_codes(0), [0]);
    let line = run.lines_with("HTTP 403").pop().unwrap().to_string();
    assert!(
        line.contains("the key is valid on ap1.datadoghq.com: set `site ap1`"),
        "{line}"
    );
}

#[test]
fn auto_detection_picks_the_site_that_accepts_the_key() {
    let us1 = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let eu1 = MockIntake::start(Some(KEY));
    let ap1 = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let probe = format!(
        "datadoghq.com={},datadoghq.eu={},ap1.datadoghq.com={}",
        us1.url, eu1.url, ap1.url
    );
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": KEY, "site_probe": probe, "timeout": "2s"}}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-forward-1.msgpack", "retries": 10, "retry_pause_ms": 200}],
    }));
    assert_eq!(*run.codes(0)[0].last().unwrap(), 1);
    assert_eq!(eu1.objects().len(), 143);
    assert!(us1.objects().is_empty() && ap1.objects().is_empty());
    let chosen = run.lines_with("the API key belongs to");
    assert_eq!(chosen.len(), 1, "{}", run.stderr);
    assert!(chosen[0].contains("datadoghq.eu") && chosen[0].contains("[ info]"));
}

#[test]
fn auto_detection_when_no_site_accepts_the_key() {
    let a = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let b = MockIntake::start(Some("someone-elses-key-000000000000000"));
    let probe = format!("datadoghq.com={},datadoghq.eu={}", a.url, b.url);
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": KEY, "site_probe": probe}}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "retries": 10, "retry_pause_ms": 200}],
    }));
    // RETRY: the sites are asked again, and a key that starts being accepted is not lost.
    assert_eq!(*run.codes(0)[0].last().unwrap(), 2);
    let lines = run.lines_with("no Datadog site accepts the API key");
    assert!(!lines.is_empty(), "{}", run.stderr);
    assert!(lines[0].contains("[error]") && lines[0].contains("`site`"));
}

#[test]
fn auto_detection_when_one_site_times_out() {
    let slow = MockIntake::start(Some(KEY));
    // Both its API and its intake (the empty probe) answer too late.
    slow.set_rules(json!([
        {"path": "/api/v1/validate", "delay_ms": 5000},
        {"path": "/api/v2/logs", "delay_ms": 5000, "times": 1},
    ]));
    let good = MockIntake::start(Some(KEY));
    let probe = format!("datadoghq.com={},datadoghq.eu={}", slow.url, good.url);
    let started = std::time::Instant::now();
    let run = run_host(&json!({
        "instances": [{"options": {"apikey": KEY, "site_probe": probe, "timeout": "1s"}}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "retries": 10, "retry_pause_ms": 200}],
    }));
    assert_eq!(*run.codes(0)[0].last().unwrap(), 1, "{}", run.stderr);
    assert_eq!(good.objects().len(), 1);
    assert!(slow.objects().is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn retried_chunk_after_partial_acceptance_sends_exactly_the_missing_requests() {
    let mock = MockIntake::start(Some(KEY));
    // Requests 1-3 of the first attempt: the second fails.
    mock.set_rules(json!([{"status": 500, "after": 1, "times": 1}]));
    let run = flush_generated(&mock.url, &[("max_concurrency", "1")], 2500, 2500, 3);
    assert_eq!(run.codes(0), [vec![2, 1]]);
    let log = mock.received()["log"].as_array().unwrap().clone();
    let statuses: Vec<u64> = log.iter().map(|e| e["status"].as_u64().unwrap()).collect();
    let sizes: Vec<u64> = log.iter().map(|e| e["objects"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [202, 500, 202, 202]);
    assert_eq!(
        sizes,
        [1000, 0, 500, 1000],
        "the retry sends only the failed request"
    );
    assert_eq!(tally(&mock.objects()), (2500, 0));
}

#[test]
fn requests_of_one_chunk_go_out_in_parallel() {
    let mock = MockIntake::start(Some(KEY));
    // Every request takes 300 ms: seven in parallel hold seven connections at once.
    mock.set_rules(json!([{"delay_ms": 300}]));
    let run = flush_generated(&mock.url, &[("max_concurrency", "8")], 7000, 7000, 0);
    assert_eq!(run.final_codes(0), [1]);
    let log = mock.received()["log"].as_array().unwrap().clone();
    assert_eq!(log.len(), 7);
    let peers: std::collections::HashSet<String> = log
        .iter()
        .map(|e| e["peer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        peers.len(),
        7,
        "seven requests in flight at once: {peers:?}"
    );
    assert_eq!(tally(&mock.objects()), (7000, 0));

    // With max_concurrency 1 the same chunk reuses one keep-alive connection.
    let mock = MockIntake::start(Some(KEY));
    let run = flush_generated(&mock.url, &[("max_concurrency", "1")], 7000, 7000, 0);
    assert_eq!(run.final_codes(0), [1]);
    let log = mock.received()["log"].as_array().unwrap().clone();
    let peers: std::collections::HashSet<String> = log
        .iter()
        .map(|e| e["peer"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(peers.len(), 1, "{peers:?}");
}
