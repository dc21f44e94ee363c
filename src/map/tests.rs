//! One test per rule of the mapping (see the module documentation of `map`).
//!
//! Records are built with a tiny msgpack writer ([`M`](test_support::msgpack::Mp)) because bin, ext and non-string keys
//! cannot be expressed through serde. Every object a test produces goes through
//! [`parse_checked`], which rejects invalid JSON and duplicate keys at any depth (a plain
//! `serde_json::Value` would silently keep the last duplicate).

use super::*;
use crate::decode::Timestamp;
use serde_json::{Value as J, json};
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------
// msgpack builder

use test_support::msgpack::{Mp as M, enc_into, event_time};

fn s(t: &str) -> M {
    M::Str(t.as_bytes().to_vec())
}

/// A map with string keys, in the given order (duplicates allowed).
fn obj(pairs: &[(&str, M)]) -> M {
    M::Map(pairs.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn enc(m: &M) -> Vec<u8> {
    let mut out = Vec::new();
    enc_into(m, &mut out);
    out
}

// ---------------------------------------------------------------------------------------------
// configuration and mapping

const KEY: &str = "0123456789abcdef0123456789abcdef";
const TAG: &str = "app.firelens";
const T0: Timestamp = Timestamp {
    secs: 1_732_400_000,
    nanos: 123_456_789,
};

fn cfg(pairs: &[(&str, &str)]) -> Config {
    let mut p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.insert("apikey".into(), KEY.into());
    Config::from_lookup(|k| p.get(k).cloned(), |_| None).unwrap()
}

/// Maps one record; the output buffer starts with bytes of an earlier object, which must be
/// left alone. Returns the result and the new object's bytes.
fn map_raw(c: &Config, time: Timestamp, meta: &[u8], body: &M) -> (Mapped, Vec<u8>) {
    let body = enc(body);
    let rec = Record {
        time,
        meta,
        body: &body,
    };
    let prefix = b"[{\"earlier\":1},";
    let mut out = prefix.to_vec();
    let r = Mapper::new(c).write(&rec, TAG, &mut Scratch::default(), &mut out);
    assert_eq!(
        &out[..prefix.len()],
        prefix,
        "bytes before the object changed"
    );
    (r, out[prefix.len()..].to_vec())
}

/// Maps one record that must be written, and returns it parsed (after the duplicate check).
fn map_meta(c: &Config, time: Timestamp, meta: &M, body: &M) -> J {
    let (r, out) = map_raw(c, time, &enc(meta), body);
    assert_eq!(r, Mapped::Written { truncated: false });
    parse_checked(&out)
}

fn map_with(c: &Config, body: &M) -> J {
    let (r, out) = map_raw(c, T0, &[], body);
    assert_eq!(r, Mapped::Written { truncated: false });
    parse_checked(&out)
}

/// Maps with the default configuration minus the date attribute, so the object is exactly
/// what the record makes of itself.
fn map_plain(body: &M) -> J {
    map_with(&cfg(&[("json_date_key", "false")]), body)
}

fn tags(o: &J) -> Vec<&str> {
    o["ddtags"].as_str().expect("ddtags").split(',').collect()
}

// ---------------------------------------------------------------------------------------------
// JSON checker: validity and no duplicate keys at any depth

use test_support::json::NoDup;

/// Parses `bytes` as JSON after checking it has no duplicate key at any depth.
fn parse_checked(bytes: &[u8]) -> J {
    if let Err(e) = serde_json::from_slice::<NoDup>(bytes) {
        panic!(
            "{e}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
        );
    }
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn checker_rejects_duplicates_and_bad_json() {
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1,"a":2}"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(br#"[{"x":{"a":1,"\u0061":2}}]"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(br#"{"a":1"#).is_err());
    assert!(serde_json::from_slice::<NoDup>(b"\"\xff\"").is_err());
}

// ---------------------------------------------------------------------------------------------
// rule 1: the plugin's own attributes, each only if the record lacks it

#[test]
fn record_service_wins_over_option() {
    let c = cfg(&[
        ("dd_service", "web"),
        ("dd_source", "nginx"),
        ("dd_hostname", "h1"),
    ]);
    let o = map_with(
        &c,
        &obj(&[
            ("service", s("api")),
            ("ddsource", s("mine")),
            ("hostname", M::UInt(7)),
            ("log", s("x")),
        ]),
    );
    assert_eq!(o["service"], "api");
    assert_eq!(o["ddsource"], "mine");
    assert_eq!(o["hostname"], 7);
    // Without them in the record, the options fill in.
    let o = map_with(&c, &obj(&[("log", s("x"))]));
    assert_eq!(o["service"], "web");
    assert_eq!(o["ddsource"], "nginx");
    assert_eq!(o["hostname"], "h1");
    // A bin key names the attribute as well as a str key does.
    let o = map_with(
        &c,
        &M::Map(vec![(M::Bin(b"service".to_vec()), s("bin-svc"))]),
    );
    assert_eq!(o["service"], "bin-svc");
}

#[test]
fn plugin_attributes_never_duplicate_each_other() {
    // Option values that name the same attribute twice: the first written wins and the
    // object still has each key once (found by the property tests, see the report).
    let c = cfg(&[
        ("json_date_key", "service"),
        ("dd_service", "web"),
        ("include_tag_key", "on"),
        ("tag_key", "message"),
        ("dd_tags", "env:a"),
    ]);
    let o = map_with(&c, &obj(&[("log", s("hello"))]));
    assert_eq!(o["service"], 1_732_400_000_123u64);
    assert_eq!(o["message"], TAG);
    // The message key could not be renamed, so it stays under its own name.
    assert_eq!(o["log"], "hello");
    let c = cfg(&[("include_tag_key", "on"), ("tag_key", "timestamp")]);
    let o = map_with(&c, &obj(&[("log", s("hello"))]));
    assert_eq!(o["timestamp"], 1_732_400_000_123u64);
    let c = cfg(&[
        ("include_tag_key", "on"),
        ("tag_key", "ddtags"),
        ("dd_tags", "env:a"),
    ]);
    let o = map_with(&c, &obj(&[("log", s("hello"))]));
    assert_eq!(o["ddtags"], TAG);
    // A record with a ddtags of its own keeps the name from the tag attribute, and gets the
    // tags: the static ones over a ddtags that is no tag list...
    let o = map_with(&c, &obj(&[("ddtags", M::UInt(5)), ("log", s("x"))]));
    assert_eq!(o["ddtags"], "env:a", "{o}");
    // ... and its own tag list (found in review: both were lost when `ddtags` was given to
    // the date or tag attribute once for all records).
    let c = cfg(&[("json_date_key", "ddtags")]);
    let o = map_with(&c, &obj(&[("ddtags", s("team:a")), ("log", s("x"))]));
    assert_eq!(o["ddtags"], "team:a", "{o}");
    let o = map_with(&c, &obj(&[("log", s("x"))]));
    assert_eq!(o["ddtags"], 1_732_400_000_123u64, "{o}");
}

// ---------------------------------------------------------------------------------------------
// rule 3: message

#[test]
fn log_becomes_message() {
    let o = map_plain(&obj(&[("log", s("hello")), ("other", M::UInt(1))]));
    assert_eq!(o, json!({"message": "hello", "other": 1}));
    // A non-string message value keeps its type.
    let o = map_plain(&obj(&[("log", obj(&[("a", M::UInt(1))]))]));
    assert_eq!(o, json!({"message": {"a": 1}}));
    // dd_message_key picks another attribute; `log` is then an ordinary one.
    let c = cfg(&[("dd_message_key", "msg"), ("json_date_key", "off")]);
    let o = map_with(&c, &obj(&[("log", s("l")), ("msg", s("m"))]));
    assert_eq!(o, json!({"message": "m", "log": "l"}));
    // No message key and no message: no message attribute.
    let o = map_plain(&obj(&[("other", s("x"))]));
    assert_eq!(o, json!({"other": "x"}));
}

#[test]
fn message_key_not_renamed_when_record_has_message() {
    let o = map_plain(&obj(&[("log", s("other")), ("message", s("real"))]));
    assert_eq!(o, json!({"message": "real", "log": "other"}));
    let o = map_plain(&obj(&[("message", M::UInt(5)), ("log", s("other"))]));
    assert_eq!(o, json!({"message": 5, "log": "other"}));
}

// ---------------------------------------------------------------------------------------------
// rule 2: ddtags

#[test]
fn ddtags_merge_record_ecs_static_without_duplicates() {
    let c = cfg(&[
        ("provider", "ecs"),
        ("dd_tags", "env:prod, team:a,env:prod"),
        ("json_date_key", "off"),
    ]);
    let o = map_with(
        &c,
        &obj(&[
            ("ddtags", s(" team:a, own:1,own:1 ,, ")),
            ("container_id", s("abc")),
            ("log", s("x")),
        ]),
    );
    assert_eq!(
        tags(&o),
        ["team:a", "own:1", "container_id:abc", "env:prod"],
        "{o}"
    );
    assert!(o.get("container_id").is_none());
    assert_eq!(o["message"], "x");
    // An array of strings is a tag list too.
    let o = map_with(
        &c,
        &obj(&[("ddtags", M::Arr(vec![s("a:1"), M::Bin(b"b:2".to_vec())]))]),
    );
    assert_eq!(tags(&o), ["a:1", "b:2", "env:prod", "team:a"]);
    // The ECS tags themselves are not repeated.
    let o = map_with(
        &c,
        &obj(&[
            ("ddtags", s("container_id:abc")),
            ("container_id", s("abc")),
        ]),
    );
    assert_eq!(tags(&o), ["container_id:abc", "env:prod", "team:a"]);
    // A ddtags value that is no tag list stays an ordinary attribute when nothing is merged.
    let o = map_plain(&obj(&[("ddtags", M::UInt(5))]));
    assert_eq!(o, json!({"ddtags": 5}));
    // Static tags alone.
    let c = cfg(&[("dd_tags", "env:prod"), ("json_date_key", "off")]);
    assert_eq!(map_with(&c, &obj(&[])), json!({"ddtags": "env:prod"}));
}

#[test]
fn tags_follow_each_record_when_the_scratch_is_reused() {
    // The tags are remade only when their inputs change; a scratch that served earlier
    // records must give exactly what a fresh one gives.
    let c = cfg(&[("provider", "ecs"), ("dd_tags", "env:prod")]);
    let m = Mapper::new(&c);
    let bodies = [
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("1")),
        ]),
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("2")),
        ]),
        obj(&[("container_name", s("/b")), ("ecs_cluster", s("c1"))]),
        obj(&[("ecs_cluster", s("c1")), ("container_name", s("/b"))]),
        obj(&[("container_name", s("/b")), ("ddtags", s("x:1"))]),
        // The previous record's inputs less its own tags.
        obj(&[("container_name", s("/b"))]),
        obj(&[("container_name", s("/b")), ("ddtags", s("x:1"))]),
        // The same bytes split differently between an ECS value and the record's own tags.
        obj(&[("container_name", s("/bx")), ("ddtags", s(":1"))]),
        obj(&[("container_name", s("")), ("log", s("empty"))]),
        obj(&[("log", s("no ecs"))]),
        obj(&[("ddtags", M::UInt(3))]),
        obj(&[
            ("container_name", s("/a")),
            ("ecs_cluster", s("c1")),
            ("log", s("1")),
        ]),
    ];
    let mut shared = Scratch::default();
    for (n, body) in bodies.iter().enumerate() {
        let body = enc(body);
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, &format!("record {n}"));
    }
}

/// Maps `rec` with `shared` (which may hold tags and a plan from earlier records) and with a
/// fresh Scratch, and checks the objects are the same bytes.
fn same_as_alone(m: &Mapper, rec: &Record, shared: &mut Scratch, what: &str) {
    let (mut reused, mut fresh) = (Vec::new(), Vec::new());
    m.write(rec, TAG, shared, &mut reused);
    m.write(rec, TAG, &mut Scratch::default(), &mut fresh);
    assert_eq!(
        String::from_utf8_lossy(&reused),
        String::from_utf8_lossy(&fresh),
        "{what}"
    );
}

#[test]
fn records_of_one_container_are_written_from_the_plan() {
    // FireLens records of one container: from the third on (the second confirms the tags),
    // each is written from the previous one's plan, as it would be on its own.
    let m = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:a")]));
    let mut shared = Scratch::default();
    for n in 0..5 {
        let body = enc(&obj(&[
            ("container_name", s("/app")),
            ("ecs_cluster", s("arn:aws:ecs:us-east-1:1:cluster/c")),
            (
                "log",
                s(&format!("{{\"n\":{n},\"msg\":\"{}\"}}", "x".repeat(n * 40))),
            ),
            ("source", if n == 3 { M::UInt(2) } else { s("stdout") }),
        ]));
        let rec = Record {
            time: Timestamp {
                secs: 1_700_000_000 + n as i64,
                nanos: 0,
            },
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, &format!("record {n}"));
    }
    assert_eq!(shared.template.hits, 3);
}

#[test]
fn an_odd_record_keeps_the_plan_and_a_new_shape_replaces_it() {
    let m = Mapper::new(&cfg(&[("provider", "ecs")]));
    let mut shared = Scratch::default();
    let mut write = |pairs: &[(&str, M)]| {
        let body = enc(&obj(pairs));
        let rec = Record {
            time: T0,
            meta: &[],
            body: &body,
        };
        same_as_alone(&m, &rec, &mut shared, "");
        shared.template.hits
    };
    fn line(k: &str) -> [(&str, M); 2] {
        [("container_name", s("/a")), (k, s("x"))]
    }
    write(&line("log"));
    write(&line("log"));
    assert_eq!(write(&line("log")), 1);
    // One line of another shape goes the general way; the plan stays for the next ones.
    write(&line("msg"));
    assert_eq!(write(&line("log")), 2);
    // A new shape for good: the record of the eighth miss in a row becomes the plan.
    for _ in 0..8 {
        assert_eq!(write(&line("msg")), 2);
    }
    assert_eq!(write(&line("msg")), 3);
}

#[test]
fn scratch_shared_between_mappers_keeps_each_ones_tags() {
    // The same record through two instances with different dd_tags, one Scratch between
    // them: each record gets its own instance's tags, not the ones made last.
    let a = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:a")]));
    let b = Mapper::new(&cfg(&[("provider", "ecs"), ("dd_tags", "env:b")]));
    let body = enc(&obj(&[("container_name", s("/c")), ("log", s("x"))]));
    let rec = Record {
        time: T0,
        meta: &[],
        body: &body,
    };
    let mut shared = Scratch::default();
    for (m, want) in [
        (&a, "env:a"),
        (&b, "env:b"),
        (&a, "env:a"),
        (&a.clone(), "env:a"),
    ] {
        let mut out = Vec::new();
        m.write(&rec, TAG, &mut shared, &mut out);
        let o = parse_checked(&out);
        assert_eq!(o["ddtags"], format!("container_name:c,{want}"));
    }
}

#[test]
fn ecs_remap_follows_fluent_bit_4_1() {
    let c = cfg(&[("provider", "ecs"), ("json_date_key", "off")]);
    let arn = "arn:aws:ecs:ap-northeast-1:123456789012:task/prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e";
    let o = map_with(
        &c,
        &obj(&[
            ("container_id", s("cid-1")),
            ("container_name", s("/main-container")),
            ("container_image", s("repo/img:1.2")),
            (
                "ecs_cluster",
                s("arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod"),
            ),
            ("ecs_task_arn", s(arn)),
            ("ecs_task_definition", s("your-service:42")),
            ("source", s("stdout")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "container_id:cid-1",
            "container_name:main-container",
            "container_image:repo/img:1.2",
            "cluster_name:prod",
            &format!("task_arn:{arn}"),
            "region:ap-northeast-1",
            "task_id:prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e",
            "task_family:your-service",
            "task_version:42",
        ]
    );
    // The remapped attributes leave the object.
    assert_eq!(o.as_object().unwrap().len(), 2, "{o}");
    assert_eq!(o["source"], "stdout");

    // Values not in the expected form: the whole value under the tag's name.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_cluster", s("plain")),
            ("ecs_task_definition", s("nodef")),
            ("ecs_task_arn", s("weird")),
            ("container_name", s("//x")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "cluster_name:plain",
            "ecs_task_definition:nodef",
            "task_arn:weird",
            "task_id:weird",
            "container_name:/x",
        ]
    );
    // task_id is the text after the first `task/`; the cluster after the first `cluster/`.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_task_arn", s("arn:aws:ecs:eu-west-1:1:task/a/task/b")),
            ("ecs_cluster", s("x:cluster/c/cluster/d")),
        ]),
    );
    assert_eq!(
        tags(&o),
        [
            "task_arn:arn:aws:ecs:eu-west-1:1:task/a/task/b",
            "region:eu-west-1",
            "task_id:a/task/b",
            "cluster_name:c/cluster/d",
        ]
    );
    // Only non-empty string values are remapped; the others stay as they are.
    let o = map_with(
        &c,
        &obj(&[
            ("ecs_cluster", s("")),
            ("container_name", M::UInt(5)),
            ("container_id", M::Nil),
            ("ecs_task_arn", M::Arr(vec![s("task/x")])),
        ]),
    );
    assert_eq!(
        o,
        json!({"ecs_cluster": "", "container_name": 5, "container_id": null,
               "ecs_task_arn": ["task/x"]})
    );
}

#[test]
fn ecs_keys_stay_without_provider() {
    let body = obj(&[
        ("container_id", s("cid-1")),
        ("container_name", s("/main-container")),
        ("ecs_cluster", s("arn:aws:ecs:r:1:cluster/prod")),
        ("ecs_task_arn", s("arn:aws:ecs:r:1:task/prod/x")),
        ("ecs_task_definition", s("svc:1")),
    ]);
    let o = map_plain(&body);
    assert_eq!(
        o,
        json!({
            "container_id": "cid-1",
            "container_name": "/main-container",
            "ecs_cluster": "arn:aws:ecs:r:1:cluster/prod",
            "ecs_task_arn": "arn:aws:ecs:r:1:task/prod/x",
            "ecs_task_definition": "svc:1",
        })
    );
}

// ---------------------------------------------------------------------------------------------
// rule 1: tag and date

#[test]
fn include_tag_key_adds_tag() {
    let c = cfg(&[("include_tag_key", "on"), ("json_date_key", "off")]);
    assert_eq!(map_with(&c, &obj(&[])), json!({"tagkey": TAG}));
    let c = cfg(&[
        ("include_tag_key", "true"),
        ("tag_key", "fluent_tag"),
        ("json_date_key", "off"),
    ]);
    assert_eq!(map_with(&c, &obj(&[])), json!({"fluent_tag": TAG}));
    // The record's own attribute of that name wins.
    let o = map_with(&c, &obj(&[("fluent_tag", s("mine"))]));
    assert_eq!(o, json!({"fluent_tag": "mine"}));
    // Off by default.
    assert_eq!(map_plain(&obj(&[])), json!({}));
}

#[test]
fn json_date_key_ms_and_disabled() {
    let c = cfg(&[]);
    let o = map_with(&c, &obj(&[]));
    assert_eq!(o, json!({"timestamp": 1_732_400_000_123u64}));
    // Rounded half up to the millisecond.
    let t = Timestamp {
        secs: 1_732_400_000,
        nanos: 999_500_000,
    };
    let (_, out) = map_raw(&c, t, &[], &obj(&[]));
    assert_eq!(
        parse_checked(&out),
        json!({"timestamp": 1_732_400_001_000u64})
    );
    let t = Timestamp {
        secs: 5,
        nanos: 499_999,
    };
    let (_, out) = map_raw(&c, t, &[], &obj(&[]));
    assert_eq!(parse_checked(&out), json!({"timestamp": 5000}));
    // Another name.
    let c = cfg(&[("json_date_key", "ts")]);
    assert_eq!(map_with(&c, &obj(&[])), json!({"ts": 1_732_400_000_123u64}));
    // Disabled.
    for off in ["false", "off", "no"] {
        let c = cfg(&[("json_date_key", off)]);
        assert_eq!(map_with(&c, &obj(&[])), json!({}));
    }
}

#[test]
fn record_timestamp_wins() {
    let o = map_with(&cfg(&[]), &obj(&[("timestamp", s("custom"))]));
    assert_eq!(o, json!({"timestamp": "custom"}));
    let c = cfg(&[("json_date_key", "ts")]);
    let o = map_with(&c, &obj(&[("ts", M::UInt(1)), ("timestamp", M::UInt(2))]));
    assert_eq!(o, json!({"ts": 1, "timestamp": 2}));
}

// ---------------------------------------------------------------------------------------------
// rule 1: OpenTelemetry metadata

#[test]
fn otlp_severity_trace_span() {
    let trace: Vec<u8> = (0x01..=0x10).collect(); // low 64 bits: 0x090a0b0c0d0e0f10
    let span = vec![1, 2, 3, 4, 5, 6, 7, 8];
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("severity_number", M::UInt(17)),
            ("severity_text", s("ERROR")),
            ("trace_id", M::Bin(trace)),
            ("span_id", M::Bin(span)),
        ]),
    )]);
    let c = cfg(&[("json_date_key", "off")]);
    let o = map_meta(&c, T0, &meta, &obj(&[("log", s("payment failed"))]));
    assert_eq!(
        o,
        json!({
            "status": "ERROR",
            "dd.trace_id": 0x090a_0b0c_0d0e_0f10u64.to_string(),
            "dd.span_id": "72623859790382856",
            "message": "payment failed",
        })
    );
    // The record's own attributes win.
    let o = map_meta(
        &c,
        T0,
        &meta,
        &obj(&[
            ("status", s("info")),
            ("dd.trace_id", s("1")),
            ("dd.span_id", s("2")),
        ]),
    );
    assert_eq!(
        o,
        json!({"status": "info", "dd.trace_id": "1", "dd.span_id": "2"})
    );
    // Ids given as hex text: 32 digits (low half used) and 16 digits.
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("trace_id", s("5b8efff798038103d269b633813fc60c")),
            ("span_id", s("eee19b7ec3c1b174")),
        ]),
    )]);
    let o = map_meta(&c, T0, &meta, &obj(&[]));
    assert_eq!(
        o,
        json!({"dd.trace_id": "15161849952847513100", "dd.span_id": "17213210219539181940"})
    );
    // All-zero or malformed ids are left out; no otlp map, nothing added.
    let meta = obj(&[(
        "otlp",
        obj(&[
            ("trace_id", M::Bin(vec![0; 16])),
            ("span_id", M::Bin(vec![1; 5])),
            ("severity_text", M::UInt(3)),
        ]),
    )]);
    assert_eq!(map_meta(&c, T0, &meta, &obj(&[])), json!({}));
    assert_eq!(
        map_meta(&c, T0, &obj(&[("other", M::UInt(1))]), &obj(&[])),
        json!({})
    );
}

#[test]
fn otlp_fixture_record() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fb-4.2.8-otlp-groups.msgpack"
    );
    let data = std::fs::read(path).unwrap();
    let recs: Vec<Record> = decode::chunk(&data)
        .filter_map(|i| match i {
            decode::Item::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(recs.len(), 1);
    let mut out = Vec::new();
    let m = Mapper::new(&cfg(&[]));
    assert_eq!(
        m.write(&recs[0], "v1_logs", &mut Scratch::default(), &mut out),
        Mapped::Written { truncated: false }
    );
    let o = parse_checked(&out);
    assert_eq!(o["status"], "ERROR");
    assert_eq!(o["dd.trace_id"], "15161849952847513100");
    assert_eq!(o["dd.span_id"], "17213210219539181940");
    assert_eq!(o["message"], "payment failed");
}

// ---------------------------------------------------------------------------------------------
// no duplicate keys; key and value conversions

#[test]
fn duplicate_keys_first_wins_at_every_depth() {
    let inner = obj(&[("d", M::UInt(1)), ("d", M::UInt(2))]);
    let body = obj(&[
        ("a", M::UInt(1)),
        ("a", M::UInt(2)),
        (
            "n",
            obj(&[
                ("b", M::UInt(1)),
                ("b", M::UInt(2)),
                ("c", M::Arr(vec![inner.clone(), inner])),
            ]),
        ),
        ("a", M::UInt(3)),
    ]);
    assert_eq!(
        map_plain(&body),
        json!({"a": 1, "n": {"b": 1, "c": [{"d": 1}, {"d": 1}]}})
    );
    // Reserved attributes too: message, the message key, ddtags, the service.
    let c = cfg(&[("dd_service", "web"), ("json_date_key", "off")]);
    let o = map_with(
        &c,
        &obj(&[
            ("message", s("m1")),
            ("service", s("s1")),
            ("message", s("m2")),
            ("service", s("s2")),
        ]),
    );
    assert_eq!(o, json!({"message": "m1", "service": "s1"}));
    // The message key renamed to `message`: its duplicates do not reappear as `log`.
    let o = map_plain(&obj(&[("log", s("first")), ("log", s("second"))]));
    assert_eq!(o, json!({"message": "first"}));
    let o = map_plain(&obj(&[
        ("log", M::UInt(1)),
        ("x", M::UInt(0)),
        ("log", s("second")),
    ]));
    assert_eq!(o, json!({"message": 1, "x": 0}));
    // ddtags consumed as tags: a second ddtags is a duplicate, even when the first is empty.
    let o = map_plain(&obj(&[("ddtags", s("a:1")), ("ddtags", s("b:2"))]));
    assert_eq!(o, json!({"ddtags": "a:1"}));
    let o = map_plain(&obj(&[("ddtags", s("")), ("ddtags", s("b:2"))]));
    assert_eq!(o, json!({}));
    // ECS attributes consumed as tags: the first wins, later ones are dropped.
    let c = cfg(&[("provider", "ecs"), ("json_date_key", "off")]);
    let o = map_with(
        &c,
        &obj(&[("container_id", s("a")), ("container_id", s("b"))]),
    );
    assert_eq!(o, json!({"ddtags": "container_id:a"}));
    let o = map_with(
        &c,
        &obj(&[("container_id", M::UInt(1)), ("container_id", s("b"))]),
    );
    assert_eq!(o, json!({"container_id": 1}));
    // Keys that only become equal once written as JSON text: the first still wins.
    let body = M::Map(vec![
        (s("5"), s("str")),
        (M::UInt(5), s("uint")),
        (M::Bin(b"5".to_vec()), s("bin")),
    ]);
    assert_eq!(map_plain(&body), json!({"5": "str"}));
    // More keys than the linear duplicate search handles.
    let mut pairs: Vec<(M, M)> = (0..100)
        .map(|i| (s(&format!("k{i}")), M::UInt(i)))
        .collect();
    pairs.extend((0..100).map(|i| (s(&format!("k{i}")), M::UInt(1000 + i))));
    let o = map_plain(&obj(&[("nested", M::Map(pairs.clone()))]));
    assert_eq!(o["nested"].as_object().unwrap().len(), 100);
    assert_eq!(o["nested"]["k99"], 99);
    let o = map_plain(&M::Map(pairs));
    assert_eq!(o.as_object().unwrap().len(), 100);
    assert_eq!(o["k7"], 7);
}

#[test]
fn non_string_keys_become_strings() {
    let body = M::Map(vec![
        (M::UInt(1), s("uint")),
        (M::Int(-2), s("int")),
        (M::Bool(true), s("bool")),
        (M::Nil, s("nil")),
        (M::F64(1.5), s("float")),
        (M::Arr(vec![M::UInt(1), s("a")]), s("array")),
        (obj(&[("x", M::UInt(1))]), s("map")),
        (M::Bin(b"k".to_vec()), s("bin")),
        (M::Ext(5, vec![0xab]), s("ext")),
    ]);
    assert_eq!(
        map_plain(&body),
        json!({
            "1": "uint", "-2": "int", "true": "bool", "null": "nil", "1.5": "float",
            "[1,\"a\"]": "array", "{\"x\":1}": "map", "k": "bin", "ext:5:ab": "ext",
        })
    );
    // The same at depth, and two different array keys stay two keys.
    let body = obj(&[(
        "n",
        M::Map(vec![
            (M::Arr(vec![M::UInt(1)]), M::UInt(1)),
            (M::Arr(vec![M::UInt(2)]), M::UInt(2)),
        ]),
    )]);
    assert_eq!(map_plain(&body), json!({"n": {"[1]": 1, "[2]": 2}}));
    // A key's own nesting counts from where the key is.
    let body = obj(&[(
        "k",
        M::Map(vec![(M::Arr(vec![M::Arr(vec![])]), M::UInt(1))]),
    )]);
    assert_eq!(map_plain(&body), json!({"k": {"[[]]": 1}}));
    let mut deep = M::Arr(vec![]);
    for _ in 0..MAX_DEPTH {
        deep = M::Arr(vec![deep]);
    }
    let o = map_plain(&M::Map(vec![(deep, M::UInt(1))]));
    let key = o.as_object().unwrap().keys().next().unwrap().clone();
    assert!(key.contains(NESTING_MARKER), "{key}");
    assert_eq!(key.matches('[').count(), MAX_DEPTH - 1 + 1, "{key}");
}

#[test]
fn map_keys_nested_in_keys_stay_small() {
    // {{{...{1: 1}...: 1}: 1}: 1}, 10,000 levels of maps used as keys.
    let mut body = vec![0x81; 10_000];
    body.extend_from_slice(&[0x01, 0x01]);
    body.extend(std::iter::repeat_n(0x01, 10_000 - 1));
    let mut wrapped = vec![0x81, 0xa1, b'k'];
    wrapped.extend_from_slice(&body);
    let rec = Record {
        time: T0,
        meta: &[],
        body: &wrapped,
    };
    let mut out = Vec::new();
    let r = Mapper::new(&cfg(&[("json_date_key", "off")])).write(
        &rec,
        TAG,
        &mut Scratch::default(),
        &mut out,
    );
    assert_eq!(r, Mapped::Written { truncated: false });
    // Inside a key written as text, a key that is a map or an array is cut: escaping keys
    // within keys would double the text per level (2^32 bytes for this record).
    let inner = format!("{{\"{NESTING_MARKER}\":1}}");
    assert_eq!(parse_checked(&out), json!({"k": {inner: 1}}));
}

#[test]
fn bin_and_invalid_utf8_kept_lossily() {
    let body = M::Map(vec![
        (s("bin"), M::Bin(b"ab\xffc".to_vec())),
        (s("str"), M::Str(vec![0xc3, 0x28])),
        (M::Str(vec![b'k', 0xff]), s("bad key")),
        (M::Bin(vec![0xff, 0xfe, b' ', b'r']), s("bad bin key")),
        (s("ok"), M::Bin("日本".as_bytes().to_vec())),
        (s("log"), M::Bin(vec![b'x', 0xc3, 0x28])),
    ]);
    assert_eq!(
        map_plain(&body),
        json!({
            "message": "x\u{fffd}(",
            "bin": "ab\u{fffd}c",
            "str": "\u{fffd}(",
            "k\u{fffd}": "bad key",
            "\u{fffd}\u{fffd} r": "bad bin key",
            "ok": "日本",
        })
    );
}

#[test]
fn nan_and_infinity_become_null() {
    let body = obj(&[
        ("nan", M::F64(f64::NAN)),
        ("inf", M::F64(f64::INFINITY)),
        ("ninf", M::F64(f64::NEG_INFINITY)),
        ("nan32", M::F32(f32::NAN)),
        ("inf32", M::F32(f32::INFINITY)),
        ("arr", M::Arr(vec![M::F64(f64::NAN), M::F64(0.25)])),
        ("f32", M::F32(0.5)),
        ("neg0", M::F64(-0.0)),
    ]);
    let o = map_plain(&body);
    assert_eq!(
        o,
        json!({
            "nan": null, "inf": null, "ninf": null, "nan32": null, "inf32": null,
            "arr": [null, 0.25], "f32": 0.5, "neg0": -0.0,
        })
    );
}

/// Maximum nesting of arrays and objects in a JSON value (a scalar is 0).
fn depth(v: &J) -> usize {
    match v {
        J::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        J::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn nesting_deeper_than_limit_is_cut() {
    let nest = |levels: usize, leaf: M, maps: bool| {
        let mut v = leaf;
        for _ in 0..levels {
            v = if maps {
                obj(&[("m", v)])
            } else {
                M::Arr(vec![v])
            };
        }
        v
    };
    for maps in [false, true] {
        // The object itself is level 1: 31 more levels are kept whole.
        let o = map_plain(&obj(&[("k", nest(MAX_DEPTH - 1, M::UInt(7), maps))]));
        assert_eq!(depth(&o), MAX_DEPTH);
        let mut v = &o["k"];
        for _ in 0..MAX_DEPTH - 1 {
            v = if maps { &v["m"] } else { &v[0] };
        }
        assert_eq!(*v, 7);
        // One more and the innermost container becomes the marker; what follows it is kept.
        let deep = nest(MAX_DEPTH, M::UInt(7), maps);
        let o = map_plain(&obj(&[("k", deep), ("after", M::UInt(1))]));
        assert_eq!(depth(&o), MAX_DEPTH);
        assert_eq!(o["after"], 1);
        let mut v = &o["k"];
        for _ in 0..MAX_DEPTH - 1 {
            v = if maps { &v["m"] } else { &v[0] };
        }
        assert_eq!(*v, NESTING_MARKER);
    }
    // Far deeper than the limit (the decoder's skip is iterative, and so is the cut).
    let mut body = vec![0x82, 0xa1, b'k'];
    body.extend(std::iter::repeat_n(0x91u8, 100_000));
    body.push(0xc0);
    body.extend_from_slice(&[0xa1, b'z', 0x01]);
    let rec = Record {
        time: T0,
        meta: &[],
        body: &body,
    };
    let mut out = Vec::new();
    Mapper::new(&cfg(&[])).write(&rec, TAG, &mut Scratch::default(), &mut out);
    let o = parse_checked(&out);
    assert_eq!(depth(&o), MAX_DEPTH);
    assert_eq!(o["z"], 1);
}

// ---------------------------------------------------------------------------------------------
// the 1 MB limit

/// Maps `{log: text, ...extra}` and checks the truncation contract.
fn check_truncated(text: &str, extra: &[(&str, M)]) {
    let mut pairs = vec![("log", s(text))];
    pairs.extend(extra.iter().cloned());
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&pairs));
    assert_eq!(r, Mapped::Written { truncated: true });
    assert!(out.len() <= MAX_LOG_BYTES, "{}", out.len());
    // Cut no more than one escape or character past what was needed.
    assert!(out.len() > MAX_LOG_BYTES - 8, "{}", out.len());
    let o = parse_checked(&out);
    let msg = o["message"].as_str().unwrap();
    let kept = msg
        .strip_suffix(TRUNCATION_MARKER)
        .expect("ends with the marker");
    assert!(
        text.starts_with(kept),
        "the kept text is a prefix of the message"
    );
    assert!(kept.len() > 100_000);
    for (k, v) in extra {
        assert_eq!(o[k], parse_checked(&enc_json(v)), "{k} kept");
    }
}

/// What the mapper writes for a simple value (for comparing extra attributes).
fn enc_json(v: &M) -> Vec<u8> {
    let (_, out) = map_raw(
        &cfg(&[("json_date_key", "off")]),
        T0,
        &[],
        &obj(&[("v", v.clone())]),
    );
    let o = parse_checked(&out);
    serde_json::to_vec(&o["v"]).unwrap()
}

#[test]
fn message_over_1mb_truncated_with_marker() {
    // Plain ASCII, as in the fixtures.
    check_truncated(&"x".repeat(2_000_000), &[("source", s("stdout"))]);
    // Multi-byte text: the cut must land on a character boundary whatever the offset.
    for shift in 0..4 {
        let text = format!("{}{}", "a".repeat(shift), "é日😀".repeat(150_000));
        check_truncated(&text, &[]);
    }
    // Escapes: `"` and `\n` are two bytes of JSON, control characters six.
    for shift in 0..6 {
        let text = format!("{}{}", "a".repeat(shift), "\"\n\u{1}\\é".repeat(120_000));
        check_truncated(&text, &[("other", M::UInt(1))]);
    }
    // The message written under its own name (not renamed) is cut the same way.
    let (r, out) = map_raw(
        &cfg(&[]),
        T0,
        &[],
        &obj(&[("message", s(&"\"".repeat(600_000)))]),
    );
    assert_eq!(r, Mapped::Written { truncated: true });
    assert!(out.len() <= MAX_LOG_BYTES);
    let o = parse_checked(&out);
    assert!(o["message"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    // Exactly at the limit: not cut.
    let overhead = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(""))])).1.len();
    let text = "y".repeat(MAX_LOG_BYTES - overhead);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(&text))]));
    assert_eq!(r, Mapped::Written { truncated: false });
    assert_eq!(out.len(), MAX_LOG_BYTES);
    let text = "y".repeat(MAX_LOG_BYTES - overhead + 1);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(&text))]));
    assert_eq!(r, Mapped::Written { truncated: true });
    assert!(out.len() <= MAX_LOG_BYTES);
}

#[test]
fn message_over_1mb_written_in_part_keeps_the_same_text() {
    // Only the first MAX_LOG_BYTES bytes of a longer message are escaped; the kept text must
    // be the same as if all of it had been, whatever sits at that offset: a multi-byte
    // character, an escape, or bytes that are not UTF-8 (sent as bin). The 14 shifts put
    // the offset on each byte of those in turn.
    for shift in 0..14 {
        let mut text = vec![b'a'; MAX_LOG_BYTES - shift];
        text.extend_from_slice("日\\\"😀".as_bytes());
        text.extend_from_slice(b"\xff\xc3(\xe6\x97");
        text.extend(std::iter::repeat_n(b'b', 300_000));
        let (r, out) = map_raw(&cfg(&[]), T0, &[], &obj(&[("log", M::Bin(text.clone()))]));
        assert_eq!(r, Mapped::Written { truncated: true });
        assert!(out.len() <= MAX_LOG_BYTES && out.len() > MAX_LOG_BYTES - 8);
        let o = parse_checked(&out);
        let kept = o["message"].as_str().unwrap();
        let kept = kept.strip_suffix(TRUNCATION_MARKER).unwrap();
        assert!(
            String::from_utf8_lossy(&text).starts_with(kept),
            "shift {shift}"
        );
    }
}

#[test]
fn too_large_object_reports_its_whole_size() {
    // The message is written only in part, but the size reported is the whole object's.
    let other = ("other", M::Arr(vec![s(&"z".repeat(1_200_000))]));
    let size =
        |log: &str| match map_raw(&cfg(&[]), T0, &[], &obj(&[("log", s(log)), other.clone()])).0 {
            Mapped::TooLarge { bytes } => bytes,
            r => panic!("{r:?}"),
        };
    // Each quote is two bytes of JSON, and é stays two bytes.
    let long = format!("{}é{}", "\"".repeat(1_100_000), "é".repeat(10));
    assert_eq!(size(&long), size("") + 2_200_000 + 22);
}

#[test]
fn object_too_large_without_message_is_reported() {
    let big = "z".repeat(1_200_000);
    for body in [
        // Only top-level strings are cut: a string inside an array or a map is not.
        obj(&[("other", M::Arr(vec![s(&big)]))]),
        obj(&[("log", s("short")), ("other", obj(&[("x", s(&big))]))]),
        // A message that is not a string cannot be cut.
        obj(&[("log", M::Arr(vec![s(&big)]))]),
        // Nor can a key.
        M::Map(vec![(s(&big), M::UInt(1))]),
        // Many small values.
        obj(&[("n", M::Arr(vec![M::UInt(1_000_000); 200_000]))]),
    ] {
        let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
        match r {
            Mapped::TooLarge { bytes } => assert!(bytes > MAX_LOG_BYTES),
            other => panic!("{other:?}"),
        }
        assert!(out.is_empty(), "nothing appended");
    }
}

#[test]
fn largest_other_strings_cut_after_the_message() {
    // No message: the largest top-level string is cut.
    let big = "z".repeat(1_200_000);
    let (r, out) = map_raw(
        &cfg(&[]),
        T0,
        &[],
        &obj(&[("other", s(&big)), ("small", s("keep"))]),
    );
    assert_eq!(r, Mapped::Written { truncated: true });
    assert!(out.len() <= MAX_LOG_BYTES && out.len() > MAX_LOG_BYTES - 8);
    let o = parse_checked(&out);
    assert!(o["other"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    assert_eq!(o["small"], "keep");
    // A message too short to help: the largest other string goes first, the next only
    // if still needed.
    let body = obj(&[
        ("log", s("short")),
        ("a", s(&"a".repeat(500_000))),
        ("b", s(&"b\"".repeat(350_000))),
        ("c", s(&"c".repeat(100_000))),
    ]);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
    assert_eq!(r, Mapped::Written { truncated: true });
    assert!(out.len() <= MAX_LOG_BYTES, "{}", out.len());
    let o = parse_checked(&out);
    assert_eq!(o["message"], "short");
    assert_eq!(o["a"].as_str().unwrap().len(), 500_000);
    assert_eq!(o["c"].as_str().unwrap().len(), 100_000);
    let b = o["b"].as_str().unwrap();
    let kept = b.strip_suffix(TRUNCATION_MARKER).unwrap();
    assert!("b\"".repeat(350_000).starts_with(kept));
    // The message is cut before anything else, even when another string is larger.
    let body = obj(&[
        ("log", s(&"m".repeat(600_000))),
        ("a", s(&"a".repeat(700_000))),
    ]);
    let (r, out) = map_raw(&cfg(&[]), T0, &[], &body);
    assert_eq!(r, Mapped::Written { truncated: true });
    let o = parse_checked(&out);
    assert!(o["message"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
    assert_eq!(o["a"].as_str().unwrap().len(), 700_000);
}

// ---------------------------------------------------------------------------------------------
// rule 4: everything else as it is

#[test]
fn types_and_nesting_kept() {
    let body = obj(&[
        ("neg", M::Int(-5)),
        ("umax", M::UInt(u64::MAX)),
        ("imax", M::UInt(i64::MAX as u64)),
        ("imin", M::Int(i64::MIN)),
        ("big", M::F64(1.5e300)),
        ("t", M::Bool(true)),
        ("f", M::Bool(false)),
        ("n", M::Nil),
        ("empty_s", s("")),
        ("esc", s("q\"b\\n\n\t\u{7f}\u{0}")),
        ("emoji", s("日本語 😀")),
        (
            "arr",
            M::Arr(vec![
                M::UInt(1),
                s("a"),
                M::Arr(vec![]),
                obj(&[("k", M::Nil)]),
            ]),
        ),
        (
            "m",
            obj(&[("x", obj(&[("y", M::Arr(vec![M::Nil]))])), ("e", obj(&[]))]),
        ),
    ]);
    assert_eq!(
        map_plain(&body),
        json!({
            "neg": -5, "umax": u64::MAX, "imax": i64::MAX, "imin": i64::MIN, "big": 1.5e300,
            "t": true, "f": false, "n": null, "empty_s": "", "esc": "q\"b\\n\n\t\u{7f}\u{0}",
            "emoji": "日本語 😀",
            "arr": [1, "a", [], {"k": null}],
            "m": {"x": {"y": [null]}, "e": {}},
        })
    );
    // Attribute order is kept.
    let (_, out) = map_raw(
        &cfg(&[("json_date_key", "off")]),
        T0,
        &[],
        &obj(&[("z", M::UInt(1)), ("a", M::UInt(2)), ("m", M::UInt(3))]),
    );
    assert_eq!(out, br#"{"z":1,"a":2,"m":3}"#);
}

#[test]
fn nested_eventtime_becomes_ms() {
    let body = obj(&[
        ("t", event_time(1_732_400_000, 123_456_789)),
        (
            "arr",
            M::Arr(vec![event_time(1, 500_000), event_time(2, 0)]),
        ),
        ("n", obj(&[("t", event_time(0, 4_000_000_000))])),
        ("other_ext", M::Ext(5, vec![1, 2, 0xff])),
        ("short_ext0", M::Ext(0, vec![1, 2, 3, 4])),
        ("neg_ext", M::Ext(-1, vec![])),
    ]);
    assert_eq!(
        map_plain(&body),
        json!({
            "t": 1_732_400_000_123u64,
            "arr": [1001, 2000],
            "n": {"t": 1000},
            "other_ext": "ext:5:0102ff",
            "short_ext0": "ext:0:01020304",
            "neg_ext": "ext:-1:",
        })
    );
}

#[test]
fn large_maps_dedup_in_linear_time() {
    // 60,000 distinct keys then each again: with a set rebuilt per key this took minutes.
    let n = 60_000u64;
    let pairs: Vec<(M, M)> = (0..2 * n).map(|i| (M::UInt(i % n), M::UInt(i))).collect();
    let t = std::time::Instant::now();
    let o = map_plain(&M::Map(pairs.clone()));
    assert_eq!(o.as_object().unwrap().len(), n as usize);
    assert_eq!(o["59999"], 59_999);
    let o = map_plain(&obj(&[("n", M::Map(pairs))]));
    assert_eq!(o["n"].as_object().unwrap().len(), n as usize);
    assert_eq!(o["n"]["7"], 7);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        t.elapsed()
    );
}
