//! A stand-in for the Fluent Bit >= 2.0 functions the plugin resolves with
//! `dlsym(RTLD_DEFAULT, ...)`: the host logger (`flb_log_print`, `flb_output_log_check`),
//! `flb_output_get_cmt_instance`, and the cmetrics functions the plugin calls, with the
//! signatures of the cmetrics shipped in Fluent Bit 4.2.8 and 5.1.1.
//!
//! Every call is recorded (name, strings, numbers) as one JSON object; the conformance host
//! reads them with [`flb_stand_in_calls`] and the tests assert them. Handles returned to the
//! plugin are leaked boxes holding the metric's description, so updates can name the metric.
//!
//! `flb_log_print` is variadic in C. Stable Rust cannot define a variadic function, so it is
//! defined with the one extra argument the plugin passes (fmt `"%s"` and one string): on the
//! System V x86_64 and Linux AArch64 calling conventions a variadic argument travels in the
//! same register as a fixed one, so the callee reads it correctly. The stand-in checks `fmt`.

#![allow(clippy::missing_safety_doc)]

use serde_json::{Value, json};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

static CALLS: Mutex<Vec<Value>> = Mutex::new(Vec::new());
/// The level `flb_output_log_check` admits up to (Fluent Bit's default: info = 3).
static LOG_LEVEL: AtomicI32 = AtomicI32::new(3);
/// The address handed out as the cmetrics context.
static CMT_CONTEXT: u8 = 0;

fn record(v: Value) {
    CALLS.lock().unwrap_or_else(|e| e.into_inner()).push(v);
}

unsafe fn text(p: *const c_char) -> Value {
    if p.is_null() {
        Value::Null
    } else {
        // SAFETY: the caller passes a NUL-terminated string.
        Value::String(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

unsafe fn texts(n: c_int, p: *mut *mut c_char) -> Value {
    if p.is_null() || n <= 0 {
        return json!([]);
    }
    // SAFETY: the caller passes `n` strings.
    Value::Array(
        (0..n as usize)
            .map(|i| unsafe { text(*p.add(i)) })
            .collect(),
    )
}

/// The description of a created metric, behind the handle given to the plugin.
struct Handle {
    kind: &'static str,
    fqname: String,
}

fn handle_name(h: *mut c_void) -> Value {
    if h.is_null() {
        return Value::Null;
    }
    // SAFETY: handles are the boxes `create` leaked.
    let h = unsafe { &*(h as *const Handle) };
    json!(format!("{}:{}", h.kind, h.fqname))
}

#[allow(clippy::too_many_arguments)]
unsafe fn create(
    kind: &'static str,
    cmt: *mut c_void,
    ns: *mut c_char,
    subsystem: *mut c_char,
    name: *mut c_char,
    help: *mut c_char,
    buckets: Value,
    label_count: c_int,
    label_keys: *mut *mut c_char,
) -> *mut c_void {
    // SAFETY: C strings from the plugin.
    let (ns, sub, n, help, keys) = unsafe {
        (
            text(ns),
            text(subsystem),
            text(name),
            text(help),
            texts(label_count, label_keys),
        )
    };
    let fqname = format!(
        "{}_{}_{}",
        ns.as_str().unwrap_or(""),
        sub.as_str().unwrap_or(""),
        n.as_str().unwrap_or("")
    );
    record(json!({
        "call": format!("cmt_{kind}_create"),
        "cmt_ok": std::ptr::eq(cmt as *const u8, &CMT_CONTEXT),
        "ns": ns, "subsystem": sub, "name": n, "help": help,
        "label_count": label_count, "label_keys": keys, "buckets": buckets,
    }));
    Box::into_raw(Box::new(Handle { kind, fqname })) as *mut c_void
}

unsafe fn update(
    call: &str,
    h: *mut c_void,
    ts: u64,
    val: f64,
    n: c_int,
    labels: *mut *mut c_char,
) -> c_int {
    // SAFETY: label strings from the plugin.
    let labels = unsafe { texts(n, labels) };
    record(json!({
        "call": call, "metric": handle_name(h), "timestamp": ts, "value": val,
        "labels_count": n, "labels": labels,
    }));
    0
}

/// `void *flb_output_get_cmt_instance(struct flb_output_instance *ins)`.
#[unsafe(no_mangle)]
pub extern "C" fn flb_output_get_cmt_instance(ins: *mut c_void) -> *mut c_void {
    record(json!({"call": "flb_output_get_cmt_instance", "ins_ok": !ins.is_null()}));
    &CMT_CONTEXT as *const u8 as *mut c_void
}

/// `int flb_output_log_check(struct flb_output_instance *ins, int level)`.
#[unsafe(no_mangle)]
pub extern "C" fn flb_output_log_check(_ins: *mut c_void, level: c_int) -> c_int {
    c_int::from(level <= LOG_LEVEL.load(Ordering::Relaxed))
}

/// `void flb_log_print(int type, const char *file, int line, const char *fmt, ...)`, read
/// with the one variadic argument the plugin passes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flb_log_print(
    level: c_int,
    file: *const c_char,
    line: c_int,
    fmt: *const c_char,
    arg: *const c_char,
) {
    // SAFETY: C strings from the plugin.
    let (file, fmt) = unsafe { (text(file), text(fmt)) };
    let message = if fmt.as_str() == Some("%s") {
        // SAFETY: with fmt "%s" the one variadic argument is a C string.
        unsafe { text(arg) }
    } else {
        Value::Null
    };
    record(json!({
        "call": "flb_log_print", "level": level, "file": file, "line": line, "fmt": fmt,
        "message": message,
    }));
}

/// Defines `$fn(cmt, ns, subsystem, name, help, label_count, label_keys)`, the create
/// function of a metric kind without buckets, recording the call.
macro_rules! create_fn {
    ($fn:ident, $kind:literal) => {
        #[doc = concat!("`", stringify!($fn), "(cmt, ns, subsystem, name, help, label_count, label_keys)`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $fn(
            cmt: *mut c_void,
            ns: *mut c_char,
            subsystem: *mut c_char,
            name: *mut c_char,
            help: *mut c_char,
            label_count: c_int,
            label_keys: *mut *mut c_char,
        ) -> *mut c_void {
            // SAFETY: forwarded C arguments.
            unsafe {
                create(
                    $kind,
                    cmt,
                    ns,
                    subsystem,
                    name,
                    help,
                    Value::Null,
                    label_count,
                    label_keys,
                )
            }
        }
    };
}

/// Defines `$fn(metric, timestamp, val, labels_count, label_vals)`, an update function
/// (add, set, observe), recording the call.
macro_rules! update_fn {
    ($fn:ident) => {
        #[doc = concat!("`", stringify!($fn), "(metric, timestamp, val, labels_count, label_vals)`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $fn(
            metric: *mut c_void,
            ts: u64,
            val: f64,
            n: c_int,
            labels: *mut *mut c_char,
        ) -> c_int {
            // SAFETY: forwarded C arguments.
            unsafe { update(stringify!($fn), metric, ts, val, n, labels) }
        }
    };
}

create_fn!(cmt_counter_create, "counter");
update_fn!(cmt_counter_add);
create_fn!(cmt_gauge_create, "gauge");
update_fn!(cmt_gauge_set);
update_fn!(cmt_histogram_observe);

/// `cmt_histogram_buckets_create_size(double *bkts, size_t count)`: the bounds are copied.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cmt_histogram_buckets_create_size(
    bkts: *mut f64,
    count: usize,
) -> *mut c_void {
    let bounds: Vec<f64> = if bkts.is_null() {
        Vec::new()
    } else {
        // SAFETY: the caller passes `count` doubles.
        unsafe { std::slice::from_raw_parts(bkts, count) }.to_vec()
    };
    record(json!({"call": "cmt_histogram_buckets_create_size", "bounds": bounds}));
    Box::into_raw(Box::new(bounds)) as *mut c_void
}

/// `cmt_histogram_create(cmt, ns, subsystem, name, help, buckets, label_count, label_keys)`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cmt_histogram_create(
    cmt: *mut c_void,
    ns: *mut c_char,
    subsystem: *mut c_char,
    name: *mut c_char,
    help: *mut c_char,
    buckets: *mut c_void,
    label_count: c_int,
    label_keys: *mut *mut c_char,
) -> *mut c_void {
    let bounds = if buckets.is_null() {
        Value::Null
    } else {
        // SAFETY: buckets come from cmt_histogram_buckets_create_size above.
        json!(unsafe { &*(buckets as *const Vec<f64>) })
    };
    // SAFETY: forwarded C arguments.
    unsafe {
        create(
            "histogram",
            cmt,
            ns,
            subsystem,
            name,
            help,
            bounds,
            label_count,
            label_keys,
        )
    }
}

/// Every call recorded so far, as a JSON array in a C string freed with
/// [`flb_stand_in_free`].
#[unsafe(no_mangle)]
pub extern "C" fn flb_stand_in_calls() -> *mut c_char {
    let calls = CALLS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    CString::new(Value::Array(calls).to_string())
        .unwrap_or_default()
        .into_raw()
}

/// Frees a string from [`flb_stand_in_calls`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flb_stand_in_free(p: *mut c_char) {
    if !p.is_null() {
        // SAFETY: `p` came from CString::into_raw in flb_stand_in_calls.
        drop(unsafe { CString::from_raw(p) });
    }
}

/// Sets the level `flb_output_log_check` admits up to (the instance's `Log_Level`).
#[unsafe(no_mangle)]
pub extern "C" fn flb_stand_in_set_log_level(level: c_int) {
    LOG_LEVEL.store(level, Ordering::Relaxed);
}
