//! The property every input must keep, shared by the fuzz target (fuzz_targets/chunk.rs) and
//! the corpus replay in the test suite (tests/fuzz_corpus.rs): chunk bytes -> request
//! payloads never panics, every batch is one valid JSON array of objects whose count
//! matches, no object has duplicate keys at any depth, and every object fits Datadog's 1 MB
//! log limit.

use fluent_bit_datadog::internals::batch;
use fluent_bit_datadog::internals::map::{MAX_LOG_BYTES, Mapper, Scratch};
use fluent_bit_datadog::internals::options::Config;
use serde::Deserialize;
use std::sync::OnceLock;

use test_support::json::NoDup;

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
        NoDup::deserialize(&mut de).expect("batch is valid JSON without duplicate keys");
        de.end().expect("nothing after the array");
        let v: serde_json::Value = serde_json::from_slice(&b.json).expect("valid JSON");
        assert_eq!(v.as_array().expect("an array").len(), b.len());
        for i in 0..b.len() {
            assert!(b.object(i).len() <= MAX_LOG_BYTES, "object over 1 MB");
        }
    }
}
