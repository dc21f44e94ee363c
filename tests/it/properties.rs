//! Property tests over the public API (`decode`, `map`, `batch`, `options`):
//!
//! * arbitrary msgpack values wrapped as `[ts, body]` and `[[ts, meta], body]` records, under
//!   arbitrary mapping options: decoding and mapping never panic, and every object is valid
//!   JSON, at most 1 MB, with no duplicate key at any depth; a plain attribute comes out as
//!   the documented rules say (checked against a small reference written from the docs);
//! * random overwrites, truncations and splices of the real fixtures: nothing panics, every
//!   batch is a valid JSON array within Datadog's limits, and every record whose bytes the
//!   damage did not touch still comes out, unless a record the damage made up swallowed it.

use fluent_bit_datadog::internals::batch::{self, Batch, BuildStats};
use fluent_bit_datadog::internals::decode::{self, Item, Reader};
use fluent_bit_datadog::internals::map::{
    MAX_DEPTH, MAX_LOG_BYTES, Mapped, Mapper, NESTING_MARKER, Scratch, TRUNCATION_MARKER,
};
use fluent_bit_datadog::internals::options::Config;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// msgpack values

use test_support::msgpack::{Mp, enc_into, event_time};

/// Names the mapping treats specially, and a few others, so keys collide often.
const NAMES: &[&str] = &[
    "log",
    "message",
    "msg",
    "ddtags",
    "service",
    "ddsource",
    "hostname",
    "status",
    "timestamp",
    "tagkey",
    "dd.trace_id",
    "dd.span_id",
    "container_id",
    "container_name",
    "container_image",
    "ecs_cluster",
    "ecs_task_arn",
    "ecs_task_definition",
    "otlp",
    "a",
    "5",
    "true",
    "null",
    "[1]",
];

fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max).boxed()
}

fn text() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(NAMES).prop_map(|s| s.as_bytes().to_vec()),
        2 => "\\PC{0,12}".prop_map(String::into_bytes),
        2 => "[\"\\\\\n\t\u{1}\u{7f}é日😀a,:/ ]{0,16}".prop_map(String::into_bytes),
        1 => "arn:aws:ecs:[a-z0-9-]{0,8}:[0-9]{0,4}:(task|cluster)/[a-z/:]{0,10}"
            .prop_map(String::into_bytes),
        1 => bytes(12),
    ]
    .boxed()
}

fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Mp> {
    prop_oneof![
        1 => Just(Mp::Nil),
        1 => any::<bool>().prop_map(Mp::Bool),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => float().prop_map(Mp::F64),
        1 => prop_oneof![any::<f32>(), Just(f32::NAN), Just(f32::INFINITY)].prop_map(Mp::F32),
        3 => text().prop_map(Mp::Str),
        1 => bytes(12).prop_map(Mp::Bin),
        1 => (any::<i8>(), bytes(10)).prop_map(|(t, d)| Mp::Ext(t, d)),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
    ]
    .boxed()
}

/// A map key: mostly str or bin, sometimes any value at all.
fn key(inner: impl Strategy<Value = Mp> + 'static) -> BoxedStrategy<Mp> {
    prop_oneof![
        6 => text().prop_map(Mp::Str),
        1 => text().prop_map(Mp::Bin),
        1 => inner,
    ]
    .boxed()
}

/// Any value, nested a little, sometimes wrapped in enough arrays and maps to pass
/// [`MAX_DEPTH`].
fn value() -> BoxedStrategy<Mp> {
    let nested = leaf()
        .prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Mp::Arr),
                prop::collection::vec((key(inner.clone()), inner), 0..6).prop_map(Mp::Map),
            ]
        })
        .boxed();
    prop_oneof![
        8 => nested.clone(),
        1 => (nested, 25..40usize, any::<bool>(), key(leaf())).prop_map(|(v, n, maps, k)| {
            let mut v = v;
            for _ in 0..n {
                v = if maps { Mp::Map(vec![(k.clone(), v)]) } else { Mp::Arr(vec![v]) };
            }
            v
        }),
    ]
    .boxed()
}

/// A record body: a map, with keys from [`NAMES`] often enough to repeat.
fn body() -> BoxedStrategy<Mp> {
    prop::collection::vec((key(value()), value()), 0..10)
        .prop_map(Mp::Map)
        .boxed()
}

/// v2 metadata: arbitrary, or an `otlp` map with any mix of well- and ill-formed fields.
fn meta() -> BoxedStrategy<Mp> {
    let id = prop_oneof![
        bytes(17).prop_map(Mp::Bin),
        "[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-zA-Z]{0,33}".prop_map(|s| Mp::Str(s.into_bytes())),
        leaf(),
    ];
    let otlp = (
        prop::option::of(leaf()),
        prop::option::of(id.clone()),
        prop::option::of(id),
    )
        .prop_map(|(sev, trace, span)| {
            let mut m = vec![(Mp::Str(b"severity_number".to_vec()), Mp::UInt(17))];
            let fields = [
                ("severity_text", sev),
                ("trace_id", trace),
                ("span_id", span),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    m.push((Mp::Str(k.as_bytes().to_vec()), v));
                }
            }
            Mp::Map(vec![(Mp::Str(b"otlp".to_vec()), Mp::Map(m))])
        });
    prop_oneof![
        prop::collection::vec((key(leaf()), value()), 0..4).prop_map(Mp::Map),
        otlp,
    ]
    .boxed()
}

/// A timestamp in every encoding the decoder accepts, and some it must refuse.
fn timestamp() -> BoxedStrategy<Mp> {
    prop_oneof![
        4 => (any::<u32>(), any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
        1 => (prop::sample::select(&[decode::GROUP_START, decode::GROUP_END][..]), any::<u32>())
            .prop_map(|(s, n)| event_time(s, n)),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => float().prop_map(Mp::F64),
    ]
    .boxed()
}

/// What the decoder should make of a well-formed record with this timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Record,
    Marker,
    Refused,
}

fn expect(ts: &Mp) -> Expect {
    match ts {
        Mp::Ext(0, d) if d.len() == 8 => {
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
            if secs == decode::GROUP_START || secs == decode::GROUP_END {
                Expect::Marker
            } else {
                Expect::Record
            }
        }
        Mp::UInt(_) | Mp::Int(_) => Expect::Record,
        Mp::F64(f) if f.is_finite() => Expect::Record,
        _ => Expect::Refused,
    }
}

#[derive(Clone, Debug)]
struct Rec {
    ts: Mp,
    meta: Option<Mp>,
    body: Mp,
}

fn record() -> BoxedStrategy<Rec> {
    (timestamp(), prop::option::of(meta()), body())
        .prop_map(|(ts, meta, body)| Rec { ts, meta, body })
        .boxed()
}

fn enc_record(r: &Rec, out: &mut Vec<u8>) {
    let head = match &r.meta {
        None => r.ts.clone(),
        Some(m) => Mp::Arr(vec![r.ts.clone(), m.clone()]),
    };
    enc_into(&Mp::Arr(vec![head, r.body.clone()]), out);
}

// ---------------------------------------------------------------------------------------------
// options

const KEY: &str = "0123456789abcdef0123456789abcdef";

/// Maps one record with body `body` (a map) on its own: the result and the object's bytes.
fn map_alone(cfg: &Config, body: &Mp, time: decode::Timestamp) -> (Mapped, Vec<u8>) {
    let mut bytes = Vec::new();
    enc_into(body, &mut bytes);
    let rec = decode::Record {
        time,
        meta: &[],
        body: &bytes,
    };
    let mut out = Vec::new();
    let r = Mapper::new(cfg).write(&rec, "t", &mut Scratch::default(), &mut out);
    (r, out)
}

fn config_of(pairs: &[(&str, String)]) -> Config {
    let mut p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    p.insert("apikey".into(), KEY.into());
    Config::from_lookup(|k| p.get(k).cloned(), |_| None).unwrap()
}

/// Mapping options, including ones that name the same attribute twice.
fn config() -> BoxedStrategy<Config> {
    let name = || prop::option::of(prop::sample::select(NAMES).prop_map(str::to_string));
    (
        any::<bool>(),
        prop::option::of(prop::sample::select(
            &[
                "env:prod,team:a",
                " env:prod , ,env:prod",
                "container_id:x,a",
            ][..],
        )),
        (name(), name(), name()),
        name(),
        (any::<bool>(), name()),
        prop::option::of(prop::sample::select(
            &[
                "off",
                "timestamp",
                "ts",
                "service",
                "message",
                "ddtags",
                "log",
            ][..],
        )),
    )
        .prop_map(
            |(ecs, tags, (svc, src, host), msg_key, (tag_on, tag_key), date)| {
                let mut p: Vec<(&str, String)> = Vec::new();
                if ecs {
                    p.push(("provider", "ecs".into()));
                }
                if let Some(t) = tags {
                    p.push(("dd_tags", t.into()));
                }
                for (k, v) in [
                    ("dd_service", svc),
                    ("dd_source", src),
                    ("dd_hostname", host),
                ] {
                    if let Some(v) = v {
                        p.push((k, v));
                    }
                }
                if let Some(k) = msg_key {
                    p.push(("dd_message_key", k));
                }
                if tag_on {
                    p.push(("include_tag_key", "on".into()));
                }
                if let Some(k) = tag_key {
                    p.push(("tag_key", k));
                }
                if let Some(d) = date {
                    p.push(("json_date_key", d.into()));
                }
                config_of(&p)
            },
        )
        .boxed()
}

// ---------------------------------------------------------------------------------------------
// checking the output

use test_support::json::NoDup;

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(3000)]).into_owned()
}

/// Valid JSON with no duplicate key at any depth; returns it parsed.
fn parse_checked(bytes: &[u8]) -> serde_json::Value {
    if let Err(e) = serde_json::from_slice::<NoDup>(bytes) {
        panic!("{e}: {}", show(bytes));
    }
    serde_json::from_slice(bytes).unwrap()
}

/// One mapped object: a JSON object within the 1 MB limit, without duplicate keys.
fn check_object(bytes: &[u8]) -> serde_json::Value {
    assert!(bytes.len() <= MAX_LOG_BYTES, "{} bytes", bytes.len());
    let v = parse_checked(bytes);
    assert!(v.is_object(), "{}", show(bytes));
    v
}

/// Every batch is a JSON array of its objects, within Datadog's limits.
fn check_batches(batches: &[Batch], stats: &BuildStats) {
    let mut objects = 0;
    for b in batches {
        assert!(!b.is_empty());
        assert!(b.len() <= batch::MAX_OBJECTS);
        assert!(b.json.len() <= batch::MAX_BYTES, "{}", b.json.len());
        let v = parse_checked(&b.json);
        assert_eq!(v.as_array().map(Vec::len), Some(b.len()));
        for i in 0..b.len() {
            check_object(b.object(i));
        }
        objects += b.len();
    }
    assert_eq!(objects as u64, stats.records - stats.too_large);
}

// ---------------------------------------------------------------------------------------------
// a reference for plain attributes, written from the module documentation of `map`

fn ref_json(m: &Mp, depth: usize, in_key: bool, out: &mut String) {
    let json_str = |s: &str| serde_json::to_string(s).unwrap();
    match m {
        Mp::Nil => out.push_str("null"),
        Mp::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Mp::UInt(n) => out.push_str(&n.to_string()),
        Mp::Int(n) => out.push_str(&n.to_string()),
        Mp::F32(f) => ref_float(*f as f64, out),
        Mp::F64(f) => ref_float(*f, out),
        Mp::Str(b) | Mp::Bin(b) => out.push_str(&json_str(&String::from_utf8_lossy(b))),
        Mp::Ext(0, d) if d.len() == 8 => {
            let secs = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64;
            let nanos = u32::from_be_bytes([d[4], d[5], d[6], d[7]]).min(999_999_999) as i64;
            out.push_str(&(secs * 1000 + (nanos + 500_000) / 1_000_000).to_string());
        }
        Mp::Ext(t, d) => {
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            out.push_str(&json_str(&format!("ext:{t}:{hex}")));
        }
        Mp::Arr(_) | Mp::Map(_) if depth >= MAX_DEPTH => out.push_str(&json_str(NESTING_MARKER)),
        Mp::Arr(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ref_json(v, depth + 1, in_key, out);
            }
            out.push(']');
        }
        Mp::Map(pairs) => {
            out.push('{');
            let mut seen = HashSet::new();
            let key_depth = if in_key { MAX_DEPTH } else { depth + 1 };
            for (k, v) in pairs {
                let k = ref_key(k, key_depth);
                if !seen.insert(k.clone()) {
                    continue;
                }
                if seen.len() > 1 {
                    out.push(',');
                }
                out.push_str(&json_str(&k));
                out.push(':');
                ref_json(v, depth + 1, in_key, out);
            }
            out.push('}');
        }
    }
}

fn ref_float(f: f64, out: &mut String) {
    if f.is_finite() {
        // Shortest round-trip form (as a key, the text itself matters: 1e300, not 1e+300).
        out.push_str(ryu::Buffer::new().format_finite(f));
    } else {
        out.push_str("null");
    }
}

/// The text of a key: a string as it is, an integer in decimal, anything else its JSON text.
fn ref_key(k: &Mp, depth: usize) -> String {
    match k {
        Mp::Str(b) | Mp::Bin(b) => String::from_utf8_lossy(b).into_owned(),
        Mp::UInt(n) => n.to_string(),
        Mp::Int(n) => n.to_string(),
        other => {
            let mut t = String::new();
            ref_json(other, depth, true, &mut t);
            match serde_json::from_str::<String>(&t) {
                Ok(s) if t.starts_with('"') => s,
                _ => t,
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// properties over generated records

/// `cases` per property, times `PROPERTIES_SCALE` from the environment for a longer search
/// (e.g. `PROPERTIES_SCALE=50 cargo test --release --test properties`).
fn case_config(cases: u32) -> ProptestConfig {
    let scale = std::env::var("PROPERTIES_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig {
        cases: cases.saturating_mul(scale),
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Records of arbitrary values, v1 and v2, alone and several to a chunk.
    #[test]
    fn arbitrary_records_map_to_valid_objects(
        cfg in config(),
        recs in prop::collection::vec(record(), 1..4),
    ) {
        let mapper = Mapper::new(&cfg);
        let mut scratch = Scratch::default();
        let mut chunk = Vec::new();
        for r in &recs {
            let mut one = Vec::new();
            enc_record(r, &mut one);
            chunk.extend_from_slice(&one);
            // Alone.
            let mut found = 0;
            for item in decode::chunk(&one) {
                if let Item::Record(rec) = item {
                    found += 1;
                    let mut out = b"[{},".to_vec();
                    match mapper.write(&rec, "app.tag", &mut scratch, &mut out) {
                        Mapped::Written { .. } => {
                            prop_assert_eq!(&out[..4], b"[{},");
                            check_object(&out[4..]);
                        }
                        Mapped::TooLarge { bytes } => {
                            prop_assert!(bytes > MAX_LOG_BYTES);
                            prop_assert_eq!(&out[..], b"[{},");
                        }
                    }
                }
            }
            let c = decode::count(&one);
            match expect(&r.ts) {
                Expect::Record => {
                    prop_assert_eq!((c.records, c.markers, c.malformed), (1, 0, 0));
                    prop_assert_eq!(found, 1);
                }
                Expect::Marker => {
                    prop_assert_eq!((c.records, c.markers, c.malformed), (0, 1, 0));
                }
                Expect::Refused => prop_assert!(c.malformed >= 1),
            }
        }
        // Together, through the batcher.
        let mut spare = Vec::new();
        let (batches, stats) = batch::build(&chunk, "app.tag", &mapper, &mut scratch, &mut spare);
        check_batches(&batches, &stats);
        // Again, into the recycled buffers of the first run (with stale bytes in them).
        let first = batches.clone();
        batch::recycle(batches, &mut spare);
        spare.push(b"stale [{\"x\":1}".to_vec());
        let (again, stats2) = batch::build(&chunk, "app.tag", &mapper, &mut scratch, &mut spare);
        prop_assert_eq!(&again, &first);
        prop_assert_eq!(stats2, stats);
        if recs.iter().all(|r| expect(&r.ts) != Expect::Refused) {
            let want = recs.iter().filter(|r| expect(&r.ts) == Expect::Record).count();
            prop_assert_eq!(stats.records as usize, want);
            prop_assert_eq!(stats.malformed, 0);
        }
    }

    /// A plain attribute comes out as the documented rules say: types and nesting kept,
    /// strings lossy, non-string keys as text, first duplicate wins, NaN and infinities
    /// null, EventTime in milliseconds, deep nesting cut.
    #[test]
    fn plain_attributes_follow_the_rules(v in value(), ts in (any::<u32>(), 0..1_000_000_000u32)) {
        let cfg = config_of(&[("json_date_key", "off".into())]);
        let body = Mp::Map(vec![(Mp::Str(b"v".to_vec()), v.clone())]);
        let time = decode::Timestamp { secs: ts.0 as i64, nanos: ts.1 };
        let (r, out) = map_alone(&cfg, &body, time);
        prop_assert_eq!(r, Mapped::Written { truncated: false, partial: false });
        let got = check_object(&out);
        let mut want = String::new();
        ref_json(&v, 1, false, &mut want);
        let want: serde_json::Value = serde_json::from_str(&want).unwrap();
        prop_assert_eq!(&got["v"], &want);
        prop_assert_eq!(got.as_object().unwrap().len(), 1);
    }
}

/// A value for records that share their keys: often one of a few texts (so ECS attributes
/// and tags repeat from record to record, as a container's do), sometimes empty or any value.
fn shared_value() -> BoxedStrategy<Mp> {
    prop_oneof![
        4 => prop::sample::select(&[
            "arn:aws:ecs:us-east-1:1:task/c/abc",
            "arn:aws:ecs:us-east-1:1:cluster/c",
            "/app",
            "fam:3",
            "x",
        ][..])
        .prop_map(|t| Mp::Str(t.as_bytes().to_vec())),
        1 => Just(Mp::Str(Vec::new())),
        2 => text().prop_map(Mp::Str),
        2 => value(),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Records with the same keys in the same order, one after the other, are written from
    /// the previous record's plan (`map::template`) when they can be: byte for byte what each
    /// would be on its own, whatever changes between them (values and their kinds, a key, the
    /// tag, OpenTelemetry metadata, the time, a message over 1 MB).
    #[test]
    fn records_sharing_keys_map_as_they_would_alone(
        cfg in config(),
        keys in prop::collection::vec(key(leaf()), 0..8),
        rows in prop::collection::vec(
            (
                // A new value for each key, or (None) the previous record's, so that runs of
                // records share their ECS values and tags, as a container's do.
                prop::collection::vec(prop::option::weighted(0.3, shared_value()), 8),
                prop::option::of(meta()),
                (any::<u32>(), any::<u32>()),
                prop::sample::select(&["app.a", "app.a", "app.b"][..]),
                0..40u8,
                prop::option::weighted(0.2, (any::<Index>(), key(leaf()))),
            ),
            1..16,
        ),
    ) {
        let mapper = Mapper::new(&cfg);
        let mut shared = Scratch::default();
        let mut last: Vec<Mp> = vec![Mp::Str(b"/app".to_vec()); 8];
        for (values, meta, (secs, nanos), tag, big, other_key) in rows {
            for (l, v) in last.iter_mut().zip(values) {
                if let Some(v) = v {
                    *l = v;
                }
            }
            let mut pairs: Vec<(Mp, Mp)> = keys.iter().cloned().zip(last.iter().cloned()).collect();
            if let Some((at, k)) = other_key
                && !pairs.is_empty()
            {
                // Now and then one key differs (often a name of the same length).
                let at = at.index(pairs.len());
                pairs[at].0 = k;
            }
            if big == 0 && !pairs.is_empty() {
                // Now and then a value over 1 MB, to be cut.
                pairs[0].1 = Mp::Str(vec![b'"'; 600_000]);
            }
            let mut body = Vec::new();
            enc_into(&Mp::Map(pairs), &mut body);
            let mut meta_bytes = Vec::new();
            if let Some(m) = &meta {
                enc_into(m, &mut meta_bytes);
            }
            let rec = decode::Record {
                time: decode::Timestamp { secs: secs as i64, nanos: nanos % 1_000_000_000 },
                meta: &meta_bytes,
                body: &body,
            };
            let (mut with_plan, mut alone) = (b"[{},".to_vec(), b"[{},".to_vec());
            let r1 = mapper.write(&rec, tag, &mut shared, &mut with_plan);
            let r2 = mapper.write(&rec, tag, &mut Scratch::default(), &mut alone);
            prop_assert_eq!(r1, r2);
            prop_assert_eq!(show(&with_plan), show(&alone));
        }
    }
}

proptest! {
    #![proptest_config(case_config(16))]

    /// A message over 1 MB is cut on a character and escape boundary, ends with the marker,
    /// and the object fits.
    #[test]
    fn long_messages_are_cut_to_fit(
        unit in text().prop_filter("not empty", |t| !t.is_empty()),
        extra in prop::collection::vec((key(leaf()), leaf()), 0..6).prop_map(|mut e| {
            // Another message or log would be the message instead, or stay beside it.
            e.retain(|(k, _)| {
                !matches!(k, Mp::Str(b) | Mp::Bin(b) if b == b"message" || b == b"log")
            });
            e
        }),
        as_message in any::<bool>(),
        as_bin in any::<bool>(),
    ) {
        let reps = 1_300_000 / unit.len() + 1;
        let long: Vec<u8> = unit.repeat(reps);
        let name: &[u8] = if as_message { b"message" } else { b"log" };
        let value = if as_bin { Mp::Bin(long.clone()) } else { Mp::Str(long.clone()) };
        let mut pairs = vec![(Mp::Str(name.to_vec()), value)];
        pairs.extend(extra);
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        prop_assert_eq!(r, Mapped::Written { truncated: true, partial: false });
        let o = check_object(&out);
        let msg = o["message"].as_str().unwrap();
        let kept = msg.strip_suffix(TRUNCATION_MARKER).unwrap();
        prop_assert!(String::from_utf8_lossy(&long).starts_with(kept));
        prop_assert!(out.len() > MAX_LOG_BYTES - 16, "{}", out.len());
    }
}

proptest! {
    #![proptest_config(case_config(16))]

    /// An object over 1 MB made of strings: the message and then the largest other top-level
    /// strings are cut until it fits; every cut string ends with the marker and starts like
    /// the original, every other attribute is untouched.
    #[test]
    fn oversized_strings_are_cut_to_fit(
        strings in prop::collection::vec(
            (
                prop::sample::select(&["log", "message", "a", "b", "c", "d"][..]),
                text(),
                prop_oneof![0..64usize, 150_000..700_000usize],
                any::<bool>(),
            ),
            1..6,
        ),
        extra in prop::collection::vec(("x[0-9]", leaf()), 0..4),
    ) {
        let mut pairs = Vec::new();
        let mut want: HashMap<String, String> = HashMap::new();
        for (name, unit, len, as_bin) in &strings {
            let long = if unit.is_empty() { vec![b'u'; *len] } else {
                unit.repeat(len / unit.len() + 1)
            };
            want.entry(name.to_string()).or_insert_with(|| String::from_utf8_lossy(&long).into());
            let v = if *as_bin { Mp::Bin(long) } else { Mp::Str(long) };
            pairs.push((Mp::Str(name.as_bytes().to_vec()), v));
        }
        for (k, v) in &extra {
            pairs.push((Mp::Str(k.clone().into_bytes()), v.clone()));
        }
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        let o = check_object(&out);
        // `log` is the message unless the record has one of its own.
        if !want.contains_key("message") && let Some(m) = want.remove("log") {
            want.insert("message".into(), m);
        }
        let mut cut = 0;
        for (k, full) in &want {
            let got = o[k.as_str()].as_str().unwrap();
            if got != full {
                let kept = got.strip_suffix(TRUNCATION_MARKER).unwrap();
                prop_assert!(full.starts_with(kept), "{k}");
                cut += 1;
            }
        }
        // Only top-level strings are large, and they can all be cut: the object always fits.
        prop_assert_eq!(r, Mapped::Written { truncated: cut > 0, partial: false });
        if cut > 0 {
            prop_assert!(out.len() > MAX_LOG_BYTES - 8, "cut too much: {}", out.len());
        }
        let mut seen = HashSet::new();
        for (k, v) in &extra {
            if seen.insert(k) {
                let mut t = String::new();
                ref_json(v, 1, false, &mut t);
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                prop_assert_eq!(&o[k.as_str()], &v);
            }
        }
    }
}

/// Wraps `v` in containers, innermost first: a map `{"n": v, "k": 1}` or an array `[1, v]`.
fn wrap(v: Mp, shape: &[bool]) -> Mp {
    shape.iter().fold(v, |v, &in_map| {
        if in_map {
            Mp::Map(vec![
                (Mp::Str(b"n".to_vec()), v),
                (Mp::Str(b"k".to_vec()), Mp::UInt(1)),
            ])
        } else {
            Mp::Arr(vec![Mp::UInt(1), v])
        }
    })
}

/// The value at the end of the path `wrap` made, outermost first.
fn unwrap_json<'a>(mut v: &'a serde_json::Value, shape: &[bool]) -> &'a serde_json::Value {
    for &in_map in shape.iter().rev() {
        v = if in_map { &v["n"] } else { &v[1] };
    }
    v
}

proptest! {
    #![proptest_config(case_config(12))]

    /// An object over 1 MB whose bulk is in nested strings arrives cut, not dropped: every
    /// object either fits with the cut strings ending in the marker (each starting like the
    /// original, keys and structure untouched), or, only when it cannot be brought under the
    /// limit by cutting strings (here: a map of 200,000 keys), is left out.
    #[test]
    fn nested_bulk_is_cut_to_fit(
        strings in prop::collection::vec(
            (
                text(),
                prop_oneof![0..64usize, 150_000..700_000usize],
                prop::collection::vec(any::<bool>(), 1..5),
            ),
            1..6,
        ),
        many_keys in prop::sample::select(&[0usize, 0, 0, 200_000][..]),
    ) {
        let mut pairs = Vec::new();
        let mut want = Vec::new();
        for (i, (unit, len, shape)) in strings.iter().enumerate() {
            let long = if unit.is_empty() { vec![b'u'; *len] } else {
                unit.repeat(len / unit.len() + 1)
            };
            want.push((format!("a{i}"), shape.clone(), String::from_utf8_lossy(&long).into_owned()));
            pairs.push((Mp::Str(format!("a{i}").into_bytes()), wrap(Mp::Str(long), shape)));
        }
        if many_keys > 0 {
            let keys = (0..many_keys)
                .map(|i| (Mp::Str(format!("k{i}").into_bytes()), Mp::UInt(1)))
                .collect();
            pairs.push((Mp::Str(b"many".to_vec()), Mp::Map(keys)));
        }
        let time = decode::Timestamp { secs: 1, nanos: 0 };
        let (r, out) = map_alone(&config_of(&[]), &Mp::Map(pairs), time);
        if many_keys > 0 {
            prop_assert!(matches!(r, Mapped::TooLarge { bytes } if bytes > MAX_LOG_BYTES), "{r:?}");
            prop_assert!(out.is_empty());
            return Ok(());
        }
        let o = check_object(&out);
        let mut cut = 0;
        for (k, shape, full) in &want {
            let got = unwrap_json(&o[k.as_str()], shape).as_str().unwrap();
            if got != full {
                let kept = got.strip_suffix(TRUNCATION_MARKER).unwrap();
                prop_assert!(full.starts_with(kept), "{k}");
                cut += 1;
            }
            let mut skeleton = o[k.as_str()].clone();
            let mut expected = serde_json::to_value(wrap_json(shape)).unwrap();
            *unwrap_json_mut(&mut skeleton, shape) = serde_json::Value::Null;
            *unwrap_json_mut(&mut expected, shape) = serde_json::Value::Null;
            prop_assert_eq!(skeleton, expected);
        }
        prop_assert_eq!(r, Mapped::Written { truncated: cut > 0, partial: false });
        if cut > 0 {
            prop_assert!(out.len() > MAX_LOG_BYTES - 8, "cut too much: {}", out.len());
        }
    }
}

/// The JSON `wrap` gives, with a null leaf.
fn wrap_json(shape: &[bool]) -> serde_json::Value {
    shape.iter().fold(serde_json::Value::Null, |v, &in_map| {
        if in_map {
            serde_json::json!({"n": v, "k": 1})
        } else {
            serde_json::json!([1, v])
        }
    })
}

fn unwrap_json_mut<'a>(
    mut v: &'a mut serde_json::Value,
    shape: &[bool],
) -> &'a mut serde_json::Value {
    for &in_map in shape.iter().rev() {
        v = if in_map { &mut v["n"] } else { &mut v[1] };
    }
    v
}

// ---------------------------------------------------------------------------------------------
// damaged fixtures

struct Fixture {
    data: Vec<u8>,
    tag: &'static str,
    /// Byte ranges of the records (not the group markers).
    records: Vec<(usize, usize)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Record,
    Marker,
    Malformed,
}

/// The decoder's items with the byte range each covers, decoding one item at a time.
fn items(data: &[u8]) -> Vec<(usize, usize, Kind)> {
    let mut v = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let item = decode::chunk(&data[pos..]).next().unwrap();
        let (end, kind) = match item {
            Item::Record(_) | Item::GroupMarker => {
                let mut r = Reader::new(&data[pos..]);
                r.skip().unwrap();
                let kind = if matches!(item, Item::Record(_)) {
                    Kind::Record
                } else {
                    Kind::Marker
                };
                (pos + r.position(), kind)
            }
            Item::Malformed {
                offset, skipped, ..
            } => {
                assert_eq!(offset, 0);
                assert!(skipped > 0);
                (pos + skipped, Kind::Malformed)
            }
        };
        v.push((pos, end, kind));
        pos = end;
    }
    v
}

fn fixtures() -> &'static [Fixture; 2] {
    static F: OnceLock<[Fixture; 2]> = OnceLock::new();
    F.get_or_init(|| {
        let load = |name: &str, tag: &'static str, count: usize| {
            let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            let all = items(&data);
            assert!(all.iter().all(|i| i.2 != Kind::Malformed), "{name}");
            let records: Vec<(usize, usize)> = all
                .iter()
                .filter(|i| i.2 == Kind::Record)
                .map(|i| (i.0, i.1))
                .collect();
            assert_eq!(records.len(), count, "{name}");
            Fixture { data, tag, records }
        };
        [
            load("fb-4.2.8-forward-1.msgpack", "main-container-firelens", 143),
            load("fb-4.2.8-otlp-groups.msgpack", "v1_logs", 1),
        ]
    })
}

/// One change to a chunk: `data[at..at + remove]` replaced by `insert`.
#[derive(Clone, Debug)]
struct Damage {
    at: usize,
    remove: usize,
    insert: Vec<u8>,
}

impl Damage {
    fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut d = data[..self.at].to_vec();
        d.extend_from_slice(&self.insert);
        d.extend_from_slice(&data[self.at + self.remove..]);
        d
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Bytes overwritten in place (the length does not change).
    Overwrite(Vec<u8>),
    /// The chunk cut short at the position.
    Truncate,
    /// Bytes removed and others (random, or copied from elsewhere in the chunk) inserted.
    Splice {
        remove: usize,
        random: Vec<u8>,
        copy: Option<(Index, usize)>,
    },
}

fn op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 1..8).prop_map(Op::Overwrite),
        1 => Just(Op::Truncate),
        3 => (0..64usize, bytes(12), prop::option::of((any::<Index>(), 1..600usize)))
            .prop_map(|(remove, random, copy)| Op::Splice { remove, random, copy }),
    ]
    .boxed()
}

/// Where the damage lands: mostly near the start of a record, where the structure is.
fn damage(f: &Fixture, near: bool, rec: Index, off: usize, anywhere: Index, op: &Op) -> Damage {
    let len = f.data.len();
    let at = if near {
        (f.records[rec.index(f.records.len())].0 + off).min(len - 1)
    } else {
        anywhere.index(len)
    };
    match op {
        Op::Overwrite(b) => {
            let n = b.len().min(len - at);
            Damage {
                at,
                remove: n,
                insert: b[..n].to_vec(),
            }
        }
        Op::Truncate => Damage {
            at,
            remove: len - at,
            insert: Vec::new(),
        },
        Op::Splice {
            remove,
            random,
            copy,
        } => {
            let insert = match copy {
                Some((from, n)) => {
                    let a = from.index(len);
                    f.data[a..(a + n).min(len)].to_vec()
                }
                None => random.clone(),
            };
            Damage {
                at,
                remove: (*remove).min(len - at),
                insert,
            }
        }
    }
}

fn check_damaged(f: &Fixture, cfg: &Config, d: &Damage) -> Result<(), TestCaseError> {
    let data = d.apply(&f.data);
    let mapper = Mapper::new(cfg);
    let mut spare = Vec::new();
    let (batches, stats) = batch::build(&data, f.tag, &mapper, &mut Scratch::default(), &mut spare);
    check_batches(&batches, &stats);

    let got = items(&data);
    let got_records = got.iter().filter(|i| i.2 == Kind::Record).count();
    prop_assert_eq!(got_records as u64, stats.records);
    prop_assert_eq!(decode::count(&data).records as u64, stats.records);

    // Where the untouched records of the original are in the damaged chunk.
    let end = d.at + d.remove;
    let shift = |x: usize| x + d.insert.len() - d.remove;
    let mut untouched: Vec<(usize, usize)> = Vec::new();
    let (mut before, mut after) = (0, 0);
    for &(a, b) in &f.records {
        if b <= d.at {
            untouched.push((a, b));
            before += 1;
        } else if a >= end {
            untouched.push((shift(a), shift(b)));
            after += 1;
        }
    }
    let original: HashSet<(usize, usize)> = untouched.iter().copied().collect();
    let decoded: HashSet<(usize, usize)> = got
        .iter()
        .filter(|i| i.2 == Kind::Record)
        .map(|i| (i.0, i.1))
        .collect();
    // Items that are neither malformed nor an untouched record: made up from damaged bytes.
    let made_up: Vec<(usize, usize)> = got
        .iter()
        .filter(|i| i.2 != Kind::Malformed && !original.contains(&(i.0, i.1)))
        .map(|i| (i.0, i.1))
        .collect();
    let mut swallowed = 0;
    for &(a, b) in &untouched {
        if decoded.contains(&(a, b)) {
            continue;
        }
        // Lost only when an item made up of damaged bytes ran over it.
        let over = made_up.iter().any(|&(x, y)| x < b && a < y);
        prop_assert!(
            over,
            "untouched record {a}..{b} lost; {} records out, items near it: {:?}",
            stats.records,
            got.iter()
                .filter(|i| i.1 > a.saturating_sub(200) && i.0 < b + 200)
                .collect::<Vec<_>>()
        );
        prop_assert!(a >= d.at, "a record before the damage was lost");
        swallowed += 1;
    }
    prop_assert!(stats.records as usize >= before + after - swallowed);
    Ok(())
}

proptest! {
    #![proptest_config(case_config(64))]

    #[test]
    fn damaged_forward_chunk(
        cfg in config(),
        near in prop::bool::weighted(0.7),
        rec in any::<Index>(),
        off in 0..48usize,
        anywhere in any::<Index>(),
        op in op(),
    ) {
        let f = &fixtures()[0];
        check_damaged(f, &cfg, &damage(f, near, rec, off, anywhere, &op))?;
    }
}

proptest! {
    #![proptest_config(case_config(512))]

    #[test]
    fn damaged_otlp_chunk(
        cfg in config(),
        near in any::<bool>(),
        rec in any::<Index>(),
        off in 0..48usize,
        anywhere in any::<Index>(),
        op in op(),
    ) {
        let f = &fixtures()[1];
        check_damaged(f, &cfg, &damage(f, near, rec, off, anywhere, &op))?;
    }
}

/// Fluent Bit 2.1+ writes records with array32 headers; after a damaged record the decoder
/// must still find them (it used to look for fixarray headers only and lost the rest of the
/// chunk).
#[test]
fn resync_finds_array32_records() {
    let f = &fixtures()[0];
    let mut data = f.data.clone();
    data[0] = 0xc1;
    let c = decode::count(&data);
    // The damaged record's own `[timestamp, metadata]` looks like a v1 record with an empty
    // body, so it comes out too; all 142 others do.
    assert!(c.records >= 142, "{c:?}");
    // The same with the group-start marker of the OTLP chunk: its `[timestamp, metadata]`
    // is a marker of its own, and the log record still comes out.
    let mut data = fixtures()[1].data.clone();
    data[0] = 0xc1;
    let c = decode::count(&data);
    assert_eq!(c.records, 1, "{c:?}");
}

/// Every single-byte truncation point of the small OTLP chunk, and every single-byte
/// overwrite with a few telling values.
#[test]
fn otlp_chunk_every_position() {
    let f = &fixtures()[1];
    let cfg = config_of(&[("provider", "ecs".into())]);
    for at in 0..f.data.len() {
        for d in [
            Damage {
                at,
                remove: f.data.len() - at,
                insert: vec![],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![0xc1],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![0xff],
            },
            Damage {
                at,
                remove: 1,
                insert: vec![f.data[at] ^ 0x01],
            },
            Damage {
                at,
                remove: 0,
                insert: vec![0x00],
            },
        ] {
            check_damaged(f, &cfg, &d).unwrap_or_else(|e| panic!("{d:?}: {e}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// our reader against rmpv
//
// Valid msgpack in every header width: the values are written with a header chosen among all
// that can hold them (a 3-byte str may be written str8, str16 or str32, 5 as a positive fixint,
// u8..u64 or i8..i64), since Fluent Bit writes some non-minimal headers (array32 records) and
// rmpv's encoder writes only the smallest one. Both decoders read the same bytes and must agree.

/// The header chosen for each value, in turn: taken from a generated list, cycled.
struct Widths<'a> {
    choices: &'a [u8],
    at: usize,
}

impl Widths<'_> {
    /// One of `n` candidate encodings.
    fn pick(&mut self, n: usize) -> usize {
        let c = self
            .choices
            .get(self.at % self.choices.len().max(1))
            .copied();
        self.at += 1;
        c.unwrap_or(0) as usize % n
    }
}

/// Appends a length header: one of `forms` (marker, length bytes) that fits `len`, after a
/// fix form `fix` when `len` fits it.
fn enc_len(
    len: usize,
    fix: Option<(u8, usize)>,
    forms: [u8; 3],
    w: &mut Widths,
    out: &mut Vec<u8>,
) {
    let mut cands: Vec<(u8, usize)> = Vec::new();
    if let Some((marker, max)) = fix {
        if len <= max {
            cands.push((marker | len as u8, 0));
        }
    }
    for (m, size) in forms.into_iter().zip([1usize, 2, 4]) {
        if m != 0 && (size == 4 || len < 1 << (8 * size)) {
            cands.push((m, size));
        }
    }
    let (m, size) = cands[w.pick(cands.len())];
    out.push(m);
    out.extend_from_slice(&(len as u32).to_be_bytes()[4 - size..]);
}

/// Appends `n` in one of the integer encodings that hold it.
fn enc_int(n: i128, w: &mut Widths, out: &mut Vec<u8>) {
    let mut cands: Vec<Vec<u8>> = Vec::new();
    if (0..128).contains(&n) || (-32..0).contains(&n) {
        cands.push(vec![n as i8 as u8]);
    }
    for (m, size) in [(0xccu8, 1usize), (0xcd, 2), (0xce, 4), (0xcf, 8)] {
        if n >= 0 && n < 1i128 << (8 * size) {
            let mut b = vec![m];
            b.extend_from_slice(&(n as u64).to_be_bytes()[8 - size..]);
            cands.push(b);
        }
    }
    for (m, size) in [(0xd0u8, 1usize), (0xd1, 2), (0xd2, 4), (0xd3, 8)] {
        let half = 1i128 << (8 * size - 1);
        if (-half..half).contains(&n) {
            let mut b = vec![m];
            b.extend_from_slice(&(n as i64).to_be_bytes()[8 - size..]);
            cands.push(b);
        }
    }
    let i = w.pick(cands.len());
    out.extend_from_slice(&cands[i]);
}

/// Appends `m` with each header chosen by `w` (see [`Widths`]).
fn enc_wide(m: &Mp, w: &mut Widths, out: &mut Vec<u8>) {
    match m {
        Mp::Nil => out.push(0xc0),
        Mp::Bool(b) => out.push(0xc2 | *b as u8),
        Mp::UInt(n) => enc_int(*n as i128, w, out),
        Mp::Int(n) => enc_int(*n as i128, w, out),
        Mp::F32(f) => {
            out.push(0xca);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Mp::F64(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Mp::Str(b) => {
            enc_len(b.len(), Some((0xa0, 31)), [0xd9, 0xda, 0xdb], w, out);
            out.extend_from_slice(b);
        }
        Mp::Bin(b) => {
            enc_len(b.len(), None, [0xc4, 0xc5, 0xc6], w, out);
            out.extend_from_slice(b);
        }
        Mp::Arr(items) => {
            enc_len(items.len(), Some((0x90, 15)), [0, 0xdc, 0xdd], w, out);
            for i in items {
                enc_wide(i, w, out);
            }
        }
        Mp::Map(pairs) => {
            enc_len(pairs.len(), Some((0x80, 15)), [0, 0xde, 0xdf], w, out);
            for (k, v) in pairs {
                enc_wide(k, w, out);
                enc_wide(v, w, out);
            }
        }
        Mp::Ext(t, d) => {
            let fixext = [1usize, 2, 4, 8, 16].iter().position(|&n| n == d.len());
            match fixext {
                Some(i) if w.pick(2) == 0 => out.push(0xd4 + i as u8),
                _ => enc_len(d.len(), None, [0xc7, 0xc8, 0xc9], w, out),
            }
            out.push(*t as u8);
            out.extend_from_slice(d);
        }
    }
}

/// Any value, with long strings (str16 holding more than 255 bytes) and every ext length.
fn any_value() -> BoxedStrategy<Mp> {
    let leaf = prop_oneof![
        8 => leaf(),
        1 => any::<i8>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<i16>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<i32>().prop_map(|n| Mp::Int(n as i64)),
        1 => any::<u16>().prop_map(|n| Mp::UInt(n as u64)),
        1 => any::<u32>().prop_map(|n| Mp::UInt(n as u64)),
        1 => bytes(300).prop_map(Mp::Str),
        1 => bytes(300).prop_map(Mp::Bin),
        1 => (any::<i8>(), bytes(20)).prop_map(|(t, d)| Mp::Ext(t, d)),
    ];
    leaf.prop_recursive(4, 40, 18, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..18).prop_map(Mp::Arr),
            prop::collection::vec((inner.clone(), inner), 0..18).prop_map(Mp::Map),
        ]
    })
    .boxed()
}

/// A timestamp the decoder takes for a record's (not a group marker's).
fn record_time() -> BoxedStrategy<Mp> {
    prop_oneof![
        3 => (0..decode::GROUP_END, any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Mp::F64),
        1 => any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(Mp::F32),
    ]
    .boxed()
}

/// Requires the values `r` reads next to be `v`, value by value.
fn same(r: &mut Reader<'_>, v: &rmpv::Value) -> Result<(), TestCaseError> {
    use decode::Value as V;
    use rmpv::Value as R;
    let at = r.position();
    let ours = r
        .read()
        .map_err(|e| TestCaseError::fail(format!("at {at}: {e} where rmpv read {v:?}")))?;
    let agree = match (ours, v) {
        (V::Nil, R::Nil) => true,
        (V::Bool(a), R::Boolean(b)) => a == *b,
        (V::UInt(a), R::Integer(b)) => b.as_u64() == Some(a),
        (V::Int(a), R::Integer(b)) => b.as_i64() == Some(a),
        (V::Float(a), R::F32(b)) => a.to_bits() == (*b as f64).to_bits(),
        (V::Float(a), R::F64(b)) => a.to_bits() == b.to_bits(),
        (V::Str(a), R::String(b)) => a == b.as_bytes(),
        (V::Bin(a), R::Binary(b)) => a == &b[..],
        (V::Ext(t, a), R::Ext(u, b)) => t == *u && a == &b[..],
        (V::Array(n), R::Array(items)) => {
            prop_assert_eq!(n as usize, items.len(), "array at {}", at);
            for i in items {
                same(r, i)?;
            }
            true
        }
        (V::Map(n), R::Map(pairs)) => {
            prop_assert_eq!(n as usize, pairs.len(), "map at {}", at);
            for (k, v) in pairs {
                same(r, k)?;
                same(r, v)?;
            }
            true
        }
        _ => false,
    };
    prop_assert!(agree, "at {}: we read {:?}, rmpv {:?}", at, ours, v);
    Ok(())
}

/// Requires `bytes` to hold exactly the value `v`.
fn same_whole(bytes: &[u8], v: &rmpv::Value) -> Result<(), TestCaseError> {
    let mut r = Reader::new(bytes);
    same(&mut r, v)?;
    prop_assert!(r.is_empty(), "{} bytes left after {:?}", r.remaining(), v);
    Ok(())
}

/// The time of a record whose timestamp rmpv read as `v`, by the documented rules.
fn time_of(v: &rmpv::Value) -> decode::Timestamp {
    use rmpv::Value as R;
    let (secs, nanos) = match v {
        R::Ext(0, d) => (
            u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as i64,
            u32::from_be_bytes([d[4], d[5], d[6], d[7]]).min(999_999_999),
        ),
        R::Integer(i) => match i.as_i64() {
            Some(s) => (s.clamp(i64::MIN / 1000, i64::MAX / 1000), 0),
            None => (i64::MAX / 1000, 0),
        },
        R::F32(_) | R::F64(_) => {
            let f = v.as_f64().unwrap();
            let secs = f.floor();
            let nanos = ((f - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
            (secs.clamp(-9.2e15, 9.2e15) as i64, nanos)
        }
        other => panic!("not a record time: {other:?}"),
    };
    decode::Timestamp { secs, nanos }
}

proptest! {
    #![proptest_config(case_config(256))]

    /// Valid records, v1 and v2, in every header width: our reader, value by value, and the
    /// chunk decoder (timestamps, metadata, body, the body's listed pairs) agree with rmpv.
    #[test]
    fn reader_and_decoder_agree_with_rmpv(
        recs in prop::collection::vec(
            (
                record_time(),
                prop::option::of(prop::collection::vec((any_value(), any_value()), 0..6)),
                prop::collection::vec((any_value(), any_value()), 0..12),
            ),
            1..4,
        ),
        choices in prop::collection::vec(any::<u8>(), 1..64),
    ) {
        let mut data = Vec::new();
        let mut w = Widths { choices: &choices, at: 0 };
        for (ts, meta, body) in &recs {
            let head = match meta {
                None => ts.clone(),
                Some(m) => Mp::Arr(vec![ts.clone(), Mp::Map(m.clone())]),
            };
            enc_wide(&Mp::Arr(vec![head, Mp::Map(body.clone())]), &mut w, &mut data);
        }

        // rmpv's reading of each record, and our reader's, value by value.
        let mut rest = &data[..];
        let mut r = Reader::new(&data);
        let mut theirs = Vec::new();
        while !rest.is_empty() {
            let v = rmpv::decode::read_value(&mut rest)
                .map_err(|e| TestCaseError::fail(format!("rmpv: {e}")))?;
            same(&mut r, &v)?;
            prop_assert_eq!(r.position(), data.len() - rest.len());
            theirs.push(v);
        }
        prop_assert_eq!(theirs.len(), recs.len());

        // The chunk decoder's records.
        let mut c = decode::chunk(&data);
        let mut entries = Vec::new();
        for v in &theirs {
            let rmpv::Value::Array(rec) = v else { unreachable!() };
            let (ts, meta) = match &rec[0] {
                rmpv::Value::Array(h) => (&h[0], Some(&h[1])),
                ts => (ts, None),
            };
            let Some(Item::Record(ours)) = c.next_with_entries(&mut entries) else {
                return Err(TestCaseError::fail(format!("no record for {v:?}")));
            };
            prop_assert_eq!(ours.time, time_of(ts));
            match meta {
                Some(m) => same_whole(ours.meta, m)?,
                None => prop_assert!(ours.meta.is_empty()),
            }
            same_whole(ours.body, &rec[1])?;
            let rmpv::Value::Map(pairs) = &rec[1] else { unreachable!() };
            prop_assert_eq!(entries.len(), pairs.len());
            for (e, (k, v)) in entries.iter().zip(pairs) {
                same_whole(&ours.body[e.key.0..e.key.1], k)?;
                same_whole(&ours.body[e.value.0..e.value.1], v)?;
                let text = |v: &rmpv::Value| match v {
                    rmpv::Value::String(s) => Some(s.as_bytes().to_vec()),
                    rmpv::Value::Binary(b) => Some(b.clone()),
                    _ => None,
                };
                prop_assert_eq!(e.name_in(ours.body).map(<[u8]>::to_vec), text(k));
                prop_assert_eq!(e.text_in(ours.body).map(<[u8]>::to_vec), text(v));
            }
        }
        prop_assert_eq!(c.next(), None);
    }
}
