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
use crate::format::{self, Fields, Text};

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

/// A proto3 `string` must be UTF-8: a request with anything else is refused whole, as
/// protobuf's own parsers do.
fn fields_of(r: &LogRequest) -> Result<Fields<'_>, std::str::Utf8Error> {
    fn b(bytes: &Bytes) -> Result<Text<'_>, std::str::Utf8Error> {
        Text::from_utf8(bytes)
    }
    Ok(Fields {
        text: [
            b(&r.timestamp)?, b(&r.hostname)?, b(&r.logger_name)?, b(&r.module)?, b(&r.filename)?,
            b(&r.function_name)?, b(&r.line_number)?, b(&r.message)?, b(&r.path_name)?,
            b(&r.process_id)?, b(&r.process_name)?, b(&r.thread_id)?, b(&r.thread_name)?,
            b(&r.service_name)?, b(&r.stack_trace)?,
        ],
        level: i64::from(r.level),
        attributes: if r.attributes.is_empty() {
            Vec::new()
        } else {
            let pairs: Result<Vec<_>, _> =
                r.attributes.iter().map(|a| Ok((b(&a.key)?, b(&a.value)?))).collect();
            format::checked_attributes(pairs?)
        },
    })
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
        // Decoded from a `Bytes` copy of the input, prost hands out each text field as a
        // slice of it rather than a String of its own: no allocation per field.
        let batch = LogBatchRequest::decode(Bytes::copy_from_slice(data)).map_err(|e| refused(&e))?;
        let requests = &batch.requests;
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
        Ok((out, batch.requests.len()))
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
