//! The host's optional API (Fluent Bit >= 2.0), its logger and its cmetrics, found with `dlsym`.

use crate::observe::log::{self, Level};
use crate::observe::metrics::{Metric, MetricHost};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// The host's optional API (Fluent Bit >= 2.0): its logger and its cmetrics context.
//
// `struct flb_api` grew in 2.0.0 from one member (8 bytes, 1.9.10) to seven (56 bytes; 72 since
// 4.0.3), and it is `flb_malloc`'d, not zeroed, so offsets 8 and beyond may only be read on a
// host known to be >= 2.0. The marker is `flb_output_log_check`: defined in src/flb_output.c
// since 2.0.0 (absent from 1.9.10) and compiled unconditionally, and Fluent Bit's executable
// exports its symbols (`ENABLE_EXPORTS ON` in src/CMakeLists.txt, 1.9.10 to 5.1.1). A table
// member is used only when it equals the exported function of the same name, which is what
// `flb_api_create` stores: that also rejects `output_get_cmt_instance` on a build without
// FLB_HAVE_METRICS, where the member is left uninitialised.
//
// cmetrics is never linked: its functions are resolved with dlsym(RTLD_DEFAULT, ...), so the
// plugin loads on every host. Signatures are those of lib/cmetrics in 4.2.8 and 5.1.1.
// ---------------------------------------------------------------------------------------------

/// `struct flb_api` of Fluent Bit >= 2.0, up to `output_log_check` (offset 48).
#[repr(C)]
struct FlbApiV2 {
    output_get_property: *const c_void,
    input_get_property: *const c_void,
    output_get_cmt_instance: *const c_void,
    input_get_cmt_instance: *const c_void,
    log_print: *const c_void,
    input_log_check: *const c_void,
    output_log_check: *const c_void,
}

type LogPrintFn = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, ...);
type LogCheckFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type GetCmtFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut c_void,
    *mut c_char,
    *mut c_char,
    *mut c_char,
    *mut c_char,
    c_int,
    *mut *mut c_char,
) -> *mut c_void;
type UpdateFn = unsafe extern "C" fn(*mut c_void, u64, f64, c_int, *mut *mut c_char) -> c_int;
type BucketsFn = unsafe extern "C" fn(*mut f64, usize) -> *mut c_void;
type HistogramCreateFn = unsafe extern "C" fn(
    *mut c_void,
    *mut c_char,
    *mut c_char,
    *mut c_char,
    *mut c_char,
    *mut c_void,
    c_int,
    *mut *mut c_char,
) -> *mut c_void;

/// The address of an exported function of the process (the host), or NULL.
fn host_symbol(name: &CStr) -> *const c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no other precondition.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

/// The host's 2.0+ api table, when the host is known to have one.
fn api_v2(api: *const c_void) -> Option<FlbApiV2> {
    if api.is_null() || host_symbol(c"flb_output_log_check").is_null() {
        return None;
    }
    // SAFETY: a host exporting flb_output_log_check is >= 2.0, whose table has these seven
    // members (56 bytes and more); it is read once, by value.
    Some(unsafe { std::ptr::read(api as *const FlbApiV2) })
}

/// A member of the table, if it is the exported function `name` (see the section comment).
fn member(value: *const c_void, name: &CStr) -> Option<*const c_void> {
    (!value.is_null() && value == host_symbol(name)).then_some(value)
}

/// The host's logger for one output instance (`log_print` + `output_log_check`).
struct HostLog {
    print: LogPrintFn,
    check: LogCheckFn,
    ins: *mut c_void,
}

// SAFETY: both functions are thread-safe in Fluent Bit (log_print builds the line on the
// caller's stack and writes it to a pipe or stderr; log_check reads one int of the instance),
// and `ins` lives until the instance is destroyed, after its ExitCtx, when the route is gone.
unsafe impl Send for HostLog {}
unsafe impl Sync for HostLog {}

impl log::HostLogger for HostLog {
    fn enabled(&self, level: Level) -> bool {
        // SAFETY: the host's output_log_check with its own instance.
        unsafe { (self.check)(self.ins, level as c_int) != 0 }
    }

    fn print(&self, level: Level, line: &str) {
        let line = CString::new(line.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the host's variadic log_print, with the format "%s" and one C string (so no
        // conversion in the line is interpreted); file NULL and line 0, as flb_plg_* pass.
        unsafe {
            (self.print)(
                level as c_int,
                std::ptr::null(),
                0,
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        }
    }
}

/// The host's logger for `o_ins`, when the host has one.
pub(super) fn host_logger(
    api: *const c_void,
    o_ins: *mut c_void,
) -> Option<Arc<dyn log::HostLogger>> {
    let t = api_v2(api)?;
    let print = member(t.log_print, c"flb_log_print")?;
    let check = member(t.output_log_check, c"flb_output_log_check")?;
    // SAFETY: both are the host's functions with the signatures of flb_api.h (2.0 to 5.1.1).
    let (print, check) = unsafe {
        (
            std::mem::transmute::<*const c_void, LogPrintFn>(print),
            std::mem::transmute::<*const c_void, LogCheckFn>(check),
        )
    };
    Some(Arc::new(HostLog {
        print,
        check,
        ins: o_ins,
    }))
}

/// The cmetrics functions the plugin calls.
struct CmtFns {
    counter_create: CreateFn,
    counter_add: UpdateFn,
    gauge_create: CreateFn,
    gauge_set: UpdateFn,
    buckets_create_size: BucketsFn,
    histogram_create: HistogramCreateFn,
    histogram_observe: UpdateFn,
}

impl CmtFns {
    /// Resolves every function, or names the first one missing.
    fn resolve() -> Result<CmtFns, &'static str> {
        fn get<T: Copy>(name: &'static CStr) -> Result<T, &'static str> {
            let p = host_symbol(name);
            if p.is_null() {
                return Err(name.to_str().unwrap_or("cmt_*"));
            }
            // SAFETY: T is the function-pointer type of `name` in cmetrics (4.2.8, 5.1.1).
            Ok(unsafe { std::mem::transmute_copy::<*const c_void, T>(&p) })
        }
        Ok(CmtFns {
            counter_create: get(c"cmt_counter_create")?,
            counter_add: get(c"cmt_counter_add")?,
            gauge_create: get(c"cmt_gauge_create")?,
            gauge_set: get(c"cmt_gauge_set")?,
            buckets_create_size: get(c"cmt_histogram_buckets_create_size")?,
            histogram_create: get(c"cmt_histogram_create")?,
            histogram_observe: get(c"cmt_histogram_observe")?,
        })
    }
}

/// An output instance's cmetrics context (`struct cmt *`) and the functions to fill it.
pub(super) struct Cmt {
    fns: Arc<CmtFns>,
    ctx: *mut c_void,
}

/// What kind of metric a [`CmtMetric`] is, which decides what [`CmtMetric::update`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric created in the host's cmetrics context.
pub(super) struct CmtMetric {
    fns: Arc<CmtFns>,
    kind: Kind,
    ptr: *mut c_void,
}

// SAFETY: cmetrics updates metric values with atomic compare-and-swap (cmt_metric.c,
// cmt_metric_histogram.c in 4.2.8 and 5.1.1) and the handles live as long as the instance's
// context (destroyed by the host after ExitCtx, after which `Metrics` no longer calls them).
// Creating a label set is not locked in 4.2.8's cmt_map.c, so `crate::observe::metrics` serialises all
// calls behind one mutex per instance.
unsafe impl Send for Cmt {}
unsafe impl Sync for Cmt {}
unsafe impl Send for CmtMetric {}
unsafe impl Sync for CmtMetric {}

/// Owned C strings and the `char **` array over them.
struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*mut c_char>,
}

fn c_strings(list: &[&str]) -> CStrings {
    let owned: Vec<CString> = list
        .iter()
        .map(|s| CString::new(s.replace('\0', " ")).unwrap_or_default())
        .collect();
    let ptrs = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    CStrings {
        _owned: owned,
        ptrs,
    }
}

impl Cmt {
    /// The instance's cmetrics context, or why metrics are not available on this host.
    pub(super) fn new(api: *const c_void, o_ins: *mut c_void) -> Result<Cmt, String> {
        let t = api_v2(api).ok_or("the host is older than Fluent Bit 2.0")?;
        let get = member(t.output_get_cmt_instance, c"flb_output_get_cmt_instance")
            .ok_or("the host was built without metrics")?;
        let fns = CmtFns::resolve().map_err(|s| format!("the host does not export {s}"))?;
        // SAFETY: the host's flb_output_get_cmt_instance with the instance being initialised.
        let ctx = unsafe { std::mem::transmute::<*const c_void, GetCmtFn>(get)(o_ins) };
        if ctx.is_null() {
            return Err("the host has no metrics context for this instance".into());
        }
        Ok(Cmt {
            fns: Arc::new(fns),
            ctx,
        })
    }

    fn create(
        &self,
        kind: Kind,
        fqname: [&str; 3],
        help: &str,
        keys: &[&str],
        buckets: &[f64],
    ) -> Option<CmtMetric> {
        let mut names = c_strings(&[fqname[0], fqname[1], fqname[2], help]);
        let mut keys = c_strings(keys);
        let (n, k) = (keys.ptrs.len() as c_int, keys.ptrs.as_mut_ptr());
        let p = &mut names.ptrs;
        // SAFETY: cmetrics' create functions with the context from the host; every string
        // is NUL-terminated and copied by cmetrics (cfl_sds_create); buckets are copied too.
        let ptr = unsafe {
            match kind {
                Kind::Counter => (self.fns.counter_create)(self.ctx, p[0], p[1], p[2], p[3], n, k),
                Kind::Gauge => (self.fns.gauge_create)(self.ctx, p[0], p[1], p[2], p[3], n, k),
                Kind::Histogram => {
                    let mut b = buckets.to_vec();
                    let b = (self.fns.buckets_create_size)(b.as_mut_ptr(), b.len());
                    if b.is_null() {
                        return None;
                    }
                    (self.fns.histogram_create)(self.ctx, p[0], p[1], p[2], p[3], b, n, k)
                }
            }
        };
        (!ptr.is_null()).then(|| CmtMetric {
            fns: self.fns.clone(),
            kind,
            ptr,
        })
    }

    /// `cmt_counter_create(ns, subsystem, name, help, label keys)`.
    pub(super) fn counter(
        &self,
        fqname: [&str; 3],
        help: &str,
        keys: &[&str],
    ) -> Option<CmtMetric> {
        self.create(Kind::Counter, fqname, help, keys, &[])
    }

    /// `cmt_gauge_create(ns, subsystem, name, help, label keys)`.
    pub(super) fn gauge(&self, fqname: [&str; 3], help: &str, keys: &[&str]) -> Option<CmtMetric> {
        self.create(Kind::Gauge, fqname, help, keys, &[])
    }

    /// `cmt_histogram_create` with the bucket upper bounds `buckets` (ascending, +Inf implied).
    pub(super) fn histogram(
        &self,
        fqname: [&str; 3],
        help: &str,
        keys: &[&str],
        buckets: &[f64],
    ) -> Option<CmtMetric> {
        if buckets.is_empty() {
            return None;
        }
        self.create(Kind::Histogram, fqname, help, keys, buckets)
    }
}

impl CmtMetric {
    /// Adds `value` (counter), sets it (gauge) or observes it (histogram) for the label
    /// values `labels`, at `timestamp` (nanoseconds since the epoch, as `cfl_time_now`).
    /// False when cmetrics refuses (wrong label count).
    pub(super) fn update(&self, timestamp: u64, value: f64, labels: &[&str]) -> bool {
        let mut vals = c_strings(labels);
        let f = match self.kind {
            Kind::Counter => self.fns.counter_add,
            Kind::Gauge => self.fns.gauge_set,
            Kind::Histogram => self.fns.histogram_observe,
        };
        // SAFETY: the update function of this metric's kind, on a live handle, with as many
        // NUL-terminated label values as the caller gives (cmetrics checks the count).
        unsafe {
            f(
                self.ptr,
                timestamp,
                value,
                vals.ptrs.len() as c_int,
                vals.ptrs.as_mut_ptr(),
            ) == 0
        }
    }
}

impl MetricHost for Cmt {
    fn counter(&self, fqname: [&str; 3], help: &str, keys: &[&str]) -> Option<Box<dyn Metric>> {
        Cmt::counter(self, fqname, help, keys).map(|m| Box::new(m) as Box<dyn Metric>)
    }

    fn gauge(&self, fqname: [&str; 3], help: &str, keys: &[&str]) -> Option<Box<dyn Metric>> {
        Cmt::gauge(self, fqname, help, keys).map(|m| Box::new(m) as Box<dyn Metric>)
    }

    fn histogram(
        &self,
        fqname: [&str; 3],
        help: &str,
        keys: &[&str],
        buckets: &[f64],
    ) -> Option<Box<dyn Metric>> {
        Cmt::histogram(self, fqname, help, keys, buckets).map(|m| Box::new(m) as Box<dyn Metric>)
    }
}

impl Metric for CmtMetric {
    fn update(&self, timestamp: u64, value: f64, labels: &[&str]) -> bool {
        CmtMetric::update(self, timestamp, value, labels)
    }
}
