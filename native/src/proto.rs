//! gRPC `LogBatchRequest` bytes -> formatted lines, for the `LogBatch` method.
//!
//! The messages are declared here with prost's derive (field numbers from
//! log_service.proto; tests/protocol/test_proto_batch.py checks the result against the
//! Python path on the same bytes), so no protoc is needed to build.


use bytes::Bytes;
use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocks;
use crate::format::{self, Fields, Text, TEXT_FIELDS};

/// Fixed columns and names a line adds to its fields: a buffer guess.
const LINE_OVERHEAD_BYTES: usize = 64;

/// The `string` fields are declared `bytes` here (the same wire format): decoded from a
/// `Bytes` buffer they are slices of it, and `fields_of` checks that they are UTF-8.
#[derive(Clone, PartialEq, Message)]
pub struct LogRequest {
    #[prost(bytes = "bytes", tag = "1")]
    pub timestamp: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub hostname: Bytes,
    #[prost(bytes = "bytes", tag = "3")]
    pub logger_name: Bytes,
    #[prost(bytes = "bytes", tag = "4")]
    pub module: Bytes,
    #[prost(int32, tag = "5")]
    pub level: i32,
    #[prost(bytes = "bytes", tag = "6")]
    pub filename: Bytes,
    #[prost(bytes = "bytes", tag = "7")]
    pub function_name: Bytes,
    #[prost(bytes = "bytes", tag = "8")]
    pub line_number: Bytes,
    #[prost(bytes = "bytes", tag = "9")]
    pub message: Bytes,
    #[prost(bytes = "bytes", tag = "10")]
    pub path_name: Bytes,
    #[prost(bytes = "bytes", tag = "11")]
    pub process_id: Bytes,
    #[prost(bytes = "bytes", tag = "12")]
    pub process_name: Bytes,
    #[prost(bytes = "bytes", tag = "13")]
    pub thread_id: Bytes,
    #[prost(bytes = "bytes", tag = "14")]
    pub thread_name: Bytes,
    #[prost(bytes = "bytes", tag = "15")]
    pub service_name: Bytes,
    #[prost(bytes = "bytes", tag = "16")]
    pub stack_trace: Bytes,
    #[prost(message, repeated, tag = "17")]
    pub attributes: Vec<Attribute>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Attribute {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub value: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct LogBatchRequest {
    #[prost(message, repeated, tag = "1")]
    pub requests: Vec<LogRequest>,
}

/// One request's fields as bytes borrowed from the request, whichever reader read it: the
/// text fields in `Fields` order (tags 1-4, then 6-16), the level, the attributes.
#[derive(Debug, PartialEq)]
struct Request<'a> {
    text: [&'a [u8]; TEXT_FIELDS],
    level: i32,
    attributes: Vec<(&'a [u8], &'a [u8])>,
}

impl LogRequest {
    fn borrowed(&self) -> Request<'_> {
        Request {
            text: [
                &self.timestamp, &self.hostname, &self.logger_name, &self.module, &self.filename,
                &self.function_name, &self.line_number, &self.message, &self.path_name,
                &self.process_id, &self.process_name, &self.thread_id, &self.thread_name,
                &self.service_name, &self.stack_trace,
            ],
            level: self.level,
            attributes: self.attributes.iter().map(|a| (&a.key[..], &a.value[..])).collect(),
        }
    }
}

/// A proto3 `string` must be UTF-8: a request with anything else is refused whole, as
/// protobuf's own parsers do.
fn fields_of<'a>(r: &Request<'a>) -> Result<Fields<'a>, std::str::Utf8Error> {
    let mut text = Text::empty_fields();
    for (field, bytes) in text.iter_mut().zip(r.text) {
        *field = Text::from_utf8(bytes)?;
    }
    Ok(Fields {
        text,
        level: i64::from(r.level),
        attributes: if r.attributes.is_empty() {
            Vec::new()
        } else {
            let pairs: Result<Vec<_>, _> =
                r.attributes.iter().map(|&(k, v)| Ok((Text::from_utf8(k)?, Text::from_utf8(v)?))).collect();
            format::checked_attributes(pairs?)
        },
    })
}

/// The common `LogBatchRequest` read in place: requests without attributes, every field of
/// the wire type its declaration gives, unknown fields of the plain wire types, varints of
/// at most five bytes. Anything else gives None and prost reads the request (which gives
/// the same requests, or its error): prost's `Bytes` fields cost a reference count taken
/// and dropped per field, a sixth of the server's CPU on `LogBatch`, and a copy of the
/// request. `tests` below compares the two on generated and mutated requests.
fn borrowed_batch(data: &[u8]) -> Option<Vec<Request<'_>>> {
    let mut requests = Vec::with_capacity(data.len() / 128);
    let mut at = 0;
    while at < data.len() {
        let (tag, wire_type, next) = key(data, at)?;
        at = next;
        match (tag, wire_type) {
            (1, 2) => {
                let (entry, next) = length_delimited(data, at)?;
                requests.push(borrowed_request(entry)?);
                at = next;
            }
            (1, _) => return None,
            _ => at = skip(data, at, wire_type)?,
        }
    }
    Some(requests)
}

fn borrowed_request(data: &[u8]) -> Option<Request<'_>> {
    let mut request = Request { text: [b"".as_slice(); TEXT_FIELDS], level: 0, attributes: Vec::new() };
    let mut at = 0;
    while at < data.len() {
        let (tag, wire_type, next) = key(data, at)?;
        at = next;
        match (tag, wire_type) {
            (5, 0) => {
                let (level, next) = short_varint(data, at)?;
                request.level = level as i32; // prost's int32: the varint's low 32 bits
                at = next;
            }
            (1..=4 | 6..=16, 2) => {
                let (text, next) = length_delimited(data, at)?;
                request.text[if tag < 5 { tag - 1 } else { tag - 2 }] = text;
                at = next;
            }
            (1..=17, _) => return None, // attributes, or a known field of another wire type
            _ => at = skip(data, at, wire_type)?,
        }
    }
    Some(request)
}

/// A varint of at most five bytes (below 2^35); None for a longer or broken one.
fn short_varint(data: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for i in 0..5 {
        let byte = *data.get(at + i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, at + i + 1));
        }
    }
    None
}

/// (field number, wire type, position after the key); None for field number 0 or a key
/// prost would refuse (above u32).
fn key(data: &[u8], at: usize) -> Option<(usize, u64, usize)> {
    let (key, next) = short_varint(data, at)?;
    let tag = usize::try_from(key >> 3).ok()?;
    (key <= u64::from(u32::MAX) && tag > 0).then_some((tag, key & 7, next))
}

fn length_delimited(data: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let (length, start) = short_varint(data, at)?;
    let end = start.checked_add(usize::try_from(length).ok()?)?;
    Some((data.get(start..end)?, end))
}

/// Past an unknown field's value: varint, 64-bit, length-delimited or 32-bit (groups and
/// the rest go to prost).
fn skip(data: &[u8], at: usize, wire_type: u64) -> Option<usize> {
    let end = match wire_type {
        0 => {
            let length = data.get(at..)?.iter().take(10).position(|&b| b & 0x80 == 0)?;
            if length == 9 && data[at + 9] > 1 {
                return None; // prost: an overlong varint
            }
            at + length + 1
        }
        1 => at + 8,
        2 => return length_delimited(data, at).map(|(_, end)| end),
        5 => at + 4,
        _ => return None,
    };
    (end <= data.len()).then_some(end)
}

/// `decode_log_batch(data, first_seq, received_at, line_format)` -> (lines, count).
/// Raises ValueError when the bytes are not a LogBatchRequest.
#[pyfunction]
#[pyo3(signature = (data, first_seq, received_at, line_format="text"))]
pub fn decode_log_batch<'py>(
    py: Python<'py>,
    data: &[u8],
    first_seq: u64,
    received_at: &str,
    line_format: &str,
) -> PyResult<(Bound<'py, PyBytes>, usize)> {
    let json = match line_format {
        "text" => false,
        "json" => true,
        other => return Err(PyValueError::new_err(format!("unknown format {other:?}"))),
    };
    let decode = || -> Result<(String, usize), String> {
        let refused = |e: &dyn std::fmt::Display| format!("not a logservice.LogBatchRequest: {e}");
        let batch: LogBatchRequest;
        let requests = match borrowed_batch(data) {
            Some(requests) => requests,
            None => {
                // Decoded from a `Bytes` copy of the input, prost hands out each text field
                // as a slice of it rather than a String of its own.
                batch = LogBatchRequest::decode(Bytes::copy_from_slice(data)).map_err(|e| refused(&e))?;
                batch.requests.iter().map(LogRequest::borrowed).collect()
            }
        };
        let mut out = String::with_capacity(data.len() + data.len() / 2);
        let line_bytes = data.len() / requests.len().max(1) + LINE_OVERHEAD_BYTES;
        let (_, refusal) = blocks::decode_in_order(requests.len(), line_bytes, &mut out, |range, out| {
            let mut scratch = String::new();
            for (i, request) in requests[range.clone()].iter().enumerate() {
                let fields = match fields_of(request) {
                    Ok(fields) => fields,
                    Err(e) => return (i, Some(refused(&e))),
                };
                let seq = first_seq + (range.start + i) as u64;
                if json {
                    format::json_line(seq, &fields, received_at, &mut scratch, out);
                } else {
                    format::text_line(seq, &fields, received_at, &mut scratch, out);
                }
            }
            (range.len(), None)
        });
        if let Some(reason) = refusal {
            return Err(reason);
        }
        Ok((out, requests.len()))
    };
    // Releasing the GIL costs a hand-back that can wait behind other threads (grpc's own);
    // worth it only when there is real work to overlap.
    let result = if data.len() >= crate::DETACH_MIN_BYTES { py.detach(decode) } else { decode() };
    let (lines, count) = result.map_err(PyValueError::new_err)?;
    Ok((PyBytes::new(py, lines.as_bytes()), count))
}

/// `log_batch_piece_ends(data, max_entries, piece_entries)` -> where the pieces of
/// `batch_pieces` (protocol/proto_codec.py) end, or None past `max_entries` entries;
/// ValueError when the bytes are not a protobuf message. The same scan as the Python one
/// there, about fifty times cheaper (tests/protocol/test_batch_pieces.py compares them).
#[pyfunction]
pub fn log_batch_piece_ends(
    data: &[u8],
    max_entries: usize,
    piece_entries: usize,
) -> PyResult<Option<Vec<usize>>> {
    scan_pieces(data, max_entries, piece_entries)
        .map_err(|e| PyValueError::new_err(format!("not a logservice.LogBatchRequest: {e}")))
}

/// Field 1 (`requests`), length-delimited: the tag of every entry.
const ENTRY_TAG: u128 = 0x0A;

fn scan_pieces(data: &[u8], max_entries: usize, piece_entries: usize) -> Result<Option<Vec<usize>>, String> {
    let end = data.len();
    let mut ends = Vec::new();
    let (mut pos, mut entries, mut in_piece) = (0usize, 0usize, 0usize);
    while pos < end {
        let field_start = pos;
        if data[pos] == 0x0A && pos + 1 < end && data[pos + 1] < 0x80 {
            pos += 2 + data[pos + 1] as usize;
            if pos > end {
                return Err("truncated field".into());
            }
        } else {
            let (tag, next) = skip_field(data, pos)?;
            pos = next;
            if tag != ENTRY_TAG {
                continue;
            }
        }
        entries += 1;
        if entries > max_entries {
            return Ok(None);
        }
        if in_piece == piece_entries {
            ends.push(field_start);
            in_piece = 0;
        }
        in_piece += 1;
    }
    ends.push(end);
    Ok(Some(ends))
}

/// A varint as the Python scan reads it: at most 10 bytes, the value unbounded (u128).
fn varint(data: &[u8], mut pos: usize) -> Result<(u128, usize), String> {
    let mut value: u128 = 0;
    let mut shift = 0u32;
    while pos < data.len() {
        let byte = data[pos];
        pos += 1;
        value |= u128::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Ok((value, pos));
        }
        shift += 7;
        if shift > 63 {
            break;
        }
    }
    Err("broken varint".into())
}

/// (its tag, the position after it) of the field at `pos`.
fn skip_field(data: &[u8], pos: usize) -> Result<(u128, usize), String> {
    let (tag, pos) = varint(data, pos)?;
    let after: u128 = match tag & 7 {
        2 => {
            let (length, at) = varint(data, pos)?;
            at as u128 + length
        }
        0 => varint(data, pos)?.1 as u128,
        1 => pos as u128 + 8,
        5 => pos as u128 + 4,
        wire_type => return Err(format!("field of wire type {wire_type}")),
    };
    if after > data.len() as u128 {
        return Err("truncated field".into());
    }
    Ok((tag, after as usize))
}

#[cfg(test)]
mod scan_tests {
    use super::*;

    #[test]
    fn counts_and_cuts_entries() {
        let data = b"\x0a\x00".repeat(5);
        assert_eq!(scan_pieces(&data, 5, 2), Ok(Some(vec![4, 8, 10])));
        assert_eq!(scan_pieces(&data, 4, 2), Ok(None));
    }

    #[test]
    fn a_non_minimal_entry_tag_counts_and_unknown_fields_do_not() {
        let data = [b"\x8a\x00\x00".as_slice(), b"\x10\x01", b"\x0a\x00"].concat();
        assert_eq!(scan_pieces(&data, 2, 1), Ok(Some(vec![5, 7])));
        assert_eq!(scan_pieces(&data, 1, 1), Ok(None));
    }

    #[test]
    fn broken_structure_is_refused() {
        assert_eq!(scan_pieces(b"\x0a\x05ab", 9, 9), Err("truncated field".into()));
        assert_eq!(scan_pieces(b"\x0b", 9, 9), Err("field of wire type 3".into()));
        assert_eq!(scan_pieces(&[0x0a; 1], 9, 9), Err("broken varint".into()));
        assert_eq!(scan_pieces(&[0xff; 12], 9, 9), Err("broken varint".into()));
    }
}

#[cfg(test)]
mod borrowed_tests {
    use super::*;
    use crate::testing::xorshift;

    fn text(seed: &mut u64) -> Bytes {
        let len = (xorshift(seed) % 12) as usize;
        Bytes::from((0..len).map(|_| b"ab \"\n\xc3\xa9\xff"[(xorshift(seed) % 8) as usize]).collect::<Vec<u8>>())
    }

    fn batch(seed: &mut u64) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..1 + xorshift(seed) % 4 {
            let mut r = LogRequest {
                timestamp: text(seed),
                message: text(seed),
                hostname: text(seed),
                stack_trace: text(seed),
                level: (xorshift(seed) % 20) as i32 - 3,
                ..Default::default()
            };
            if xorshift(seed).is_multiple_of(5) {
                r.attributes.push(Attribute { key: text(seed), value: text(seed) });
            }
            let mut entry = r.encode_to_vec();
            match xorshift(seed) % 6 {
                0 => entry.extend_from_slice(b"\xa0\x01\x07"), // field 20, varint
                1 => entry.extend_from_slice(b"\x4a\x02hi"), // message again: the last wins
                2 => entry.extend_from_slice(b"\xad\x01abcd"), // field 21, 32-bit
                _ => {}
            }
            out.push(0x0a);
            prost::encoding::encode_varint(entry.len() as u64, &mut out);
            out.extend_from_slice(&entry);
            if xorshift(seed).is_multiple_of(7) {
                out.extend_from_slice(b"\x10\x05"); // top-level field 2, unknown
            }
        }
        out
    }

    /// Where the in-place reader gives requests, prost gives the same ones.
    fn agrees(data: &[u8]) -> bool {
        let Some(direct) = borrowed_batch(data) else { return false };
        let decoded = LogBatchRequest::decode(data).unwrap_or_else(|e| panic!("prost refused what was read in place ({e}): {data:02x?}"));
        let by_prost: Vec<Request> = decoded.requests.iter().map(LogRequest::borrowed).collect();
        assert_eq!(direct, by_prost, "{data:02x?}");
        true
    }

    #[test]
    fn requests_read_in_place_are_the_ones_prost_reads() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let (mut direct, mut mutated_direct) = (0, 0);
        for _ in 0..20_000 {
            let data = batch(&mut seed);
            direct += usize::from(agrees(&data));
            let mut mutated = data.clone();
            for _ in 0..1 + xorshift(&mut seed) % 3 {
                let at = (xorshift(&mut seed) as usize) % mutated.len();
                mutated[at] = match xorshift(&mut seed) % 3 {
                    0 => xorshift(&mut seed) as u8,
                    1 => mutated[at] ^ (1 << (xorshift(&mut seed) % 8)),
                    _ => mutated[at].wrapping_add(1),
                };
            }
            let cut = (xorshift(&mut seed) as usize) % (mutated.len() + 1);
            mutated_direct += usize::from(agrees(&mutated[..if cut.is_multiple_of(4) { cut } else { mutated.len() }]));
        }
        assert!(direct > 5_000 && mutated_direct > 1_000, "{direct} and {mutated_direct} read in place");
    }

    #[test]
    fn what_goes_to_prost() {
        let plain = LogRequest { message: Bytes::from_static(b"m"), level: 3, ..Default::default() };
        let entry = plain.encode_to_vec();
        let data = [&[0x0a, entry.len() as u8][..], &entry].concat();
        assert!(agrees(&data));
        let negative = LogRequest { level: -1, ..Default::default() }.encode_to_vec();
        assert!(borrowed_batch(&[&[0x0a, negative.len() as u8][..], &negative].concat()).is_none());
        assert!(borrowed_batch(b"\x0b").is_none(), "a group");
        assert!(borrowed_batch(b"\x0a\x02\x2a\x00").is_none(), "level (5) as length-delimited");
    }
}
