//! Chunk -> request bodies: records are read (`decode`), each becomes one Datadog object
//! (`map`, with `json` escaping its strings), objects are cut into batches (`batch`), and
//! each batch is compressed (`body`).

pub(crate) mod batch;
pub(crate) mod body;
pub(crate) mod decode;
pub(crate) mod json;
pub(crate) mod map;
