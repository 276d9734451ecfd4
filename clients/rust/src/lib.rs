//! Client for [log_server](../../README.md): send log messages over TCP (Cap'n Proto frames)
//! or gRPC (feature `grpc`) from a bounded queue and a background sender thread, with
//! integrations for `log` (feature `log`) and `tracing` (feature `tracing`), and an async
//! handle for tokio (feature `tokio`).
//!
//! ```no_run
//! use log_server_client::{Client, Level};
//! use std::time::Duration;
//!
//! let client = Client::builder()
//!     .address("127.0.0.1:4020")
//!     .service_name("myapp")
//!     .build()?;
//! client.log(Level::Info, "hello")?;
//! client.send(client.message(Level::Warning, "disk almost full").attribute("free", "3%"))?;
//! client.shutdown(Duration::from_secs(2))?;
//! # Ok::<(), log_server_client::Error>(())
//! ```

mod backoff;
mod client;
pub mod frame;
#[cfg(feature = "grpc")]
mod grpc;
mod message;
mod transport;

#[cfg(feature = "tokio")]
mod async_client;
#[cfg(feature = "log")]
mod log_bridge;
#[cfg(feature = "tracing")]
mod tracing_layer;

#[rustfmt::skip]
#[allow(clippy::all, dead_code, unused_parens)]
mod logger_capnp;
/// The protobuf messages and tonic client of `schema/log_service.proto` (generated).
#[cfg(feature = "grpc")]
#[rustfmt::skip]
#[allow(clippy::all, missing_docs)]
pub mod logservice;

pub use backoff::Backoff;
pub use client::{Builder, Client, Error, OnFull, DEFAULT_MAX_BATCH, DEFAULT_QUEUE_CAPACITY};
#[cfg(feature = "grpc")]
pub use grpc::to_request;
pub use message::{now_timestamp, Level, Message};

#[cfg(feature = "tokio")]
pub use async_client::AsyncClient;
#[cfg(feature = "log")]
pub use log_bridge::LogServerLogger;
#[cfg(feature = "tracing")]
pub use tracing_layer::LogServerLayer;
