//! What the plugin tells: its events (`events`), the host's metrics (`metrics`), and
//! Fluent Bit-style log lines (`log`).

pub(crate) mod events;
pub(crate) mod log;
pub(crate) mod metrics;
