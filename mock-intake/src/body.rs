//! Request bodies: reading them off the wire, decompressing them, parsing a log batch.

use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

/// Datadog's limit on the uncompressed payload size.
const MAX_DECOMPRESSED: usize = 5_000_000;

/// Why a body could not be used: the HTTP status to answer, and a message.
#[derive(Debug)]
pub(crate) struct BodyError {
    pub(crate) status: u16,
    pub(crate) msg: String,
}

impl BodyError {
    fn new(status: u16, msg: String) -> BodyError {
        BodyError { status, msg }
    }
}

/// Reads at most `limit` bytes of the request body.
pub(crate) async fn read_body(mut body: Incoming, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| BodyError::new(400, format!("cannot read request body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            return Err(BodyError::new(
                413,
                format!("request body over {limit} bytes"),
            ));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// Decompresses `wire` per `Content-Encoding`, never inflating past the cap (zstd is
/// streamed too, so a frame that claims or holds more is cut at the cap, never allocated).
pub(crate) fn decode_body(encoding: &str, wire: &[u8], zstd: bool) -> Result<Vec<u8>, BodyError> {
    let reader: Box<dyn Read + '_> = match encoding {
        "" | "identity" => Box::new(wire),
        "gzip" | "x-gzip" => Box::new(MultiGzDecoder::new(wire)),
        "zstd" if zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(wire)
                .map_err(|e| BodyError::new(400, format!("cannot decompress zstd body: {e}")))?,
        ),
        // HTTP "deflate" is zlib-wrapped, but raw deflate is common too.
        "deflate" => match wire {
            [a, b, ..] if a & 0x0f == 8 && (u16::from(*a) << 8 | u16::from(*b)) % 31 == 0 => {
                Box::new(ZlibDecoder::new(wire))
            }
            _ => Box::new(DeflateDecoder::new(wire)),
        },
        other => {
            return Err(BodyError::new(
                415,
                format!("unsupported Content-Encoding `{other}`"),
            ));
        }
    };
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::new(400, format!("cannot decompress {encoding} body: {e}")))?;
    if out.len() > MAX_DECOMPRESSED {
        return Err(BodyError::new(
            413,
            format!("payload over {MAX_DECOMPRESSED} bytes once decompressed"),
        ));
    }
    Ok(out)
}

/// Parses a log payload: a JSON array of objects without duplicate keys.
pub(crate) fn parse_batch(body: &[u8]) -> Result<Vec<Value>, String> {
    let v = test_support::json::parse(body)?;
    let Value::Array(items) = v else {
        return Err("payload must be a JSON array of objects".into());
    };
    if let Some(i) = items.iter().position(|x| !x.is_object()) {
        return Err(format!("entry {i} is not a JSON object"));
    }
    Ok(items)
}
