//! Body encodings end to end: zstd (the default) and gzip through the conformance host into
//! the mock intake, the bytes and `Content-Encoding` on the wire, and the fallback to gzip
//! when the intake refuses zstd (415, or 400 for a body it takes gzipped) with every log
//! delivered once and none dropped.

use crate::support as common;
use common::tally;

use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host};
use serde_json::json;

fn flush_generated(url: &str, extra: &[(&str, &str)], records: usize, per_chunk: usize) -> Run {
    run_host(&json!({
        "instances": [{"options": opts(url, extra)}],
        "flushes": [{"instance": 0, "generate": {"records": records, "per_chunk": per_chunk},
                     "retries": 2, "retry_pause_ms": 50}],
    }))
}

/// (encoding, status, bytes on the wire) of every log request, in arrival order.
fn requests(mock: &MockIntake) -> Vec<(String, u64, u64)> {
    mock.log()
        .iter()
        .map(|e| {
            (
                e["encoding"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
                e["bytes_wire"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every log arrived once, the flush reported OK, nothing was dropped.
fn all_delivered_once(run: &Run, mock: &MockIntake, records: usize) {
    assert!(
        run.final_codes(0).iter().all(|&c| c == 1),
        "{:?}\n{}",
        run.codes(0),
        run.stderr
    );
    assert_eq!(tally(&mock.objects()), (records, 0));
    assert_eq!(run.counter("objects_sent"), records as u64);
    for reason in ["dropped_400", "dropped_413", "dropped_rejected"] {
        assert_eq!(run.counter(reason), 0, "{reason}");
    }
}

#[test]
fn zstd_by_default_delivers_every_log_with_fewer_bytes_than_gzip() {
    let mock = MockIntake::start(Some(KEY));
    let run = flush_generated(&mock.url, &[], 4000, 2000);
    all_delivered_once(&run, &mock, 4000);
    let sent = requests(&mock);
    assert!(!sent.is_empty());
    assert!(
        sent.iter().all(|(e, s, _)| e == "zstd" && *s == 202),
        "{sent:?}"
    );
    let zstd_bytes: u64 = sent.iter().map(|r| r.2).sum();
    // The plugin counts what the intake read off the wire.
    assert_eq!(run.counter("bytes_wire"), zstd_bytes);
    assert!(run.lines_with("zstd was refused").is_empty());

    mock.reset();
    let run = flush_generated(&mock.url, &[("compress", "gzip")], 4000, 2000);
    all_delivered_once(&run, &mock, 4000);
    let sent = requests(&mock);
    assert!(sent.iter().all(|(e, _, _)| e == "gzip"), "{sent:?}");
    let gzip_bytes: u64 = sent.iter().map(|r| r.2).sum();
    assert!(
        zstd_bytes < gzip_bytes,
        "zstd {zstd_bytes} B, gzip {gzip_bytes} B"
    );
}

#[test]
fn zstd_levels_are_applied() {
    let mock = MockIntake::start(Some(KEY));
    let mut sizes = Vec::new();
    for level in ["1", "19"] {
        mock.reset();
        let run = flush_generated(&mock.url, &[("compression_level", level)], 2000, 2000);
        all_delivered_once(&run, &mock, 2000);
        sizes.push(requests(&mock).iter().map(|r| r.2).sum::<u64>());
    }
    // Different levels make different streams (on this repetitive input level 19 is not
    // even smaller): the level reaches the compressor.
    assert_ne!(sizes[0], sizes[1]);
}

#[test]
fn status_415_for_zstd_switches_to_gzip_and_resends_every_request() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 415, "encoding": "zstd",
                           "body": "{\"errors\":[\"unsupported encoding\"]}"}]));
    // Two chunks of 6 requests each, sent in parallel: every zstd request in flight meets the
    // 415, each is resent gzipped, and the warning is logged once.
    let run = flush_generated(&mock.url, &[], 12_000, 6000);
    all_delivered_once(&run, &mock, 12_000);
    let sent = requests(&mock);
    let zstd: Vec<_> = sent.iter().filter(|r| r.0 == "zstd").collect();
    assert!(
        !zstd.is_empty() && zstd.iter().all(|r| r.1 == 415),
        "{sent:?}"
    );
    let gzip = sent.iter().filter(|r| r.0 == "gzip").count();
    assert_eq!(gzip, 12, "{sent:?}");
    assert!(sent.iter().all(|r| r.0 != "gzip" || r.1 == 202), "{sent:?}");
    let warned = run.lines_with("zstd was refused (HTTP 415");
    assert_eq!(warned.len(), 1, "{}", run.stderr);
    assert!(warned[0].contains("[ warn]") && warned[0].contains("switching to gzip"));
    assert!(warned[0].contains("unsupported encoding"));
    // Once switched, the second chunk was gzipped from its first request.
    let last_zstd = sent.iter().rposition(|r| r.0 == "zstd").unwrap();
    assert!(last_zstd < 12, "{sent:?}");
}

#[test]
fn status_400_for_zstd_that_gzip_passes_switches_to_gzip_without_dropping() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 400, "encoding": "zstd"}]));
    let run = flush_generated(&mock.url, &[("max_concurrency", "1")], 3000, 1000);
    all_delivered_once(&run, &mock, 3000);
    let sent = requests(&mock);
    // One zstd request refused, then its batch and every later one gzipped: no bisection.
    assert_eq!(sent[0].0, "zstd");
    assert_eq!(sent[0].1, 400);
    assert_eq!(sent.len(), 4, "{sent:?}");
    assert!(
        sent[1..].iter().all(|r| r.0 == "gzip" && r.1 == 202),
        "{sent:?}"
    );
    assert_eq!(
        run.lines_with("zstd was refused (HTTP 400").len(),
        1,
        "{}",
        run.stderr
    );
    // Both attempts are counted as bytes on the wire.
    assert_eq!(
        run.counter("bytes_wire"),
        sent.iter().map(|r| r.2).sum::<u64>()
    );
}

#[test]
fn a_poisoned_log_under_zstd_is_isolated_and_zstd_is_kept() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 400, "poison": "/orders/437\\\""}]));
    let run = flush_generated(&mock.url, &[("max_concurrency", "1")], 1000, 1000);
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(tally(&mock.objects()), (999, 0));
    assert_eq!(run.counter("dropped_400"), 1);
    assert!(
        run.lines_with("zstd was refused").is_empty(),
        "{}",
        run.stderr
    );
    let sent = requests(&mock);
    assert!(
        sent.iter().filter(|r| r.1 == 202).all(|r| r.0 == "zstd"),
        "{sent:?}"
    );
}

#[test]
fn the_mock_intake_decodes_zstd_and_bounds_it() {
    let mock = MockIntake::start(Some(KEY));
    let json = br#"[{"message":"hello zstd"}]"#;
    let body = zstd::encode_all(&json[..], 3).unwrap();
    let headers = [("DD-API-KEY", KEY), ("Content-Encoding", "zstd")];
    let (status, _) = mock.post_logs_with(&body, &headers);
    assert_eq!(status, 202);
    assert_eq!(common::messages(&mock.objects()), ["hello zstd"]);
    // 6 MB once decompressed (a few hundred bytes on the wire): 413, never inflated whole.
    let mut big = b"[{\"message\":\"".to_vec();
    big.resize(6_000_000, b'a');
    big.extend_from_slice(b"\"}]");
    let bomb = zstd::encode_all(&big[..], 3).unwrap();
    assert!(bomb.len() < 10_000);
    assert_eq!(mock.post_logs_with(&bomb, &headers).0, 413);
    assert_eq!(mock.post_logs_with(b"not zstd", &headers).0, 400);
}
