//! The host's metrics and logger (Fluent Bit >= 2.0), through the conformance host playing a
//! 2.0+ host (its stand-in records every cmetrics and `flb_log_print` call), and the 1.9.10
//! host without them.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, Run, opts, run_host, run_host_env};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NAME: &str = "datadog_logs.0";

/// The metric calls of a run.
fn metrics(run: &Run) -> Vec<Value> {
    run.report["metrics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The messages written through the host's `flb_log_print`, with their levels.
fn host_log(run: &Run) -> Vec<(i64, String)> {
    run.report["host_log"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|c| {
            assert_eq!(c["fmt"], "%s", "{c}");
            (
                c["level"].as_i64().unwrap(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Sum of the values added to `metric` (`counter:fluentbit_...`) for exactly `labels`.
fn total(calls: &[Value], metric: &str, labels: &[&str]) -> f64 {
    calls
        .iter()
        .filter(|c| c["call"] == "cmt_counter_add" && c["metric"] == metric)
        .filter(|c| c["labels"] == json!(labels))
        .map(|c| c["value"].as_f64().unwrap())
        .sum()
}

/// Requests counted in `requests_total`, by its `status` label (the 0s created at Init are
/// not requests).
fn requests_by_status(calls: &[Value]) -> BTreeMap<String, f64> {
    let mut by = BTreeMap::new();
    for c in calls.iter().filter(|c| {
        c["call"] == "cmt_counter_add"
            && c["metric"] == "counter:fluentbit_datadog_logs_requests_total"
    }) {
        assert_eq!(c["labels"][0], NAME, "{c}");
        *by.entry(c["labels"][1].as_str().unwrap().to_string())
            .or_default() += c["value"].as_f64().unwrap();
    }
    by.retain(|_, n| *n > 0.0);
    by
}

/// Observations of the request duration histogram.
fn durations(calls: &[Value]) -> Vec<f64> {
    calls
        .iter()
        .filter(|c| {
            c["call"] == "cmt_histogram_observe"
                && c["metric"] == "histogram:fluentbit_datadog_logs_request_duration_seconds"
        })
        .map(|c| {
            assert_eq!(c["labels"], json!([NAME]), "{c}");
            c["value"].as_f64().unwrap()
        })
        .collect()
}

/// The exit summary line written through the host's logger.
fn exit_line(run: &Run) -> String {
    host_log(run)
        .into_iter()
        .find(|(_, m)| m.contains("] exit: "))
        .unwrap_or_else(|| panic!("no exit summary through the host: {}", run.stderr))
        .1
}

/// A counter of the exit summary line.
fn summary(line: &str, name: &str) -> f64 {
    common::summary_value(line, name) as f64
}

#[test]
fn init_on_a_2_0_host_creates_exactly_the_listed_metrics() {
    let run = run_host(&json!({
        "host": "2.0",
        "instances": [{"options": {"apikey": KEY, "site": "datadoghq.eu"}}],
    }));
    assert_eq!(run.report["init"], json!([1]), "{}", run.stderr);
    let calls = metrics(&run);
    assert_eq!(calls[0]["call"], "flb_output_get_cmt_instance");
    assert_eq!(calls[0]["ins_ok"], true);
    let created: Vec<Value> = calls
        .iter()
        .filter(|c| c["call"].as_str().unwrap().ends_with("_create"))
        .map(|c| {
            assert_eq!(c["cmt_ok"], true, "the host's context: {c}");
            assert_eq!(c["ns"], "fluentbit");
            assert_eq!(c["subsystem"], "datadog_logs");
            assert!(!c["help"].as_str().unwrap().is_empty());
            assert_eq!(c["label_count"], c["label_keys"].as_array().unwrap().len());
            json!([c["call"], c["name"], c["label_keys"]])
        })
        .collect();
    assert_eq!(
        created,
        [
            json!(["cmt_counter_create", "sent_logs_total", ["name"]]),
            json!([
                "cmt_counter_create",
                "dropped_logs_total",
                ["name", "reason"]
            ]),
            json!(["cmt_counter_create", "truncated_logs_total", ["name"]]),
            json!(["cmt_counter_create", "partial_records_total", ["name"]]),
            json!(["cmt_counter_create", "retried_logs_total", ["name"]]),
            json!(["cmt_counter_create", "requests_total", ["name", "status"]]),
            json!(["cmt_counter_create", "uncompressed_bytes_total", ["name"]]),
            json!(["cmt_counter_create", "compressed_bytes_total", ["name"]]),
            json!(["cmt_histogram_create", "request_duration_seconds", ["name"]]),
            json!(["cmt_gauge_create", "site_info", ["name", "site"]]),
        ]
    );
    let hist = calls
        .iter()
        .find(|c| c["call"] == "cmt_histogram_create")
        .unwrap();
    let bounds: Vec<f64> = serde_json::from_value(hist["buckets"].clone()).unwrap();
    assert!(!bounds.is_empty() && bounds.windows(2).all(|w| w[0] < w[1]));
    // The fixed series start at 0, every one labelled with the instance's name.
    let updates: Vec<&Value> = calls
        .iter()
        .filter(|c| c["call"] == "cmt_counter_add")
        .collect();
    assert!(
        updates
            .iter()
            .all(|c| c["value"] == 0.0 && c["labels"][0] == NAME)
    );
    let reasons: Vec<&Value> = updates
        .iter()
        .filter(|c| c["metric"] == "counter:fluentbit_datadog_logs_dropped_logs_total")
        .map(|c| &c["labels"][1])
        .collect();
    assert_eq!(
        reasons,
        ["http_400", "http_413", "too_large", "malformed", "rejected"]
    );
    assert!(
        updates
            .iter()
            .all(|c| c["timestamp"].as_u64().unwrap() > 1_600_000_000_000_000_000)
    );
    // site_info: 1 for the configured site.
    let site: Vec<&Value> = calls
        .iter()
        .filter(|c| c["call"] == "cmt_gauge_set")
        .collect();
    assert_eq!(site.len(), 1, "{site:?}");
    assert_eq!(site[0]["metric"], "gauge:fluentbit_datadog_logs_site_info");
    assert_eq!(site[0]["labels"], json!([NAME, "datadoghq.eu"]));
    assert_eq!(site[0]["value"], 1.0);
    // Nothing said about missing metrics; the lines went to the host, not to stderr.
    assert!(!run.stderr.contains("not available"), "{}", run.stderr);
    assert!(run.stderr.trim().is_empty(), "{}", run.stderr);
}

#[test]
fn one_poisoned_log_in_2000_shows_in_the_counters_as_in_the_summary() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 400, "poison": "/orders/437\\\""}]));
    let run = run_host(&json!({
        "host": "2.0",
        "instances": [{"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "generate": {"records": 2000, "per_chunk": 2000}}],
    }));
    assert_eq!(run.final_codes(0), [1], "{}", run.stderr);
    let calls = metrics(&run);
    let exit = exit_line(&run);
    let counter = |metric: &str, labels: &[&str]| {
        total(
            &calls,
            &format!("counter:fluentbit_datadog_logs_{metric}"),
            labels,
        )
    };
    let sent = counter("sent_logs_total", &[NAME]);
    let dropped = |r| counter("dropped_logs_total", &[NAME, r]);
    assert_eq!(sent, 1999.0);
    assert_eq!(dropped("http_400"), 1.0);
    assert_eq!(sent, summary(&exit, "objects_sent"));
    assert_eq!(dropped("http_400"), summary(&exit, "dropped_400"));
    assert_eq!(dropped("http_413"), summary(&exit, "dropped_413"));
    assert_eq!(dropped("too_large"), summary(&exit, "dropped_too_large"));
    assert_eq!(dropped("malformed"), summary(&exit, "dropped_malformed"));
    assert_eq!(dropped("rejected"), summary(&exit, "dropped_rejected"));
    assert_eq!(
        counter("truncated_logs_total", &[NAME]),
        summary(&exit, "truncated")
    );

    // Requests by status: exactly what the intake saw (202s, and the 400s of the split).
    let seen: BTreeMap<String, f64> = mock.received()["statuses"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(s, n)| (s.clone(), n.as_f64().unwrap()))
        .collect();
    let by_status = requests_by_status(&calls);
    assert!(
        seen.contains_key("202") && seen.contains_key("400"),
        "{seen:?}"
    );
    assert_eq!(by_status, seen);
    let requests: f64 = by_status.values().sum();
    assert_eq!(requests, summary(&exit, "requests"));
    assert_eq!(requests, mock.log().len() as f64);
    // One duration observed per request.
    let observed = durations(&calls);
    assert_eq!(observed.len() as f64, requests);
    assert!(
        observed.iter().all(|d| *d >= 0.0 && *d < 60.0),
        "{observed:?}"
    );
    // Bytes, before and after compression, as the summary counts them.
    let json_bytes = counter("uncompressed_bytes_total", &[NAME]);
    let wire_bytes = counter("compressed_bytes_total", &[NAME]);
    assert!(json_bytes > wire_bytes && wire_bytes > 0.0, "{exit}");
    assert_eq!(json_bytes, summary(&exit, "bytes_json"));
    assert_eq!(wire_bytes, summary(&exit, "bytes_wire"));
}

#[test]
fn a_request_without_an_answer_counts_under_status_error() {
    // Nothing listens there: every request fails at connect.
    let closed = format!("http://{}", MockIntake::reserve_addr());
    let run = run_host(&json!({
        "host": "2.0",
        "instances": [{"options": opts(&closed, &[])}],
        "flushes": [{"instance": 0, "generate": {"records": 10, "per_chunk": 10}}],
    }));
    assert_eq!(run.final_codes(0), [2], "RETRY: {}", run.stderr);
    let calls = metrics(&run);
    let exit = exit_line(&run);
    let by_status = requests_by_status(&calls);
    let requests = summary(&exit, "requests");
    assert!(requests >= 1.0, "{exit}");
    assert_eq!(
        by_status,
        BTreeMap::from([("error".to_string(), requests)]),
        "{exit}"
    );
    assert_eq!(durations(&calls).len() as f64, requests);
    assert_eq!(
        total(
            &calls,
            "counter:fluentbit_datadog_logs_sent_logs_total",
            &[NAME]
        ),
        0.0
    );
}

#[test]
fn a_1_9_host_delivers_and_says_once_that_metrics_are_not_available() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[])}, {"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "generate": {"records": 100, "per_chunk": 100}},
                    {"instance": 1, "generate": {"records": 100, "per_chunk": 100}}],
    }));
    assert_eq!(run.report["init"], json!([1, 1]));
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(run.final_codes(1), [1]);
    assert_eq!(mock.objects().len(), 200);
    let said = run.lines_with("metrics are not available on this host");
    assert_eq!(said.len(), 1, "{}", run.stderr);
    assert!(said[0].contains("older than Fluent Bit 2.0"), "{}", said[0]);
    assert!(metrics(&run).is_empty());
    assert!(host_log(&run).is_empty());
}

#[test]
fn host_log_honours_log_level_and_redacts_the_key() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([
        {"status": 401, "body": format!("{{\"errors\":[\"bad key {KEY}\"]}}")}
    ]));
    let scenario = |level: i64| {
        json!({
            "host": "2.0", "log_level": level,
            "instances": [{"options": opts(&mock.url, &[])}],
            "flushes": [{"instance": 0, "generate": {"records": 10, "per_chunk": 10}}],
        })
    };
    // No environment variable: the instance's Log_Level (output_log_check) decides.
    let no_env = [("FLUENT_BIT_DATADOG_LOG_LEVEL", "")];
    let error_only = run_host_env(&scenario(1), &no_env);
    let lines = host_log(&error_only);
    assert!(!lines.is_empty(), "{}", error_only.stderr);
    assert!(lines.iter().all(|(l, _)| *l == 1), "{lines:?}");
    assert!(lines.iter().any(|(_, m)| m.contains("401")), "{lines:?}");
    let info = run_host_env(&scenario(3), &no_env);
    let lines = host_log(&info);
    assert!(lines.iter().any(|(l, m)| *l == 3 && m.contains("] exit: ")));
    assert!(!lines.iter().any(|(l, _)| *l > 3), "{lines:?}");
    // The environment variable still decides where it is set.
    let env = run_host_env(&scenario(1), &[("FLUENT_BIT_DATADOG_LOG_LEVEL", "debug")]);
    assert!(host_log(&env).iter().any(|(l, _)| *l == 4));
    for run in [&error_only, &info, &env] {
        for (_, m) in host_log(run) {
            assert!(
                m.starts_with(&format!("[output:datadog_logs:{NAME}] ")),
                "{m}"
            );
            assert!(
                !m.contains(KEY) && !m.contains(&KEY[..16]),
                "the key leaked: {m}"
            );
        }
        assert!(!run.stderr.contains(KEY));
    }
}
