//! The sender's side of a connection: deliver one batch, confirmed per the mode. TCP lives
//! here; gRPC in `grpc.rs`. Whether and when to retry is the sender's decision.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::{Builder, Error};
use crate::frame::{encode_frame, AckDecoder, Hello, ACK_HELLO};
use crate::message::Message;

#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Tcp(String),
    #[cfg(unix)]
    Unix(PathBuf),
    #[cfg(feature = "grpc")]
    Grpc(String),
}

/// A batch delivered: `refused` of its messages could not be encoded and were dropped
/// (`note` says why).
pub(crate) struct Delivered {
    pub refused: usize,
    pub note: Option<String>,
}

/// A batch not (fully) delivered: its first `delivered` messages were confirmed before
/// `error`; the rest are to be sent again on a new connection.
pub(crate) struct Failure {
    pub delivered: usize,
    pub error: String,
}

impl Failure {
    fn new(delivered: usize, context: &str, err: impl std::fmt::Display) -> Failure {
        Failure {
            delivered,
            error: format!("{context}: {err}"),
        }
    }
}

/// Moves more queued messages onto the end of the batch (how many), so that a transport
/// waiting for acknowledgements keeps sending instead of stalling the queue.
pub(crate) type Refill<'a> = dyn FnMut(&mut VecDeque<Message>) -> usize + 'a;

pub(crate) trait Transport: Send {
    /// Delivers `batch`; it may grow it through `refill` while it waits for confirmation, and
    /// then delivers (or reports on) the whole grown batch.
    fn deliver(
        &mut self,
        batch: &mut VecDeque<Message>,
        refill: &mut Refill<'_>,
    ) -> Result<Delivered, Failure>;
    fn disconnect(&mut self);
}

pub(crate) fn open(endpoint: &Endpoint, settings: &Builder) -> Result<Box<dyn Transport>, Error> {
    Ok(match endpoint {
        Endpoint::Tcp(_) => Box::new(TcpTransport::new(endpoint.clone(), settings)),
        #[cfg(unix)]
        Endpoint::Unix(_) => Box::new(TcpTransport::new(endpoint.clone(), settings)),
        #[cfg(feature = "grpc")]
        Endpoint::Grpc(address) => Box::new(crate::grpc::GrpcTransport::new(address, settings)?),
    })
}

enum Connection {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Connection {
    fn set_timeouts(&self, io_timeout: Duration) -> io::Result<()> {
        let timeout = Some(io_timeout).filter(|t| !t.is_zero());
        match self {
            Connection::Tcp(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
            #[cfg(unix)]
            Connection::Unix(stream) => {
                stream.set_read_timeout(timeout)?;
                stream.set_write_timeout(timeout)
            }
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Connection::Tcp(stream) => stream.set_read_timeout(timeout),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.set_read_timeout(timeout),
        }
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Connection::Tcp(stream) => stream.set_nonblocking(nonblocking),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.set_nonblocking(nonblocking),
        }
    }

    /// The socket's own address and the peer's, as the hello names them (`ip:port`; a Unix
    /// socket's paths, empty when unnamed).
    fn addresses(&self) -> io::Result<(String, String)> {
        match self {
            Connection::Tcp(stream) => Ok((
                stream.local_addr()?.to_string(),
                stream.peer_addr()?.to_string(),
            )),
            #[cfg(unix)]
            Connection::Unix(stream) => {
                let path = |addr: std::os::unix::net::SocketAddr| {
                    addr.as_pathname()
                        .map(|path| path.display().to_string())
                        .unwrap_or_default()
                };
                Ok((path(stream.local_addr()?), path(stream.peer_addr()?)))
            }
        }
    }

    /// Whether the server has closed its side. Outside acknowledged mode the server never
    /// writes, so anything readable means it went away (a restart): bytes written into such
    /// a socket would vanish without an error.
    fn peer_closed(&mut self) -> bool {
        if self.set_nonblocking(true).is_err() {
            return true;
        }
        let mut byte = [0u8; 1];
        let closed = match self.read(&mut byte) {
            Err(err) => err.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        };
        closed || self.set_nonblocking(false).is_err()
    }
}

impl Read for Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => stream.read(buf),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Connection {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Connection::Tcp(stream) => stream.write(buf),
            #[cfg(unix)]
            Connection::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The TCP protocol (also on a Unix socket): frames written in one go per batch; in
/// acknowledged mode the batch counts once the server's count covers it.
pub(crate) struct TcpTransport {
    endpoint: Endpoint,
    connect_timeout: Duration,
    io_timeout: Duration,
    ack: bool,
    /// `fromName` and `fromHost` of the `HelloMsg` each connection opens with, if any.
    hello: Option<(String, String)>,
    max_frame_bytes: usize,
    connection: Option<Connection>,
    acks: AckDecoder,
    /// Frames sent on the current connection (what the server's count is compared with).
    sent: u64,
    frames: Vec<u8>,
    /// For each frame of the batch, how many batch messages it completes (refused ones skip).
    frame_ends: Vec<usize>,
}

impl TcpTransport {
    fn new(endpoint: Endpoint, settings: &Builder) -> TcpTransport {
        let (connect_timeout, io_timeout) = settings.timeouts();
        TcpTransport {
            endpoint,
            connect_timeout,
            io_timeout,
            ack: settings.is_ack(),
            hello: settings.hello_names(),
            max_frame_bytes: settings.frame_limit(),
            connection: None,
            acks: AckDecoder::default(),
            sent: 0,
            frames: Vec::new(),
            frame_ends: Vec::new(),
        }
    }

    fn connect(&self) -> io::Result<Connection> {
        let connection = match &self.endpoint {
            Endpoint::Tcp(address) => {
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "address resolves to nothing");
                let mut found = None;
                for addr in address.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, self.connect_timeout) {
                        Ok(stream) => {
                            found = Some(stream);
                            break;
                        }
                        Err(err) => last = err,
                    }
                }
                let stream = found.ok_or(last)?;
                stream.set_nodelay(true)?;
                Connection::Tcp(stream)
            }
            #[cfg(unix)]
            Endpoint::Unix(path) => Connection::Unix(UnixStream::connect(path)?),
            #[cfg(feature = "grpc")]
            Endpoint::Grpc(_) => unreachable!("gRPC endpoints use GrpcTransport"),
        };
        connection.set_timeouts(self.io_timeout)?;
        Ok(connection)
    }

    fn handshake(connection: &mut Connection) -> io::Result<()> {
        connection.write_all(ACK_HELLO)?;
        let mut answer = [0u8; 8];
        connection.read_exact(&mut answer).map_err(|err| {
            io::Error::new(
                err.kind(),
                format!("no acknowledged-mode answer (server too old?): {err}"),
            )
        })?;
        if &answer != ACK_HELLO {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server answered the acknowledged-mode hello with something else",
            ));
        }
        Ok(())
    }

    /// The original server's `HelloMsg`, before anything else on the connection.
    fn say_hello(connection: &mut Connection, from_name: &str, from_host: &str) -> io::Result<()> {
        let (from_address, to_address) = connection.addresses()?;
        let hello = Hello {
            from_name: from_name.to_owned(),
            from_host: from_host.to_owned(),
            from_address,
            to_address,
            from_public_ip: String::new(),
        };
        let mut frame = Vec::new();
        hello.encode(&mut frame);
        connection.write_all(&frame)
    }

    fn connection(&mut self) -> io::Result<&mut Connection> {
        if !self.ack
            && self
                .connection
                .as_mut()
                .is_some_and(Connection::peer_closed)
        {
            self.connection = None;
        }
        if self.connection.is_none() {
            let mut connection = self.connect()?;
            if let Some((name, host)) = &self.hello {
                Self::say_hello(&mut connection, name, host)?;
            }
            if self.ack {
                Self::handshake(&mut connection)?;
            }
            self.acks = AckDecoder::default();
            self.sent = 0;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("connected above"))
    }

    /// Encodes `messages` (batch positions from `offset`) onto `self.frames` and
    /// `self.frame_ends`; counts the refused ones.
    fn encode<'m>(
        &mut self,
        messages: impl Iterator<Item = &'m Message>,
        offset: usize,
        refused: &mut usize,
        note: &mut Option<String>,
    ) {
        for (index, message) in messages.enumerate() {
            match encode_frame(message, self.max_frame_bytes, &mut self.frames) {
                Ok(()) => self.frame_ends.push(offset + index + 1),
                Err(err) => {
                    *refused += 1;
                    *note = Some(format!("message dropped: {err}"));
                }
            }
        }
    }

    /// Writes `self.frames` on the (re)opened connection.
    fn write_frames(&mut self) -> Result<(), Failure> {
        let frames = std::mem::take(&mut self.frames);
        let written = self
            .connection()
            .and_then(|connection| connection.write_all(&frames));
        self.frames = frames;
        self.frames.clear();
        written.map_err(|err| Failure::new(0, &format!("sending to {}", self.describe()), err))
    }

    /// Reads counts until the server has acknowledged every frame sent on this connection
    /// (`base` is the count before the batch). Meanwhile new messages are taken with
    /// `refill` and sent too, so held acknowledgements do not stall the queue behind one
    /// batch; an `io_timeout` without any acknowledgement ends the connection.
    fn await_acks(
        &mut self,
        base: u64,
        batch: &mut VecDeque<Message>,
        refill: &mut Refill<'_>,
        refused: &mut usize,
        note: &mut Option<String>,
    ) -> Result<(), Failure> {
        let mut buffer = [0u8; 64];
        let slice = Some(ACK_POLL);
        let mut last_progress = Instant::now();
        while self.acks.acknowledged() < self.sent {
            let partial = self.acks.acknowledged().saturating_sub(base) as usize;
            let delivered = partial.checked_sub(1).map_or(0, |frame| {
                self.frame_ends[frame.min(self.frame_ends.len() - 1)]
            });
            let offset = batch.len();
            if refill(batch) > 0 {
                self.encode(batch.range(offset..), offset, refused, note);
                let frames = self.frame_ends.len() as u64 - (self.sent - base);
                if frames > 0 {
                    self.write_frames().map_err(|failure| Failure {
                        delivered,
                        ..failure
                    })?;
                    self.sent += frames;
                }
            }
            let connection = self.connection.as_mut().expect("connected");
            let read = connection
                .set_read_timeout(slice)
                .and_then(|()| connection.read(&mut buffer));
            match read {
                Ok(0) => {
                    return Err(Failure::new(
                        delivered,
                        "waiting for acknowledgements",
                        "connection closed by the server",
                    ))
                }
                Ok(n) => {
                    self.acks.feed(&buffer[..n]);
                    last_progress = Instant::now();
                }
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                    ) =>
                {
                    if !self.io_timeout.is_zero() && last_progress.elapsed() >= self.io_timeout {
                        return Err(Failure::new(
                            delivered,
                            "waiting for acknowledgements",
                            io::Error::new(io::ErrorKind::TimedOut, "no acknowledgement in time"),
                        ));
                    }
                }
                Err(err) => {
                    return Err(Failure::new(delivered, "waiting for acknowledgements", err))
                }
            }
        }
        Ok(())
    }
}

/// How long one read for acknowledgements blocks before the sender looks for new messages.
const ACK_POLL: Duration = Duration::from_millis(5);

impl Transport for TcpTransport {
    fn deliver(
        &mut self,
        batch: &mut VecDeque<Message>,
        refill: &mut Refill<'_>,
    ) -> Result<Delivered, Failure> {
        self.frames.clear();
        self.frame_ends.clear();
        let mut refused = 0;
        let mut note = None;
        self.encode(batch.iter(), 0, &mut refused, &mut note);
        if self.frame_ends.is_empty() {
            return Ok(Delivered { refused, note });
        }
        self.write_frames()?;
        let base = self.sent;
        self.sent += self.frame_ends.len() as u64;
        if self.ack {
            self.await_acks(base, batch, refill, &mut refused, &mut note)?;
        }
        Ok(Delivered { refused, note })
    }

    fn disconnect(&mut self) {
        self.connection = None;
    }
}

impl TcpTransport {
    fn describe(&self) -> String {
        match &self.endpoint {
            Endpoint::Tcp(address) => address.clone(),
            #[cfg(unix)]
            Endpoint::Unix(path) => path.display().to_string(),
            #[cfg(feature = "grpc")]
            Endpoint::Grpc(address) => address.clone(),
        }
    }
}
