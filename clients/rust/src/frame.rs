//! The TCP protocol without I/O: messages to frames (u32 big-endian length + packed
//! `LoggerMsg`), frames back to messages (for tests and tools), the acknowledged mode's
//! handshake and counts (docs/protocol.md), and the original project's `HelloMsg`.

use capnp::message::{Builder, HeapAllocator, ReaderOptions};
use capnp::{serialize, serialize_packed};

use crate::logger_capnp::{attribute, hello_msg, logger_msg};
use crate::message::{Level, Message};

/// What a client sends first to ask for acknowledgements, and what the server answers.
pub const ACK_HELLO: &[u8; 8] = b"LSACKv1\n";

/// The server's default `--max_frame_size` (10 MiB, as the original project's server): a
/// larger frame would close the connection, so the client refuses to send it and counts it
/// as dropped instead.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 10 << 20;

/// Words the first segment starts with: a typical message (a dozen short fields) fits, so
/// encoding allocates once.
const FIRST_SEGMENT_WORDS: u32 = 128;

/// Why a message could not become a frame.
#[derive(Debug)]
pub enum EncodeError {
    TooLarge { bytes: usize, limit: usize },
    Capnp(capnp::Error),
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EncodeError::TooLarge { bytes, limit } => {
                write!(
                    f,
                    "frame of {bytes} bytes exceeds the limit of {limit} bytes"
                )
            }
            EncodeError::Capnp(err) => write!(f, "cannot encode LoggerMsg: {err}"),
        }
    }
}

impl std::error::Error for EncodeError {}

fn capnp_level(level: Level) -> crate::logger_capnp::Level {
    use crate::logger_capnp::Level as L;
    match level {
        Level::Notset => L::Notset,
        Level::Debug => L::Debug,
        Level::Stream => L::Stream,
        Level::Info => L::Info,
        Level::Logon => L::Logon,
        Level::Logout => L::Logout,
        Level::Trade => L::Trade,
        Level::Schedule => L::Schedule,
        Level::Report => L::Report,
        Level::Warning => L::Warning,
        Level::Error => L::Error,
        Level::Critical => L::Critical,
    }
}

type SetText = fn(&mut logger_msg::Builder, &str);

/// Appends one frame for `message` to `out`. On error `out` is left as it was.
pub fn encode_frame(
    message: &Message,
    max_frame_bytes: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mut builder = Builder::new(HeapAllocator::new().first_segment_words(FIRST_SEGMENT_WORDS));
    {
        let mut root = builder.init_root::<logger_msg::Builder>();
        root.set_level(capnp_level(message.level));
        let texts: [(&str, SetText); 15] = [
            (&message.timestamp, |r, v| r.set_timestamp(v)),
            (&message.hostname, |r, v| r.set_hostname(v)),
            (&message.logger_name, |r, v| r.set_logger_name(v)),
            (&message.module, |r, v| r.set_module(v)),
            (&message.filename, |r, v| r.set_filename(v)),
            (&message.function_name, |r, v| r.set_function_name(v)),
            (&message.line_number, |r, v| r.set_line_number(v)),
            (&message.message, |r, v| r.set_message(v)),
            (&message.path_name, |r, v| r.set_path_name(v)),
            (&message.process_id, |r, v| r.set_process_id(v)),
            (&message.process_name, |r, v| r.set_process_name(v)),
            (&message.thread_id, |r, v| r.set_thread_id(v)),
            (&message.thread_name, |r, v| r.set_thread_name(v)),
            (&message.service_name, |r, v| r.set_service_name(v)),
            (&message.stack_trace, |r, v| r.set_stack_trace(v)),
        ];
        // An empty field stays a null pointer: the server reads it as "" and the frame is smaller.
        for (value, set) in texts {
            if !value.is_empty() {
                set(&mut root, value);
            }
        }
        if !message.attributes.is_empty() {
            let count =
                u32::try_from(message.attributes.len()).map_err(|_| EncodeError::TooLarge {
                    bytes: usize::MAX,
                    limit: max_frame_bytes,
                })?;
            let mut list = root.init_attributes(count);
            for (index, (key, value)) in (0..count).zip(&message.attributes) {
                let mut item: attribute::Builder = list.reborrow().get(index);
                item.set_key(key.as_str());
                item.set_value(value.as_str());
            }
        }
    }
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if let Err(err) = serialize_packed::write_message(&mut *out, &builder) {
        out.truncate(start);
        return Err(EncodeError::Capnp(err));
    }
    let bytes = out.len() - start - 4;
    let length = match u32::try_from(bytes) {
        Ok(length) if bytes <= max_frame_bytes => length,
        _ => {
            out.truncate(start);
            return Err(EncodeError::TooLarge {
                bytes,
                limit: max_frame_bytes,
            });
        }
    };
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

/// The `HelloMsg` the original project's TCP server requires as the first frame of every
/// connection (schema/logger.capnp). log_server recognises it and does not need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// The client's service name (or logger name, or `log_server_client`).
    pub from_name: String,
    pub from_host: String,
    /// The socket's local `ip:port`.
    pub from_address: String,
    /// The peer's `ip:port`.
    pub to_address: String,
    /// Always empty from this client.
    pub from_public_ip: String,
}

impl Hello {
    /// Appends the hello frame to `out`: the u32 big-endian length, then the message in the
    /// *standard* (unpacked) encoding in one segment, unlike the packed `LoggerMsg` frames
    /// after it; the original server reads it that way.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let texts = [
            &self.from_name,
            &self.from_host,
            &self.from_address,
            &self.to_address,
            &self.from_public_ip,
        ];
        // Root pointer + 5 pointers + each text with its NUL, in words: one segment holds it all.
        let words = 6 + texts.iter().map(|t| t.len() / 8 + 1).sum::<usize>();
        let words = u32::try_from(words).unwrap_or(u32::MAX);
        let mut builder = Builder::new(HeapAllocator::new().first_segment_words(words));
        {
            let mut root = builder.init_root::<hello_msg::Builder>();
            root.set_from_name(self.from_name.as_str());
            root.set_from_host(self.from_host.as_str());
            root.set_from_address(self.from_address.as_str());
            root.set_to_address(self.to_address.as_str());
            root.set_from_public_i_p(self.from_public_ip.as_str());
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        serialize::write_message(&mut *out, &builder).expect("writing to a Vec cannot fail");
        let length = u32::try_from(out.len() - start - 4).unwrap_or(u32::MAX);
        out[start..start + 4].copy_from_slice(&length.to_be_bytes());
    }

    /// Decodes a hello frame's payload (no length prefix); for tests and tools.
    pub fn decode(payload: &[u8]) -> Result<Hello, capnp::Error> {
        let reader = serialize::read_message(payload, ReaderOptions::new())?;
        let root: hello_msg::Reader = reader.get_root()?;
        let text = |value: capnp::Result<capnp::text::Reader>| -> capnp::Result<String> {
            Ok(String::from_utf8_lossy(value?.as_bytes()).into_owned())
        };
        Ok(Hello {
            from_name: text(root.get_from_name())?,
            from_host: text(root.get_from_host())?,
            from_address: text(root.get_from_address())?,
            to_address: text(root.get_to_address())?,
            from_public_ip: text(root.get_from_public_i_p())?,
        })
    }
}

/// Decodes one packed `LoggerMsg` payload (no length prefix). Invalid UTF-8 is replaced, as
/// the server does; a level this client does not know becomes `Notset`.
pub fn decode_packed(payload: &[u8]) -> Result<Message, capnp::Error> {
    let reader = serialize_packed::read_message(payload, ReaderOptions::new())?;
    let root: logger_msg::Reader = reader.get_root()?;
    let text = |value: capnp::Result<capnp::text::Reader>| -> capnp::Result<String> {
        Ok(String::from_utf8_lossy(value?.as_bytes()).into_owned())
    };
    let mut attributes = Vec::new();
    if root.has_attributes() {
        for item in root.get_attributes()? {
            attributes.push((text(item.get_key())?, text(item.get_value())?));
        }
    }
    let level = match root.get_level() {
        Ok(level) => Level::from_number(level as u16).unwrap_or_default(),
        Err(_) => Level::Notset,
    };
    Ok(Message {
        timestamp: text(root.get_timestamp())?,
        hostname: text(root.get_hostname())?,
        logger_name: text(root.get_logger_name())?,
        module: text(root.get_module())?,
        level,
        filename: text(root.get_filename())?,
        function_name: text(root.get_function_name())?,
        line_number: text(root.get_line_number())?,
        message: text(root.get_message())?,
        path_name: text(root.get_path_name())?,
        process_id: text(root.get_process_id())?,
        process_name: text(root.get_process_name())?,
        thread_id: text(root.get_thread_id())?,
        thread_name: text(root.get_thread_name())?,
        service_name: text(root.get_service_name())?,
        stack_trace: text(root.get_stack_trace())?,
        attributes,
    })
}

/// Splits a byte stream into frame payloads (keep-alives skipped); for tests and tools.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
}

impl FrameDecoder {
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The first `N` raw bytes, once they are there: the acknowledged-mode hello that comes
    /// before any frame.
    pub fn take_bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes: [u8; N] = self.buffer.get(..N)?.try_into().ok()?;
        self.buffer.drain(..N);
        Some(bytes)
    }

    /// The next complete payload, or `None` until more bytes arrive.
    pub fn next_payload(&mut self) -> Option<Vec<u8>> {
        loop {
            let header: [u8; 4] = self.buffer.get(..4)?.try_into().ok()?;
            let length = u32::from_be_bytes(header) as usize;
            if self.buffer.len() < 4 + length {
                return None;
            }
            let payload = self.buffer[4..4 + length].to_vec();
            self.buffer.drain(..4 + length);
            if length > 0 {
                return Some(payload);
            }
        }
    }
}

/// Reads the acknowledged mode's counts: 8-byte big-endian totals, only ever growing.
#[derive(Debug, Default)]
pub struct AckDecoder {
    partial: Vec<u8>,
    acknowledged: u64,
}

impl AckDecoder {
    /// Feeds bytes from the server; returns the newest total acknowledged on this connection.
    pub fn feed(&mut self, bytes: &[u8]) -> u64 {
        self.partial.extend_from_slice(bytes);
        let whole = self.partial.len() / 8 * 8;
        for chunk in self.partial[..whole].chunks_exact(8) {
            let mut count = [0u8; 8];
            count.copy_from_slice(chunk);
            self.acknowledged = self.acknowledged.max(u64::from_be_bytes(count));
        }
        self.partial.drain(..whole);
        self.acknowledged
    }

    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        Message {
            timestamp: "2026-01-02T03:04:05.000006+00:00".into(),
            hostname: "host".into(),
            logger_name: "app".into(),
            level: Level::Warning,
            message: "héllo = \"x\"\n".into(),
            line_number: "42".into(),
            attributes: vec![("k".into(), "v".into()), ("k".into(), "".into())],
            ..Message::default()
        }
    }

    #[test]
    fn frame_round_trips_through_the_decoder() {
        let mut out = b"prefix".to_vec();
        encode_frame(&sample(), DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        encode_frame(&Message::default(), DEFAULT_MAX_FRAME_BYTES, &mut out).unwrap();
        let mut decoder = FrameDecoder::default();
        // A byte at a time gives the same answer as all at once.
        for byte in &out[6..] {
            decoder.feed(std::slice::from_ref(byte));
        }
        let first = decoder.next_payload().unwrap();
        assert_ne!(first[..4], [0, 0, 0, 0], "packed never starts with 4 zeros");
        assert_eq!(decode_packed(&first).unwrap(), sample());
        assert_eq!(
            decode_packed(&decoder.next_payload().unwrap()).unwrap(),
            Message::default()
        );
        assert!(decoder.next_payload().is_none());
    }

    #[test]
    fn keepalives_are_skipped() {
        let mut decoder = FrameDecoder::default();
        decoder.feed(&[0, 0, 0, 0, 0, 0, 0, 1, 7]);
        assert_eq!(decoder.next_payload(), Some(vec![7]));
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_and_leaves_the_buffer_alone() {
        let big = Message::new(Level::Info, "x".repeat(2000));
        let mut out = vec![1, 2, 3];
        let err = encode_frame(&big, 1024, &mut out).unwrap_err();
        assert!(
            matches!(err, EncodeError::TooLarge { limit: 1024, .. }),
            "{err}"
        );
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn hello_is_one_unpacked_segment_with_five_texts_and_no_data() {
        let hello = Hello {
            from_name: "svc".into(),
            from_host: "host.example".into(),
            from_address: "127.0.0.1:50000".into(),
            to_address: "127.0.0.1:4020".into(),
            from_public_ip: String::new(),
        };
        let mut out = b"x".to_vec();
        hello.encode(&mut out);
        let frame = &out[1..];
        let length = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), 4 + length);
        let payload = &frame[4..];
        let word = |i: usize| u64::from_le_bytes(payload[i * 8..i * 8 + 8].try_into().unwrap());
        // Segment table: (segments - 1) = 0, then the segment's size in words.
        assert_eq!(word(0) & 0xffff_ffff, 0, "one segment");
        assert_eq!(
            (word(0) >> 32) as usize,
            length / 8 - 1,
            "segment is the rest"
        );
        // Root struct pointer: offset 0, 0 data words, 5 pointers.
        let root = word(1);
        assert_eq!(root & 3, 0, "a struct pointer");
        assert_eq!((root >> 32) & 0xffff, 0, "no data words");
        assert_eq!(root >> 48, 5, "five pointers");
        assert_eq!(Hello::decode(payload).unwrap(), hello);
        // What the original server would do: read it unpacked, as a HelloMsg.
        let reader = serialize::read_message(payload, ReaderOptions::new()).unwrap();
        let root: hello_msg::Reader = reader.get_root().unwrap();
        assert_eq!(
            root.get_to_address().unwrap().to_str().unwrap(),
            "127.0.0.1:4020"
        );
        assert!(
            root.has_from_public_i_p(),
            "every text is set, even the empty one"
        );
    }

    #[test]
    fn a_long_hello_stays_in_one_segment() {
        let hello = Hello {
            from_name: "n".repeat(10_000),
            ..Hello::default()
        };
        let mut out = Vec::new();
        hello.encode(&mut out);
        assert_eq!(out[4..8], [0, 0, 0, 0]);
        assert_eq!(Hello::decode(&out[4..]).unwrap(), hello);
    }

    #[test]
    fn ack_counts_arrive_in_pieces_and_only_grow() {
        let mut acks = AckDecoder::default();
        let five = 5u64.to_be_bytes();
        assert_eq!(acks.feed(&five[..3]), 0);
        assert_eq!(acks.feed(&five[3..]), 5);
        let mut both = 9u64.to_be_bytes().to_vec();
        both.extend_from_slice(&7u64.to_be_bytes());
        assert_eq!(acks.feed(&both), 9);
    }
}
