//! Repeated Init/Exit in one process, as Fluent Bit's hot reload runs them: every cycle's
//! instance releases its threads and memory, whether it exits idle, after delivering, during
//! an intake outage or while site auto-detection is still waiting for an answer.
//!
//! The conformance host's `cycles` scenario samples the process's threads (the fewest seen
//! over half a second, so a thread being torn down is not counted) and RSS after each exit.
//! glibc's per-thread malloc arenas make RSS climb for a while whatever the plugin does (each
//! flush runs on a new thread), so the host runs with `MALLOC_ARENA_MAX=1`: what is left is the
//! plugin's own memory.

use crate::support as common;

use common::mock::MockIntake;
use common::{KEY, Run, run_host_measured};
use serde_json::{Value, json};

/// Cycles per scenario.
const CYCLES: usize = 50;
/// Cycles run before the baseline is taken: the first ones grow the allocator's pools.
const WARM: usize = 10;
/// Most RSS the cycles after the warm-up may add: less than 100 KiB a cycle over 40 cycles.
/// One instance's retained state (HTTP client, TLS roots, flush buffers) is several times
/// that, so an instance that is never freed fails this bound.
const RSS_GROWTH_MAX_KB: u64 = 4096;

/// Runs `scenario` for [`CYCLES`] cycles with glibc's arenas limited to one, while no other
/// test runs a conformance host (the other lifecycle tests may).
fn cycles(mut scenario: Value) -> Run {
    scenario["cycles"] = json!(CYCLES);
    run_host_measured(&scenario, &[("MALLOC_ARENA_MAX", "1")])
}

/// `(threads, rss_kb)` after each cycle.
fn samples(run: &Run) -> Vec<(u64, u64)> {
    run.report["cycles"]
        .as_array()
        .expect("cycles in the report")
        .iter()
        .map(|c| {
            (
                c["threads"].as_u64().unwrap(),
                c["rss_kb"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Threads back to the first cycle's count after every cycle, and RSS flat after the warm-up.
fn assert_nothing_kept(run: &Run) {
    let s = samples(run);
    assert_eq!(s.len(), CYCLES);
    println!(
        "threads/RSS KiB after cycles 1, {WARM}, {CYCLES}: {:?} {:?} {:?}",
        s[0],
        s[WARM - 1],
        s[CYCLES - 1]
    );
    let baseline = s[0].0;
    for (i, (threads, _)) in s.iter().enumerate() {
        assert_eq!(
            *threads,
            baseline,
            "cycle {}: threads {:?}",
            i + 1,
            run.report["cycles"][i]["names"]
        );
    }
    let warm = s[WARM - 1].1;
    let peak = s[WARM..].iter().map(|x| x.1).max().unwrap();
    assert!(
        peak.saturating_sub(warm) < RSS_GROWTH_MAX_KB,
        "RSS grew from {warm} KiB to {peak} KiB over {} cycles: {:?}",
        CYCLES - WARM,
        s.iter().map(|x| x.1).collect::<Vec<_>>()
    );
}

/// Each cycle delivers two chunks of 2000 records on two threads, then exits: every record
/// arrives once, and nothing of the 50 instances stays behind.
#[test]
fn init_deliver_exit_cycles_release_threads_and_memory() {
    let mock = MockIntake::start(Some(KEY));
    let run = cycles(json!({
        "instances": [{"options": common::opts(&mock.url, &[])}],
        "flushes": [{"instance": 0, "generate": {"records": 4000, "per_chunk": 2000},
                     "threads": 2}],
        "exit": "ctx",
    }));
    assert_eq!(run.final_codes(0), vec![1, 1]);
    let objects = mock.objects();
    let (distinct, duplicated) = common::tally(&objects);
    // The generated records of a cycle are the same in every cycle: 4000 distinct, each
    // arriving once per cycle.
    assert_eq!(objects.len(), CYCLES * 4000);
    assert_eq!((distinct, duplicated), (4000, (CYCLES - 1) * 4000));
    assert_nothing_kept(&run);
}

/// Each cycle exits 300 ms into a flush to an intake answering 500: the chunk is handed back
/// (RETRY, so Fluent Bit keeps it), and nothing of the instance stays behind.
#[test]
fn exits_during_an_outage_keep_the_chunk_and_release_everything() {
    let mock = MockIntake::start(Some(KEY));
    mock.set_rules(json!([{"status": 500}]));
    let run = cycles(json!({
        "instances": [{"options": common::opts(&mock.url, &[("timeout", "5s")])}],
        "flushes": [{"instance": 0, "generate": {"records": 2000, "per_chunk": 2000},
                     "retries": 20, "retry_pause_ms": 50}],
        "exit": "ctx",
        "exit_after_ms": 300,
    }));
    assert_eq!(run.final_codes(0), vec![2], "{}", run.stderr);
    assert!(mock.objects().is_empty());
    assert_nothing_kept(&run);
}

/// Each cycle exits while site auto-detection waits for a site whose API and intake answer
/// after 3 s: the waiting flush is handed back (RETRY), the probe thread is joined, and
/// nothing of the instance stays behind.
#[test]
fn exits_during_site_detection_keep_the_chunk_and_release_everything() {
    let slow = MockIntake::start(Some(KEY));
    slow.set_rules(json!([
        {"delay_ms": 3000, "path": "/api/v1/validate"},
        {"delay_ms": 3000},
    ]));
    let probe = format!("datadoghq.com={}", slow.url);
    let run = cycles(json!({
        "instances": [{"options": {"apikey": KEY, "site_probe": probe, "timeout": "5s"}}],
        "flushes": [{"instance": 0, "generate": {"records": 500, "per_chunk": 500}}],
        "exit": "ctx",
        "exit_after_ms": 200,
    }));
    assert_eq!(run.final_codes(0), vec![2], "{}", run.stderr);
    assert!(slow.objects().is_empty());
    assert_nothing_kept(&run);
}
