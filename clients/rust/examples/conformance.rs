//! The Rust client's program for the interop harness (tests/interop, schema/vectors/README.md):
//! sends the shared vectors (to log_server, or with `original` to the original project's
//! server), survives a server restart in acknowledged mode, or reports a server that is
//! down; over `--transport tcp` or `grpc`. Exit codes: 0 done, 1 failed,
//! 2 bad arguments, 3 undelivered when down.

use std::process::ExitCode;
use std::time::Duration;

use log_server_client::{Client, Error, Level, Message, OnFull};

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_UNDELIVERED: u8 = 3;

struct Failure {
    code: u8,
    reason: String,
}

fn fail(code: u8, reason: impl std::fmt::Display) -> Failure {
    Failure {
        code,
        reason: reason.to_string(),
    }
}

#[derive(Default)]
struct Args {
    scenario: String,
    transport: String,
    address: String,
    vectors: String,
    count: usize,
}

fn parse(argv: &[String]) -> Result<Args, Failure> {
    let mut args = Args {
        transport: "tcp".into(),
        count: 100,
        ..Args::default()
    };
    let mut rest = argv.iter();
    while let Some(flag) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .ok_or_else(|| fail(EXIT_USAGE, format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--scenario" => args.scenario = value()?,
            "--transport" => args.transport = value()?,
            "--address" => args.address = value()?,
            "--vectors" => args.vectors = value()?,
            "--count" => {
                args.count = value()?
                    .parse()
                    .map_err(|err| fail(EXIT_USAGE, format!("--count: {err}")))?
            }
            other => return Err(fail(EXIT_USAGE, format!("unknown argument {other:?}"))),
        }
    }
    if args.address.is_empty() {
        return Err(fail(EXIT_USAGE, "--address HOST:PORT is required"));
    }
    Ok(args)
}

fn builder(args: &Args) -> Result<log_server_client::Builder, Failure> {
    let builder = Client::builder();
    match args.transport.as_str() {
        "tcp" => Ok(builder.address(&args.address)),
        "grpc" => Ok(builder.grpc(&args.address)),
        other => Err(fail(
            EXIT_USAGE,
            format!("--transport {other:?}: tcp or grpc"),
        )),
    }
}

fn run(args: &Args) -> Result<(), Failure> {
    let builder = builder(args)?;
    match args.scenario.as_str() {
        "vectors" if args.vectors.is_empty() => Err(fail(EXIT_USAGE, "--vectors PATH is required")),
        "vectors" => send_vectors(builder, &args.vectors),
        "original" if args.vectors.is_empty() => {
            Err(fail(EXIT_USAGE, "--vectors PATH is required"))
        }
        // The vectors again, in the original server's dialect: over TCP the hello opens every
        // connection; over gRPC the plain client falls back to LogBridge by itself.
        "original" if args.transport == "tcp" => send_vectors(builder.hello(true), &args.vectors),
        "original" => send_vectors(builder, &args.vectors),
        "restart" => restart(builder, args.count),
        "down" => down(builder),
        other => Err(fail(
            EXIT_USAGE,
            format!("--scenario {other:?}: one of vectors, original, restart, down"),
        )),
    }
}

/// Every case's fields exactly as given, in file order, on one client.
fn send_vectors(builder: log_server_client::Builder, path: &str) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(path).map_err(|err| fail(EXIT_FAILED, format!("{path}: {err}")))?;
    let file: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| fail(EXIT_FAILED, format!("{path}: {err}")))?;
    let cases = file["cases"]
        .as_array()
        .ok_or_else(|| fail(EXIT_FAILED, format!("{path}: no cases")))?;
    let client = builder
        .on_full(OnFull::Block(Duration::from_secs(30)))
        .build()
        .map_err(|err| fail(EXIT_USAGE, err))?;
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let message = message_from_fields(&case["fields"])
            .ok_or_else(|| fail(EXIT_FAILED, format!("case {name}: malformed fields")))?;
        client
            .send(message)
            .map_err(|err| fail(EXIT_FAILED, format!("case {name}: {err}")))?;
    }
    client
        .shutdown(Duration::from_secs(30))
        .map_err(|err| fail(EXIT_FAILED, err))
}

fn message_from_fields(fields: &serde_json::Value) -> Option<Message> {
    let text = |name: &str| fields[name].as_str().map(str::to_owned);
    let mut attributes = Vec::new();
    for pair in fields["attributes"].as_array()? {
        attributes.push((
            pair["key"].as_str()?.to_owned(),
            pair["value"].as_str()?.to_owned(),
        ));
    }
    Some(Message {
        timestamp: text("timestamp")?,
        hostname: text("hostname")?,
        logger_name: text("logger_name")?,
        module: text("module")?,
        level: Level::from_name(&text("level")?)?,
        filename: text("filename")?,
        function_name: text("function_name")?,
        line_number: text("line_number")?,
        message: text("message")?,
        path_name: text("path_name")?,
        process_id: text("process_id")?,
        process_name: text("process_name")?,
        thread_id: text("thread_id")?,
        thread_name: text("thread_name")?,
        service_name: text("service_name")?,
        stack_trace: text("stack_trace")?,
        attributes,
    })
}

/// `count` messages about 2 ms apart in acknowledged mode; done once every one is
/// acknowledged, through however many restarts (60 s at most).
fn restart(builder: log_server_client::Builder, count: usize) -> Result<(), Failure> {
    let client = builder
        .ack(true)
        .logger_name("conformance")
        .on_full(OnFull::Block(Duration::from_secs(60)))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_secs(1))
        .build()
        .map_err(|err| fail(EXIT_USAGE, err))?;
    for i in 0..count {
        client
            .log(Level::Info, format!("restart {i}"))
            .map_err(|err| fail(EXIT_FAILED, format!("message {i}: {err}")))?;
        std::thread::sleep(Duration::from_millis(2));
    }
    client
        .shutdown(Duration::from_secs(60))
        .map_err(|err| fail(EXIT_FAILED, err))
}

/// Five messages where nothing listens, then a shutdown with a 2 s deadline.
fn down(builder: log_server_client::Builder) -> Result<(), Failure> {
    let client = builder.build().map_err(|err| fail(EXIT_USAGE, err))?;
    for i in 0..5 {
        client
            .log(Level::Info, format!("down {i}"))
            .map_err(|err| fail(EXIT_FAILED, format!("message {i}: {err}")))?;
    }
    match client.shutdown(Duration::from_secs(2)) {
        Err(err @ Error::Undelivered { .. }) => Err(fail(EXIT_UNDELIVERED, err)),
        Err(err) => Err(fail(EXIT_FAILED, err)),
        Ok(()) => Err(fail(
            EXIT_FAILED,
            "all 5 messages were delivered, but nothing should listen there",
        )),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match parse(&argv).and_then(|args| run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("conformance: {}", failure.reason);
            ExitCode::from(failure.code)
        }
    }
}
