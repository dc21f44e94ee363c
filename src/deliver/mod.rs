//! Request bodies -> the intake: HTTP over TLS (`client`, `tls`), bisection of refused
//! payloads (`split`), and the verdict of a flush (`verdict`).

pub(crate) mod client;
pub(crate) mod split;
pub(crate) mod tls;
pub(crate) mod verdict;
