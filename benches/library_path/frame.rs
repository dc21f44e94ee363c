//! Framing with rmp, the crates' lower layer: where a value starts and ends, skipped without
//! recursion and charged to the chunk's work budget, and the resynchronisation filter.

use rmp::Marker;

/// Values a chunk's parses may read per byte of the chunk (the product's rule).
pub(super) const WORK_PER_BYTE: u64 = 8;

/// Where one value read with rmp starts and what it is.
pub(super) enum Head {
    /// A scalar, string, binary or ext: its whole length.
    Leaf,
    /// An array or map: this many values follow.
    Items(u64),
}

/// Reads the header of the value at `b[*pos..]` with rmp, moving `pos` past it (and past a
/// leaf's payload).
pub(super) fn head(b: &[u8], pos: &mut usize, budget: &mut u64) -> Result<Head, ()> {
    *budget = budget.checked_sub(1).ok_or(())?;
    let start = b.get(*pos..).ok_or(())?;
    let mut rd: &[u8] = start;
    let first = *start.first().ok_or(())?;
    let (head, payload) = match Marker::from_u8(first) {
        Marker::Reserved => return Err(()),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => (
            Head::Leaf,
            rmp::decode::read_str_len(&mut rd).map_err(drop)? as usize,
        ),
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => (
            Head::Leaf,
            rmp::decode::read_bin_len(&mut rd).map_err(drop)? as usize,
        ),
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => (
            Head::Leaf,
            rmp::decode::read_ext_meta(&mut rd).map_err(drop)?.size as usize,
        ),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let n = rmp::decode::read_array_len(&mut rd).map_err(drop)? as u64;
            (Head::Items(n), 0)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let n = rmp::decode::read_map_len(&mut rd).map_err(drop)? as u64;
            (Head::Items(2 * n), 0)
        }
        m => {
            rd = &rd[1..];
            let data = match m {
                Marker::U8 | Marker::I8 => 1,
                Marker::U16 | Marker::I16 => 2,
                Marker::U32 | Marker::I32 | Marker::F32 => 4,
                Marker::U64 | Marker::I64 | Marker::F64 => 8,
                _ => 0,
            };
            (Head::Leaf, data)
        }
    };
    let header = start.len() - rd.len();
    if let Head::Items(n) = head {
        // Every element takes at least a byte: a larger count cannot be honest.
        if n > rd.len() as u64 {
            return Err(());
        }
    }
    if payload > rd.len() {
        return Err(());
    }
    *pos += header + payload;
    Ok(head)
}

/// Skips the whole value at `b[*pos..]`, however deeply nested, without recursion.
pub(super) fn skip(b: &[u8], pos: &mut usize, budget: &mut u64) -> Result<(), ()> {
    let mut pending: u64 = 1;
    while pending > 0 {
        pending -= 1;
        if let Head::Items(n) = head(b, pos, budget)? {
            pending += n;
        }
    }
    Ok(())
}

/// The length of an array-of-2 header at the start of `b` (any encoding), read with rmp.
pub(super) fn array2(b: &[u8]) -> Option<usize> {
    let mut rd = b;
    if !matches!(
        Marker::from_u8(*b.first()?),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32
    ) {
        return None;
    }
    (rmp::decode::read_array_len(&mut rd).ok()? == 2).then(|| b.len() - rd.len())
}

pub(super) fn is_map(b: &[u8]) -> bool {
    b.first().is_some_and(|&m| {
        matches!(
            Marker::from_u8(m),
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32
        )
    })
}

/// Where a record plausibly starts (the product's filter for resynchronisation): a 2-array
/// whose first element is a timestamp or a 2-array header.
pub(super) fn plausible_start(b: &[u8]) -> bool {
    let Some(n) = array2(b) else {
        return false;
    };
    let rest = &b[n..];
    let rest = array2(rest).map_or(rest, |m| &rest[m..]);
    rest.first().is_some_and(|&m| {
        matches!(
            Marker::from_u8(m),
            Marker::FixExt8
                | Marker::Ext8
                | Marker::FixPos(_)
                | Marker::U8
                | Marker::U16
                | Marker::U32
                | Marker::U64
                | Marker::I8
                | Marker::I16
                | Marker::I32
                | Marker::I64
                | Marker::F32
                | Marker::F64
        )
    })
}
