//! A handle for tokio programs (feature `tokio`): queueing never awaits and never blocks
//! (build the client with the default [`OnFull::Drop`](crate::OnFull::Drop)), and flush and
//! shutdown wait on a blocking-pool thread so the runtime's workers stay free.

use std::time::Duration;

use crate::client::{Client, Error};
use crate::message::{Level, Message};

/// An async face of a [`Client`]; clones share its queue and sender.
#[derive(Clone, Debug)]
pub struct AsyncClient {
    client: Client,
}

impl AsyncClient {
    pub fn new(client: Client) -> AsyncClient {
        AsyncClient { client }
    }

    /// The synchronous handle, e.g. for the `log` or `tracing` integration.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn message(&self, level: Level, text: impl Into<String>) -> Message {
        self.client.message(level, text)
    }

    pub fn log(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        self.client.log(level, text)
    }

    pub fn send(&self, message: Message) -> Result<(), Error> {
        self.client.send(message)
    }

    pub fn dropped(&self) -> u64 {
        self.client.dropped()
    }

    pub async fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let client = self.client.clone();
        blocking(move || client.flush(timeout)).await
    }

    pub async fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let client = self.client.clone();
        blocking(move || client.shutdown(timeout)).await
    }
}

async fn blocking(wait: impl FnOnce() -> Result<(), Error> + Send + 'static) -> Result<(), Error> {
    tokio::task::spawn_blocking(wait)
        .await
        .unwrap_or_else(|err| Err(Error::Config(format!("flush task failed: {err}"))))
}
