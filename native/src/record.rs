//! Written lines -> Kafka records, compiled: what forward/record.py does per line with
//! history/parse.py `parse_line` and `json.dumps(ensure_ascii=False, separators=(",", ":"))`,
//! in one call per block of lines instead of ~10 µs of Python per line.
//!
//! It must give byte-identical values (tests/forward/test_native_record.py compares the two
//! over generated lines). A line it is not sure to read as Python would (invalid UTF-8, a
//! JSON line whose hostname needs unescaping, a sequence number in other digits than ASCII)
//! is handed back raw, for the Python path.

use std::borrow::Cow;
use std::ops::Range;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::format::unescaped_prefix;

// core/format.py's column widths.
const TIMESTAMP_WIDTH: usize = 33;
const HOSTNAME_WIDTH: usize = 12;
const LOGGER_WIDTH: usize = 15;
const LEVEL_WIDTH: usize = 8;
const FILENAME_WIDTH: usize = 20;
const FUNCTION_WIDTH: usize = 25;
const LINE_WIDTH: usize = 6;
/// More digits than this may not fit in a u64: the Python path reads such a block.
const MAX_SEQ_DIGITS: usize = 18;

/// history/parse.py `_EXTRA_FIELDS`: the text format's extras -> JSON field names.
const EXTRA_FIELDS: [(&str, &str); 8] = [
    ("module", "module"),
    ("path", "path_name"),
    ("pid", "process_id"),
    ("process", "process_name"),
    ("tid", "thread_id"),
    ("thread", "thread_name"),
    ("service", "service_name"),
    ("stack", "stack_trace"),
];
const HOSTNAME_KEY: &[u8] = b",\"hostname\":\"";

/// A line's record, or None when the Python path must build it.
pub enum Record<'a> {
    /// (hostname for the key, JSON value)
    Built(&'a str, Value<'a>),
    Declined,
}

/// A record's value: a JSON line's own bytes, or what was written for a text line into the
/// buffer shared by a block's records (one allocation a block, not one a line).
pub enum Value<'a> {
    Line(&'a [u8]),
    Written(Range<usize>),
}

impl<'a> Value<'a> {
    pub fn bytes<'b>(&'b self, buffer: &'b [u8]) -> &'b [u8] {
        match self {
            Value::Line(line) => line,
            Value::Written(range) => &buffer[range.clone()],
        }
    }
}

/// Why the Python path must read a line: it is not an error, only a case left to Python.
struct Decline;

/// core/format.py `parse_sequence` on a line without its newline; Err for more digits
/// than a u64 surely holds.
pub fn sequence_of(line: &[u8]) -> Result<Option<u64>, ()> {
    let digits = if let Some(rest) = line.strip_prefix(b"{\"seq\":") {
        match rest.iter().position(|&b| b == b',') {
            Some(comma) => &rest[..comma],
            None => return Ok(None), // the Python one keeps the newline: not digits
        }
    } else {
        let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        let start = line.iter().position(|b| !is_space(b)).unwrap_or(line.len());
        let rest = &line[start..];
        &rest[..rest.iter().position(is_space).unwrap_or(rest.len())]
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Ok(None);
    }
    if digits.len() > MAX_SEQ_DIGITS {
        return Err(());
    }
    Ok(Some(digits.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))))
}

/// The record of one line (without its newline), as forward/record.py `record_of`; a text
/// line's value is appended to `buffer`.
pub fn record_of<'a>(line: &'a [u8], buffer: &mut Vec<u8>) -> Record<'a> {
    let line = trim_newlines(line);
    if line.starts_with(b"{\"seq\":") {
        return match json_hostname(line) {
            Ok(hostname) => Record::Built(hostname, Value::Line(line)),
            Err(Decline) => Record::Declined,
        };
    }
    let start = buffer.len();
    match std::str::from_utf8(line).map_err(|_| Decline).and_then(|text| text_record(text, buffer)) {
        Ok(hostname) => Record::Built(hostname, Value::Written(start..buffer.len())),
        Err(Decline) => {
            buffer.truncate(start);
            Record::Declined
        }
    }
}

fn trim_newlines(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|&b| b != b'\n').map_or(0, |i| i + 1);
    &line[..end]
}

/// A JSON line is its own value; its hostname is read without parsing when it holds no escape.
fn json_hostname(line: &[u8]) -> Result<&str, Decline> {
    let start = find(line, HOSTNAME_KEY).ok_or(Decline)? + HOSTNAME_KEY.len();
    let end = start + line[start..].iter().position(|&b| b == b'"').ok_or(Decline)?;
    let hostname = &line[start..end];
    if hostname.contains(&b'\\') {
        return Err(Decline);
    }
    std::str::from_utf8(hostname).map_err(|_| Decline)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Character positions -> byte offsets, as Python slices a str (clamped to its end).
struct Chars<'a> {
    text: &'a str,
    /// Byte offset of each character; empty when the text is ASCII (offset = position).
    offsets: Vec<usize>,
}

impl<'a> Chars<'a> {
    fn new(text: &'a str) -> Self {
        let offsets = if text.is_ascii() { Vec::new() } else { text.char_indices().map(|(i, _)| i).collect() };
        Chars { text, offsets }
    }

    fn byte(&self, pos: usize) -> usize {
        if self.offsets.is_empty() {
            pos.min(self.text.len())
        } else {
            self.offsets.get(pos).copied().unwrap_or(self.text.len())
        }
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        let (start, end) = (self.byte(start), self.byte(end));
        if start >= end { "" } else { &self.text[start..end] }
    }

    fn from(&self, start: usize) -> &'a str {
        &self.text[self.byte(start)..]
    }
}

/// history/parse.py `_parse_text` + json.dumps, field for field, appended to `out`; the
/// hostname.
fn text_record<'a>(text: &'a str, out: &mut Vec<u8>) -> Result<&'a str, Decline> {
    out.reserve(text.len() + 160);
    let stripped = text.trim_start_matches(' ');
    let digits = stripped.split(' ').next().unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        if !digits.is_ascii() {
            return Err(Decline); // str.isdigit() takes other scripts' digits too
        }
        out.extend_from_slice(b"{\"message\":");
        json_string(out, text);
        out.push(b'}');
        return Ok("");
    }
    if digits.len() > MAX_SEQ_DIGITS {
        return Err(Decline);
    }
    let chars = Chars::new(text);
    let mut pos = text.len() - stripped.len() + digits.len() + 1; // ASCII so far: bytes = chars
    let mut column = |width: usize| {
        let value = chars.slice(pos, pos + width);
        pos += width + 1;
        value.trim_end_matches(' ')
    };
    let timestamp = column(TIMESTAMP_WIDTH);
    let hostname = column(HOSTNAME_WIDTH);
    let logger_name = column(LOGGER_WIDTH);
    let level = chars.from(pos).split(' ').next().unwrap_or("");
    pos += LEVEL_WIDTH.max(level.chars().count()) + 1;
    let mut column = |width: usize| {
        let value = chars.slice(pos, pos + width);
        pos += width + 1;
        value.trim_end_matches(' ')
    };
    let filename = column(FILENAME_WIDTH);
    let function_name = column(FUNCTION_WIDTH);
    let (line_number, rest) = if !chars.slice(pos, pos + LINE_WIDTH).trim_matches(' ').is_empty() {
        let after = chars.from(pos).trim_start_matches(' ');
        match after.find(' ') {
            Some(space) => (&after[..space], &after[space + 1..]),
            None => (after, ""),
        }
    } else {
        ("", chars.from(pos + LINE_WIDTH + 1))
    };
    let (message, rest) = if rest.starts_with('"') {
        let cut = quoted_end(rest.as_bytes()).unwrap_or(rest.len());
        (unquote(&rest[..cut])?, &rest[cut..])
    } else {
        let cut = first_extra(rest).unwrap_or(rest.len());
        (unescape_bare(&rest[..cut])?, &rest[cut..])
    };

    let mut extras: Vec<(&str, Cow<str>)> = Vec::new();
    let mut attributes: Vec<(Cow<str>, Cow<str>)> = Vec::new();
    let bytes = rest.as_bytes();
    let mut at = 0;
    while let Some((key, value, end)) = next_extra(rest, at) {
        at = end;
        let value = if value.starts_with('"') { unquote(value)? } else { unescape_bare(value)? };
        if let Some(&(_, name)) = EXTRA_FIELDS.iter().find(|(k, _)| *k == key) {
            set(&mut extras, name, value);
        } else {
            set(&mut attributes, unquote(key)?, value);
        }
    }
    debug_assert!(at <= bytes.len());

    out.extend_from_slice(b"{\"seq\":");
    out.extend_from_slice(digits.trim_start_matches('0').as_bytes());
    if digits.trim_start_matches('0').is_empty() {
        out.push(b'0');
    }
    for (name, value) in [
        ("timestamp", timestamp),
        ("hostname", hostname),
        ("logger_name", logger_name),
        ("level", level),
        ("filename", filename),
        ("function_name", function_name),
        ("line_number", line_number),
        ("message", message.as_ref()),
    ] {
        field(out, name, value);
    }
    for (name, value) in &extras {
        field(out, name, value);
    }
    if !attributes.is_empty() {
        out.extend_from_slice(b",\"attributes\":{");
        for (i, (key, value)) in attributes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(out, key);
            out.push(b':');
            json_string(out, value);
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok(hostname)
}

/// A dict's assignment: a repeated key keeps its first position and takes the last value.
fn set<K: PartialEq, V>(pairs: &mut Vec<(K, V)>, key: K, value: V) {
    match pairs.iter_mut().find(|(k, _)| *k == key) {
        Some(pair) => pair.1 = value,
        None => pairs.push((key, value)),
    }
}

/// `name` is one of ours, which JSON leaves as it is: written without a scan.
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    debug_assert!(!name.bytes().any(|b| ESCAPED[usize::from(b)]));
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    json_string(out, value);
}

/// The bytes json.dumps escapes in a str (ensure_ascii=False): `"`, `\` and C0 controls.
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// json.dumps of a str with ensure_ascii=False: only `"`, `\` and C0 controls are escaped.
/// Runs without a byte to look at are found 8 bytes at a time (format.rs); a byte the scan
/// stops at that JSON leaves as it is (non-ASCII, DEL) is copied with its run.
fn json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut run = 0;
    let mut i = 0;
    loop {
        i += unescaped_prefix(&bytes[i..]);
        let Some(&b) = bytes.get(i) else { break };
        if !ESCAPED[usize::from(b)] {
            i += 1;
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]),
        }
        i += 1;
        run = i;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

/// The end (after the closing quote) of parse.py's `_QUOTED` matched at the start of `s`,
/// which begins with `"`: the first quote no backslash escapes.
fn quoted_end(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    while i < s.len() {
        i += memchr::memchr2(b'"', b'\\', &s[i..])?;
        match s[i] {
            b'"' => return Some(i + 1),
            _ if i + 1 < s.len() => i += 2,
            _ => return None,
        }
    }
    None
}

/// parse.py `_EXTRA` (` key=value`) matched at byte `space` of `s`, which is a space (or
/// just before `s` when `space` is None): (key, value, end).
fn extra_at(s: &str, after_space: usize) -> Option<(&str, &str, usize)> {
    let b = s.as_bytes();
    let key_end = if b.get(after_space) == Some(&b'"') {
        after_space + quoted_end(&b[after_space..])?
    } else {
        let run = b[after_space..].iter().position(|c| matches!(c, b' ' | b'"' | b'=')).unwrap_or(b.len() - after_space);
        if run == 0 {
            return None;
        }
        after_space + run
    };
    if b.get(key_end) != Some(&b'=') {
        return None;
    }
    let start = key_end + 1;
    let end = match (b.get(start), quoted_end_at(b, start)) {
        (Some(b'"'), Some(end)) => end,
        _ => start + b[start..].iter().position(|&c| c == b' ').unwrap_or(b.len() - start),
    };
    Some((&s[after_space..key_end], &s[start..end], end))
}

fn quoted_end_at(b: &[u8], start: usize) -> Option<usize> {
    if b.get(start) == Some(&b'"') {
        quoted_end(&b[start..]).map(|e| start + e)
    } else {
        None
    }
}

/// Where the bare message ends: `_EXTRA.search(" " + rest)`, as an index into `rest`.
fn first_extra(rest: &str) -> Option<usize> {
    if extra_at(rest, 0).is_some() {
        return Some(0);
    }
    rest.bytes()
        .enumerate()
        .filter(|&(_, c)| c == b' ')
        .find(|&(i, _)| extra_at(rest, i + 1).is_some())
        .map(|(i, _)| i)
}

/// `_EXTRA.finditer(rest)` from byte `from`: the next (key, value, end).
fn next_extra(rest: &str, from: usize) -> Option<(&str, &str, usize)> {
    let b = rest.as_bytes();
    (from..b.len()).filter(|&i| b[i] == b' ').find_map(|i| extra_at(rest, i + 1))
}

fn hex_digits(b: &[u8], n: usize) -> Option<u32> {
    if b.len() < n || !b[..n].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(b[..n].iter().fold(0, |v, &c| v * 16 + (c as char).to_digit(16).unwrap_or(0)))
}

/// A `\xhh` or `\uhhhh` escape at the start of `b` (after the backslash): (code, length).
/// As parse.py `_CODE`, a surrogate's `\u` is no escape (the writer never makes one).
fn code_escape(b: &[u8]) -> Option<(u32, usize)> {
    match b.first() {
        Some(b'x') => hex_digits(&b[1..], 2).map(|c| (c, 3)),
        Some(b'u') => hex_digits(&b[1..], 4).filter(|c| !(0xd800..0xe000).contains(c)).map(|c| (c, 5)),
        _ => None,
    }
}

fn push_code(out: &mut String, code: u32) -> Result<(), Decline> {
    out.push(char::from_u32(code).ok_or(Decline)?);
    Ok(())
}

/// parse.py `_unquote`: a quoted value back to its text.
fn unquote(text: &str) -> Result<Cow<'_, str>, Decline> {
    if text.len() < 2 || !text.starts_with('"') || !text.ends_with('"') {
        return Ok(Cow::Borrowed(text));
    }
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        out.push_str(&inner[start..i]);
        if let Some((code, len)) = code_escape(&b[i + 1..]) {
            push_code(&mut out, code)?;
            i += 1 + len;
        } else {
            let c = inner[i + 1..].chars().next().unwrap_or('\\');
            out.push(match c {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                other => other,
            });
            i += 1 + c.len_utf8();
        }
        start = i;
    }
    out.push_str(&inner[start..]);
    Ok(Cow::Owned(out))
}

/// parse.py `_unescape_bare`: only `\n`, `\r`, `\t`, `\xhh`, `\uhhhh`; other backslashes stay.
fn unescape_bare(text: &str) -> Result<Cow<'_, str>, Decline> {
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(text));
    }
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let named = match b.get(i + 1) {
            Some(b'n') => Some('\n'),
            Some(b'r') => Some('\r'),
            Some(b't') => Some('\t'),
            _ => None,
        };
        if let Some(c) = named {
            out.push_str(&text[start..i]);
            out.push(c);
            i += 2;
        } else if let Some((code, len)) = code_escape(&b[i + 1..]) {
            out.push_str(&text[start..i]);
            push_code(&mut out, code)?;
            i += 1 + len;
        } else {
            i += 1;
            continue;
        }
        start = i;
    }
    out.push_str(&text[start..]);
    Ok(Cow::Owned(out))
}

/// The records of a block of whole lines, after `last_seq`, skipping lines without a sequence
/// number or not after the one before (as history/follower.py does).
pub struct BlockRecords<'a> {
    pub first: u64,
    pub last: u64,
    /// Each line's record, with the line (with its newline) for a declined one.
    pub records: Vec<(&'a [u8], Record<'a>)>,
    /// The text lines' values, one after the other (`Value::Written` ranges).
    pub buffer: Vec<u8>,
    /// The (first, last) sequence numbers missing between two records.
    pub gaps: Vec<(u64, u64)>,
}

/// None when a sequence number has too many digits for a u64.
pub fn block_records(block: &[u8], last_seq: u64) -> Option<BlockRecords<'_>> {
    let mut out = BlockRecords {
        first: 0,
        last: last_seq,
        records: Vec::new(),
        buffer: Vec::with_capacity(block.len() * 2),
        gaps: Vec::new(),
    };
    let mut at = 0;
    // What follows the last newline is not a whole line: the follower gives none.
    while let Some(end) = memchr::memchr(b'\n', &block[at..]) {
        let raw = &block[at..at + end + 1];
        at += end + 1;
        let line = &raw[..raw.len() - 1];
        let Some(seq) = sequence_of(line).ok()? else { continue };
        if seq <= out.last {
            continue;
        }
        if out.records.is_empty() {
            out.first = seq;
        } else if seq > out.last + 1 {
            out.gaps.push((out.last + 1, seq - 1));
        }
        out.last = seq;
        out.records.push((raw, record_of(line, &mut out.buffer)));
    }
    Some(out)
}

/// forward/record.py `records_of_block`'s compiled half: `(first, last, hostnames, values,
/// gaps, declined)` with one hostname (str) and value (bytes) per record, or None when a
/// sequence number is too long (the Python path reads that block). For a record at an index in
/// `declined` the hostname is None and the value is the raw line, for the Python path. Lists
/// of str and bytes rather than a tuple per record: the cyclic GC never walks them.
#[pyfunction]
#[allow(clippy::type_complexity)]
pub fn forward_records<'py>(
    py: Python<'py>,
    block: &[u8],
    last_seq: u64,
) -> PyResult<Option<(u64, u64, Bound<'py, PyList>, Bound<'py, PyList>, Vec<(u64, u64)>, Vec<usize>)>> {
    let Some(BlockRecords { first, last, records, buffer, gaps }) =
        py.detach(|| block_records(block, last_seq))
    else {
        return Ok(None);
    };
    let hostnames = PyList::empty(py);
    let values = PyList::empty(py);
    let mut declined = Vec::new();
    // Lines of one host come in runs: one str for a run.
    let mut previous: Option<(&str, Bound<'py, PyString>)> = None;
    for (i, (raw, record)) in records.into_iter().enumerate() {
        match record {
            Record::Built(hostname, value) => {
                let name = match &previous {
                    Some((text, name)) if *text == hostname => name.clone(),
                    _ => {
                        let name = PyString::new(py, hostname);
                        previous = Some((hostname, name.clone()));
                        name
                    }
                };
                hostnames.append(name)?;
                values.append(PyBytes::new(py, value.bytes(&buffer)))?;
            }
            Record::Declined => {
                hostnames.append(py.None())?;
                values.append(PyBytes::new(py, raw))?;
                declined.push(i);
            }
        }
    }
    Ok(Some((first, last, hostnames, values, gaps, declined)))
}

/// For tests: the value of one line (without newline), or None when declined.
#[pyfunction]
pub fn forward_record<'py>(py: Python<'py>, line: &[u8]) -> PyResult<Option<(String, Bound<'py, PyBytes>)>> {
    if line.contains(&b'\n') {
        return Err(PyValueError::new_err("one line, without its newline"));
    }
    let mut buffer = Vec::new();
    Ok(match record_of(line, &mut buffer) {
        Record::Built(hostname, value) => Some((hostname.to_owned(), PyBytes::new(py, value.bytes(&buffer)))),
        Record::Declined => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(line: &str) -> String {
        let mut buffer = b"left alone".to_vec();
        match record_of(line.as_bytes(), &mut buffer) {
            Record::Built(_, v) => String::from_utf8(v.bytes(&buffer).to_vec()).unwrap(),
            Record::Declined => "declined".into(),
        }
    }

    #[test]
    fn sequence_as_format_parse_sequence() {
        assert_eq!(sequence_of(b"   12 x"), Ok(Some(12)));
        assert_eq!(sequence_of(b"{\"seq\":7,\"x\":1}"), Ok(Some(7)));
        assert_eq!(sequence_of(b"{\"seq\":7}"), Ok(None));
        assert_eq!(sequence_of(b"x 12"), Ok(None));
        assert_eq!(sequence_of(b"1234567890123456789 x"), Err(()));
    }

    #[test]
    fn lines_that_are_not_records() {
        assert_eq!(value("\t12 x"), "{\"message\":\"\\t12 x\"}");
        assert_eq!(value("١٢ x"), "declined");
        assert_eq!(value("{\"seq\":1,\"hostname\":\"a\\\"b\"}"), "declined");
    }

    /// json.dumps's escaping, one byte at a time: what the word-at-a-time scan must equal.
    fn json_string_bytewise(text: &str) -> Vec<u8> {
        let mut out = vec![b'"'];
        for c in text.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{8}' => out.extend_from_slice(b"\\b"),
                '\u{c}' => out.extend_from_slice(b"\\f"),
                c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
                c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn json_strings_escape_at_every_offset() {
        let specials = ["\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{7f}", "é", "€", "😀", " ", "~"];
        for len in 0..20 {
            for at in 0..=len {
                for special in specials {
                    let text = format!("{}{}{}", "a".repeat(at), special, "b".repeat(len - at));
                    let mut out = b"kept".to_vec();
                    json_string(&mut out, &text);
                    assert_eq!(&out[..4], b"kept");
                    assert_eq!(out[4..], json_string_bytewise(&text), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn escapes_back_to_text() {
        assert_eq!(unescape_bare(r"a\nb\\c\x41\u00e9\q").ok().as_deref(), Some("a\nb\\\\cAé\\q"));
        assert_eq!(unquote(r#""a\"b\\c\zd\""#).ok().as_deref(), Some("a\"b\\czd\\"));
        assert_eq!(unquote(r#""\ud800""#).ok().as_deref(), Some("ud800"));
        assert_eq!(unescape_bare(r"\udbff\ue000").ok().as_deref(), Some("\\udbff\u{e000}"));
    }
}
