//! A stand-in for Fluent Bit's proxy-plugin host: loads the plugin's .so with `dlopen` and
//! drives it through the same C interface, with the same memory layouts, as Fluent Bit does.
//!
//! * Register gets a 32-byte definition struct filled with garbage (Fluent Bit <= 4.2.2
//!   `malloc`s it), followed by canary bytes that must survive.
//! * Init gets one `flbgo_output_plugin` struct reused for every instance (its `o_ins` and
//!   `context` rewritten before each Init, as the host does) and an api table of 8 bytes: the
//!   1.9.10 layout, holding only `output_get_property`.
//! * Flushes run on threads whose stack is 24 KiB, the size of Fluent Bit's coroutine stacks.
//! * Exit can be per instance, 1.9-style (the last context for every instance) or global.
//! * [`Host::load_v2`] plays a Fluent Bit >= 2.0 host instead: it first `dlopen`s the
//!   stand-in library (`flb-stand-in`) with `RTLD_GLOBAL`, so the plugin's
//!   `dlsym(RTLD_DEFAULT, ...)` finds `flb_output_log_check`, `flb_log_print`,
//!   `flb_output_get_cmt_instance` and the cmetrics functions, and hands Init the 72-byte api
//!   table of 2.0+ whose members point at those functions, as Fluent Bit's `flb_api_create`
//!   does. [`stand_in_calls`] returns every call the plugin made to them.
//!
//! Shared by the `conformance_host` binary, the in-process ABI tests and the benches.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};

/// Fluent Bit's coroutine stack size on x86_64 glibc (1.5 x PTHREAD_STACK_MIN).
pub const CORO_STACK: usize = 24 * 1024;

type RegisterFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type InitFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type FlushCtxFn = unsafe extern "C" fn(*mut c_void, *const c_void, usize, *mut c_char) -> c_int;
type ExitCtxFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type ExitFn = unsafe extern "C" fn() -> c_int;
type GetPropertyFn = unsafe extern "C" fn(*const c_char, *mut c_void) -> *const c_char;

/// What Register wrote.
#[derive(Debug, Clone)]
pub struct Registration {
    /// `type` field (2 = output).
    pub kind: i32,
    /// `proxy` field (11 = Go proxy).
    pub proxy: i32,
    /// `flags` field.
    pub flags: i32,
    /// Plugin name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Register's return value.
    pub code: i32,
    /// True when the bytes after offset 32 were left untouched.
    pub canary_intact: bool,
}

/// The options of one output instance, as the host's `output_get_property` sees them.
pub struct Props {
    map: HashMap<String, CString>,
}

impl Props {
    /// Options from pairs; keys match case-insensitively, as in Fluent Bit.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Box<Props> {
        Box::new(Props {
            map: pairs
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_ref().to_ascii_lowercase(),
                        CString::new(v.as_ref()).expect("option value with NUL"),
                    )
                })
                .collect(),
        })
    }
}

/// The host's property getter: NULL for absent or empty values, as `flb_output_get_property`.
unsafe extern "C" fn get_property(key: *const c_char, ins: *mut c_void) -> *const c_char {
    if key.is_null() || ins.is_null() {
        return std::ptr::null();
    }
    // SAFETY: `ins` is the `Props` the host put in `o_ins`; `key` is the plugin's C string.
    let props = unsafe { &*(ins as *const Props) };
    let key = unsafe { CStr::from_ptr(key) }
        .to_string_lossy()
        .to_ascii_lowercase();
    match props.map.get(&key) {
        Some(v) if !v.as_bytes().is_empty() => v.as_ptr(),
        _ => std::ptr::null(),
    }
}

/// Mirrors `struct flbgo_output_plugin` (72 bytes; the plugin reads the first four members).
#[repr(C)]
struct GoPlugin {
    name: *mut c_char,
    api: *mut c_void,
    o_ins: *mut c_void,
    context: *mut c_void,
    host_callbacks: [*mut c_void; 5],
}

/// Mirrors `struct flb_plugin_proxy_context`.
#[repr(C)]
struct ProxyContext {
    remote_context: *mut c_void,
    proxy: *mut c_void,
}

/// A loaded plugin.
pub struct Host {
    /// The dlopen handle: held, never closed, as Fluent Bit never unloads a plugin.
    #[allow(dead_code)]
    handle: *mut c_void,
    register: RegisterFn,
    init: InitFn,
    flush_ctx: FlushCtxFn,
    exit_ctx: ExitCtxFn,
    exit: ExitFn,
    /// The api table handed to Init; the plugin may keep pointers into it.
    #[allow(dead_code)]
    api: *mut c_void,
    plugin: *mut GoPlugin,
    instances: Vec<(Box<Props>, Box<ProxyContext>)>,
}

// The raw pointers are only used under the host's own discipline (Init on one thread,
// flushes concurrently as Fluent Bit's workers do).
unsafe impl Send for Host {}
unsafe impl Sync for Host {}

/// A context token handed to flush calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx(pub usize);

/// Finds the plugin library: `$FLB_DATADOG_SO`, else the one cargo built beside the running
/// binary. `deps/` comes first: cargo refreshes it on every build of the crate (including
/// `cargo test`), while the copy in `target/<profile>/` is only refreshed by `cargo build`.
pub fn library_path() -> std::path::PathBuf {
    built_library("FLB_DATADOG_SO", "libfluent_bit_datadog.so")
}

/// `$var` if set, else `file` where cargo built it beside the running binary (`deps/` first).
fn built_library(var: &str, file: &str) -> std::path::PathBuf {
    if let Ok(p) = std::env::var(var) {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    for dir in exe.ancestors().skip(1).take(3) {
        for p in [dir.join("deps").join(file), dir.join(file)] {
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "{file} not found near {}: run `cargo build` first or set {var}",
        exe.display()
    );
}

unsafe fn sym<T: Copy>(handle: *mut c_void, name: &str) -> T {
    let c = CString::new(name).unwrap();
    // SAFETY: dlsym on a live handle; the caller names the right function type.
    let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
    assert!(!p.is_null(), "symbol {name} is not exported");
    unsafe { std::mem::transmute_copy(&p) }
}

impl Host {
    /// `dlopen`s the plugin (RTLD_LAZY, local scope, as Fluent Bit) and looks up its symbols;
    /// the api table is Fluent Bit 1.9.10's (8 bytes).
    pub fn load() -> Host {
        Host::load_with(false)
    }

    /// As [`Host::load`], playing a Fluent Bit >= 2.0 host: the stand-in's functions are
    /// loaded into the global scope first, and the api table has the 2.0+ layout. Once done
    /// in a process, the stand-in's symbols stay visible to every later load in it.
    pub fn load_v2() -> Host {
        Host::load_with(true)
    }

    fn load_with(v2: bool) -> Host {
        let api = if v2 {
            api_table_v2()
        } else {
            // SAFETY: a malloc'd 8-byte table holding only output_get_property.
            unsafe {
                let api = libc::malloc(8) as *mut GetPropertyFn;
                api.write(get_property);
                api as *mut c_void
            }
        };
        let path = library_path();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: plain dlopen of a shared object.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        assert!(!handle.is_null(), "dlopen {} failed", path.display());
        // SAFETY: the symbols have the signatures of Fluent Bit's proxy interface.
        unsafe {
            let plugin = libc::malloc(std::mem::size_of::<GoPlugin>()) as *mut GoPlugin;
            std::ptr::write_bytes(plugin as *mut u8, 0x5a, std::mem::size_of::<GoPlugin>());
            (*plugin).name = c"datadog_logs".as_ptr() as *mut c_char;
            (*plugin).api = api;
            Host {
                handle,
                register: sym(handle, "FLBPluginRegister"),
                init: sym(handle, "FLBPluginInit"),
                flush_ctx: sym(handle, "FLBPluginFlushCtx"),
                exit_ctx: sym(handle, "FLBPluginExitCtx"),
                exit: sym(handle, "FLBPluginExit"),
                api,
                plugin,
                instances: Vec::new(),
            }
        }
    }

    /// Calls Register with a 32-byte, uninitialised definition followed by 16 canary bytes.
    pub fn register(&self) -> Registration {
        // SAFETY: a malloc'd buffer larger than the 32 bytes the plugin may write.
        unsafe {
            let def = libc::malloc(48) as *mut u8;
            std::ptr::write_bytes(def, 0xa5, 48);
            let code = (self.register)(def as *mut c_void);
            let canary_intact = (32..48).all(|i| *def.add(i) == 0xa5);
            let kind = (def as *const i32).read_unaligned();
            let proxy = (def.add(4) as *const i32).read_unaligned();
            let flags = (def.add(8) as *const i32).read_unaligned();
            let name_p = (def.add(16) as *const *const c_char).read_unaligned();
            let desc_p = (def.add(24) as *const *const c_char).read_unaligned();
            let text = |p: *const c_char| {
                if p.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(p).to_string_lossy().into_owned()
                }
            };
            let r = Registration {
                kind,
                proxy,
                flags,
                name: text(name_p),
                description: text(desc_p),
                code,
                canary_intact,
            };
            libc::free(def as *mut c_void);
            r
        }
    }

    /// Initialises one more instance with `props`; returns Init's code and the context token.
    pub fn init(&mut self, props: Box<Props>) -> (i32, Ctx) {
        let mut ctx = Box::new(ProxyContext {
            remote_context: std::ptr::null_mut(),
            proxy: std::ptr::null_mut(),
        });
        // SAFETY: the shared plugin struct is rewritten before each Init, as the host does.
        let code = unsafe {
            (*self.plugin).o_ins = &*props as *const Props as *mut c_void;
            (*self.plugin).context = &mut *ctx as *mut ProxyContext as *mut c_void;
            (self.init)(self.plugin as *mut c_void)
        };
        let token = Ctx(ctx.remote_context as usize);
        self.instances.push((props, ctx));
        (code, token)
    }

    /// Frees the options and contexts of the instances initialised so far, as Fluent Bit frees
    /// an instance after its exit (a hot reload's old instances). Call it only after their
    /// exit: the plugin must not touch a context once its instance has exited.
    pub fn release_instances(&mut self) {
        self.instances.clear();
    }

    /// One FlushCtx call on the current thread. The tag is a fresh heap copy, freed after.
    pub fn flush_here(&self, ctx: Ctx, data: &[u8], tag: &str) -> i32 {
        let tag = CString::new(tag).unwrap();
        // SAFETY: data and tag are valid for the call, as the host guarantees.
        unsafe {
            let t = libc::strdup(tag.as_ptr());
            let code = (self.flush_ctx)(
                ctx.0 as *mut c_void,
                data.as_ptr() as *const c_void,
                data.len(),
                t,
            );
            libc::free(t as *mut c_void);
            code
        }
    }

    /// One FlushCtx call on a thread with a 24 KiB stack, like a Fluent Bit coroutine.
    pub fn flush(&self, ctx: Ctx, data: &[u8], tag: &str) -> i32 {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("flb-coro".into())
                .stack_size(CORO_STACK)
                .spawn_scoped(s, || self.flush_here(ctx, data, tag))
                .expect("spawn a 24 KiB thread")
                .join()
                .expect("flush thread crashed")
        })
    }

    /// Flushes like the engine's retry scheduler: re-sends the same bytes after RETRY, up to
    /// `attempts` times, with `pause` between attempts. Returns every code seen.
    pub fn flush_with_retries(
        &self,
        ctx: Ctx,
        data: &[u8],
        tag: &str,
        attempts: usize,
        pause: std::time::Duration,
    ) -> Vec<i32> {
        let mut codes = Vec::new();
        for i in 0..attempts {
            if i > 0 {
                std::thread::sleep(pause);
            }
            let code = self.flush(ctx, data, tag);
            codes.push(code);
            if code != 2 {
                break;
            }
        }
        codes
    }

    /// ExitCtx for one instance.
    pub fn exit_ctx(&self, ctx: Ctx) -> i32 {
        // SAFETY: the plugin accepts any context value.
        unsafe { (self.exit_ctx)(ctx.0 as *mut c_void) }
    }

    /// The non-Ctx Exit.
    pub fn exit_all(&self) -> i32 {
        // SAFETY: no arguments.
        unsafe { (self.exit)() }
    }
}

/// Finds the stand-in library: `$FLB_STAND_IN_SO`, else the one cargo built beside the
/// running binary (as [`library_path`]).
pub fn stand_in_path() -> std::path::PathBuf {
    built_library("FLB_STAND_IN_SO", "libflb_stand_in.so")
}

/// The stand-in's handle, loaded once per process into the global scope.
fn stand_in() -> *mut c_void {
    static HANDLE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *HANDLE.get_or_init(|| {
        let path = stand_in_path();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: plain dlopen of a shared object, into the global scope.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        assert!(!h.is_null(), "dlopen {} failed", path.display());
        h as usize
    }) as *mut c_void
}

/// The 2.0+ `struct flb_api` (72 bytes as of 4.0.3): the members Fluent Bit sets, pointing at
/// the stand-in's functions; the input and custom members are NULL (never read by an output).
fn api_table_v2() -> *mut c_void {
    let h = stand_in();
    // SAFETY: a malloc'd table of nine pointers, filled before the plugin sees it.
    unsafe {
        let api = libc::malloc(72) as *mut *mut c_void;
        std::ptr::write_bytes(api as *mut u8, 0, 72);
        let f = |name: &str| -> *mut c_void { sym::<*mut c_void>(h, name) };
        api.write(get_property as GetPropertyFn as *mut c_void);
        api.add(2).write(f("flb_output_get_cmt_instance"));
        api.add(4).write(f("flb_log_print"));
        api.add(6).write(f("flb_output_log_check"));
        api as *mut c_void
    }
}

/// Every call the plugin made to the stand-in so far (in this process), as JSON objects:
/// `{"call": "cmt_counter_add", "metric": "counter:fluentbit_datadog_logs_sent_logs_total",
/// "value": 1999.0, "labels": ["datadog_logs.0"], ...}`. Empty when the stand-in is not loaded.
pub fn stand_in_calls() -> Vec<serde_json::Value> {
    let c = CString::new("flb_stand_in_calls").unwrap();
    // SAFETY: RTLD_DEFAULT lookup; the functions have the stand-in's signatures.
    unsafe {
        let f = libc::dlsym(libc::RTLD_DEFAULT, c.as_ptr());
        if f.is_null() {
            return Vec::new();
        }
        let calls: unsafe extern "C" fn() -> *mut c_char = std::mem::transmute(f);
        let free: unsafe extern "C" fn(*mut c_char) = sym(stand_in(), "flb_stand_in_free");
        let p = calls();
        let text = CStr::from_ptr(p).to_string_lossy().into_owned();
        free(p);
        serde_json::from_str(&text).unwrap_or_default()
    }
}

/// Sets the `Log_Level` the stand-in's `flb_output_log_check` applies (1 error .. 5 trace).
pub fn stand_in_set_log_level(level: i32) {
    // SAFETY: the stand-in's setter takes an int.
    unsafe {
        let f: unsafe extern "C" fn(c_int) = sym(stand_in(), "flb_stand_in_set_log_level");
        f(level)
    }
}

/// Reads a fixture from tests/fixtures (or `FLB_DATADOG_FIXTURES`).
pub fn fixture(name: &str) -> Vec<u8> {
    let dir = std::env::var("FLB_DATADOG_FIXTURES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures").into());
    let path = format!("{dir}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The tag Fluent Bit passed with the forward fixtures.
pub const FIRELENS_TAG: &str = "main-container-firelens-cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e";

/// Appends one record: `[[EventTime, {}], body]` (4.x layout) or `[EventTime, body]` (1.9),
/// with string fields as the body.
fn push_record(out: &mut Vec<u8>, v2: bool, secs: u32, nanos: u32, fields: &[(&str, &str)]) {
    rmp::encode::write_array_len(out, 2).unwrap();
    if v2 {
        rmp::encode::write_array_len(out, 2).unwrap();
    }
    let mut ts = [0u8; 8];
    ts[..4].copy_from_slice(&secs.to_be_bytes());
    ts[4..].copy_from_slice(&nanos.to_be_bytes());
    rmp::encode::write_ext_meta(out, 8, 0).unwrap();
    out.extend_from_slice(&ts);
    if v2 {
        rmp::encode::write_map_len(out, 0).unwrap();
    }
    rmp::encode::write_map_len(out, fields.len() as u32).unwrap();
    for (k, v) in fields {
        rmp::encode::write_str(out, k).unwrap();
        rmp::encode::write_str(out, v).unwrap();
    }
}

/// Builds a chunk of `n` FireLens-shaped records (about 620 bytes of JSON each, much alike:
/// one request shape with a counter in it), in the 4.x layout (`[[EventTime, {}], body]`) or the 1.9 one (`[EventTime, body]`).
pub fn firelens_chunk(n: usize, start: usize, v2: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 520);
    for i in start..start + n {
        let secs = 1_732_400_000u32 + (i / 1000) as u32;
        let nanos = ((i % 1000) * 1_000_000) as u32;
        let log = format!(
            "{{\"level\":\"info\",\"msg\":\"request served\",\"method\":\"GET\",\"path\":\"/api/v1/orders/{i}\",\"status\":200,\"latency_ms\":{}.{},\"request_id\":\"{:032x}\",\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\"}}",
            i % 97,
            i % 10,
            (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        );
        let fields: [(&str, &str); 7] = [
            (
                "container_id",
                "cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e-2659706421",
            ),
            ("container_name", "/ecs-app-main-container"),
            (
                "ecs_cluster",
                "arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod",
            ),
            (
                "ecs_task_arn",
                "arn:aws:ecs:ap-northeast-1:123456789012:task/prod/cfa7a4e3c2b84d3f9c6e6b6a1b2c3d4e",
            ),
            ("ecs_task_definition", "checkout-service:42"),
            ("source", if i % 10 == 0 { "stderr" } else { "stdout" }),
            ("log", &log),
        ];
        push_record(&mut out, v2, secs, nanos, &fields);
    }
    out
}

/// splitmix64: a fixed pseudo-random sequence, so a varied chunk is the same on every run.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Builds a chunk of `n` varied FireLens records (4.x layout, about 750 bytes of JSON each):
/// JSON application logs (levels, messages, routes, request and trace ids, user ids,
/// latencies, byte counts) and nginx access-log lines (client addresses, paths, statuses,
/// sizes, user agents), none of whose ids, addresses or latencies repeat as a counter would.
/// Compression ratios on it are what real traffic gets; the repetitive [`firelens_chunk`]
/// flatters every codec.
pub fn varied_chunk(n: usize, start: usize) -> Vec<u8> {
    const LEVELS: [&str; 4] = ["info", "info", "warn", "error"];
    const MSGS: [&str; 6] = [
        "request served",
        "payment authorized",
        "cache miss, loading from database",
        "retrying upstream call",
        "order state changed",
        "token refreshed",
    ];
    const ROUTES: [&str; 6] = [
        "/api/v1/orders",
        "/api/v1/carts",
        "/api/v2/payments",
        "/api/v1/users",
        "/healthz",
        "/api/v1/inventory/items",
    ];
    const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
    const AGENTS: [&str; 4] = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "okhttp/4.12.0",
        "ELB-HealthChecker/2.0",
    ];
    let mut out = Vec::with_capacity(n * 600);
    for i in start..start + n {
        let r = |k: u64| mix(((i as u64) << 4) | k);
        let secs = 1_732_400_000u32 + (i / 1000) as u32;
        let nanos = (r(0) % 1_000_000_000) as u32;
        let pick = |k: u64, len: usize| (r(k) % len as u64) as usize;
        let log = if r(1) % 3 == 0 {
            let ip = r(2);
            format!(
                "{}.{}.{}.{} - - [24/Nov/2024:{:02}:{:02}:{:02} +0000] \"{} {}/{}?page={} HTTP/1.1\" {} {} \"-\" \"{}\" rt={}.{:03} uct=0.{:03} upstream={}.{}.{}.{}:8080",
                ip & 0xff,
                (ip >> 8) & 0xff,
                (ip >> 16) & 0xff,
                (ip >> 24) & 0xff,
                r(3) % 24,
                (r(3) >> 8) % 60,
                (r(3) >> 16) % 60,
                METHODS[pick(4, 4)],
                ROUTES[pick(5, 6)],
                r(6) % 1_000_000,
                r(7) % 40,
                [200, 200, 201, 304, 404, 500][pick(8, 6)],
                r(9) % 90_000 + 120,
                AGENTS[pick(10, 4)],
                r(11) % 3,
                (r(11) >> 16) % 1000,
                r(12) % 1000,
                10,
                r(13) & 0xff,
                (r(13) >> 8) & 0xff,
                (r(13) >> 16) & 0xff,
            )
        } else {
            format!(
                "{{\"level\":\"{}\",\"msg\":\"{}\",\"method\":\"{}\",\"route\":\"{}/{}\",\"status\":{},\"latency_ms\":{}.{:03},\"bytes\":{},\"request_id\":\"{:016x}{:016x}\",\"trace_id\":\"{:016x}\",\"user_id\":{},\"session\":\"{:012x}\",\"client_ip\":\"{}.{}.{}.{}\"}}",
                LEVELS[pick(1, 4)],
                MSGS[pick(2, 6)],
                METHODS[pick(4, 4)],
                ROUTES[pick(5, 6)],
                r(6) % 10_000_000,
                [200, 200, 201, 400, 404, 503][pick(8, 6)],
                r(9) % 2000,
                (r(9) >> 20) % 1000,
                r(10) % 250_000,
                r(11),
                r(12),
                r(13),
                r(14) % 5_000_000,
                r(15) & 0xffff_ffff_ffff,
                r(3) & 0xff,
                (r(3) >> 8) & 0xff,
                (r(3) >> 16) & 0xff,
                (r(3) >> 24) & 0xff,
            )
        };
        // Four tasks of one service, as one log router would see.
        let task = 0xcfa7_a4e3_c2b8_4d3f_9c6e_6b6a_1b2c_3d4e_u128 + (i % 4) as u128;
        let container_id = format!("{task:032x}-{}", 2_659_706_421u64 + (i % 4) as u64);
        let task_arn = format!("arn:aws:ecs:ap-northeast-1:123456789012:task/prod/{task:032x}");
        let fields: [(&str, &str); 7] = [
            ("container_id", &container_id),
            ("container_name", "/ecs-app-main-container"),
            (
                "ecs_cluster",
                "arn:aws:ecs:ap-northeast-1:123456789012:cluster/prod",
            ),
            ("ecs_task_arn", &task_arn),
            ("ecs_task_definition", "checkout-service:42"),
            ("source", if r(15) % 10 == 0 { "stderr" } else { "stdout" }),
            ("log", &log),
        ];
        push_record(&mut out, true, secs, nanos, &fields);
    }
    out
}
