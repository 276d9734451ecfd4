//! `log` integration (feature `log`): a [`log::Log`] that sends every record through a
//! [`Client`], with the record's key-values as attributes, in order.

use std::time::Duration;

use crate::client::Client;
use crate::message::Level;

/// How long `log::logger().flush()` waits for delivery.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Mapping: target → logger name, `module_path` → module, file → filename (base name) and
/// path name, line → line number, `Trace` and `Debug` → DEBUG, `Warn` → WARNING.
#[derive(Debug)]
pub struct LogServerLogger {
    client: Client,
    max_level: log::LevelFilter,
}

impl LogServerLogger {
    pub fn new(client: Client) -> LogServerLogger {
        LogServerLogger {
            client,
            max_level: log::LevelFilter::Trace,
        }
    }

    /// Records above this level are not sent (default: all).
    pub fn max_level(mut self, level: log::LevelFilter) -> LogServerLogger {
        self.max_level = level;
        self
    }

    /// Installs this logger as the global one. Keep a clone of the client and shut it down
    /// (or drop it) at the end of `main`: a global logger is never dropped.
    pub fn init(self) -> Result<(), log::SetLoggerError> {
        log::set_max_level(self.max_level);
        log::set_boxed_logger(Box::new(self))
    }
}

pub(crate) fn level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug | log::Level::Trace => Level::Debug,
    }
}

struct Collect<'a>(&'a mut Vec<(String, String)>);

impl<'kvs> log::kv::VisitSource<'kvs> for Collect<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        self.0.push((key.as_str().to_owned(), value.to_string()));
        Ok(())
    }
}

impl log::Log for LogServerLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = match record.args().as_str() {
            Some(text) => text.to_owned(),
            None => record.args().to_string(),
        };
        let mut message = self.client.message(level(record.level()), text);
        message.logger_name = record.target().to_owned();
        message.module = record.module_path().unwrap_or_default().to_owned();
        if let Some(file) = record.file() {
            message.filename = file.rsplit(['/', '\\']).next().unwrap_or(file).to_owned();
            message.path_name = file.to_owned();
        }
        if let Some(line) = record.line() {
            message.line_number = line.to_string();
        }
        let _ = record
            .key_values()
            .visit(&mut Collect(&mut message.attributes));
        // Logging never fails the caller: a full queue is counted in `Client::dropped`.
        let _ = self.client.send(message);
    }

    fn flush(&self) {
        let _ = self.client.flush(FLUSH_TIMEOUT);
    }
}
