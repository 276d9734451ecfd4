//! gRPC transport (feature `grpc`): each batch is one `LogBatch` call on a tonic channel,
//! driven by a small tokio runtime owned by the sender thread, so the program needs no
//! runtime of its own. A call answered `UNIMPLEMENTED` did nothing, so the batch is sent again
//! on the next route: the same methods under the service name `logservice.LogBridge` (the
//! only one the original project's server serves), then one `StreamLogs` call (a server
//! older than `LogBatch`). The route that answers is kept for the client's lifetime.

use std::collections::VecDeque;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::client::{Builder, Error};
use crate::logservice::log_bridge_client::LogBridgeClient;
use crate::logservice::log_service_client::LogServiceClient;
use crate::logservice::{Attribute, LogBatchRequest, LogRequest, LogResponse};
use crate::message::Message;
use crate::transport::{Delivered, Failure, Refill, Transport};

/// The metadata that asks for an answer only once the call's messages are on disk.
const ACK_METADATA: (&str, &str) = ("log-ack", "durable");

/// A message as the protobuf `LogRequest`.
pub fn to_request(message: &Message) -> LogRequest {
    LogRequest {
        timestamp: message.timestamp.clone(),
        hostname: message.hostname.clone(),
        logger_name: message.logger_name.clone(),
        module: message.module.clone(),
        level: message.level as i32,
        filename: message.filename.clone(),
        function_name: message.function_name.clone(),
        line_number: message.line_number.clone(),
        message: message.message.clone(),
        path_name: message.path_name.clone(),
        process_id: message.process_id.clone(),
        process_name: message.process_name.clone(),
        thread_id: message.thread_id.clone(),
        thread_name: message.thread_name.clone(),
        service_name: message.service_name.clone(),
        stack_trace: message.stack_trace.clone(),
        attributes: message
            .attributes
            .iter()
            .map(|(key, value)| Attribute {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

/// The gRPC service a call goes to: ours, or the original project's name for the same methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    LogService,
    LogBridge,
}

/// How a batch is sent: one `LogBatch` call, or one `StreamLogs` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Batch,
    Stream,
}

/// Tried in this order, each after the one before answered `UNIMPLEMENTED`: log_server
/// answers the first; the original project's server the second; an older log_server (no
/// `LogBatch`) the third.
const ROUTES: [(Service, Method); 4] = [
    (Service::LogService, Method::Batch),
    (Service::LogBridge, Method::Batch),
    (Service::LogService, Method::Stream),
    (Service::LogBridge, Method::Stream),
];

pub(crate) struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    channel: Option<Channel>,
    ack: bool,
    /// Index into [`ROUTES`] of the route that answered last.
    route: usize,
    address: String,
}

impl GrpcTransport {
    pub(crate) fn new(address: &str, settings: &Builder) -> Result<GrpcTransport, Error> {
        let (connect_timeout, io_timeout) = settings.timeouts();
        let mut endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|err| Error::Config(format!("gRPC address {address:?}: {err}")))?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        if !io_timeout.is_zero() {
            endpoint = endpoint.timeout(io_timeout);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| Error::Config(format!("cannot start the gRPC runtime: {err}")))?;
        Ok(GrpcTransport {
            runtime,
            endpoint,
            channel: None,
            ack: settings.is_ack(),
            route: 0,
            address: address.to_owned(),
        })
    }

    fn request<T>(&self, body: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(body);
        if self.ack {
            request
                .metadata_mut()
                .insert(ACK_METADATA.0, MetadataValue::from_static(ACK_METADATA.1));
        }
        request
    }

    /// Sends the whole batch on one call of `route`.
    fn call(
        &self,
        channel: &Channel,
        (service, method): (Service, Method),
        batch: &[Message],
    ) -> Result<tonic::Response<LogResponse>, tonic::Status> {
        let requests: Vec<LogRequest> = batch.iter().map(to_request).collect();
        let channel = channel.clone();
        self.runtime.block_on(async {
            match (service, method) {
                (Service::LogService, Method::Batch) => {
                    let request = self.request(LogBatchRequest { requests });
                    LogServiceClient::new(channel).log_batch(request).await
                }
                (Service::LogBridge, Method::Batch) => {
                    let request = self.request(LogBatchRequest { requests });
                    LogBridgeClient::new(channel).log_batch(request).await
                }
                (Service::LogService, Method::Stream) => {
                    let request = self.request(tokio_stream::iter(requests));
                    LogServiceClient::new(channel).stream_logs(request).await
                }
                (Service::LogBridge, Method::Stream) => {
                    let request = self.request(tokio_stream::iter(requests));
                    LogBridgeClient::new(channel).stream_logs(request).await
                }
            }
        })
    }
}

impl Transport for GrpcTransport {
    fn deliver(
        &mut self,
        batch: &mut VecDeque<Message>,
        _refill: &mut Refill<'_>,
    ) -> Result<Delivered, Failure> {
        // One call confirms or fails the whole batch: nothing to send while waiting.
        let batch = batch.make_contiguous();
        let failure = |address: &str, context: &str, err: &dyn std::fmt::Display| Failure {
            delivered: 0,
            error: format!("{context} {address}: {err}"),
        };
        let channel = match &self.channel {
            Some(channel) => channel.clone(),
            None => {
                let channel = self
                    .runtime
                    .block_on(self.endpoint.connect())
                    .map_err(|err| failure(&self.address, "connecting to", &err))?;
                self.channel = Some(channel.clone());
                channel
            }
        };
        let mut answer = self.call(&channel, ROUTES[self.route], batch);
        while matches!(&answer, Err(status) if status.code() == Code::Unimplemented)
            && self.route + 1 < ROUTES.len()
        {
            self.route += 1;
            answer = self.call(&channel, ROUTES[self.route], batch);
        }
        match answer {
            Ok(response) if response.get_ref().success => Ok(Delivered {
                refused: 0,
                note: None,
            }),
            Ok(_) => Err(failure(
                &self.address,
                "call to",
                &"the server answered success=false",
            )),
            Err(status) => {
                if status.code() == Code::Unimplemented {
                    // No route is served there (yet): start over after the backoff.
                    self.route = 0;
                }
                Err(failure(&self.address, "call to", &status))
            }
        }
    }

    fn disconnect(&mut self) {
        self.channel = None;
    }
}
