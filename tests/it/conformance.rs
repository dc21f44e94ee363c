//! The plugin driven in process by the conformance host, exactly as Fluent Bit drives a proxy
//! plugin: Register on a 32-byte uninitialised struct, one plugin struct reused for two
//! instances with the 8-byte 1.9.10 api table, flushes on 24 KiB stacks, concurrent flushes
//! on one instance, and exit of both (per instance, and 1.9-style with one context).

use crate::support as common;

use common::chunks::deep_record_and_a_liar;
use common::host::{self, Props};
use common::mock::MockIntake;
use common::{KEY, run_host};
use serde_json::json;
use std::collections::HashSet;

/// The plugin in process, registered, with one instance sending to a mock intake of its own.
fn one_instance() -> (MockIntake, common::InProcess, host::Ctx) {
    let mock = MockIntake::start(Some(KEY));
    let mut host = common::load_plugin();
    host.register();
    let (code, ctx) = host.init(Props::new(&[
        ("apikey", KEY),
        ("endpoint", mock.url.as_str()),
    ]));
    assert_eq!(code, 1, "Init");
    (mock, host, ctx)
}

#[test]
fn register_writes_only_the_first_32_bytes() {
    let host = common::load_plugin();
    let r = host.register();
    assert_eq!(r.code, 0);
    assert_eq!(r.kind, 2, "FLB_PROXY_OUTPUT_PLUGIN");
    assert_eq!(r.proxy, 11, "FLB_PROXY_GOLANG");
    assert_eq!(r.flags, 0);
    assert_eq!(r.name, "datadog_logs");
    assert!(!r.description.is_empty());
    assert!(r.canary_intact, "Register wrote past offset 32");
    // Hot reload registers again: same answer.
    let again = host.register();
    assert_eq!(
        (again.kind, again.proxy, again.name),
        (2, 11, "datadog_logs".into())
    );
}

#[test]
fn two_instances_on_one_plugin_struct_keep_their_settings() {
    let a = MockIntake::start(Some(KEY));
    let b = MockIntake::start(Some(KEY));
    let mut host = common::load_plugin();
    host.register();
    let (ca, ta) = host.init(Props::new(&[
        ("apikey", KEY),
        ("endpoint", a.url.as_str()),
        ("dd_service", "alpha"),
        ("dd_tags", "inst:a"),
    ]));
    let (cb, tb) = host.init(Props::new(&[
        ("API_KEY", KEY),
        ("Endpoint", b.url.as_str()),
        ("dd_service", "beta"),
        ("compress", "none"),
        ("dd_message_key", "source"),
    ]));
    assert_eq!((ca, cb), (1, 1));
    assert_ne!(ta, tb);
    let chunk = host::fixture("fb-4.2.8-forward-1.msgpack");
    assert_eq!(host.flush(ta, &chunk, host::FIRELENS_TAG), 1);
    assert_eq!(host.flush(tb, &chunk, host::FIRELENS_TAG), 1);
    let (oa, ob) = (a.objects(), b.objects());
    assert_eq!((oa.len(), ob.len()), (143, 143));
    // The record with its own `service` keeps it; every other object has the instance's.
    let alpha = oa.iter().filter(|o| o["service"] == "alpha").count();
    assert_eq!(alpha, 142);
    assert!(
        oa.iter()
            .all(|o| o["ddtags"].as_str().unwrap().contains("inst:a"))
    );
    assert!(ob.iter().all(|o| o["service"] != "alpha"));
    assert!(
        ob.iter()
            .all(|o| !o["ddtags"].as_str().unwrap_or("").contains("inst:a"))
    );
    assert!(
        ob.iter().any(|o| o["message"] == "stdout"),
        "instance b renames `source`"
    );
    assert_eq!(b.received()["log"][0]["encoding"], "identity");
    assert_eq!(a.received()["log"][0]["encoding"], "zstd");
    assert_eq!(host.exit_ctx(ta), 1);
    assert_eq!(host.exit_ctx(tb), 1);
    // Exit is idempotent, and a flush after exit asks for a retry rather than dropping.
    assert_eq!(host.exit_ctx(ta), 1);
    assert_eq!(host.exit_all(), 1);
    assert_eq!(host.flush(ta, &chunk, host::FIRELENS_TAG), 2);
}

#[test]
fn concurrent_flushes_on_one_instance_from_several_threads() {
    let (mock, host, ctx) = one_instance();
    let chunks: Vec<Vec<u8>> = (0..8)
        .map(|i| host::firelens_chunk(500, i * 500, i % 2 == 0))
        .collect();
    let codes: Vec<i32> = std::thread::scope(|s| {
        let hs: Vec<_> = chunks
            .iter()
            .map(|c| s.spawn(|| host.flush(ctx, c, "app-firelens-1")))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(codes, vec![1; 8]);
    let objects = mock.objects();
    assert_eq!(objects.len(), 4000);
    let paths: HashSet<String> = objects
        .iter()
        .map(|o| o["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 4000, "no duplicates, none lost");
    host.exit_ctx(ctx);
}

#[test]
fn fluent_bit_1_9_exit_passes_the_last_context_to_every_instance() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [
            {"options": common::opts(&mock.url, &[("dd_service", "one")])},
            {"options": common::opts(&mock.url, &[("dd_service", "two")])},
        ],
        "flushes": [
            {"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack"},
            {"instance": 1, "fixture": "fb-4.2.8-otlp-groups.msgpack"},
        ],
        "exit": "same_ctx",
    }));
    assert_eq!(run.report["init"], json!([1, 1]));
    let exits = run.lines_with("] exit: ");
    assert_eq!(
        exits.len(),
        2,
        "both instances shut down once:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("datadog_logs.0] exit:")
            && run.stderr.contains("datadog_logs.1] exit:")
    );
}

#[test]
fn flush_on_the_init_thread_warns_once_to_set_workers() {
    let mock = MockIntake::start(Some(KEY));
    let run = run_host(&json!({
        "instances": [{"options": common::opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "repeat": 3, "on_init_thread": true},
                    {"instance": 0, "fixture": "fb-4.2.8-otlp-groups.msgpack", "repeat": 2}],
    }));
    assert_eq!(run.final_codes(0), [1, 1, 1]);
    let warnings = run.lines_with("Workers 1");
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("[ warn]"));
}

#[test]
fn empty_and_garbage_chunks_never_crash_the_host() {
    let (mock, host, ctx) = one_instance();
    assert_eq!(host.flush(ctx, &[], "t"), 1);
    assert_eq!(host.flush(ctx, &[0xc1; 64], "t"), 1);
    // Break the header of record 50 of 100: the other 99 are still delivered.
    let mut damaged = host::firelens_chunk(100, 0, true);
    let at = host::firelens_chunk(50, 0, true).len();
    damaged[at..at + 3].fill(0xc1);
    assert_eq!(host.flush(ctx, &damaged, "t"), 1);
    let msgs = common::messages(&mock.objects());
    assert_eq!(
        msgs.len(),
        99,
        "valid records of a damaged chunk are delivered"
    );
    assert!(!msgs.iter().any(|m| m.contains("/orders/50\"")));
    host.exit_ctx(ctx);
}

#[test]
fn a_record_nested_100000_levels_deep_overflows_no_stack() {
    let (mock, host, ctx) = one_instance();
    // [1, {"log": "deep record", "deep": [[[...100,000 levels...]]]}], a record whose body
    // holds a map declaring 2^32-1 pairs with nothing behind them, then a normal record.
    let chunk = deep_record_and_a_liar();
    // On a 24 KiB stack, as Fluent Bit's coroutines.
    assert_eq!(host.flush(ctx, &chunk, "t"), 1);
    let objects = mock.objects();
    assert_eq!(
        objects.len(),
        2,
        "the deep record and the normal one; the liar is skipped"
    );
    let deep = objects
        .iter()
        .find(|o| o["message"] == "deep record")
        .unwrap();
    let mut v = &deep["deep"];
    let mut levels = 0;
    while let Some(inner) = v.as_array() {
        v = &inner[0];
        levels += 1;
    }
    assert_eq!(v, "[nested deeper than 32 levels]");
    assert!(levels < 40, "{levels}");
    host.exit_ctx(ctx);
}
