//! What the integration tests share: the test companions of `test_support` (re-exported), the
//! generators of records and options ([`strategies`]), hostile chunks and damage ([`chunks`]),
//! and the two guards that let the tests of this one process run side by side:
//!
//! - the plugin loaded in this process ([`load_plugin`]) is one library for every test, and
//!   its `FLBPluginExit` exits all of its instances, so the tests that drive it in process
//!   take turns;
//! - the lifecycle tests count the threads and measure the RSS of a conformance host after
//!   each of its cycles ([`run_host_measured`]), so no other test runs a conformance host at
//!   that time (the lifecycle tests may run beside each other, as they did in a binary of
//!   their own).

pub mod chunks;
pub mod strategies;

pub use test_support::*;

use conformance_host::Host;
use serde_json::Value;
use std::ops::{Deref, DerefMut};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

// ---------------------------------------------------------------------------------------------
// the plugin in this process

static IN_PROCESS: Mutex<()> = Mutex::new(());

/// The plugin loaded in this process as Fluent Bit 1.9.10 loads it ([`Host::load`]), held by
/// one test at a time until dropped.
pub struct InProcess {
    host: Host,
    _alone: MutexGuard<'static, ()>,
}

impl Deref for InProcess {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

impl DerefMut for InProcess {
    fn deref_mut(&mut self) -> &mut Host {
        &mut self.host
    }
}

/// Loads the plugin in this process once no other test holds it (a test that failed while
/// holding it still lets the others have it).
pub fn load_plugin() -> InProcess {
    let alone = IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
    InProcess {
        host: Host::load(),
        _alone: alone,
    }
}

// ---------------------------------------------------------------------------------------------
// conformance-host runs: measured ones alone

/// Who runs conformance hosts now: measured runs, or other runs, never both.
struct Room {
    measured: usize,
    others: usize,
    /// Measured runs waiting: other runs wait behind them, so they are not starved.
    measured_waiting: usize,
}

static ROOM: Mutex<Room> = Mutex::new(Room {
    measured: 0,
    others: 0,
    measured_waiting: 0,
});
static ROOM_CHANGED: Condvar = Condvar::new();

/// A place in [`ROOM`], given back when dropped.
struct InRoom {
    measured: bool,
}

impl InRoom {
    fn enter(measured: bool) -> InRoom {
        let mut room = ROOM.lock().unwrap_or_else(PoisonError::into_inner);
        if measured {
            room.measured_waiting += 1;
            while room.others > 0 {
                room = ROOM_CHANGED
                    .wait(room)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            room.measured_waiting -= 1;
            room.measured += 1;
        } else {
            while room.measured > 0 || room.measured_waiting > 0 {
                room = ROOM_CHANGED
                    .wait(room)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            room.others += 1;
        }
        InRoom { measured }
    }
}

impl Drop for InRoom {
    fn drop(&mut self) {
        let mut room = ROOM.lock().unwrap_or_else(PoisonError::into_inner);
        if self.measured {
            room.measured -= 1;
        } else {
            room.others -= 1;
        }
        ROOM_CHANGED.notify_all();
    }
}

/// [`test_support::run_host`], never while a measured run is under way.
pub fn run_host(scenario: &Value) -> Run {
    run_host_env(scenario, &[])
}

/// [`test_support::run_host_env`], never while a measured run is under way.
pub fn run_host_env(scenario: &Value, env: &[(&str, &str)]) -> Run {
    let _room = InRoom::enter(false);
    test_support::run_host_env(scenario, env)
}

/// [`test_support::run_host_env`] for a run whose threads and memory are measured: no other
/// test's conformance host runs meanwhile (other measured runs may).
pub fn run_host_measured(scenario: &Value, env: &[(&str, &str)]) -> Run {
    let _room = InRoom::enter(true);
    test_support::run_host_env(scenario, env)
}
