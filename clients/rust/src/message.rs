//! One log message, the 16 fields of the contract plus attributes (docs/protocol.md).

use std::fmt;
use std::sync::OnceLock;

/// The contract's `Level` enum: the numbers are the wire values of both protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u16)]
pub enum Level {
    #[default]
    Notset = 0,
    Debug = 1,
    Stream = 2,
    Info = 3,
    Logon = 4,
    Logout = 5,
    Trade = 6,
    Schedule = 7,
    Report = 8,
    Warning = 9,
    Error = 10,
    Critical = 11,
}

impl Level {
    pub const ALL: [Level; 12] = [
        Level::Notset,
        Level::Debug,
        Level::Stream,
        Level::Info,
        Level::Logon,
        Level::Logout,
        Level::Trade,
        Level::Schedule,
        Level::Report,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// The upper-case name used by protobuf and the log files (`INFO`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Notset => "NOTSET",
            Level::Debug => "DEBUG",
            Level::Stream => "STREAM",
            Level::Info => "INFO",
            Level::Logon => "LOGON",
            Level::Logout => "LOGOUT",
            Level::Trade => "TRADE",
            Level::Schedule => "SCHEDULE",
            Level::Report => "REPORT",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// A level by its name, in any case (`"info"`, `"WARNING"`).
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL
            .into_iter()
            .find(|level| level.name().eq_ignore_ascii_case(name))
    }

    /// A level by its wire number; `None` for a number this client does not know.
    pub fn from_number(number: u16) -> Option<Level> {
        Level::ALL.get(usize::from(number)).copied()
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A message as it goes on the wire. Every field is text, as in the schema; an empty field is
/// sent empty (an empty `timestamp` makes the server use the receive time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub timestamp: String,
    pub hostname: String,
    pub logger_name: String,
    pub module: String,
    pub level: Level,
    pub filename: String,
    pub function_name: String,
    pub line_number: String,
    pub message: String,
    pub path_name: String,
    pub process_id: String,
    pub process_name: String,
    pub thread_id: String,
    pub thread_name: String,
    pub service_name: String,
    pub stack_trace: String,
    /// Structured key/value pairs, in order; repeated keys are kept.
    pub attributes: Vec<(String, String)>,
}

impl Message {
    /// A message with only a level and a text; [`Client::log`](crate::Client::log) fills in
    /// the rest.
    pub fn new(level: Level, message: impl Into<String>) -> Message {
        Message {
            level,
            message: message.into(),
            ..Message::default()
        }
    }

    /// Adds one attribute (builder style).
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Message {
        self.attributes.push((key.into(), value.into()));
        self
    }
}

/// The current time as the clients of this project write it: ISO-8601 in UTC with
/// microseconds (`2026-01-02T03:04:05.123456+00:00`), what Python's `isoformat` gives.
pub fn now_timestamp() -> String {
    format_timestamp(time::OffsetDateTime::now_utc())
}

pub(crate) fn format_timestamp(at: time::OffsetDateTime) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+00:00"
    );
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_default()
}

/// What is the same for every message of this process, looked up once.
#[derive(Clone, Debug)]
pub(crate) struct ProcessInfo {
    pub hostname: String,
    pub process_id: String,
    pub process_name: String,
}

pub(crate) fn process_info() -> &'static ProcessInfo {
    static INFO: OnceLock<ProcessInfo> = OnceLock::new();
    INFO.get_or_init(|| ProcessInfo {
        hostname: gethostname::gethostname().to_string_lossy().into_owned(),
        process_id: std::process::id().to_string(),
        process_name: std::env::current_exe()
            .ok()
            .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    })
}

thread_local! {
    static THREAD: (String, String) = {
        let current = std::thread::current();
        // `ThreadId::as_u64` is unstable; its Debug form is `ThreadId(N)`.
        let id: String = format!("{:?}", current.id())
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        (id, current.name().unwrap_or_default().to_owned())
    };
}

/// The calling thread's id and name, formatted once per thread.
pub(crate) fn with_thread<R>(f: impl FnOnce(&str, &str) -> R) -> R {
    THREAD.with(|(id, name)| f(id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_and_numbers_round_trip() {
        for (number, level) in Level::ALL.into_iter().enumerate() {
            assert_eq!(level as usize, number);
            assert_eq!(Level::from_number(number as u16), Some(level));
            assert_eq!(Level::from_name(&level.name().to_lowercase()), Some(level));
        }
        assert_eq!(Level::from_number(12), None);
        assert_eq!(Level::from_name("verbose"), None);
    }

    #[test]
    fn timestamp_is_iso_utc_with_microseconds() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.123456789 +02:00);
        assert_eq!(format_timestamp(at), "2026-01-02T01:04:05.123456+00:00");
        assert_eq!(now_timestamp().len(), 32);
    }

    #[test]
    fn thread_id_is_a_number() {
        with_thread(|id, _| assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())));
    }
}
