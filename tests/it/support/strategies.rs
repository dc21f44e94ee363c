//! The generators of the property tests (`properties`, `library_path`): msgpack values and
//! records made to hit the mapping's special cases (names it treats specially, keys that
//! collide, non-string keys, deep nesting, every timestamp encoding), and mapping options,
//! including ones that name the same attribute twice.

use fluent_bit_datadog::internals::decode;
use fluent_bit_datadog::internals::options::Config;
use proptest::prelude::*;
use std::collections::HashMap;
use test_support::msgpack::{Mp, enc_into, event_time};

/// Names the mapping treats specially, and a few others, so keys collide often.
pub const NAMES: &[&str] = &[
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

/// Up to `max` arbitrary bytes.
pub fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max).boxed()
}

/// Text for keys and strings: the special names, printable and any characters, escapes,
/// ECS ARNs, tag lists with blanks and repeats, and bytes that are not UTF-8.
pub fn text() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => prop::sample::select(NAMES).prop_map(|s| s.as_bytes().to_vec()),
        1 => "[ -~]{0,20}".prop_map(String::into_bytes),
        2 => "\\PC{0,12}".prop_map(String::into_bytes),
        2 => "[\"\\\\\n\t\u{1}\u{7f}é日😀a,:/ ]{0,16}".prop_map(String::into_bytes),
        1 => "arn:aws:ecs:[a-z0-9-]{0,8}:[0-9]{0,4}:(task|cluster)/[a-z/:]{0,10}"
            .prop_map(String::into_bytes),
        1 => Just(b"family:7, x ,,family:7".to_vec()),
        1 => bytes(12),
    ]
    .boxed()
}

/// Any float, NaN, the infinities and negative zero more often than by chance.
pub fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        4 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(-0.0),
    ]
    .boxed()
}

/// A value that holds no other: every msgpack type, EventTime included.
pub fn leaf() -> BoxedStrategy<Mp> {
    prop_oneof![
        1 => Just(Mp::Nil),
        1 => any::<bool>().prop_map(Mp::Bool),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => float().prop_map(Mp::F64),
        1 => prop_oneof![any::<f32>(), Just(f32::NAN), Just(f32::INFINITY)].prop_map(Mp::F32),
        3 => text().prop_map(Mp::Str),
        1 => text().prop_map(Mp::Bin),
        1 => (any::<i8>(), bytes(10)).prop_map(|(t, d)| Mp::Ext(t, d)),
        1 => (any::<u32>(), any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
    ]
    .boxed()
}

/// A map key: mostly str or bin, sometimes any value at all (`inner`).
pub fn key(inner: impl Strategy<Value = Mp> + 'static) -> BoxedStrategy<Mp> {
    prop_oneof![
        6 => text().prop_map(Mp::Str),
        1 => text().prop_map(Mp::Bin),
        1 => inner,
    ]
    .boxed()
}

/// Any value, nested a little, sometimes wrapped in enough arrays and maps to pass the
/// mapping's depth limit (maps of one key, or of a key given twice), sometimes an array of
/// strings.
pub fn value() -> BoxedStrategy<Mp> {
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
        1 => (nested, 25..40usize, 0..3u8, key(leaf())).prop_map(|(v, n, style, k)| {
            (0..n).fold(v, |v, i| match style {
                0 => Mp::Arr(vec![v]),
                1 => Mp::Map(vec![(k.clone(), v)]),
                _ if i % 2 == 0 => Mp::Map(vec![(k.clone(), v), (k.clone(), Mp::Nil)]),
                _ => Mp::Arr(vec![v]),
            })
        }),
        1 => prop::collection::vec(text().prop_map(Mp::Str), 0..4).prop_map(Mp::Arr),
    ]
    .boxed()
}

/// A record body: a map, with keys from [`NAMES`] often enough to repeat.
pub fn body() -> BoxedStrategy<Mp> {
    prop::collection::vec((key(value()), value()), 0..10)
        .prop_map(Mp::Map)
        .boxed()
}

/// v2 metadata (a map): arbitrary, or an `otlp` map with any mix of well- and ill-formed
/// fields.
pub fn meta() -> BoxedStrategy<Mp> {
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
pub fn timestamp() -> BoxedStrategy<Mp> {
    prop_oneof![
        4 => (any::<u32>(), any::<u32>()).prop_map(|(s, n)| event_time(s, n)),
        1 => (prop::sample::select(&[decode::GROUP_START, decode::GROUP_END][..]), any::<u32>())
            .prop_map(|(s, n)| event_time(s, n)),
        1 => any::<u64>().prop_map(Mp::UInt),
        1 => any::<i64>().prop_map(Mp::Int),
        1 => float().prop_map(Mp::F64),
        1 => prop_oneof![any::<f32>(), Just(f32::NAN)].prop_map(Mp::F32),
        1 => leaf(),
    ]
    .boxed()
}

/// A record: `[ts, body]`, or `[[ts, meta], body]` when there is metadata.
#[derive(Clone, Debug)]
pub struct Rec {
    pub ts: Mp,
    pub meta: Option<Mp>,
    pub body: Mp,
}

impl Rec {
    /// Appends the record's msgpack to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let head = match &self.meta {
            None => self.ts.clone(),
            Some(m) => Mp::Arr(vec![self.ts.clone(), m.clone()]),
        };
        enc_into(&Mp::Arr(vec![head, self.body.clone()]), out);
    }
}

/// A record of any [`timestamp`], v1 or v2 with [`meta`], whose body is a map.
pub fn record() -> BoxedStrategy<Rec> {
    (timestamp(), prop::option::of(meta()), body())
        .prop_map(|(ts, meta, body)| Rec { ts, meta, body })
        .boxed()
}

/// The configuration of these options (an API key added).
pub fn config_of(pairs: &[(&str, &str)]) -> Config {
    let mut p: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    p.insert("apikey".into(), test_support::KEY.into());
    Config::from_lookup(|k| p.get(k).cloned(), |_| None).unwrap()
}

/// Mapping options, including ones that name the same attribute twice.
pub fn config() -> BoxedStrategy<Config> {
    let name = || prop::option::of(prop::sample::select(NAMES));
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
                let mut p: Vec<(&str, &str)> = Vec::new();
                if ecs {
                    p.push(("provider", "ecs"));
                }
                if let Some(t) = tags {
                    p.push(("dd_tags", t));
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
                    p.push(("include_tag_key", "on"));
                }
                if let Some(k) = tag_key {
                    p.push(("tag_key", k));
                }
                if let Some(d) = date {
                    p.push(("json_date_key", d));
                }
                config_of(&p)
            },
        )
        .boxed()
}
