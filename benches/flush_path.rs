//! `cargo bench`: figures for the flush path, printed as tables (no assertions).
//!
//! * decode + map + serialize (`batch::build`) on generated FireLens-shaped records (about
//!   620 bytes of JSON each) and on the fixtures: µs per record and MB/s of JSON;
//! * gzip alone at each level: µs per record, MB/s, compressed bytes per record;
//! * the whole in-memory path (build + gzip at the default level) and its ratio to gzip
//!   alone, the physical floor;
//! * peak heap bytes during one flush relative to the chunk's size (counting allocator).
//!
//! Timings are the median of several samples of at least 20 ms each; compare ratios taken
//! in one run.

use conformance_host as host;

use fluent_bit_datadog::batch;
use fluent_bit_datadog::map::{Mapper, Scratch};
use fluent_bit_datadog::options::{Config, DEFAULT_COMPRESSION_LEVEL};
use fluent_bit_datadog::send;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts live and peak heap bytes.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn config() -> Config {
    Config::from_lookup(
        |k| match k {
            "apikey" => Some("0123456789abcdef0123456789abcdef".into()),
            "endpoint" => Some("http://127.0.0.1:9".into()),
            "provider" => Some("ecs".into()),
            "dd_service" => Some("checkout".into()),
            "dd_source" => Some("firelens".into()),
            "dd_tags" => Some("env:prod,team:payments".into()),
            _ => None,
        },
        |_| None,
    )
    .expect("bench config")
}

/// Median seconds per call of `f` over `runs` samples. Each sample repeats `f` for at least
/// 20 ms (a fixture is read in well under a millisecond), so that one preemption or timer
/// tick does not decide a figure; the first call, untimed, warms caches and buffers.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let first = Instant::now();
    f();
    let once = first.elapsed().as_secs_f64().max(1e-6);
    let reps = (0.02 / once).ceil().max(1.0) as usize;
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            for _ in 0..reps {
                f();
            }
            s.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    t[runs / 2]
}

struct Input {
    name: &'static str,
    chunks: Vec<Vec<u8>>,
    tag: &'static str,
}

fn main() {
    let quick =
        std::env::args().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some();
    let runs = if quick { 3 } else { 9 };
    let cfg = config();
    let mapper = Mapper::new(&cfg);
    let default_level = DEFAULT_COMPRESSION_LEVEL;

    let generated: Vec<Vec<u8>> = (0..10)
        .map(|i| host::firelens_chunk(2000, i * 2000, true))
        .collect();
    let inputs = [
        Input {
            name: "generated FireLens (20k records, 2000/chunk)",
            chunks: generated,
            tag: host::FIRELENS_TAG,
        },
        Input {
            name: "fixture fb-1.9.10-forward",
            chunks: vec![host::fixture("fb-1.9.10-forward.msgpack")],
            tag: host::FIRELENS_TAG,
        },
        Input {
            name: "fixtures fb-4.2.8-forward-1+2",
            chunks: vec![
                host::fixture("fb-4.2.8-forward-1.msgpack"),
                host::fixture("fb-4.2.8-forward-2.msgpack"),
            ],
            tag: host::FIRELENS_TAG,
        },
    ];

    if let Some(v) = std::env::var_os("BENCH_PROFILE_BUILD") {
        // For a profiler: only decode + map + serialize, for a few seconds, or for a given
        // number of passes over the 20k generated records (`BENCH_PROFILE_BUILD=3`, for
        // instruction counts under callgrind).
        // Buffers are reused as a running instance reuses them.
        let mut scratch = Scratch::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let passes: Option<u32> = v.to_str().and_then(|v| v.parse().ok());
        // `BENCH_PROFILE_INPUT=1` or `2` profiles a fixture instead.
        let input = std::env::var("BENCH_PROFILE_INPUT")
            .ok()
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| inputs.get(i))
            .unwrap_or(&inputs[0]);
        let start = Instant::now();
        let mut pass = 0;
        while passes.map_or(start.elapsed().as_secs() < 5, |n| pass < n) {
            pass += 1;
            for c in &input.chunks {
                let (b, _) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
                batch::recycle(std::hint::black_box(b), &mut spare);
            }
        }
        return;
    }
    println!(
        "# fluent-bit-datadog flush-path benchmark ({} runs per figure, median)",
        runs
    );
    println!();
    println!("## decode + map + serialize (batch::build)");
    println!("| input | records | msgpack MB | JSON MB | µs/record | JSON MB/s | JSON B/record |");
    println!("|---|---|---|---|---|---|---|");
    let mut scratch = Scratch::default();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut jsons: Vec<Vec<Vec<u8>>> = Vec::new();
    for input in &inputs {
        let mut records = 0u64;
        let mut json = Vec::new();
        for c in &input.chunks {
            let (batches, st) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
            records += st.records;
            json.extend(batches.into_iter().map(|b| b.json));
        }
        let json_bytes: usize = json.iter().map(Vec::len).sum();
        let msgpack: usize = input.chunks.iter().map(Vec::len).sum();
        let t = median(runs, || {
            for c in &input.chunks {
                let (b, _) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
                batch::recycle(std::hint::black_box(b), &mut spare);
            }
        });
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.3} | {:.0} | {:.0} |",
            input.name,
            records,
            msgpack as f64 / 1e6,
            json_bytes as f64 / 1e6,
            t * 1e6 / records as f64,
            json_bytes as f64 / 1e6 / t,
            json_bytes as f64 / records as f64
        );
        jsons.push(json);
    }

    // Compression alone, on the generated input's JSON.
    let json = &jsons[0];
    let records = 20_000f64;
    let json_bytes: usize = json.iter().map(Vec::len).sum();
    println!();
    println!(
        "## gzip alone (generated input: {:.2} MB of JSON, 20k records)",
        json_bytes as f64 / 1e6
    );
    println!("| level | µs/record | MB/s | compressed B/record | ratio | bytes vs level 6 |");
    println!("|---|---|---|---|---|---|");
    let mut level_time = [0f64; 10];
    let mut level_size = [0usize; 10];
    for level in 1..=9u32 {
        let size: usize = json.iter().map(|j| send::gzip(j, level).len()).sum();
        let t = median(runs, || {
            for j in json {
                std::hint::black_box(send::gzip(j, level));
            }
        });
        level_time[level as usize] = t;
        level_size[level as usize] = size;
    }
    for level in 1..=9usize {
        println!(
            "| {level}{} | {:.3} | {:.0} | {:.1} | {:.2} | {:.2} |",
            if level as u32 == default_level {
                " (default)"
            } else {
                ""
            },
            level_time[level] * 1e6 / records,
            json_bytes as f64 / 1e6 / level_time[level],
            level_size[level] as f64 / records,
            json_bytes as f64 / level_size[level] as f64,
            level_size[level] as f64 / level_size[6] as f64
        );
    }

    // Whole in-memory path at the default level.
    println!();
    println!("## whole path: decode + map + serialize + gzip (level {default_level})");
    println!("| input | µs/record | gzip alone µs/record | whole / gzip alone |");
    println!("|---|---|---|---|");
    for (i, input) in inputs.iter().enumerate() {
        let recs: u64 = input
            .chunks
            .iter()
            .map(|c| {
                batch::build(c, input.tag, &mapper, &mut scratch, &mut spare)
                    .1
                    .records
            })
            .sum();
        let whole = median(runs, || {
            for c in &input.chunks {
                let (batches, _) = batch::build(c, input.tag, &mapper, &mut scratch, &mut spare);
                for b in &batches {
                    std::hint::black_box(send::gzip(&b.json, default_level));
                }
                batch::recycle(batches, &mut spare);
            }
        });
        let alone = median(runs, || {
            for j in &jsons[i] {
                std::hint::black_box(send::gzip(j, default_level));
            }
        });
        println!(
            "| {} | {:.3} | {:.3} | {:.2} |",
            input.name,
            whole * 1e6 / recs as f64,
            alone * 1e6 / recs as f64,
            whole / alone
        );
    }

    // Peak heap of one flush of a 2000-record chunk.
    println!();
    println!("## peak heap during one flush (build + gzip of every request)");
    println!("| input | chunk bytes | peak heap bytes | peak / chunk |");
    println!("|---|---|---|---|");
    for input in &inputs {
        let chunk = &input.chunks[0];
        let mut scratch = Scratch::default();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        // Warm the scratch buffers as a running instance would.
        let (warm, _) = batch::build(chunk, input.tag, &mapper, &mut scratch, &mut spare);
        batch::recycle(warm, &mut spare);
        let base = LIVE.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        {
            let (batches, _) = batch::build(chunk, input.tag, &mapper, &mut scratch, &mut spare);
            let gz: Vec<Vec<u8>> = batches
                .iter()
                .map(|b| send::gzip(&b.json, default_level))
                .collect();
            std::hint::black_box(gz);
        }
        let peak = PEAK.load(Ordering::Relaxed) - base;
        println!(
            "| {} | {} | {} | {:.2} |",
            input.name,
            chunk.len(),
            peak,
            peak as f64 / chunk.len() as f64
        );
    }
}
