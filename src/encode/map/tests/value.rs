//! Keys and values: no duplicate keys, conversions, nesting (rule 4).

use super::*;

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
    assert_eq!(o, json!({"ddsource": "ecs", "ddtags": "container_id:a"}));
    let o = map_with(
        &c,
        &obj(&[("container_id", M::UInt(1)), ("container_id", s("b"))]),
    );
    assert_eq!(o, json!({"ddsource": "ecs", "container_id": 1}));
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
    assert_eq!(
        r,
        Mapped::Written {
            truncated: false,
            partial: false
        }
    );
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
