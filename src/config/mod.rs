//! What the `[OUTPUT]` section says: the option table and its value parsers, and the Datadog
//! sites.

pub(crate) mod options;
pub(crate) mod sites;
