//! `conformance_host`: drives the plugin .so as Fluent Bit would, from a JSON scenario.
//!
//! ```text
//! conformance_host SCENARIO.json      (or - for standard input)
//! ```
//! The scenario names instances (their options), flushes (a fixture or generated
//! FireLens-shaped records, how many times, on how many concurrent threads, with how many
//! retries of the same bytes after RETRY) and how to exit. The plugin's log lines go to
//! stderr; a JSON report goes to stdout: Register's fields, Init codes, every flush code, and
//! the process's CPU time, wall time and peak RSS from the operating system.
//!
//! ```json
//! {"instances": [{"options": {"apikey": "k", "endpoint": "http://127.0.0.1:8080"}}],
//!  "flushes": [{"instance": 0, "fixture": "fb-1.9.10-forward.msgpack"},
//!              {"instance": 0, "generate": {"records": 20000, "per_chunk": 2000, "v2": true},
//!               "threads": 2, "retries": 5, "retry_pause_ms": 100}],
//!  "exit": "ctx"}
//! ```
//! A flush step may also set `rss_every: N` to sample the resident set size after every N
//! chunks (`rss_kb` in the report: `[chunks done, KiB]` pairs).
//! `exit` is `ctx` (ExitCtx per instance), `same_ctx` (Fluent Bit 1.9: the last instance's
//! context for every instance), `global` (FLBPluginExit) or `none`. `exit_after_ms: N` exits
//! N ms after the flushes started, while they may still run (they are joined afterwards);
//! `stray_exits: [tokens]` first calls ExitCtx with contexts the plugin never issued (0 is
//! NULL). `exit_s` in the report is the time the exit calls took.
//!
//! `cycles: N` repeats the instances' whole life (Init, the flushes, the exit) N times in the
//! one process, as Fluent Bit's hot reload does; `cycles` in the report then has, after each
//! exit, the process's `threads` (from /proc/self/status), their `names` and `rss_kb`.
//!
//! `"host": "2.0"` plays a Fluent Bit >= 2.0 host (2.0+ api table, the stand-in cmetrics and
//! logger; `"log_level": 1..5` is the instance's `Log_Level`, default 3 = info); the report
//! then has `metrics` (every cmetrics call, in order) and `host_log` (every `flb_log_print`
//! call). Without it the host is Fluent Bit 1.9.10's: 8-byte api table, no such functions.

use conformance_host as host;
use host::{Ctx, FIRELENS_TAG, Host, Props};
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: conformance_host SCENARIO.json|-");
        std::process::exit(2);
    });
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).expect("read stdin");
        s
    } else {
        std::fs::read_to_string(&arg).unwrap_or_else(|e| {
            eprintln!("cannot read {arg}: {e}");
            std::process::exit(2);
        })
    };
    let scenario: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("bad scenario JSON: {e}");
        std::process::exit(2);
    });
    let report = run(&scenario);
    println!("{report}");
}

fn run(s: &Value) -> Value {
    let wall = Instant::now();
    let v2 = s["host"].as_str() == Some("2.0");
    let mut host = if v2 { Host::load_v2() } else { Host::load() };
    if v2 {
        host::stand_in_set_log_level(s["log_level"].as_i64().unwrap_or(3) as i32);
    }
    let reg = host.register();
    // `cycles: N` runs Init -> flushes -> exit N times in this one process, as Fluent Bit's
    // hot reload does, and samples the process's threads and RSS after each exit.
    let cycles = s["cycles"].as_u64().unwrap_or(1).max(1);
    let mut samples = Vec::new();
    let mut last = (Vec::new(), Vec::new(), 0.0);
    for _ in 0..cycles {
        last = run_cycle(&mut host, s);
        host.release_instances();
        samples.push(
            json!({"threads": settled_threads(), "rss_kb": rss_kb(), "names": thread_names()}),
        );
    }
    let (init_codes, flush_reports, exit_s) = last;
    let (host_log, metrics): (Vec<Value>, Vec<Value>) = host::stand_in_calls()
        .into_iter()
        .partition(|c| c["call"] == "flb_log_print");
    json!({
        "metrics": metrics,
        "host_log": host_log,
        "register": {
            "type": reg.kind, "proxy": reg.proxy, "flags": reg.flags, "name": reg.name,
            "description": reg.description, "code": reg.code, "canary_intact": reg.canary_intact,
        },
        "init": init_codes,
        "flushes": flush_reports,
        "exit_s": exit_s,
        "cycles": samples,
        "wall_s": wall.elapsed().as_secs_f64(),
        "rusage": rusage(),
    })
}

/// One life of the scenario's instances: Init for each, the flushes, the exit. Returns the
/// Init codes, the flush reports and the time the exit calls took.
fn run_cycle(host: &mut Host, s: &Value) -> (Vec<i32>, Vec<Value>, f64) {
    let mut init_codes = Vec::new();
    let mut ctxs = Vec::new();
    for inst in s["instances"].as_array().cloned().unwrap_or_default() {
        let pairs: Vec<(String, String)> = inst["options"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (code, ctx) = host.init(Props::new(&pairs));
        init_codes.push(code);
        ctxs.push(ctx);
    }
    let host = &*host;
    let all_ok = init_codes.iter().all(|&c| c == 1);
    let exit = s["exit"].as_str().unwrap_or("ctx");
    let exit_after = s["exit_after_ms"].as_u64().map(Duration::from_millis);
    let do_exit = || {
        let started = Instant::now();
        for t in s["stray_exits"].as_array().cloned().unwrap_or_default() {
            host.exit_ctx(Ctx(t.as_u64().unwrap_or(0) as usize));
        }
        if all_ok || exit != "none" {
            match exit {
                "ctx" => ctxs.iter().for_each(|c| {
                    host.exit_ctx(*c);
                }),
                "same_ctx" => {
                    if let Some(last) = ctxs.last() {
                        for _ in &ctxs {
                            host.exit_ctx(*last);
                        }
                    }
                }
                "global" => {
                    host.exit_all();
                }
                _ => {}
            }
        }
        started.elapsed().as_secs_f64()
    };
    let flushes = s["flushes"].as_array().cloned().unwrap_or_default();
    let run_flushes = || -> Vec<Value> {
        if !all_ok {
            return Vec::new();
        }
        flushes
            .iter()
            .map(|f| run_flush(host, ctxs[f["instance"].as_u64().unwrap_or(0) as usize], f))
            .collect()
    };
    let (flush_reports, exit_s) = match exit_after {
        Some(after) => std::thread::scope(|sc| {
            let flushing = sc.spawn(run_flushes);
            std::thread::sleep(after);
            let exit_s = do_exit();
            (flushing.join().expect("flush thread"), exit_s)
        }),
        None => {
            let reports = run_flushes();
            (reports, do_exit())
        }
    };
    (init_codes, flush_reports, exit_s)
}

fn run_flush(host: &Host, ctx: Ctx, f: &Value) -> Value {
    let tag = f["tag"].as_str().unwrap_or(FIRELENS_TAG).to_string();
    let repeat = f["repeat"].as_u64().unwrap_or(1) as usize;
    let threads = f["threads"].as_u64().unwrap_or(1).max(1) as usize;
    let attempts = f["retries"].as_u64().unwrap_or(0) as usize + 1;
    let pause = Duration::from_millis(f["retry_pause_ms"].as_u64().unwrap_or(100));
    // `on_init_thread`: flush from the thread that ran Init, as Fluent Bit does without
    // `Workers` (no 24 KiB stack here: that is the engine thread's own stack).
    let on_init_thread = f["on_init_thread"].as_bool().unwrap_or(false);
    // Fixed chunks are read once; generated ones are made as they are flushed, so a long
    // soak run does not hold every chunk in memory.
    let mut fixed: Vec<Vec<u8>> = Vec::new();
    let mut generated: Option<(usize, usize, bool)> = None;
    // `"varied": true`: varied lines (host::varied_chunk) instead of repetitive ones.
    let mut varied = false;
    if let Some(name) = f["fixture"].as_str() {
        fixed = vec![host::fixture(name); repeat];
    } else if let Some(g) = f.get("generate") {
        let total = g["records"].as_u64().unwrap_or(1000) as usize;
        let per = g["per_chunk"].as_u64().unwrap_or(2000).max(1) as usize;
        generated = Some((total, per, g["v2"].as_bool().unwrap_or(true)));
        varied = g["varied"].as_bool().unwrap_or(false);
    } else if let Some(hex) = f["hex"].as_str() {
        fixed = vec![decode_hex(hex); repeat];
    } else {
        fixed = vec![Vec::new(); repeat];
    }
    let n_chunks = match generated {
        Some((total, per, _)) => total.div_ceil(per),
        None => fixed.len(),
    };
    let chunk = |i: usize| -> std::borrow::Cow<'_, [u8]> {
        match generated {
            Some((total, per, _)) if varied => {
                host::varied_chunk(per.min(total - i * per), i * per).into()
            }
            Some((total, per, v2)) => {
                host::firelens_chunk(per.min(total - i * per), i * per, v2).into()
            }
            None => fixed[i].as_slice().into(),
        }
    };
    // `dry_run`: make the chunks but do not flush them, to measure what the host itself
    // costs (scripts/bench.sh subtracts it).
    let dry_run = f["dry_run"].as_bool().unwrap_or(false);
    let bytes = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    if on_init_thread {
        let codes: Vec<Vec<i32>> = (0..n_chunks)
            .map(|i| {
                let data = chunk(i);
                bytes.fetch_add(data.len(), std::sync::atomic::Ordering::Relaxed);
                vec![host.flush_here(ctx, &data, &tag)]
            })
            .collect();
        return json!({"chunks": n_chunks, "bytes": bytes.into_inner(), "codes": codes,
                      "seconds": started.elapsed().as_secs_f64()});
    }
    let next = Mutex::new(0usize);
    let codes = Mutex::new(vec![Vec::new(); n_chunks]);
    // `rss_every`: sample the resident set size after every N chunks (soak runs).
    let rss_every = f["rss_every"].as_u64().unwrap_or(0) as usize;
    let rss = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    if i >= n_chunks {
                        break;
                    }
                    let data = chunk(i);
                    bytes.fetch_add(data.len(), std::sync::atomic::Ordering::Relaxed);
                    let c = if dry_run {
                        std::hint::black_box(&data);
                        vec![1]
                    } else {
                        host.flush_with_retries(ctx, &data, &tag, attempts, pause)
                    };
                    codes.lock().unwrap()[i] = c;
                    if rss_every > 0 && (i + 1) % rss_every == 0 {
                        rss.lock().unwrap().push(json!([i + 1, rss_kb()]));
                    }
                }
            });
        }
    });
    json!({
        "chunks": n_chunks,
        "bytes": bytes.into_inner(),
        "codes": codes.into_inner().unwrap(),
        "seconds": started.elapsed().as_secs_f64(),
        "rss_kb": rss.into_inner().unwrap(),
    })
}

/// Threads of this process, from /proc/self/status.
fn threads() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The fewest threads seen over up to 0.5 s: a thread just joined may still be listed while
/// the kernel tears it down, while a leaked thread stays.
fn settled_threads() -> u64 {
    let mut fewest = threads();
    for _ in 0..50 {
        if fewest <= 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        fewest = fewest.min(threads());
    }
    fewest
}

/// The names of this process's threads, from /proc/self/task/*/comm.
fn thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|n| n.trim().to_string())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Current resident set size in KiB, from /proc/self/statm.
fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page / 1024
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// CPU seconds and peak RSS of this process, from getrusage(2).
fn rusage() -> Value {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    json!({
        "user_s": secs(ru.ru_utime),
        "sys_s": secs(ru.ru_stime),
        "max_rss_kb": ru.ru_maxrss,
    })
}
