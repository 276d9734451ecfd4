//! OTLP `ExportLogsServiceRequest` bytes -> formatted lines, for `LogsService/Export` and
//! `POST /v1/logs`: the mapping of log_server/protocol/otlp.py, which stays the reference
//! (tests/protocol/test_otlp_native.py checks both give the same lines on the same bytes).
//!
//! Only what maps here byte for byte as there is done here: string, bool and int values.
//! A request with any other value (double, array, kvlist, bytes), with text that is not UTF-8,
//! or that does not decode gets None, and the Python path maps it (or says what is wrong).

use std::borrow::Cow;

use bytes::Bytes;
use prost::Message;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::format::{self, Fields, Text};

/// Names and numbers of opentelemetry-proto's logs, common and resource messages; `string`
/// fields declared `bytes` (the same wire format) so they are slices of the input.
#[derive(Clone, PartialEq, Message)]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_logs: Vec<ResourceLogs>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_logs: Vec<ScopeLogs>,
    #[prost(bytes = "bytes", tag = "3")]
    pub schema_url: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// Entity references (strings in messages): a request with any goes to the Python path.
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub entity_refs: Vec<Bytes>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub log_records: Vec<LogRecord>,
    #[prost(bytes = "bytes", tag = "3")]
    pub schema_url: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(bytes = "bytes", tag = "1")]
    pub name: Bytes,
    #[prost(bytes = "bytes", tag = "2")]
    pub version: Bytes,
    #[prost(message, repeated, tag = "3")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    pub observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    pub severity_number: i32,
    #[prost(bytes = "bytes", tag = "3")]
    pub severity_text: Bytes,
    #[prost(message, optional, tag = "5")]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    pub attributes: Vec<KeyValue>,
    #[prost(bytes = "bytes", tag = "9")]
    pub trace_id: Bytes,
    #[prost(bytes = "bytes", tag = "10")]
    pub span_id: Bytes,
    #[prost(bytes = "bytes", tag = "12")]
    pub event_name: Bytes,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(bytes = "bytes", tag = "1")]
    pub key: Bytes,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// Arrays and kvlists are kept as their bytes: a request holding one goes to the Python path.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(bytes = "bytes", tag = "1")]
    String(Bytes),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(bytes = "bytes", tag = "5")]
    Array(Bytes),
    #[prost(bytes = "bytes", tag = "6")]
    KvList(Bytes),
    #[prost(bytes = "bytes", tag = "7")]
    Bytes(Bytes),
}

/// Not mapped here: the Python path takes the request.
struct Unmapped;

type Mapped<T> = Result<T, Unmapped>;

fn text(bytes: &[u8]) -> Mapped<Text<'_>> {
    Text::from_utf8(bytes).map_err(|_| Unmapped)
}

fn owned(text: String) -> Text<'static> {
    Text::owned(text)
}

/// otlp.as_text: strings as they are, other values as their JSON; None (unset) as "".
fn as_text(value: Option<&AnyValue>) -> Mapped<Text<'_>> {
    match value.and_then(|v| v.value.as_ref()) {
        None => Ok(Text { text: Cow::Borrowed(""), plain: true }),
        Some(Value::String(s)) => text(s),
        Some(Value::Bool(b)) => Ok(Text { text: Cow::Borrowed(if *b { "true" } else { "false" }), plain: true }),
        Some(Value::Int(i)) => Ok(owned(i.to_string())),
        Some(_) => Err(Unmapped),
    }
}

/// otlp.level_for, with our Level numbers.
fn level_for(number: i32, severity_text: &[u8]) -> Mapped<i64> {
    const DEBUG: i64 = 1;
    const INFO: i64 = 3;
    const WARNING: i64 = 9;
    const ERROR: i64 = 10;
    const CRITICAL: i64 = 11;
    std::str::from_utf8(severity_text).map_err(|_| Unmapped)?; // a proto3 string
    if number > 0 {
        return Ok(match number {
            1..=8 => DEBUG,
            9..=12 => INFO,
            13..=16 => WARNING,
            17..=20 => ERROR,
            _ => CRITICAL,
        });
    }
    if !severity_text.is_ascii() {
        return Err(Unmapped); // str.strip() and str.lower() are Unicode's there
    }
    // Python's str.strip() on ASCII: whitespace and the separators 0x1c-0x1f.
    let trimmed = std::str::from_utf8(severity_text)
        .map_err(|_| Unmapped)?
        .trim_matches(|c: char| c.is_ascii_whitespace() || ('\x0b'..='\x0d').contains(&c) || ('\x1c'..='\x1f').contains(&c));
    Ok(match trimmed.to_ascii_lowercase().as_str() {
        "trace" | "debug" => DEBUG,
        "info" => INFO,
        "warn" | "warning" => WARNING,
        "error" => ERROR,
        "fatal" | "critical" => CRITICAL,
        _ => 0,
    })
}

/// otlp.timestamp: Unix nanoseconds as ISO-8601 UTC with microseconds.
fn timestamp(nanos: u64) -> String {
    let seconds = nanos / 1_000_000_000;
    let micros = (nanos % 1_000_000_000) / 1000;
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}+00:00",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn prefixed(prefix: &str, pairs: &[KeyValue]) -> Mapped<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|kv| Ok((format!("{prefix}{}", text(&kv.key)?.text), as_text(kv.value.as_ref())?.text.into_owned())))
        .collect()
}

fn borrowed(text: &str) -> Text<'_> {
    let plain = text.bytes().all(|b| b.wrapping_sub(0x20) < 0x5f);
    Text { text: Cow::Borrowed(text), plain }
}

struct Decoded {
    lines: String,
    count: usize,
    refusals: Vec<String>,
}

// Indices into Fields::text (format.rs's schema order without `level`).
const TIMESTAMP: usize = 0;
const HOSTNAME: usize = 1;
const LOGGER: usize = 2;
const FILENAME: usize = 4;
const FUNCTION: usize = 5;
const LINE: usize = 6;
const MESSAGE: usize = 7;
const TID: usize = 11;
const THREAD: usize = 12;
const SERVICE: usize = 13;
const STACK: usize = 14;

fn field_of(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"code.filepath" | b"code.file.path" => FILENAME,
        b"code.function" | b"code.function.name" => FUNCTION,
        b"code.lineno" | b"code.line.number" => LINE,
        b"thread.id" => TID,
        b"thread.name" => THREAD,
        _ => return None,
    })
}

fn decode(data: &[u8], first_seq: u64, received_at: &str, json: bool) -> Mapped<Decoded> {
    let request = ExportLogsServiceRequest::decode(Bytes::copy_from_slice(data)).map_err(|_| Unmapped)?;
    let mut out = Decoded { lines: String::with_capacity(data.len() * 2), count: 0, refusals: Vec::new() };
    let mut scratch = String::new();
    for resource_logs in &request.resource_logs {
        text(&resource_logs.schema_url)?;
        if resource_logs.resource.as_ref().is_some_and(|r| !r.entity_refs.is_empty()) {
            return Err(Unmapped);
        }
        let (mut service, mut host) = (String::new(), String::new());
        let mut resource_kvs = Vec::new();
        for kv in resource_logs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]) {
            match &kv.key[..] {
                b"service.name" => service = as_text(kv.value.as_ref())?.text.into_owned(),
                b"host.name" => host = as_text(kv.value.as_ref())?.text.into_owned(),
                _ => resource_kvs.push(kv.clone()),
            }
        }
        let resource_pairs = prefixed("resource.", &resource_kvs)?;
        for scope_logs in &resource_logs.scope_logs {
            text(&scope_logs.schema_url)?;
            let default_scope = InstrumentationScope::default();
            let scope = scope_logs.scope.as_ref().unwrap_or(&default_scope);
            let mut scope_pairs = prefixed("scope.", &scope.attributes)?;
            if !scope.version.is_empty() {
                scope_pairs.insert(0, ("scope.version".to_string(), text(&scope.version)?.text.into_owned()));
            }
            let logger = text(&scope.name)?;
            for log in &scope_logs.log_records {
                text(&log.event_name)?;
                let nanos = if log.time_unix_nano != 0 { log.time_unix_nano } else { log.observed_time_unix_nano };
                let mut fields = Fields {
                    text: std::array::from_fn(|_| borrowed("")),
                    level: level_for(log.severity_number, &log.severity_text)?,
                    attributes: Vec::new(),
                };
                fields.text[HOSTNAME] = borrowed(&host);
                fields.text[LOGGER] = Text { text: logger.text.clone(), plain: logger.plain };
                fields.text[SERVICE] = borrowed(&service);
                fields.text[MESSAGE] = as_text(log.body.as_ref())?;
                if nanos != 0 {
                    fields.text[TIMESTAMP] = owned(timestamp(nanos));
                }
                let mut pairs = Vec::with_capacity(2 + log.attributes.len() + resource_pairs.len() + scope_pairs.len());
                if !log.trace_id.is_empty() {
                    pairs.push((borrowed("trace_id"), owned(hex(&log.trace_id))));
                }
                if !log.span_id.is_empty() {
                    pairs.push((borrowed("span_id"), owned(hex(&log.span_id))));
                }
                let (mut kind, mut message, mut stack) = (None, None, None);
                for kv in &log.attributes {
                    let value = as_text(kv.value.as_ref())?;
                    if let Some(index) = field_of(&kv.key) {
                        fields.text[index] = value;
                        continue;
                    }
                    match &kv.key[..] {
                        b"exception.type" => kind = Some(value),
                        b"exception.message" => message = Some(value),
                        b"exception.stacktrace" => stack = Some(value),
                        key => pairs.push((text(key)?, value)),
                    }
                }
                if kind.is_some() || message.is_some() || stack.is_some() {
                    fields.text[STACK] = stack_trace(kind, message, stack);
                }
                for (key, value) in resource_pairs.iter().chain(scope_pairs.iter()) {
                    pairs.push((borrowed(key), borrowed(value)));
                }
                if !pairs.is_empty() {
                    fields.attributes = match format::attributes_refusal(&pairs) {
                        None => pairs,
                        Some(reason) => {
                            out.refusals.push(reason.clone());
                            format::refused_attributes(reason)
                        }
                    };
                }
                let seq = first_seq + out.count as u64;
                if json {
                    format::json_line(seq, &fields, received_at, &mut scratch, &mut out.lines);
                } else {
                    format::text_line(seq, &fields, received_at, &mut scratch, &mut out.lines);
                }
                out.count += 1;
            }
        }
    }
    Ok(out)
}

/// otlp._stack_trace: the stack trace when given, else `type: message` (or either alone).
fn stack_trace<'a>(kind: Option<Text<'a>>, message: Option<Text<'a>>, stack: Option<Text<'a>>) -> Text<'a> {
    if let Some(stack) = stack.filter(|s| !s.text.is_empty()) {
        return stack;
    }
    let kind = kind.filter(|k| !k.text.is_empty());
    let message = message.filter(|m| !m.text.is_empty());
    match (kind, message) {
        (Some(k), Some(m)) => owned(format!("{}: {}", k.text, m.text)),
        (Some(k), None) => k,
        (None, Some(m)) => m,
        (None, None) => borrowed(""),
    }
}

/// Lines, how many, and the reasons of the records whose attributes were refused.
type DecodedLines<'py> = (Bound<'py, PyBytes>, usize, Vec<String>);

/// `decode_otlp_logs(data, first_seq, received_at, line_format)` -> (lines, count,
/// attribute refusals), or None when the Python path must map this request.
#[pyfunction]
#[pyo3(signature = (data, first_seq, received_at, line_format="text"))]
pub fn decode_otlp_logs<'py>(
    py: Python<'py>,
    data: &[u8],
    first_seq: u64,
    received_at: &str,
    line_format: &str,
) -> PyResult<Option<DecodedLines<'py>>> {
    let json = match line_format {
        "text" => false,
        "json" => true,
        other => return Err(PyValueError::new_err(format!("unknown format {other:?}"))),
    };
    let run = || decode(data, first_seq, received_at, json).ok();
    let decoded = if data.len() >= crate::DETACH_MIN_BYTES { py.detach(run) } else { run() };
    Ok(decoded.map(|d| (PyBytes::new(py, d.lines.as_bytes()), d.count, d.refusals)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_python_writes_them() {
        assert_eq!(timestamp(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456+00:00");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(timestamp(951_782_400_000_000_000), "2000-02-29T00:00:00.000000+00:00");
        assert_eq!(timestamp(u64::MAX), "2554-07-21T23:34:33.709551+00:00");
    }

    #[test]
    fn severities() {
        assert_eq!(level_for(9, b"").ok(), Some(3));
        assert_eq!(level_for(24, b"").ok(), Some(11));
        assert_eq!(level_for(0, b"  WARN\x1c").ok(), Some(9));
        assert_eq!(level_for(-3, b"nonsense").ok(), Some(0));
        assert!(level_for(0, "\u{a0}info".as_bytes()).is_err());
    }
}
