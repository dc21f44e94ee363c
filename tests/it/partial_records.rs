//! Parts of lines over 16 KB that reach the plugin unjoined (`partial_message`, no multiline
//! filter before it): through the conformance host (a 2.0+ host, with the stand-in's cmetrics
//! and logger) into the mock intake. Each part is shipped as it is, counted in
//! `partial_records_total`, and warned of once per interval with the filter to add.

use crate::support as common;

use common::mock::MockIntake;
use common::msgpack::{Mp, enc_into, event_time};
use common::{KEY, opts, run_host};
use serde_json::{Value, json};
use std::time::Duration;

const NAME: &str = "datadog_logs.0";
const TAG: &str = "app-firelens-0123";

fn s(t: &str) -> Mp {
    Mp::Str(t.as_bytes().to_vec())
}

/// A chunk (4.x layout) of one line cut in three parts by the runtime, with two whole lines
/// between them.
fn chunk() -> Vec<u8> {
    let mut out = Vec::new();
    for (log, ordinal) in [
        ("a1", "1"),
        ("whole 1", ""),
        ("a2", "2"),
        ("whole 2", ""),
        ("a3", "3"),
    ] {
        let mut body = vec![(s("log"), s(log)), (s("source"), s("stdout"))];
        if !ordinal.is_empty() {
            body.extend([
                (s("partial_message"), s("true")),
                (s("partial_id"), s(&"e".repeat(64))),
                (s("partial_ordinal"), s(ordinal)),
                (
                    s("partial_last"),
                    s(if ordinal == "3" { "true" } else { "false" }),
                ),
            ]);
        }
        let rec = Mp::Arr(vec![
            Mp::Arr(vec![event_time(1_732_400_000, 0), Mp::Map(vec![])]),
            Mp::Map(body),
        ]);
        enc_into(&rec, &mut out);
    }
    out
}

#[test]
fn parts_are_delivered_as_they_are_counted_and_warned_of_once() {
    let mock = MockIntake::start(Some(KEY));
    let hex: String = chunk().iter().map(|b| format!("{b:02x}")).collect();
    let run = run_host(&json!({
        "host": "2.0",
        "instances": [{"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "hex": hex, "tag": TAG, "repeat": 2}],
    }));
    assert_eq!(run.final_codes(0), [1, 1], "{}", run.stderr);

    // Every record delivered, parts with their partial_* attributes, none joined or dropped.
    let objects = mock.wait_for_objects(10, Duration::from_secs(10));
    assert_eq!(objects.len(), 10, "{objects:?}");
    let messages = common::messages(&objects);
    let one = ["a1", "whole 1", "a2", "whole 2", "a3"];
    assert_eq!(messages, [one, one].concat());
    for o in objects
        .iter()
        .filter(|o| o["message"].as_str().unwrap().starts_with('a'))
    {
        assert_eq!(o["partial_message"], "true", "{o}");
        assert_eq!(o["partial_id"].as_str().unwrap().len(), 64, "{o}");
        assert!(o["partial_ordinal"].is_string() && o["partial_last"].is_string());
    }

    // The metric: 0 at Init, then the parts of each flush.
    let adds: Vec<f64> = run.report["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c["call"] == "cmt_counter_add"
                && c["metric"] == "counter:fluentbit_datadog_logs_partial_records_total"
        })
        .map(|c| {
            assert_eq!(c["labels"], json!([NAME]), "{c}");
            c["value"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(adds, [0.0, 3.0, 3.0]);

    // One warning for both flushes, through the host's logger, naming the filter.
    let warnings: Vec<&Value> = run.report["host_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["message"].as_str().unwrap().contains("partial record(s)"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["level"], 2, "warn: {}", warnings[0]);
    assert_eq!(
        warnings[0]["message"].as_str().unwrap().trim_end(),
        format!(
            "[output:datadog_logs:{NAME}] shipped 3 partial record(s) of tag '{TAG}' unjoined, each as its own log: they are pieces of lines over 16 KB split by the container runtime (partial_message); join them before this output with [FILTER] Name multiline, Match *, Mode partial_message, multiline.key_content log"
        )
    );
}
