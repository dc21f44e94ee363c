//! Every fixture flushed through the conformance host into the mock intake, with exact
//! assertions on what arrives.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, messages, opts, run_host};
use serde_json::{Value, json};

/// Fluent Bit's built-in datadog output's ECS tags, then Datadog Agent's (the fixtures' tag is
/// `main-container-firelens-<task id>`).
const ECS_TAGS: [&str; 13] = [
    "container_id:cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e-2659706421",
    "container_name:main-container",
    "cluster_name:prod",
    "task_arn:arn:aws:ecs:ap-northeast-1:123456789012:task/prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e",
    "region:ap-northeast-1",
    "task_id:prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e",
    "task_family:your-service",
    "task_version:42",
    "aws_account:123456789012",
    "ecs_cluster_name:prod",
    "cluster_arn:arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod",
    "ecs_container_name:main-container",
    "task_definition_arn:arn:aws:ecs:ap-northeast-1:123456789012:task-definition/your-service:42",
];

fn flush_fixtures(names: &[&str]) -> (MockIntake, common::Run) {
    let mock = MockIntake::start(Some(KEY));
    let flushes: Vec<Value> = names
        .iter()
        .map(|n| json!({"instance": 0, "fixture": n}))
        .collect();
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[
            ("provider", "ecs"), ("dd_service", "checkout"), ("dd_source", "firelens"),
            ("dd_tags", "env:test, team:x"),
        ])}],
        "flushes": flushes,
    }));
    (mock, run)
}

fn find<'a>(objects: &'a [Value], message_prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message_prefix))
        })
        .unwrap_or_else(|| panic!("no object with message {message_prefix:?}"))
}

/// The seven special records plus 2000 bulk lines of one forward stream.
fn check_forward_stream(objects: &[Value]) {
    assert_eq!(objects.len(), 2008);
    let msgs = messages(objects);
    let mut bulk: Vec<usize> = msgs
        .iter()
        .filter_map(|m| m.strip_prefix("bulk line ").map(|n| n.parse().unwrap()))
        .collect();
    bulk.sort_unstable();
    assert_eq!(
        bulk,
        (0..2000).collect::<Vec<_>>(),
        "every bulk line exactly once"
    );

    let plain = find(objects, "plain text line");
    assert_eq!(plain["timestamp"], 1_732_400_000_123i64);
    assert_eq!(plain["service"], "checkout");
    assert_eq!(plain["ddsource"], "firelens");
    assert_eq!(plain["source"], "stdout");
    let tags: Vec<&str> = plain["ddtags"].as_str().unwrap().split(',').collect();
    let mut expected: Vec<&str> = ECS_TAGS.to_vec();
    expected.extend(["env:test", "team:x"]);
    assert_eq!(tags, expected);
    // Every record with FireLens metadata has them all (not: records 5, 7 and 8, below).
    let expected = expected.join(",");
    let with_ecs = objects.iter().filter(|o| o["ddtags"] == *expected).count();
    assert_eq!(with_ecs, 2008 - 3);
    for gone in [
        "container_id",
        "container_name",
        "ecs_cluster",
        "ecs_task_arn",
        "ecs_task_definition",
        "log",
    ] {
        assert!(plain.get(gone).is_none(), "{gone} must leave the object");
    }

    let json_line = find(objects, "{\"level\":\"error\"");
    assert_eq!(
        json_line["timestamp"], 1_732_400_000_000i64,
        "integer timestamp in ms"
    );

    let jp = find(objects, "日本語のログ行");
    assert_eq!(jp["message"], "日本語のログ行 ✓ emoji 🔥");

    let types = find(objects, "float timestamp record");
    assert_eq!(types["extra_int"], json!(9_223_372_036_854_775_807u64));
    assert_eq!(types["neg"], -5);
    assert_eq!(types["f"], 1.5e300);
    assert_eq!(types["t"], true);
    assert_eq!(types["n"], Value::Null);
    assert_eq!(types["arr"], json!([1, "two", {"three": 3}]));

    let no_ecs = find(objects, "record without ecs metadata");
    assert_eq!(no_ecs["ddtags"], "env:test,team:x");
    assert_eq!(no_ecs["source"], "stderr");

    let big = objects
        .iter()
        .find(|o| o["message"].as_str().is_some_and(|m| m.starts_with("xxxx")))
        .expect("the 2 MB record is delivered");
    let m = big["message"].as_str().unwrap();
    assert!(m.ends_with("...TRUNCATED..."));
    assert!(serde_json::to_vec(big).unwrap().len() <= 1_000_000);
    assert!(
        m.len() > 990_000,
        "truncated to fit, not emptied: {}",
        m.len()
    );

    let own = find(objects, "record with message key and no log key");
    assert_eq!(own["service"], "override-svc");
    assert_eq!(own["status"], "warn");
    assert_eq!(own["ddtags"], "team:a,env:test,team:x");
    assert_eq!(own["ddsource"], "firelens");

    let bin = find(objects, "invalid utf8");
    assert_eq!(bin["message"], "invalid utf8 \u{fffd}( in bytes");
    assert_eq!(bin["bin_key"], "\u{fffd}\u{fffd} raw bytes");
}

#[test]
fn fluent_bit_1_9_10_forward_chunk() {
    let (mock, run) = flush_fixtures(&["fb-1.9.10-forward.msgpack"]);
    assert_eq!(run.report["init"], json!([1]));
    assert_eq!(run.final_codes(0), [1]);
    let objects = mock.objects();
    check_forward_stream(&objects);
    let recv = mock.received();
    assert_eq!(recv["requests"], 3, "2008 objects = 1000 + 1000 + 8");
    for entry in recv["log"].as_array().unwrap() {
        assert_eq!(entry["encoding"], "zstd");
        assert!(entry["objects"].as_u64().unwrap() <= 1000);
        assert!(entry["bytes_json"].as_u64().unwrap() <= 5_000_000);
        let ua = entry["headers"]["user-agent"].as_str().unwrap();
        assert!(ua.starts_with("fluent-bit-datadog/"), "{ua}");
        assert_eq!(entry["headers"]["dd-evp-origin"], "fluent-bit-datadog");
    }
    assert!(run.stderr.contains("truncated 1 message(s)"));
    assert!(run.stderr.contains("records_in=2008 objects_sent=2008"));
    assert!(!run.stderr.contains(KEY));
}

#[test]
fn fluent_bit_4_2_8_two_chunks_of_one_stream() {
    let (mock, run) = flush_fixtures(&["fb-4.2.8-forward-1.msgpack", "fb-4.2.8-forward-2.msgpack"]);
    assert_eq!(run.final_codes(0), [1]);
    assert_eq!(run.final_codes(1), [1]);
    check_forward_stream(&mock.objects());
    assert!(run.stderr.contains("records_in=2008 objects_sent=2008"));
}

#[test]
fn provider_ecs_without_dd_source_sends_ddsource_ecs() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[("provider", "ecs")])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-forward-1.msgpack"}],
    }));
    assert_eq!(run.final_codes(0), [1]);
    let objects = mock.objects();
    assert_eq!(objects.len(), 143);
    for o in &objects {
        assert_eq!(o["ddsource"], "ecs", "{o}");
    }
    let plain = find(&objects, "plain text line");
    assert_eq!(plain["ddtags"], ECS_TAGS.join(","));
}

#[test]
fn otlp_chunk_markers_skipped_metadata_mapped() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "tag": "v1_logs"}],
    }));
    assert_eq!(run.final_codes(0), [1]);
    let objects = mock.objects();
    assert_eq!(objects.len(), 1, "group markers are never shipped");
    let o = &objects[0];
    assert_eq!(o["message"], "payment failed");
    assert_eq!(o["status"], "ERROR");
    // trace_id 5b8efff798038103d269b633813fc60c: low 64 bits d269b633813fc60c.
    assert_eq!(
        o["dd.trace_id"],
        u64::from_str_radix("d269b633813fc60c", 16)
            .unwrap()
            .to_string()
    );
    assert_eq!(
        o["dd.span_id"],
        u64::from_str_radix("eee19b7ec3c1b174", 16)
            .unwrap()
            .to_string()
    );
    assert_eq!(o["timestamp"], 1_732_400_001_000i64);
}

#[test]
fn tag_key_and_disabled_date_key() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [{"options": opts(&mock.url, &[
            ("include_tag_key", "on"), ("tag_key", "fluent_tag"), ("json_date_key", "false"),
            ("compress", "none"),
        ])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-forward-1.msgpack"}],
    }));
    assert_eq!(run.final_codes(0), [1]);
    let objects = mock.objects();
    assert_eq!(objects.len(), 143);
    for o in &objects {
        assert_eq!(o["fluent_tag"], common::host::FIRELENS_TAG);
        assert!(o.get("timestamp").is_none());
    }
    // Without provider ecs the FireLens fields stay attributes.
    assert!(objects.iter().any(|o| o["ecs_cluster"].is_string()));
    assert!(
        mock.received()["log"][0]["encoding"].is_null()
            || mock.received()["log"][0]["encoding"] == "identity"
    );
}
