//! Request bodies -> the intake: HTTP over TLS (`client`, `tls`), sending a chunk's batches
//! with bisection of refused payloads (`split`), what a retried chunk already delivered
//! (`resume`, kept on disk across a restart by `resume_file`), and the verdict of a flush
//! (`verdict`).

pub(crate) mod client;
pub(crate) mod resume;
pub(crate) mod resume_file;
pub(crate) mod split;
pub(crate) mod tls;
pub(crate) mod verdict;
