//! The gRPC client against a real in-process tonic server that, like the original project's,
//! serves only `logservice.LogBridge`: the first batch is answered UNIMPLEMENTED on
//! `LogService`, sent again on `LogBridge`, and every later batch goes to `LogBridge` directly.

#![cfg(feature = "grpc")]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use log_server_client::logservice::{LogBatchRequest, LogResponse};
use log_server_client::{Client, Level};
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::{Grpc, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

#[derive(Default)]
struct Seen {
    /// The path of every call, in order.
    calls: Vec<String>,
    /// The messages of every `LogBridge/LogBatch` call.
    messages: Vec<String>,
}

/// Serves `/logservice.LogBridge/LogBatch`; any other path gets UNIMPLEMENTED, as from a
/// server that does not know the service.
#[derive(Clone, Default)]
struct BridgeOnly(Arc<Mutex<Seen>>);

impl UnaryService<LogBatchRequest> for BridgeOnly {
    type Response = LogResponse;
    type Future = Pin<Box<dyn Future<Output = Result<Response<LogResponse>, Status>> + Send>>;

    fn call(&mut self, request: Request<LogBatchRequest>) -> Self::Future {
        let texts = request.into_inner().requests.into_iter().map(|r| r.message);
        self.0.lock().unwrap().messages.extend(texts);
        Box::pin(async { Ok(Response::new(LogResponse { success: true })) })
    }
}

impl tonic::codegen::Service<http::Request<Body>> for BridgeOnly {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let path = request.uri().path().to_owned();
        self.0.lock().unwrap().calls.push(path.clone());
        let service = self.clone();
        Box::pin(async move {
            if path == "/logservice.LogBridge/LogBatch" {
                let mut grpc = Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(service, request).await)
            } else {
                Ok(Status::unimplemented("").into_http())
            }
        })
    }
}

#[test]
fn a_server_serving_only_log_bridge_gets_every_batch_there() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let seen = BridgeOnly::default();
    let (address, stop) = {
        let _guard = runtime.enter();
        let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = incoming.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tonic::transport::Server::builder().serve_with_incoming_shutdown(
            seen.clone(),
            incoming,
            async {
                let _ = stopped.await;
            },
        );
        runtime.spawn(server);
        (address, stop)
    };

    let client = Client::builder()
        .grpc(address.to_string())
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .build()
        .unwrap();
    client.log(Level::Info, "first").unwrap();
    client.flush(Duration::from_secs(10)).unwrap();
    client.log(Level::Info, "second").unwrap();
    client.shutdown(Duration::from_secs(10)).unwrap();
    let _ = stop.send(());

    let seen = seen.0.lock().unwrap();
    assert_eq!(seen.messages, ["first", "second"], "each once, in order");
    assert_eq!(
        seen.calls,
        [
            "/logservice.LogService/LogBatch",
            "/logservice.LogBridge/LogBatch",
            "/logservice.LogBridge/LogBatch",
        ],
        "the same batch again on LogBridge, then LogBridge only"
    );
}
