//! The plugin's own attributes (rule 1) and the message (rule 3).

use super::*;

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
