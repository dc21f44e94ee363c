//! The property every input must keep, shared by the fuzz target (fuzz_targets/chunk.rs) and
//! the corpus replay in the test suite (tests/fuzz_corpus.rs): chunk bytes -> request
//! payloads never panics, every batch is one valid JSON array of objects whose count
//! matches, no object has duplicate keys at any depth, and every object fits Datadog's 1 MB
//! log limit.

use fluent_bit_datadog::batch;
use fluent_bit_datadog::map::{MAX_LOG_BYTES, Mapper, Scratch};
use fluent_bit_datadog::options::Config;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::sync::OnceLock;

/// A JSON value that refuses duplicate keys while it is parsed.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Checked, A::Error> {
        while s.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Checked, A::Error> {
        let mut keys = HashSet::new();
        while let Some(k) = m.next_key::<String>()? {
            if !keys.insert(k.clone()) {
                return Err(de::Error::custom(format!("duplicate key {k:?}")));
            }
            m.next_value::<Checked>()?;
        }
        Ok(Checked)
    }
}

fn mapper() -> &'static Mapper {
    static M: OnceLock<Mapper> = OnceLock::new();
    M.get_or_init(|| {
        let cfg = Config::from_lookup(
            |k| match k {
                "apikey" => Some("fuzz-key-0123456789".into()),
                "endpoint" => Some("http://127.0.0.1:9".into()),
                "provider" => Some("ecs".into()),
                "dd_service" => Some("svc".into()),
                "dd_tags" => Some("env:fuzz,team:a".into()),
                "include_tag_key" => Some("on".into()),
                _ => None,
            },
            |_| None,
        )
        .expect("fuzz config");
        Mapper::new(&cfg)
    })
}

/// Runs `data` through decode -> map -> batch and checks every payload; panics on a finding.
pub fn chunk_to_payloads(data: &[u8]) {
    let (batches, _) = batch::build(
        data,
        "fuzz-tag",
        mapper(),
        &mut Scratch::default(),
        &mut Vec::new(),
    );
    for b in &batches {
        let mut de = serde_json::Deserializer::from_slice(&b.json);
        Checked::deserialize(&mut de).expect("batch is valid JSON without duplicate keys");
        de.end().expect("nothing after the array");
        let v: serde_json::Value = serde_json::from_slice(&b.json).expect("valid JSON");
        assert_eq!(v.as_array().expect("an array").len(), b.len());
        for i in 0..b.len() {
            assert!(b.object(i).len() <= MAX_LOG_BYTES, "object over 1 MB");
        }
    }
}
