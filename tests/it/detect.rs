//! Site auto-detection (no `site`, `endpoint` or `DD_SITE`), through the conformance host and
//! mock intakes named by the test option `site_probe`: while the site is unknown a flush waits
//! for it instead of returning RETRY, the intake answers when the API cannot, and rounds
//! without a site are probed again, each change of outcome being one log line.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, Run, run_host};
use serde_json::{Value, json};
use std::time::Duration;

const OTHER_KEY: &str = "someone-elses-key-000000000000000";

/// Flushes `records` generated records in chunks of `per_chunk` to an instance with no site,
/// probing `probe`, each chunk retried up to `retries` times.
fn flush_detecting(probe: &str, extra: &[(&str, &str)], records: usize, retries: usize) -> Run {
    let mut options = json!({"apikey": KEY, "site_probe": probe});
    for (k, v) in extra {
        options[*k] = Value::from(*v);
    }
    run_host(&json!({
        "instances": [{"options": options}],
        "flushes": [{"instance": 0, "generate": {"records": records, "per_chunk": 500},
                     "retries": retries, "retry_pause_ms": 25}],
    }))
}

/// The number of lines that contain `needle`.
fn count(run: &Run, needle: &str) -> usize {
    run.lines_with(needle).len()
}

const FOUND: &str = "site auto-detection: the API key belongs to";
const UNKNOWN: &str = "site auto-detection: no site accepted the API key yet";
const NONE_ACCEPTS: &str = "site auto-detection: no Datadog site accepts the API key";

#[test]
fn validate_answering_429_costs_no_log_and_no_retry() {
    let owner = MockIntake::start(Some(KEY));
    owner.set_rules(json!([{"path": "/api/v1/validate", "status": 429}]));
    let other = MockIntake::start(Some(OTHER_KEY));
    let probe = format!("datadoghq.com={},datadoghq.eu={}", other.url, owner.url);
    let run = flush_detecting(&probe, &[], 2000, 0);
    assert_eq!(run.codes(0), vec![vec![1]; 4], "{}", run.stderr);
    assert_eq!(owner.objects().len(), 2000);
    assert!(other.objects().is_empty());
    assert!(run.stderr.contains("retries=0"), "{}", run.stderr);
    assert_eq!(count(&run, FOUND), 1, "{}", run.stderr);
}

#[test]
fn flushes_wait_while_no_site_answers_and_each_change_is_one_line() {
    // The owner's API always answers 429 and its intake the first three probes too: three
    // rounds without a verdict, then the fourth finds the site.
    let owner = MockIntake::start(Some(KEY));
    owner.set_rules(json!([
        {"path": "/api/v1/validate", "status": 429},
        {"path": "/api/v2/logs", "status": 429, "times": 3},
    ]));
    let other = MockIntake::start(Some(OTHER_KEY));
    let probe = format!("datadoghq.com={},datadoghq.eu={}", other.url, owner.url);
    let run = flush_detecting(&probe, &[], 1000, 0);
    assert_eq!(run.codes(0), vec![vec![1]; 2], "{}", run.stderr);
    assert_eq!(owner.objects().len(), 1000);
    assert!(owner.received()["validate_requests"].as_u64().unwrap() >= 4);
    assert_eq!(count(&run, UNKNOWN), 1, "{}", run.stderr);
    assert_eq!(count(&run, FOUND), 1, "{}", run.stderr);
    assert!(run.lines_with(UNKNOWN)[0].contains("[ warn]"));
}

#[test]
fn site_is_found_through_its_intake_when_its_api_is_unreachable() {
    let closed = format!("http://{}", MockIntake::reserve_addr());
    let owner = MockIntake::start(Some(KEY));
    let other = MockIntake::start(Some(OTHER_KEY));
    let probe = format!(
        "datadoghq.com={},ap1.datadoghq.com={closed}|{}",
        other.url, owner.url
    );
    let run = flush_detecting(&probe, &[], 500, 0);
    assert_eq!(run.codes(0), [vec![1]], "{}", run.stderr);
    assert_eq!(owner.objects().len(), 500);
    assert_eq!(owner.received()["validate_requests"], 0);
    let found = run.lines_with(FOUND);
    assert_eq!(found.len(), 1, "{}", run.stderr);
    assert!(found[0].contains("ap1.datadoghq.com"), "{}", found[0]);
}

#[test]
fn a_key_no_site_accepts_is_probed_again_and_recovers() {
    // `owner` accepts any key but refuses everything until the test clears its rules, after
    // it has answered two rounds.
    let owner = MockIntake::start(None);
    owner.set_rules(json!([
        {"path": "/api/v1/validate", "status": 403},
        {"path": "/api/v2/logs", "status": 403},
    ]));
    let other = MockIntake::start(Some(OTHER_KEY));
    let probe = format!("datadoghq.com={},datadoghq.eu={}", other.url, owner.url);
    let run = std::thread::scope(|s| {
        s.spawn(|| {
            owner.wait_until(Duration::from_secs(60), |r| {
                r["validate_requests"].as_u64().unwrap_or(0) >= 2
            });
            owner.set_rules(json!([]));
        });
        flush_detecting(&probe, &[], 500, 2000)
    });
    let codes = &run.codes(0)[0];
    assert_eq!(codes[0], 2, "RETRY while no site accepts the key");
    assert_eq!(*codes.last().unwrap(), 1, "{}", run.stderr);
    assert_eq!(owner.objects().len(), 500);
    assert_eq!(count(&run, NONE_ACCEPTS), 1, "{}", run.stderr);
    assert!(run.lines_with(NONE_ACCEPTS)[0].contains("[error]"));
    assert_eq!(count(&run, FOUND), 1, "{}", run.stderr);
}

#[test]
fn a_site_still_unknown_after_the_bound_is_retried() {
    // Nothing answers with a verdict: the flush waits `timeout` (1 s here), then RETRY.
    let owner = MockIntake::start(Some(KEY));
    owner.set_rules(json!([
        {"path": "/api/v1/validate", "status": 503},
        {"path": "/api/v2/logs", "status": 503},
    ]));
    let run = flush_detecting(
        &format!("datadoghq.com={}", owner.url),
        &[("timeout", "1s")],
        500,
        0,
    );
    assert_eq!(run.codes(0), [vec![2]], "{}", run.stderr);
    assert!(owner.objects().is_empty());
    assert_eq!(
        count(&run, "still unknown after waiting 1s"),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(count(&run, UNKNOWN), 1, "{}", run.stderr);
}
