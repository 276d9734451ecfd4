//! What dropping the last handle prints on stderr, seen from a child process (this test
//! binary run again with one test selected), since the report goes to the real stderr.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use log_server_client::{Client, Level};

const CHILD: &str = "LOG_SERVER_CLIENT_DROP_CHILD";

fn unused_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// In the child: one undelivered message, then the scenario; in the parent: the child's
/// stderr lines that are the client's report.
fn reports(test: &str, scenario: fn(Client)) -> Vec<String> {
    if std::env::var_os(CHILD).is_some() {
        let client = Client::builder()
            .address(unused_address())
            .shutdown_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        client.log(Level::Info, "never delivered").unwrap();
        scenario(client);
        return Vec::new();
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| line.starts_with("log_server client:"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn dropping_without_shutdown_reports_the_undelivered_once() {
    let lines = reports(
        "dropping_without_shutdown_reports_the_undelivered_once",
        drop,
    );
    if std::env::var_os(CHILD).is_none() {
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("1 messages not delivered"), "{lines:?}");
    }
}

#[test]
fn dropping_after_an_explicit_shutdown_reports_nothing_more() {
    let lines = reports(
        "dropping_after_an_explicit_shutdown_reports_nothing_more",
        |client| {
            assert!(client.shutdown(Duration::from_millis(200)).is_err());
            drop(client);
        },
    );
    if std::env::var_os(CHILD).is_none() {
        assert_eq!(
            lines,
            Vec::<String>::new(),
            "the caller already had the error"
        );
    }
}
