//! The `log` and `tracing` integrations and the async handle, over real sockets against the
//! test server of tests/common.

mod common;

use std::time::Duration;

use common::TestServer;
use log_server_client::{Client, Level};

fn client(server: &TestServer) -> Client {
    Client::builder()
        .address(&server.address)
        .service_name("svc")
        .build()
        .unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_events_carry_span_and_event_fields_and_metadata() {
    use tracing_subscriber::layer::SubscriberExt;
    let server = TestServer::start(false);
    let client = client(&server);
    let subscriber =
        tracing_subscriber::registry().with(log_server_client::LogServerLayer::new(client.clone()));
    let line = tracing::subscriber::with_default(subscriber, || {
        let outer = tracing::info_span!("request", id = 7, path = "/a b");
        let _outer = outer.enter();
        let inner = tracing::debug_span!("handler", user = tracing::field::Empty);
        let _inner = inner.enter();
        inner.record("user", "ann");
        let line = line!() + 1;
        tracing::warn!(target: "app::db", rows = 3u64, ok = true, "slow query {}", 42);
        tracing::trace!("plain");
        line
    });
    client.flush(Duration::from_secs(5)).unwrap();
    let got = server.wait_messages(2);
    let event = &got[0];
    assert_eq!(event.message, "slow query 42");
    assert_eq!(event.level, Level::Warning);
    assert_eq!(event.logger_name, "app::db");
    assert_eq!(event.module, module_path!());
    assert_eq!(event.filename, "integrations.rs");
    assert!(event.path_name.ends_with("tests/integrations.rs"));
    assert_eq!(event.line_number, line.to_string());
    assert_eq!(event.function_name, "handler");
    assert_eq!(event.service_name, "svc");
    assert_eq!(
        event.attributes,
        pairs(&[
            ("id", "7"),
            ("path", "/a b"),
            ("user", "ann"),
            ("rows", "3"),
            ("ok", "true")
        ])
    );
    assert_eq!(
        (got[1].message.as_str(), got[1].level),
        ("plain", Level::Debug)
    );
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_event_outside_any_span_has_only_its_fields() {
    use tracing_subscriber::layer::SubscriberExt;
    let server = TestServer::start(false);
    let client = client(&server);
    let subscriber =
        tracing_subscriber::registry().with(log_server_client::LogServerLayer::new(client.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::error!(error = ?std::io::ErrorKind::NotFound, "failed");
    });
    client.flush(Duration::from_secs(5)).unwrap();
    let event = &server.wait_messages(1)[0];
    assert_eq!(event.function_name, "");
    assert_eq!(event.attributes, pairs(&[("error", "NotFound")]));
    assert_eq!(event.level, Level::Error);
}

#[cfg(feature = "log")]
#[test]
fn log_records_carry_key_values_as_attributes() {
    use log::Log;
    let server = TestServer::start(false);
    let client = client(&server);
    // Not installed globally (other tests share the process): called like `log` would.
    let logger =
        log_server_client::LogServerLogger::new(client.clone()).max_level(log::LevelFilter::Debug);
    let user = "ann";
    logger.log(
        &log::Record::builder()
            .args(format_args!("user {user} logged in"))
            .level(log::Level::Warn)
            .target("auth")
            .module_path_static(Some("app::auth"))
            .file_static(Some("src/auth.rs"))
            .line(Some(12))
            .key_values(&[("user", "ann"), ("tries", "2")])
            .build(),
    );
    logger.log(
        &log::Record::builder()
            .args(format_args!("too chatty"))
            .level(log::Level::Trace)
            .build(),
    );
    logger.flush();
    let got = server.wait_messages(1);
    assert_eq!(got.len(), 1, "the trace record was filtered out");
    let message = &got[0];
    assert_eq!(message.message, "user ann logged in");
    assert_eq!(message.level, Level::Warning);
    assert_eq!(
        (message.logger_name.as_str(), message.module.as_str()),
        ("auth", "app::auth")
    );
    assert_eq!(
        (
            message.filename.as_str(),
            message.path_name.as_str(),
            message.line_number.as_str()
        ),
        ("auth.rs", "src/auth.rs", "12")
    );
    assert_eq!(
        message.attributes,
        pairs(&[("user", "ann"), ("tries", "2")])
    );
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn the_async_handle_logs_and_flushes_without_blocking_the_runtime() {
    let server = TestServer::start(false);
    let handle = log_server_client::AsyncClient::new(client(&server));
    handle.log(Level::Info, "from tokio").unwrap();
    handle.flush(Duration::from_secs(5)).await.unwrap();
    handle.shutdown(Duration::from_secs(5)).await.unwrap();
    assert_eq!(server.wait_messages(1)[0].message, "from tokio");
}
