//! `cargo run --example with_log --features log [-- HOST:PORT]`: the `log` facade into
//! log_server, key-values as attributes.

use std::time::Duration;

use log_server_client::{Client, LogServerLogger};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4020".into());
    let client = Client::builder()
        .address(address)
        .service_name("with_log")
        .build()?;
    LogServerLogger::new(client.clone()).init()?;

    log::info!("service started");
    log::warn!(user = "ann", tries = 3; "login failed");

    // A global logger is never dropped: shut the client down before main returns.
    client.shutdown(Duration::from_secs(2))?;
    Ok(())
}
