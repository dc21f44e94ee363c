#![allow(unsafe_code)] // The one module where unsafe code lives: the C interface.
//! The C interface: the functions Fluent Bit looks up with `dlsym`, the panic guard, and the
//! registry of instances; with the host's optional API (`api`) and `bindings`, the only unsafe
//! code.
//!
//! * `FLBPluginRegister` fills the first 32 bytes of the host's definition (the part every
//!   host version has) with static strings.
//! * `FLBPluginInit` reads the options through the api table's first member (the only one
//!   Fluent Bit 1.9 has), builds an [`Instance`] and stores a token for it in the host's
//!   per-instance context. The token is an index into a registry, never a pointer the plugin
//!   would have to trust coming back.
//! * `FLBPluginFlushCtx` borrows the chunk for the duration of the call and hands it to the
//!   instance, which works on its own thread.
//! * `FLBPluginExitCtx` / `FLBPluginExit` shut instances down, idempotently. Fluent Bit 1.9
//!   passes the last instance's context to every ExitCtx (and never calls FLBPluginExit when
//!   ExitCtx exists), so a token this plugin issued and already closed shuts down every
//!   instance still open; a token it never issued (or NULL) touches nothing.
//!
//! Every export runs inside `guard`: a panic becomes a return code, never an unwind into C.

mod api;
#[allow(missing_docs, non_camel_case_types, non_upper_case_globals, dead_code)]
mod bindings;

use crate::config::options::{Config, OPTIONS};
use crate::deliver::verdict::Verdict;
use crate::instance::Instance;
use crate::observe::events::{HostEvent, host_event};
use crate::observe::log;
use crate::observe::metrics::Metrics;
use api::{Cmt, host_logger};
use bindings::{
    FLB_ERROR, FLB_OK, FLB_PROXY_GOLANG, FLB_PROXY_OUTPUT_PLUGIN, FLB_RETRY, flb_plugin_proxy_def,
    flbgo_output_plugin,
};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};

/// The name `[OUTPUT]` sections use.
pub(crate) const PLUGIN_NAME: &CStr = c"datadog_logs";
/// The description `fluent-bit -h` prints.
pub(crate) const PLUGIN_DESCRIPTION: &CStr =
    c"Send logs to Datadog (any site, batched, gzip, retries without duplicates)";

/// Live instances; a context token is an index here plus one.
static INSTANCES: Mutex<Vec<Option<Arc<Instance>>>> = Mutex::new(Vec::new());
/// Instances initialised so far, for their names (`datadog_logs.<n>`).
static INIT_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Fluent Bit's return code for a flush's verdict: the only place the two meet.
pub(crate) fn flush_code(verdict: &Verdict) -> c_int {
    match verdict {
        Verdict::Ok => FLB_OK,
        Verdict::Retry(_) => FLB_RETRY,
        Verdict::Error(_) => FLB_ERROR,
    }
}

/// Runs `f`, turning a panic into `on_panic`.
fn guard(what: &str, on_panic: c_int, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(_) => {
            host_event(
                "datadog_logs",
                HostEvent::PanicCaught {
                    what,
                    code: on_panic,
                },
            );
            on_panic
        }
    }
}

/// Routes panic messages through the redacting logger, once per process.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            host_event(
                "datadog_logs",
                HostEvent::PanicMessage {
                    message: &msg,
                    at: &at,
                },
            );
        }));
    });
}

fn lookup(token: *mut c_void) -> Option<Arc<Instance>> {
    let idx = (token as usize).checked_sub(1)?;
    let list = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    list.get(idx).and_then(|s| s.clone())
}

/// What an exit's context token is.
enum Exiting {
    /// An open instance, now taken out of the registry.
    Open(Arc<Instance>),
    /// A token this plugin issued whose instance is already closed.
    Closed,
    /// A token this plugin never issued, or NULL.
    Unknown,
}

fn take(token: *mut c_void) -> Exiting {
    let Some(idx) = (token as usize).checked_sub(1) else {
        return Exiting::Unknown;
    };
    let mut list = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    match list.get_mut(idx) {
        Some(slot) => slot.take().map_or(Exiting::Closed, Exiting::Open),
        None => Exiting::Unknown,
    }
}

fn take_all() -> Vec<Arc<Instance>> {
    let mut list = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
    list.iter_mut().filter_map(Option::take).collect()
}

/// Shuts instances down together: every one stops sending at once, then each waits (at most
/// its [`Instance::exit_wait`]) for the requests it has on the wire, so the whole exit takes
/// one bound, not one per instance.
fn shutdown(insts: Vec<Arc<Instance>>) {
    insts.iter().for_each(|i| i.begin_shutdown());
    for inst in insts {
        inst.shutdown(inst.exit_wait());
        // The host destroys the instance's metrics context and logger target after ExitCtx.
        inst.metrics().close();
        log::unroute(inst.name());
    }
}

/// Called once per .so when Fluent Bit loads it. Writes only the first 32 bytes of `def`.
///
/// # Safety
/// `def` must point to a writable `struct flb_plugin_proxy_def` of at least 32 bytes.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn FLBPluginRegister(def: *mut flb_plugin_proxy_def) -> c_int {
    guard("FLBPluginRegister", 0, || {
        if def.is_null() {
            return 0;
        }
        // SAFETY: the host passes its definition struct; these fields lie in its first 32
        // bytes, present in every host version.
        unsafe {
            (*def).type_ = FLB_PROXY_OUTPUT_PLUGIN;
            (*def).proxy = FLB_PROXY_GOLANG;
            (*def).flags = 0;
            (*def).name = PLUGIN_NAME.as_ptr() as *mut c_char;
            (*def).description = PLUGIN_DESCRIPTION.as_ptr() as *mut c_char;
        }
        0
    })
}

/// Called once per `[OUTPUT]` instance: reads and validates its options, starts it, and
/// stores its token in the host's context. Returns 1, or 0 (Fluent Bit refuses to start).
///
/// # Safety
/// `plugin` must point to the host's `struct flbgo_output_plugin` with a valid `api` table,
/// `o_ins` and `context`.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn FLBPluginInit(plugin: *mut flbgo_output_plugin) -> c_int {
    install_panic_hook();
    guard("FLBPluginInit", FLB_ERROR, || {
        let name = format!(
            "datadog_logs.{}",
            INIT_COUNT.fetch_add(1, Ordering::Relaxed)
        );
        if plugin.is_null() {
            host_event(&name, HostEvent::NoPluginStruct);
            return FLB_ERROR;
        }
        // SAFETY: the host passes a valid plugin struct; its first four members are stable.
        let (api, o_ins, context) = unsafe { ((*plugin).api, (*plugin).o_ins, (*plugin).context) };
        // SAFETY: `api` is the host's table; only its first member exists in every version.
        let get = if api.is_null() {
            None
        } else {
            unsafe { (*api).output_get_property }
        };
        let (Some(get), false) = (get, context.is_null()) else {
            host_event(&name, HostEvent::NoPropertyGetter);
            return FLB_ERROR;
        };
        route_host_log(api as *const c_void, o_ins as *mut c_void, &name);
        let prop = |key: &str| -> Option<String> {
            let k = CString::new(key).ok()?;
            // SAFETY: `get` is the host's output_get_property; `o_ins` is the instance being
            // initialised; the returned string is host-owned and copied at once.
            let v = unsafe { get(k.as_ptr(), o_ins) };
            if v.is_null() {
                return None;
            }
            // SAFETY: a non-NULL result is a NUL-terminated string valid during this call.
            Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
        };
        let props: Vec<(&str, Option<String>)> = OPTIONS
            .iter()
            .flat_map(|o| o.names())
            .map(|k| (k, prop(k)))
            .collect();
        let config = Config::from_lookup(
            |k| {
                props
                    .iter()
                    .find(|(n, _)| *n == k)
                    .and_then(|(_, v)| v.clone())
            },
            |k| std::env::var(k).ok(),
        );
        let config = match config {
            Ok(c) => c,
            Err(e) => {
                host_event(
                    &name,
                    HostEvent::BadOption {
                        error: &e.to_string(),
                    },
                );
                return FLB_ERROR;
            }
        };
        let inst = match Instance::new(config, &name) {
            Ok(i) => Arc::new(i.with_metrics(host_metrics(
                api as *const c_void,
                o_ins as *mut c_void,
                &name,
            ))),
            Err(e) => {
                host_event(&name, HostEvent::CannotStart { error: &e });
                return FLB_ERROR;
            }
        };
        let token = {
            let mut list = INSTANCES.lock().unwrap_or_else(|e| e.into_inner());
            list.push(Some(inst));
            list.len()
        };
        // SAFETY: `context` is the host's per-instance context; remote_context is ours.
        unsafe { (*context).remote_context = token as *mut c_void };
        FLB_OK
    })
}

/// Called for each chunk of records for an instance. Returns 1 (OK), 2 (RETRY) or 0 (ERROR).
///
/// # Safety
/// `data` must point to `len` readable bytes (or be NULL with `len` 0) and `tag` to a
/// NUL-terminated string (or be NULL), both valid for the duration of the call.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn FLBPluginFlushCtx(
    ctx: *mut c_void,
    data: *const c_void,
    len: usize,
    tag: *mut c_char,
) -> c_int {
    guard("FLBPluginFlushCtx", FLB_RETRY, || {
        let Some(inst) = lookup(ctx) else {
            host_event("datadog_logs", HostEvent::UnknownFlush);
            return FLB_RETRY;
        };
        let chunk: &[u8] = if data.is_null() || len == 0 {
            &[]
        } else {
            // SAFETY: the host guarantees `len` readable bytes at `data` during this call.
            unsafe { std::slice::from_raw_parts(data as *const u8, len) }
        };
        let tag = if tag.is_null() {
            std::borrow::Cow::Borrowed("")
        } else {
            // SAFETY: the host passes a NUL-terminated copy of the tag, valid during the call.
            unsafe { CStr::from_ptr(tag) }.to_string_lossy()
        };
        flush_code(&inst.flush(chunk, &tag))
    })
}

/// Called at shutdown for each instance. Drains and stops it; idempotent.
///
/// # Safety
/// `ctx` is only compared with the tokens this plugin handed out; any value is safe.
#[unsafe(no_mangle)]
pub(crate) unsafe extern "C" fn FLBPluginExitCtx(ctx: *mut c_void) -> c_int {
    guard("FLBPluginExitCtx", FLB_OK, || {
        match take(ctx) {
            Exiting::Open(inst) => shutdown(vec![inst]),
            // Fluent Bit 1.9 passes the same (last) context to every instance's exit and
            // will not call again for the others.
            Exiting::Closed => shutdown(take_all()),
            Exiting::Unknown => host_event("datadog_logs", HostEvent::UnknownExit),
        }
        FLB_OK
    })
}

/// Called at shutdown by hosts that do not use ExitCtx: stops every instance.
#[unsafe(no_mangle)]
pub(crate) extern "C" fn FLBPluginExit() -> c_int {
    guard("FLBPluginExit", FLB_OK, || {
        shutdown(take_all());
        FLB_OK
    })
}

/// Routes the log lines of the instance being initialised to the host's logger, when the
/// host has one (Fluent Bit >= 2.0).
fn route_host_log(api: *const c_void, o_ins: *mut c_void, name: &str) {
    if let Some(logger) = host_logger(api, o_ins) {
        log::route(name, logger);
    }
}

/// The metrics of the instance being initialised, in the host's cmetrics context; disabled,
/// with one line the first time, when the host has none (Fluent Bit 1.9, or symbols missing).
fn host_metrics(api: *const c_void, o_ins: *mut c_void, name: &str) -> Metrics {
    match Cmt::new(api, o_ins) {
        Ok(cmt) => Metrics::new(&cmt, name),
        Err(why) => {
            static SAID: Once = Once::new();
            SAID.call_once(|| host_event(name, HostEvent::NoMetrics { why: &why }));
            Metrics::disabled()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::verdict::{ErrorReason, RetryReason};

    #[test]
    fn verdicts_map_to_the_host_codes() {
        assert_eq!(flush_code(&Verdict::Ok), 1);
        assert_eq!(flush_code(&Verdict::Retry(RetryReason::SitePending)), 2);
        assert_eq!(flush_code(&Verdict::Retry(RetryReason::Closing)), 2);
        assert_eq!(
            flush_code(&Verdict::Error(ErrorReason::Refused {
                refusal: crate::deliver::verdict::Refusal::new(403, String::new()),
                pending: 1
            })),
            0
        );
    }
}
