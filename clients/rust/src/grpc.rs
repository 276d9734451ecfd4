//! gRPC transport (feature `grpc`): each batch is one `LogBatch` call on a tonic channel,
//! driven by a small tokio runtime owned by the sender thread, so the program needs no
//! runtime of its own. A server that answers `UNIMPLEMENTED` (older than `LogBatch`) gets
//! the batch on one `StreamLogs` call instead.

use std::collections::VecDeque;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::client::{Builder, Error};
use crate::logservice::log_service_client::LogServiceClient;
use crate::logservice::{Attribute, LogBatchRequest, LogRequest};
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

pub(crate) struct GrpcTransport {
    runtime: tokio::runtime::Runtime,
    endpoint: Endpoint,
    client: Option<LogServiceClient<Channel>>,
    ack: bool,
    stream_fallback: bool,
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
            client: None,
            ack: settings.is_ack(),
            stream_fallback: false,
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
}

impl Transport for GrpcTransport {
    fn deliver(
        &mut self,
        batch: &mut VecDeque<Message>,
        _refill: &mut Refill<'_>,
    ) -> Result<Delivered, Failure> {
        // One call confirms or fails the whole batch: nothing to send while waiting.
        let batch = batch.make_contiguous();
        let requests: Vec<LogRequest> = batch.iter().map(to_request).collect();
        let failure = |context: &str, err: &dyn std::fmt::Display| Failure {
            delivered: 0,
            error: format!("{context} {}: {err}", self.address),
        };
        let mut client = match &self.client {
            Some(client) => client.clone(),
            None => {
                let channel = self
                    .runtime
                    .block_on(self.endpoint.connect())
                    .map_err(|err| failure("connecting to", &err))?;
                let client = LogServiceClient::new(channel);
                self.client = Some(client.clone());
                client
            }
        };
        let answer = if self.stream_fallback {
            let request = self.request(tokio_stream::iter(requests));
            self.runtime.block_on(client.stream_logs(request))
        } else {
            let request = self.request(LogBatchRequest { requests });
            match self.runtime.block_on(client.log_batch(request)) {
                Err(status) if status.code() == Code::Unimplemented => {
                    self.stream_fallback = true;
                    let requests: Vec<LogRequest> = batch.iter().map(to_request).collect();
                    let request = self.request(tokio_stream::iter(requests));
                    self.runtime.block_on(client.stream_logs(request))
                }
                answer => answer,
            }
        };
        match answer {
            Ok(response) if response.get_ref().success => Ok(Delivered {
                refused: 0,
                note: None,
            }),
            Ok(_) => Err(failure("call to", &"the server answered success=false")),
            Err(status) => Err(failure("call to", &status)),
        }
    }

    fn disconnect(&mut self) {
        self.client = None;
    }
}
