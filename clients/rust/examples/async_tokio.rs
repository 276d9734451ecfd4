//! `cargo run --example async_tokio --features tokio [-- HOST:PORT]`: logging from tokio
//! tasks; queueing never awaits, flush and shutdown do.

use std::time::Duration;

use log_server_client::{AsyncClient, Client, Level};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4020".into());
    let log = AsyncClient::new(Client::builder().address(address).build()?);
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let _ = log.send(log.message(Level::Info, format!("task {task} step {i}")));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    log.shutdown(Duration::from_secs(2)).await?;
    Ok(())
}
