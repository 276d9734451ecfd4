//! `tracing` integration (feature `tracing`): a [`Layer`] that sends every event through a
//! [`Client`]. Shaped like tracing-journald: span fields are recorded once, when the span
//! is made (and on `record`), and copied onto each event inside it.
//!
//! Mapping: the `message` field → message; span fields (outermost span first), then the
//! event's other fields → attributes, in order; target → logger name; module path → module;
//! file → filename (base name) and path name; line → line number; the innermost span's name
//! → function name; TRACE and DEBUG → DEBUG, WARN → WARNING.

use std::fmt::Write as _;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::client::Client;
use crate::message::Level;

/// Sends events to log_server; add it to a `tracing_subscriber::registry()`.
#[derive(Debug, Clone)]
pub struct LogServerLayer {
    client: Client,
}

impl LogServerLayer {
    pub fn new(client: Client) -> LogServerLayer {
        LogServerLayer { client }
    }
}

/// A span's fields, formatted once, kept in the span's extensions.
struct SpanFields(Vec<(String, String)>);

struct Fields<'a> {
    attributes: &'a mut Vec<(String, String)>,
    message: Option<&'a mut String>,
}

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: String) {
        match &mut self.message {
            Some(message) if field.name() == "message" => **message = value,
            _ => self.attributes.push((field.name().to_owned(), value)),
        }
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_owned());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.to_string());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.to_string());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.push(field, text);
    }
}

pub(crate) fn level(level: &tracing_core::Level) -> Level {
    match *level {
        tracing_core::Level::ERROR => Level::Error,
        tracing_core::Level::WARN => Level::Warning,
        tracing_core::Level::INFO => Level::Info,
        _ => Level::Debug,
    }
}

impl<S> Layer<S> for LogServerLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Vec::new();
        attrs.record(&mut Fields {
            attributes: &mut fields,
            message: None,
        });
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut Fields {
                attributes: fields,
                message: None,
            });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut message = self.client.message(level(metadata.level()), String::new());
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    message.attributes.extend(fields.iter().cloned());
                }
                span.name().clone_into(&mut message.function_name);
            }
        }
        event.record(&mut Fields {
            attributes: &mut message.attributes,
            message: Some(&mut message.message),
        });
        metadata.target().clone_into(&mut message.logger_name);
        message.module = metadata.module_path().unwrap_or_default().to_owned();
        if let Some(file) = metadata.file() {
            message.filename = file.rsplit(['/', '\\']).next().unwrap_or(file).to_owned();
            message.path_name = file.to_owned();
        }
        if let Some(line) = metadata.line() {
            message.line_number = line.to_string();
        }
        // Logging never fails the caller: a full queue is counted in `Client::dropped`.
        let _ = self.client.send(message);
    }
}
