//! Record -> one line, byte for byte what `log_server/core/format.py` writes (the Python path is
//! the reference; tests/protocol/test_connection.py checks both give identical lines).

use std::borrow::Cow;
use std::fmt::Write as _;

pub const LEVEL_NAMES: [&str; 12] = [
    "NOTSET", "DEBUG", "STREAM", "INFO", "LOGON", "LOGOUT", "TRADE", "SCHEDULE", "REPORT",
    "WARNING", "ERROR", "CRITICAL",
];

/// A field's text, and whether it is printable ASCII only. That is learnt in the same pass
/// that validates it, and then spares the formatter every other look: such text needs no
/// escaping, and one byte is one character.
pub struct Text<'a> {
    pub text: Cow<'a, str>,
    pub plain: bool,
}

impl<'a> Text<'a> {
    /// Invalid UTF-8 is an error.
    pub fn from_utf8(bytes: &'a [u8]) -> Result<Self, std::str::Utf8Error> {
        // Without an early exit, so the compiler can check many bytes at a time.
        let plain = bytes.iter().fold(true, |ok, &b| ok & (b.wrapping_sub(0x20) < 0x5f));
        let text = if plain {
            // SAFETY: printable ASCII (0x20..0x7e) is valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(bytes) }
        } else {
            std::str::from_utf8(bytes)?
        };
        Ok(Text { text: Cow::Borrowed(text), plain })
    }

    /// Invalid UTF-8 becomes U+FFFD, as Python's `bytes.decode(errors="replace")`.
    pub fn from_utf8_lossy(bytes: &'a [u8]) -> Self {
        Self::from_utf8(bytes)
            .unwrap_or_else(|_| Text { text: String::from_utf8_lossy(bytes), plain: false })
    }

    /// Text of our own (a refusal's reason).
    pub fn owned(text: String) -> Text<'static> {
        let plain = text.bytes().all(|b| b.wrapping_sub(0x20) < 0x5f);
        Text { text: Cow::Owned(text), plain }
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Every text field empty: what a reader starts from before it fills in the fields sent.
    pub fn empty_fields() -> [Text<'a>; TEXT_FIELDS] {
        std::array::from_fn(|_| Text { text: Cow::Borrowed(""), plain: true })
    }
}

/// The 16 fields in schema order, with `level` kept as its number, and the attributes.
/// How many text fields a message has (every field of LoggerMsg but the level and attributes).
pub const TEXT_FIELDS: usize = 15;

pub struct Fields<'a> {
    pub text: [Text<'a>; TEXT_FIELDS],
    pub level: i64,
    pub attributes: Vec<(Text<'a>, Text<'a>)>,
}

// Bounds on one message's attributes, as core/records.py (docs/protocol.md).
const MAX_ATTRIBUTES: usize = 128;
const MAX_ATTRIBUTE_KEY_BYTES: usize = 256;
const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;
const ATTRIBUTES_REFUSED_KEY: &str = "attributes_refused";

/// The pairs, or past a bound one pair giving the reason (records.checked_attributes).
pub fn checked_attributes<'a>(pairs: Vec<(Text<'a>, Text<'a>)>) -> Vec<(Text<'a>, Text<'a>)> {
    match attributes_refusal(&pairs) {
        None => pairs,
        Some(reason) => refused_attributes(reason),
    }
}

/// The one pair that stands for refused attributes.
pub fn refused_attributes(reason: String) -> Vec<(Text<'static>, Text<'static>)> {
    vec![(Text::owned(ATTRIBUTES_REFUSED_KEY.to_string()), Text::owned(reason))]
}

/// Why the pairs break a bound, if they do (records.attributes_refusal).
pub fn attributes_refusal(pairs: &[(Text, Text)]) -> Option<String> {
    if pairs.len() > MAX_ATTRIBUTES {
        Some(format!("{} attributes (limit {MAX_ATTRIBUTES})", pairs.len()))
    } else {
        let mut total = 0;
        let mut refusal = None;
        for (key, value) in pairs.iter() {
            if key.text.len() > MAX_ATTRIBUTE_KEY_BYTES {
                refusal = Some(format!("a key of {} bytes (limit {MAX_ATTRIBUTE_KEY_BYTES})", key.text.len()));
                break;
            }
            total += key.text.len() + value.text.len();
        }
        refusal.or_else(|| {
            (total > MAX_ATTRIBUTES_BYTES)
                .then(|| format!("{total} bytes of attributes (limit {MAX_ATTRIBUTES_BYTES})"))
        })
    }
}

// Indices into Fields::text (the schema order without `level`).
const TIMESTAMP: usize = 0;
const HOSTNAME: usize = 1;
const LOGGER: usize = 2;
const MODULE: usize = 3;
const FILENAME: usize = 4;
const FUNCTION: usize = 5;
const LINE: usize = 6;
const MESSAGE: usize = 7;
const PATH: usize = 8;
const PID: usize = 9;
const PROCESS: usize = 10;
const TID: usize = 11;
const THREAD: usize = 12;
const SERVICE: usize = 13;
const STACK: usize = 14;

const EXTRAS: [(&str, usize); 8] = [
    ("module", MODULE),
    ("path", PATH),
    ("pid", PID),
    ("process", PROCESS),
    ("tid", TID),
    ("thread", THREAD),
    ("service", SERVICE),
    ("stack", STACK),
];

const JSON_NAMES: [&str; 15] = [
    "timestamp", "hostname", "logger_name", "module", "filename", "function_name",
    "line_number", "message", "path_name", "process_id", "process_name", "thread_id",
    "thread_name", "service_name", "stack_trace",
];

fn level_name(level: i64, out: &mut String) {
    match usize::try_from(level).ok().and_then(|i| LEVEL_NAMES.get(i)) {
        Some(name) => out.push_str(name),
        None => {
            let _ = write!(out, "LEVEL{level}");
        }
    }
}

/// Controls, line separators, and the bidi and zero-width characters (format.INVISIBLE_CHARS).
#[inline]
fn needs_escape(c: char) -> bool {
    let n = c as u32;
    if n < 0x600 {
        return n < 0x20 || (0x7f..0xa0).contains(&n);
    }
    matches!(n, 0x061c | 0x180e | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2064
        | 0x2066..=0x206f | 0xfeff | 0xfff9..=0xfffb)
}

/// format.quoted: `"..."` with backslashes and quotes escaped as well as the controls.
/// Runs that need no escape are copied whole: a message with a `=` in it (quoted, as many
/// are) used to cost a char push per character.
fn quoted_into(text: &str, out: &mut String) {
    out.push('"');
    let bytes = text.as_bytes();
    let mut run = 0;
    loop {
        let i = run + unescaped_prefix(&bytes[run..]);
        out.push_str(&text[run..i]);
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if needs_escape(c) => escape_char(c, out),
            c => out.push(c),
        }
        run = i + c.len_utf8();
    }
    out.push('"');
}

/// How many leading bytes are printable ASCII other than `"` and `\\`, 8 at a time: a byte's
/// high bit marks it below 0x20, at or above 0x7f, or equal to either. A borrow can mark a
/// byte above a true match, never below one, so the lowest mark is exact.
pub(crate) fn unescaped_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let control = x.wrapping_sub(ONES * 0x20) & !x;
        let high = ((x & !HIGH).wrapping_add(ONES)) | x;
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let equal =
            (quote.wrapping_sub(ONES) & !quote) | (backslash.wrapping_sub(ONES) & !backslash);
        let marks = (control | high | equal) & HIGH;
        if marks != 0 {
            return at + (marks.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes[at..]
        .iter()
        .take_while(|&&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
        .count()
}

fn escape_char(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) <= 0xff => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
    }
}

/// Control characters as `\n`, `\r`, `\t`, `\xNN`, `\uNNNN` (format.escape).
pub fn escape_into(field: &Text, out: &mut String) {
    let text: &str = &field.text;
    if field.plain || !text.chars().any(needs_escape) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        if needs_escape(c) {
            escape_char(c, out);
        } else {
            out.push(c);
        }
    }
}

fn push_spaces(n: usize, out: &mut String) {
    const SPACES: &str = "                                        ";
    let mut n = n;
    while n > 0 {
        let take = n.min(SPACES.len());
        out.push_str(&SPACES[..take]);
        n -= take;
    }
}

/// `{:<W}` or `{:>W}` of Python's str.format: padded, never cut.
fn wide_column(text: &str, width: usize, right: bool, out: &mut String) {
    let pad = width.saturating_sub(text.chars().count());
    if right {
        push_spaces(pad, out);
    }
    out.push_str(text);
    if !right {
        push_spaces(pad, out);
    }
}

/// `{:<W.W}` (cut to W characters, pad to W) or `{:>W.W}` of Python's str.format.
fn column(text: &str, width: usize, right: bool, out: &mut String) {
    if text.is_ascii() {
        let cut = &text[..text.len().min(width)];
        if right {
            push_spaces(width - cut.len(), out);
        }
        out.push_str(cut);
        if !right {
            push_spaces(width - cut.len(), out);
        }
        return;
    }
    let mut chars = 0;
    let mut end = text.len();
    for (i, _) in text.char_indices() {
        if chars == width {
            end = i;
            break;
        }
        chars += 1;
    }
    let cut = &text[..end];
    let pad = width.saturating_sub(chars);
    if right {
        push_spaces(pad, out);
        out.push_str(cut);
    } else {
        out.push_str(cut);
        push_spaces(pad, out);
    }
}

fn escaped_column(field: &Text, width: usize, right: bool, scratch: &mut String, out: &mut String) {
    if field.plain {
        column(&field.text, width, right, out);
        return;
    }
    scratch.clear();
    escape_into(field, scratch);
    column(scratch, width, right, out);
}

/// `{:>10}` of an integer, without the formatting machinery.
fn push_seq(seq: u64, out: &mut String) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = seq;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let text = std::str::from_utf8(&digits[at..]).unwrap_or("0");
    push_spaces(10usize.saturating_sub(text.len()), out);
    out.push_str(text);
}

pub fn text_line(seq: u64, f: &Fields, received_at: &str, scratch: &mut String, out: &mut String) {
    push_seq(seq, out);
    out.push(' ');
    if f.text[TIMESTAMP].is_empty() {
        column(received_at, 33, false, out);
    } else {
        escaped_column(&f.text[TIMESTAMP], 33, false, scratch, out);
    }
    out.push(' ');
    escaped_column(&f.text[HOSTNAME], 12, false, scratch, out);
    out.push(' ');
    escaped_column(&f.text[LOGGER], 15, false, scratch, out);
    out.push(' ');
    scratch.clear();
    level_name(f.level, scratch);
    wide_column(scratch, 8, false, out);
    out.push(' ');
    escaped_column(&f.text[FILENAME], 20, false, scratch, out);
    out.push(' ');
    escaped_column(&f.text[FUNCTION], 25, false, scratch, out);
    out.push(' ');
    scratch.clear();
    escape_into(&f.text[LINE], scratch);
    wide_column(scratch, 6, true, out);
    out.push(' ');
    let message = &f.text[MESSAGE];
    if message.text.contains('=') || message.text.starts_with('"') {
        quoted_into(&message.text, out);
    } else {
        escape_into(message, out);
    }
    for (key, index) in EXTRAS {
        let value = &f.text[index];
        if value.is_empty() {
            continue;
        }
        out.push(' ');
        out.push_str(key);
        out.push('=');
        logfmt_value(value, scratch, out);
    }
    for (key, value) in &f.attributes {
        out.push(' ');
        if is_bare_key(&key.text) {
            out.push_str(&key.text);
        } else {
            quoted_into(&key.text, out);
        }
        out.push('=');
        if value.is_empty() {
            out.push_str("\"\"");
        } else {
            logfmt_value(value, scratch, out);
        }
    }
    out.push('\n');
}

/// format._logfmt_value: bare when it holds no space, quote or `=`, else quoted.
fn logfmt_value(value: &Text, scratch: &mut String, out: &mut String) {
    if value.plain && !value.text.contains([' ', '"', '=']) {
        out.push_str(&value.text);
        return;
    }
    scratch.clear();
    escape_into(value, scratch);
    if scratch.contains([' ', '"', '=']) {
        quoted_into(&value.text, out);
    } else {
        out.push_str(scratch);
    }
}

/// format._logfmt_key: printable ASCII without `"`, `=`, `\\`, and not a built-in extra's name.
fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key.bytes().all(|b| (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'=' | b'\\'))
        && !EXTRAS.iter().any(|(name, _)| *name == key)
}

/// json.dumps(ensure_ascii=False) string escaping, plus the extra escapes of format.py.
fn json_field(field: &Text, out: &mut String) {
    if field.plain && !field.text.contains(['"', '\\']) {
        out.push('"');
        out.push_str(&field.text);
        out.push('"');
        return;
    }
    json_string(&field.text, out);
}

fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

pub fn json_line(seq: u64, f: &Fields, received_at: &str, scratch: &mut String, out: &mut String) {
    let _ = write!(out, "{{\"seq\":{seq},\"received_at\":");
    json_string(received_at, out);
    for (index, name) in JSON_NAMES.iter().enumerate() {
        if index == FILENAME {
            out.push_str(",\"level\":");
            scratch.clear();
            level_name(f.level, scratch);
            json_string(scratch, out);
        }
        out.push_str(",\"");
        out.push_str(name);
        out.push_str("\":");
        if index == TIMESTAMP && f.text[TIMESTAMP].is_empty() {
            json_string(received_at, out);
        } else {
            json_field(&f.text[index], out);
        }
    }
    if !f.attributes.is_empty() {
        // A repeated key keeps its first position and its last value, as format.py's dict.
        let mut unique: Vec<(&Text, &Text)> = Vec::with_capacity(f.attributes.len());
        for (key, value) in &f.attributes {
            match unique.iter_mut().find(|(k, _)| k.text == key.text) {
                Some(entry) => entry.1 = value,
                None => unique.push((key, value)),
            }
        }
        out.push_str(",\"attributes\":{");
        for (i, (key, value)) in unique.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_field(key, out);
            out.push(':');
            json_field(value, out);
        }
        out.push('}');
    }
    out.push_str("}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Text<'_> {
        Text::from_utf8(s.as_bytes()).unwrap()
    }

    fn fields<'a>(message: &'a str, attributes: Vec<(Text<'a>, Text<'a>)>) -> Fields<'a> {
        let mut text_fields = Text::empty_fields();
        text_fields[MESSAGE] = text(message);
        text_fields[LINE] = text("7");
        Fields { text: text_fields, level: 3, attributes }
    }

    fn tail(line: &str) -> &str {
        line.split_once("     7 ").unwrap().1
    }

    #[test]
    fn attributes_follow_in_order_with_hostile_keys_quoted() {
        let attrs = vec![
            (text("order_id"), text("7")),
            (text("a b"), text("x y")),
            (text("pid"), text("")),
            (text("k=v"), text("tail\\")),
        ];
        let mut out = String::new();
        text_line(1, &fields("paid", attrs), "T", &mut String::new(), &mut out);
        assert_eq!(tail(&out), "paid order_id=7 \"a b\"=\"x y\" \"pid\"=\"\" \"k=v\"=tail\\\n");
    }

    #[test]
    fn a_message_with_equals_is_quoted_with_backslashes_escaped() {
        let mut out = String::new();
        text_line(1, &fields("a=b \\ \"c\"", Vec::new()), "T", &mut String::new(), &mut out);
        assert_eq!(tail(&out), "\"a=b \\\\ \\\"c\\\"\"\n");
    }

    #[test]
    fn json_keeps_the_last_value_of_a_repeated_key_at_its_first_place() {
        let attrs = vec![(text("b"), text("1")), (text("a"), text("2")), (text("b"), text("3"))];
        let mut out = String::new();
        json_line(1, &fields("m", attrs), "T", &mut String::new(), &mut out);
        assert!(out.ends_with(",\"attributes\":{\"b\":\"3\",\"a\":\"2\"}}\n"), "{out}");
    }

    #[test]
    fn attributes_past_a_bound_become_one_refusal() {
        let many: Vec<_> = (0..=MAX_ATTRIBUTES).map(|_| (text("k"), text("v"))).collect();
        let checked = checked_attributes(many);
        assert_eq!(checked.len(), 1);
        assert_eq!(checked[0].0.text, ATTRIBUTES_REFUSED_KEY);
        assert_eq!(checked[0].1.text, "129 attributes (limit 128)");
        let long_key = "k".repeat(MAX_ATTRIBUTE_KEY_BYTES + 1);
        let checked = checked_attributes(vec![(text(&long_key), text("v"))]);
        assert_eq!(checked[0].1.text, "a key of 257 bytes (limit 256)");
        let at_limit: Vec<_> = (0..MAX_ATTRIBUTES).map(|_| (text("k"), text("v"))).collect();
        assert_eq!(checked_attributes(at_limit).len(), MAX_ATTRIBUTES);
    }

    #[test]
    fn invisible_characters_are_escaped() {
        let mut out = String::new();
        escape_into(&text("a\u{202e}b\u{200b}\u{feff}\u{2066}"), &mut out);
        assert_eq!(out, "a\\u202eb\\u200b\\ufeff\\u2066");
    }

    #[test]
    fn numbers_are_never_cut() {
        let mut f = fields("m", Vec::new());
        f.level = 2_147_483_647;
        f.text[LINE] = text("1234567890");
        let mut out = String::new();
        text_line(1, &f, "T", &mut String::new(), &mut out);
        assert!(out.contains(" LEVEL2147483647 "), "{out}");
        assert!(out.contains(" 1234567890 m\n"), "{out}");
    }
}

#[cfg(test)]
mod unescaped_prefix_tests {
    use super::unescaped_prefix;

    fn slow(bytes: &[u8]) -> usize {
        bytes
            .iter()
            .take_while(|&&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
            .count()
    }

    #[test]
    fn agrees_with_the_byte_at_a_time_rule() {
        let specials = [
            0u8, 0x1f, 0x20, b'"', b'\\', b'!', b'#', b'[', b']', 0x7e, 0x7f, 0x80, 0xc3, 0xff,
            b'a',
        ];
        for len in 0..20 {
            for at in 0..len {
                for &special in &specials {
                    for &before in &specials {
                        let mut bytes = vec![b'a'; len];
                        bytes[at] = special;
                        if at + 1 < len {
                            bytes[at + 1] = before;
                        }
                        if at > 0 {
                            bytes[at - 1] = before;
                        }
                        assert_eq!(unescaped_prefix(&bytes), slow(&bytes), "{bytes:02x?}");
                    }
                }
            }
        }
        let all: Vec<u8> = (0..=255u8).collect();
        for start in 0..all.len() {
            assert_eq!(unescaped_prefix(&all[start..]), slow(&all[start..]));
        }
    }
}
