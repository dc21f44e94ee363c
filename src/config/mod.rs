//! What the `[OUTPUT]` section says: the option table (`options`), the parsers of single
//! values (`values`), and the Datadog sites.

pub(crate) mod options;
pub(crate) mod sites;
pub(crate) mod values;
