//! `cargo run --example with_tracing --features tracing [-- HOST:PORT]`: `tracing` events
//! into log_server, span and event fields as attributes.

use std::time::Duration;

use log_server_client::{Client, LogServerLayer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4020".into());
    let client = Client::builder()
        .address(address)
        .service_name("with_tracing")
        .build()?;
    tracing_subscriber::registry()
        .with(LogServerLayer::new(client.clone()))
        .init();

    let span = tracing::info_span!("request", id = 42, path = "/orders");
    let _entered = span.enter();
    tracing::info!(items = 3, "order placed");
    tracing::error!(error = "card declined", "payment failed");

    client.shutdown(Duration::from_secs(2))?;
    Ok(())
}
