//! log_server's compiled batch decoder: a connection's bytes in, formatted lines out.
//!
//! `ConnectionDecoder` does per connection what the Python path does with
//! `protocol.framing.FrameDecoder` + `protocol.capnp_codec.CapnpDecoder` + `format.py`, in
//! one call per read instead of several Python calls per message. It is sans-IO like its
//! Python twin, and must give byte-identical lines (tests/protocol/test_connection.py).

use std::cell::RefCell;

use capnp::message::ReaderOptions;
use capnp::{serialize, Word};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

mod blocks;
mod direct;
mod encode;
mod format;
mod otlp;
mod packed;
mod proto;
mod record;
mod relay;
#[cfg(test)]
mod testing;
#[allow(clippy::all, dead_code, unused_parens)]
mod logger_capnp;

const HEADER_BYTES: usize = 4;
const HEALTH_WORD: &[u8] = b"health";
const SCRATCH_START_WORDS: usize = 8 * 1024;
/// A line is about as long as its packed frame, plus padding and names: a buffer guess.
const LINE_OVERHEAD_BYTES: usize = 64;
/// Below this many bytes a call keeps the GIL: giving it up and taking it back can cost more
/// than the decoding it would let run in parallel.
pub(crate) const DETACH_MIN_BYTES: usize = 16 * 1024;
/// As protocol/capnp_codec.py: a packed payload may unpack to at most 16 times its size
/// (at least 64 KiB), which stops zero runs from turning 2 KB into megabytes of text.
const PACKED_EXPANSION: usize = 16;
const MIN_UNPACKED_LIMIT_BYTES: usize = 64 * 1024;
/// As protocol/connection.py DEFAULT_MAX_LINE_BYTES (--max_line_size).
const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

thread_local! {
    static SCRATCH_TEXT: RefCell<String> = const { RefCell::new(String::new()) };
    static OUT: RefCell<String> = const { RefCell::new(String::new()) };
    /// One unpack buffer per decoding thread (the loop thread and its helper), shared by all
    /// connections; it grows to the largest message seen, bounded by the traversal limit.
    static SCRATCH: RefCell<Vec<Word>> = RefCell::new(Word::allocate_zeroed_vec(SCRATCH_START_WORDS));
}

enum PackedError {
    Capnp(capnp::Error),
    /// The most bytes the payload was allowed to unpack to.
    Expansion(usize),
}

impl From<capnp::Error> for PackedError {
    fn from(e: capnp::Error) -> Self {
        PackedError::Capnp(e)
    }
}

enum Stop {
    Health,
    Framing(String),
    Payload(String),
}

#[pyclass(module = "log_server_native")]
pub struct ConnectionDecoder {
    max_frame_bytes: usize,
    json: bool,
    options: ReaderOptions,
    traversal_limit_words: usize,
    max_line_bytes: usize,
    pending: Vec<u8>,
    need: usize,
    at_start: bool,
    stopped: bool,
}

fn fields_of<'a>(msg: logger_capnp::logger_msg::Reader<'a>) -> capnp::Result<format::Fields<'a>> {
    fn t(r: capnp::Result<capnp::text::Reader<'_>>) -> capnp::Result<format::Text<'_>> {
        Ok(format::Text::from_utf8_lossy(r?.as_bytes()))
    }
    let level = match msg.get_level() {
        Ok(level) => level as i64,
        Err(capnp::NotInSchema(raw)) => i64::from(raw),
    };
    Ok(format::Fields {
        text: [
            t(msg.get_timestamp())?,
            t(msg.get_hostname())?,
            t(msg.get_logger_name())?,
            t(msg.get_module())?,
            t(msg.get_filename())?,
            t(msg.get_function_name())?,
            t(msg.get_line_number())?,
            t(msg.get_message())?,
            t(msg.get_path_name())?,
            t(msg.get_process_id())?,
            t(msg.get_process_name())?,
            t(msg.get_thread_id())?,
            t(msg.get_thread_name())?,
            t(msg.get_service_name())?,
            t(msg.get_stack_trace())?,
        ],
        level,
        attributes: if msg.has_attributes() {
            let list = msg.get_attributes()?;
            let mut pairs = Vec::with_capacity(list.len() as usize);
            for attribute in list.iter() {
                pairs.push((t(attribute.get_key())?, t(attribute.get_value())?));
            }
            format::checked_attributes(pairs)
        } else {
            Vec::new()
        },
    })
}

impl ConnectionDecoder {
    /// Decode one frame payload and append its line to `out`.
    fn decode_into(&self, payload: &[u8], seq: u64, received_at: &str, out: &mut String) -> Result<(), String> {
        let mark = out.len();
        let result = if payload.starts_with(&[0, 0, 0, 0]) {
            if !payload.len().is_multiple_of(8) {
                // As the Python path: a standard-encoded message is whole 8-byte words.
                return Err("invalid Cap'n Proto LoggerMsg: input length must be a multiple of eight bytes".to_string());
            }
            let mut slice = payload;
            serialize::read_message_from_flat_slice_no_alloc(&mut slice, self.options)
                .and_then(|message| self.format_message(&message, seq, received_at, out))
                .map_err(PackedError::Capnp)
        } else {
            self.decode_packed(payload, seq, received_at, out)
        };
        if let Err(e) = result {
            out.truncate(mark);
            return Err(match e {
                PackedError::Capnp(e) => format!("invalid Cap'n Proto LoggerMsg: {e}"),
                PackedError::Expansion(limit) => format!(
                    "invalid Cap'n Proto LoggerMsg: packed message unpacks to more than {limit} bytes \
                     (at most {PACKED_EXPANSION} times its size, at least {MIN_UNPACKED_LIMIT_BYTES})"
                ),
            });
        }
        let size = out.len() - mark;
        if size > self.max_line_bytes {
            out.truncate(mark);
            return Err(format!(
                "message makes a line of {size} bytes, over the limit of {} (--max_line_size)",
                self.max_line_bytes
            ));
        }
        Ok(())
    }

    fn decode_packed(&self, payload: &[u8], seq: u64, received_at: &str, out: &mut String) -> Result<(), PackedError> {
        let expansion_bytes = (PACKED_EXPANSION * payload.len()).max(MIN_UNPACKED_LIMIT_BYTES);
        let traversal_words = self.traversal_limit_words + 512;
        let limit = traversal_words.min(expansion_bytes / 8);
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            loop {
                // The buffer bounds what the message may unpack to: no more than `limit`.
                let words = scratch.len().min(limit);
                {
                    let buffer = Word::words_to_bytes_mut(&mut scratch[..words]);
                    match serialize::read_message_no_alloc(packed::PackedSlice::new(payload), buffer, self.options) {
                        Ok(message) => return Ok(self.format_message(&message, seq, received_at, out)?),
                        Err(e) if e.kind == capnp::ErrorKind::BufferNotLargeEnough && words < limit => {}
                        Err(e) if e.kind == capnp::ErrorKind::BufferNotLargeEnough && limit < traversal_words => {
                            return Err(PackedError::Expansion(expansion_bytes.min(traversal_words * 8)));
                        }
                        Err(e) => return Err(PackedError::Capnp(e)),
                    }
                }
                *scratch = Word::allocate_zeroed_vec((words * 2).min(limit));
            }
        })
    }

    fn format_message<S: capnp::message::ReaderSegments>(
        &self,
        message: &capnp::message::Reader<S>,
        seq: u64,
        received_at: &str,
        out: &mut String,
    ) -> capnp::Result<()> {
        let segments = message.get_segments();
        let direct = match segments.len() {
            1 => segments.get_segment(0).and_then(|segment| direct::fields(segment, &self.options)),
            _ => None,
        };
        let fields = match direct {
            Some(fields) => fields,
            None => fields_of(message.get_root()?)?,
        };
        SCRATCH_TEXT.with(|cell| {
            let scratch = &mut *cell.borrow_mut();
            if self.json {
                format::json_line(seq, &fields, received_at, scratch, out);
            } else {
                format::text_line(seq, &fields, received_at, scratch, out);
            }
        });
        Ok(())
    }

    fn split(&mut self, buf: &[u8], first_seq: u64, received_at: &str, out: &mut String) -> (usize, Option<Stop>) {
        let mut frames: Vec<(usize, usize)> = Vec::new();
        let mut framing_stop = None;
        let mut pos = 0;
        let end_of_data = buf.len();
        while end_of_data - pos >= HEADER_BYTES {
            let length = u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize;
            if length > self.max_frame_bytes {
                framing_stop = Some(Stop::Framing(format!(
                    "frame of {length} bytes exceeds the limit of {} bytes (--max_frame_size) at stream offset +{pos}",
                    self.max_frame_bytes
                )));
                break;
            }
            let end = pos + HEADER_BYTES + length;
            if end > end_of_data {
                break;
            }
            if length > 0 {
                frames.push((pos + HEADER_BYTES, end));
            }
            pos = end;
        }
        let (count, payload_stop) = self.decode_frames(buf, &frames, first_seq, received_at, out);
        if payload_stop.is_some() {
            return (count, payload_stop);
        }
        if framing_stop.is_some() {
            return (count, framing_stop);
        }
        if pos < end_of_data {
            self.pending.extend_from_slice(&buf[pos..]);
            self.need = if end_of_data - pos >= HEADER_BYTES {
                HEADER_BYTES + u32::from_be_bytes(buf[pos..pos + 4].try_into().unwrap()) as usize
            } else {
                HEADER_BYTES
            };
        }
        (count, None)
    }

    /// Decode frames in order; a large read is shared with a helper thread (blocks.rs).
    fn decode_frames(&self, buf: &[u8], frames: &[(usize, usize)], first_seq: u64, received_at: &str, out: &mut String) -> (usize, Option<Stop>) {
        let line_bytes = buf.len() / frames.len().max(1) + LINE_OVERHEAD_BYTES;
        blocks::decode_in_order(frames.len(), line_bytes, out, |range, out| {
            self.decode_sequentially(buf, &frames[range.clone()], first_seq + range.start as u64, received_at, out)
        })
    }

    fn decode_sequentially(&self, buf: &[u8], frames: &[(usize, usize)], first_seq: u64, received_at: &str, out: &mut String) -> (usize, Option<Stop>) {
        for (index, &(start, end)) in frames.iter().enumerate() {
            if let Err(reason) = self.decode_into(&buf[start..end], first_seq + index as u64, received_at, out) {
                return (index, Some(Stop::Payload(reason)));
            }
        }
        (frames.len(), None)
    }

    fn feed_inner(&mut self, data: &[u8], first_seq: u64, received_at: &str, out: &mut String) -> (usize, Option<Stop>) {
        if self.stopped || data.is_empty() {
            return (0, None);
        }
        if self.at_start {
            return self.feed_at_start(data, first_seq, received_at, out);
        }
        if self.pending.is_empty() {
            return self.split(data, first_seq, received_at, out);
        }
        // Complete the held-back frame with just the bytes it lacks, then go on in `data`
        // itself: copying only the tail of a frame, not every read, into `pending`.
        let mut rest = data;
        if self.pending.len() < HEADER_BYTES {
            let take = (HEADER_BYTES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < HEADER_BYTES {
                return (0, None);
            }
        }
        let length = u32::from_be_bytes(self.pending[..HEADER_BYTES].try_into().unwrap()) as usize;
        if length <= self.max_frame_bytes {
            let take = (HEADER_BYTES + length - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < HEADER_BYTES + length {
                self.need = HEADER_BYTES + length;
                return (0, None);
            }
        }
        let frame = std::mem::take(&mut self.pending);
        let (count, stop) = self.split(&frame, first_seq, received_at, out);
        if stop.is_some() || rest.is_empty() {
            return (count, stop);
        }
        let (more, stop) = self.split(rest, first_seq + count as u64, received_at, out);
        (count + more, stop)
    }

    fn feed_at_start(&mut self, data: &[u8], first_seq: u64, received_at: &str, out: &mut String) -> (usize, Option<Stop>) {
        let owned;
        let buf: &[u8] = if self.pending.is_empty() {
            data
        } else {
            self.pending.extend_from_slice(data);
            owned = std::mem::take(&mut self.pending);
            &owned
        };
        let n = buf.len().min(HEALTH_WORD.len());
        if HEALTH_WORD[..n] == buf[..n] && buf.len() < HEALTH_WORD.len() {
            self.pending.extend_from_slice(buf);
            self.need = HEALTH_WORD.len();
            return (0, None);
        }
        self.at_start = false;
        if buf.starts_with(HEALTH_WORD) {
            return (0, Some(Stop::Health));
        }
        self.split(buf, first_seq, received_at, out)
    }
}

#[pymethods]
impl ConnectionDecoder {
    #[new]
    #[pyo3(signature = (max_frame_bytes, line_format="text", max_line_bytes=DEFAULT_MAX_LINE_BYTES))]
    fn new(max_frame_bytes: usize, line_format: &str, max_line_bytes: usize) -> PyResult<Self> {
        let json = match line_format {
            "text" => false,
            "json" => true,
            other => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown format {other:?}"))),
        };
        // The same limits as protocol/capnp_codec.py: twice the frame size, nesting 16.
        let traversal_limit_words = max_frame_bytes / 4 + 1024;
        let mut options = ReaderOptions::new();
        options.traversal_limit_in_words(Some(traversal_limit_words)).nesting_limit(16);
        Ok(Self {
            max_frame_bytes,
            json,
            options,
            traversal_limit_words,
            max_line_bytes,
            pending: Vec::new(),
            need: HEADER_BYTES,
            at_start: true,
            stopped: false,
        })
    }

    /// Feed bytes as they arrive. Returns (lines, count, stop): the formatted lines of the
    /// complete frames, numbered from `first_seq`; and why the stream cannot go on, if it
    /// cannot: None, ("health", ""), ("framing", reason) or ("payload", reason).
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
        first_seq: u64,
        received_at: &str,
    ) -> (Bound<'py, PyBytes>, usize, Option<(&'static str, String)>) {
        // One output buffer, reused: a fresh one per read costs page faults.
        let mut out = OUT.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
        out.clear();
        // Without the GIL while decoding, so the writer thread can finish its write and
        // return meanwhile (the server's two threads then really use two cores).
        let (count, stop) = if data.len() >= DETACH_MIN_BYTES {
            py.detach(|| self.feed_inner(data, first_seq, received_at, &mut out))
        } else {
            self.feed_inner(data, first_seq, received_at, &mut out)
        };
        let stop = stop.map(|s| {
            self.stopped = true;
            self.pending = Vec::new();
            match s {
                Stop::Health => ("health", String::new()),
                Stop::Framing(reason) => ("framing", reason),
                Stop::Payload(reason) => ("payload", reason),
            }
        });
        let lines = PyBytes::new(py, out.as_bytes());
        OUT.with(|cell| *cell.borrow_mut() = out);
        (lines, count, stop)
    }

    /// Bytes of an incomplete frame held back (0 between frames).
    #[getter]
    fn buffered_bytes(&self) -> usize {
        self.pending.len()
    }
}

#[pymodule]
fn log_server_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ConnectionDecoder>()?;
    m.add_function(wrap_pyfunction!(encode::encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(proto::decode_log_batch, m)?)?;
    m.add_function(wrap_pyfunction!(otlp::decode_otlp_logs, m)?)?;
    m.add_function(wrap_pyfunction!(proto::log_batch_piece_ends, m)?)?;
    m.add_function(wrap_pyfunction!(record::forward_records, m)?)?;
    m.add_function(wrap_pyfunction!(record::forward_record, m)?)?;
    m.add_function(wrap_pyfunction!(relay::relay_to_unix, m)?)?;
    m.add_function(wrap_pyfunction!(relay::relayed_connections, m)?)?;
    Ok(())
}
