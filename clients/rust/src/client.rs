//! The client: a bounded queue in front of one background sender thread that batches,
//! reconnects with backoff and confirms delivery per the chosen mode.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::message::{now_timestamp, process_info, with_thread, Level, Message};
use crate::transport::{Endpoint, Transport};

/// Messages held for the sender before new ones are refused (the Python client's default).
pub const DEFAULT_QUEUE_CAPACITY: usize = 100_000;
/// Messages per write or `LogBatch` call at most: ~1,000 is where the server's per-message
/// cost flattens out (docs/protocol.md), and a batch stays well under the frame limits.
pub const DEFAULT_MAX_BATCH: usize = 1_000;

/// What the client could not do.
#[derive(Debug)]
pub enum Error {
    /// The queue was full; the message was dropped and counted in [`Client::dropped`].
    QueueFull,
    /// The client was shut down; the message was not queued.
    Closed,
    /// A flush or shutdown reached its deadline with `count` messages not confirmed delivered.
    Undelivered {
        count: u64,
        last_error: Option<String>,
    },
    /// The builder's settings cannot work (e.g. no address).
    Config(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::QueueFull => f.write_str("log_server client queue is full: message dropped"),
            Error::Closed => f.write_str("log_server client is shut down"),
            Error::Undelivered { count, last_error } => {
                write!(f, "{count} messages not delivered")?;
                if let Some(err) = last_error {
                    write!(f, " (last error: {err})")?;
                }
                Ok(())
            }
            Error::Config(reason) => write!(f, "log_server client: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// What [`Client::send`] does when the queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFull {
    /// Drop the new message and count it (never blocks the program; the default).
    Drop,
    /// Wait up to this long for room, then drop and count it.
    Block(Duration),
}

/// Settings of a [`Client`]; start from [`Client::builder`].
#[derive(Clone, Debug)]
pub struct Builder {
    endpoint: Option<Endpoint>,
    hostname: Option<String>,
    service_name: String,
    logger_name: String,
    queue_capacity: usize,
    max_batch: usize,
    on_full: OnFull,
    ack: bool,
    /// `Some`: open every TCP connection with a `HelloMsg`; `Some(None)` names it after the
    /// service (see [`Builder::hello`]).
    hello: Option<Option<String>>,
    connect_timeout: Duration,
    io_timeout: Duration,
    reconnect_initial: Duration,
    reconnect_max: Duration,
    shutdown_timeout: Duration,
    max_frame_bytes: usize,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            endpoint: None,
            hostname: None,
            service_name: String::new(),
            logger_name: String::new(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_batch: DEFAULT_MAX_BATCH,
            on_full: OnFull::Drop,
            ack: false,
            hello: None,
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(5),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

impl Builder {
    /// The TCP protocol at `HOST:PORT` (the server's default is `127.0.0.1:4020`).
    pub fn address(mut self, address: impl Into<String>) -> Builder {
        self.endpoint = Some(Endpoint::Tcp(address.into()));
        self
    }

    /// The TCP protocol on the server's `--unix_socket PATH`.
    #[cfg(unix)]
    pub fn unix_socket(mut self, path: impl Into<PathBuf>) -> Builder {
        self.endpoint = Some(Endpoint::Unix(path.into()));
        self
    }

    /// gRPC at `HOST:PORT` (default `127.0.0.1:4021`): each batch is one `LogBatch` call
    /// (`StreamLogs` with a server that predates it).
    #[cfg(feature = "grpc")]
    pub fn grpc(mut self, address: impl Into<String>) -> Builder {
        self.endpoint = Some(Endpoint::Grpc(address.into()));
        self
    }

    /// The hostname of every message [`Client::log`] makes (default: this machine's).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Builder {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn service_name(mut self, name: impl Into<String>) -> Builder {
        self.service_name = name.into();
        self
    }

    /// The logger name of messages that do not name one.
    pub fn logger_name(mut self, name: impl Into<String>) -> Builder {
        self.logger_name = name.into();
        self
    }

    pub fn queue_capacity(mut self, messages: usize) -> Builder {
        self.queue_capacity = messages;
        self
    }

    pub fn max_batch(mut self, messages: usize) -> Builder {
        self.max_batch = messages;
        self
    }

    pub fn on_full(mut self, on_full: OnFull) -> Builder {
        self.on_full = on_full;
        self
    }

    /// Acknowledged mode (docs/protocol.md): a message counts as delivered only once the
    /// server reports it on disk, and is sent again after a reconnect until then.
    /// At-least-once: a message may appear twice, never not at all.
    pub fn ack(mut self, ack: bool) -> Builder {
        self.ack = ack;
        self
    }

    /// Opens every TCP (re)connection with a `HelloMsg` frame, as the original project's
    /// server requires (it drops a connection's messages without one). Only for that
    /// server: log_server recognises the hello and does not need it. Its `fromName` is the
    /// service name, else the logger name, else `log_server_client`. The original server
    /// never answers, so this cannot be combined with [`ack`](Builder::ack), nor with gRPC
    /// (there it is the fallback to `LogBridge` that does the work): `build` refuses both.
    pub fn hello(mut self, hello: bool) -> Builder {
        self.hello = hello.then_some(None);
        self
    }

    /// [`hello`](Builder::hello) on, with this `fromName`.
    pub fn hello_name(mut self, name: impl Into<String>) -> Builder {
        self.hello = Some(Some(name.into()));
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Builder {
        self.connect_timeout = timeout;
        self
    }

    /// How long one write, acknowledgement or gRPC call may take before the connection is
    /// given up and made again.
    pub fn io_timeout(mut self, timeout: Duration) -> Builder {
        self.io_timeout = timeout;
        self
    }

    /// Reconnect waits: `initial`, doubling up to `max`.
    pub fn reconnect_backoff(mut self, initial: Duration, max: Duration) -> Builder {
        self.reconnect_initial = initial;
        self.reconnect_max = max;
        self
    }

    /// How long dropping the last handle of the client waits for delivery.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.shutdown_timeout = timeout;
        self
    }

    /// The server's `--max_frame_size`: larger messages are dropped and counted, not sent.
    pub fn max_frame_bytes(mut self, bytes: usize) -> Builder {
        self.max_frame_bytes = bytes;
        self
    }

    /// Starts the sender thread. Nothing connects yet: the first batch does, so a server that
    /// is down does not stop the program from starting.
    pub fn build(self) -> Result<Client, Error> {
        let endpoint = self.endpoint.clone().ok_or_else(|| {
            Error::Config("no address: call .address(), .unix_socket() or .grpc()".into())
        })?;
        if self.queue_capacity == 0 || self.max_batch == 0 {
            return Err(Error::Config(
                "queue_capacity and max_batch must be at least 1".into(),
            ));
        }
        if self.hello.is_some() && self.ack {
            return Err(Error::Config(
                "hello is for the original server, which never acknowledges: not with ack".into(),
            ));
        }
        #[cfg(feature = "grpc")]
        if self.hello.is_some() && matches!(endpoint, Endpoint::Grpc(_)) {
            return Err(Error::Config(
                "hello is for the TCP protocol; over gRPC the client falls back to LogBridge by itself"
                    .into(),
            ));
        }
        let transport = crate::transport::open(&endpoint, &self)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let sender = Sender {
            shared: Arc::clone(&shared),
            transport,
            backoff: Backoff::new(self.reconnect_initial, self.reconnect_max),
            max_batch: self.max_batch,
            queue_capacity: self.queue_capacity,
        };
        let thread = std::thread::Builder::new()
            .name("log_server-sender".into())
            .spawn(move || sender.run())
            .map_err(|err| Error::Config(format!("cannot start the sender thread: {err}")))?;
        let info = process_info();
        Ok(Client {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(Some(thread)),
                hostname: self
                    .hostname
                    .clone()
                    .unwrap_or_else(|| info.hostname.clone()),
                settings: self,
            }),
        })
    }

    pub(crate) fn timeouts(&self) -> (Duration, Duration) {
        (self.connect_timeout, self.io_timeout)
    }

    pub(crate) fn is_ack(&self) -> bool {
        self.ack
    }

    pub(crate) fn frame_limit(&self) -> usize {
        self.max_frame_bytes
    }

    /// The `fromName` and `fromHost` of the hello, when it is on.
    pub(crate) fn hello_names(&self) -> Option<(String, String)> {
        let name = self.hello.as_ref()?.clone().unwrap_or_else(|| {
            [&self.service_name, &self.logger_name]
                .into_iter()
                .find(|name| !name.is_empty())
                .map_or_else(|| "log_server_client".to_owned(), String::clone)
        });
        let host = self
            .hostname
            .clone()
            .unwrap_or_else(|| process_info().hostname.clone());
        Some((name, host))
    }
}

#[derive(Default)]
struct State {
    queue: VecDeque<Message>,
    /// Taken by the sender, not yet confirmed.
    in_flight: usize,
    /// Messages ever queued, and of those the ones confirmed or given up (too large):
    /// flush waits until `settled` passes what `accepted` was when it was called.
    accepted: u64,
    settled: u64,
    sender_waiting: bool,
    closing: bool,
    abandoned: bool,
    sender_done: bool,
    last_error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    /// The sender waits here for messages (and during backoff, for an abandon).
    work: Condvar,
    /// Flush, shutdown and blocked sends wait here for the sender.
    progress: Condvar,
    dropped: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves counters that are still usable.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

/// A handle to the client; clones share one queue and sender thread. When the last handle is
/// dropped, the client shuts down, waiting up to the builder's `shutdown_timeout`.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    hostname: String,
    settings: Builder,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.settings.endpoint)
            .field("queued", &self.queued())
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl Client {
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A message with this process's fields filled in: time, host, logger and service
    /// names, process and thread. Add to it, then [`send`](Client::send) it.
    pub fn message(&self, level: Level, text: impl Into<String>) -> Message {
        let info = process_info();
        let settings = &self.inner.settings;
        with_thread(|thread_id, thread_name| Message {
            timestamp: now_timestamp(),
            hostname: self.inner.hostname.clone(),
            logger_name: settings.logger_name.clone(),
            level,
            message: text.into(),
            process_id: info.process_id.clone(),
            process_name: info.process_name.clone(),
            thread_id: thread_id.to_owned(),
            thread_name: thread_name.to_owned(),
            service_name: settings.service_name.clone(),
            ..Message::default()
        })
    }

    /// Queues a message made by [`message`](Client::message).
    pub fn log(&self, level: Level, text: impl Into<String>) -> Result<(), Error> {
        self.send(self.message(level, text))
    }

    /// Queues a message exactly as given. Never blocks unless the builder chose
    /// [`OnFull::Block`]; a full queue drops the message and counts it.
    pub fn send(&self, message: Message) -> Result<(), Error> {
        let shared = &self.inner.shared;
        let capacity = self.inner.settings.queue_capacity;
        let mut state = shared.lock();
        if state.closing {
            return Err(Error::Closed);
        }
        if state.queue.len() >= capacity {
            if let OnFull::Block(wait) = self.inner.settings.on_full {
                let deadline = Instant::now() + wait;
                while state.queue.len() >= capacity && !state.closing {
                    let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                        break;
                    };
                    state = shared
                        .progress
                        .wait_timeout(state, left)
                        .unwrap_or_else(|poison| poison.into_inner())
                        .0;
                }
            }
            if state.closing {
                return Err(Error::Closed);
            }
            if state.queue.len() >= capacity {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return Err(Error::QueueFull);
            }
        }
        state.queue.push_back(message);
        state.accepted += 1;
        if state.sender_waiting {
            state.sender_waiting = false;
            shared.work.notify_one();
        }
        Ok(())
    }

    /// Waits until every message queued before this call is delivered (per the mode), or
    /// until `timeout`; then says how many were not.
    pub fn flush(&self, timeout: Duration) -> Result<(), Error> {
        let shared = &self.inner.shared;
        let deadline = Instant::now() + timeout;
        let mut state = shared.lock();
        let target = state.accepted;
        if state.sender_waiting {
            state.sender_waiting = false;
            shared.work.notify_one();
        }
        while state.settled < target && !state.sender_done {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            state = shared
                .progress
                .wait_timeout(state, left)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        if state.settled >= target {
            Ok(())
        } else {
            Err(Error::Undelivered {
                count: target - state.settled,
                last_error: state.last_error.clone(),
            })
        }
    }

    /// Stops taking messages, delivers what is queued within `timeout` and stops the sender.
    /// Never waits longer than `timeout`, even when the server is down: then the sender is
    /// abandoned and the error says how many messages were not delivered.
    pub fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        self.inner.shutdown(timeout)
    }

    /// Messages dropped because the queue was full or a message was larger than a frame may be.
    pub fn dropped(&self) -> u64 {
        self.inner.shared.dropped.load(Ordering::Relaxed)
    }

    /// Messages queued or in flight, not yet confirmed.
    pub fn queued(&self) -> u64 {
        let state = self.inner.shared.lock();
        state.accepted - state.settled
    }

    /// The last delivery error (connect, write, acknowledgement, call), if any.
    pub fn last_error(&self) -> Option<String> {
        self.inner.shared.lock().last_error.clone()
    }
}

impl Inner {
    fn shutdown(&self, timeout: Duration) -> Result<(), Error> {
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        let mut state = shared.lock();
        state.closing = true;
        shared.work.notify_one();
        while !state.sender_done {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            state = shared
                .progress
                .wait_timeout(state, left)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        let undelivered = state.accepted - state.settled;
        let last_error = state.last_error.clone();
        if state.sender_done {
            drop(state);
            let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
            if let Some(thread) = thread {
                let _ = thread.join();
            }
        } else {
            // The sender may be inside a connect or write; it stops at its next step, and the
            // program does not wait for it.
            state.abandoned = true;
            shared.work.notify_one();
        }
        if undelivered == 0 {
            Ok(())
        } else {
            Err(Error::Undelivered {
                count: undelivered,
                last_error,
            })
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.shared.lock().closing {
            // Shut down explicitly; that call already reported the outcome.
            return;
        }
        if let Err(err) = self.shutdown(self.settings.shutdown_timeout) {
            // Nothing is lost silently: the program's stderr says what did not arrive.
            eprintln!("log_server client: {err}");
        }
    }
}

struct Sender {
    shared: Arc<Shared>,
    transport: Box<dyn Transport>,
    backoff: Backoff,
    max_batch: usize,
    queue_capacity: usize,
}

impl Sender {
    fn run(mut self) {
        let mut batch: VecDeque<Message> = VecDeque::new();
        loop {
            if batch.is_empty() && !self.take_batch(&mut batch) {
                break;
            }
            let (shared, max_batch, capacity) = (&self.shared, self.max_batch, self.queue_capacity);
            let mut refill =
                |batch: &mut VecDeque<Message>| Self::refill(shared, batch, max_batch, capacity);
            match self.transport.deliver(&mut batch, &mut refill) {
                Ok(delivered) => {
                    self.backoff.reset();
                    let done = batch.len();
                    self.settle(&mut batch, done, delivered.refused, delivered.note);
                }
                Err(failure) => {
                    self.transport.disconnect();
                    let done = failure.delivered.min(batch.len());
                    self.settle(&mut batch, done, 0, Some(failure.error));
                    if !self.wait_backoff() {
                        break;
                    }
                }
            }
        }
        self.transport.disconnect();
        let mut state = self.shared.lock();
        state.sender_done = true;
        self.shared.progress.notify_all();
    }

    /// Moves up to `max_batch` queued messages into the empty `batch`; false once the sender
    /// should stop.
    fn take_batch(&self, batch: &mut VecDeque<Message>) -> bool {
        let mut state = self.shared.lock();
        loop {
            if state.abandoned {
                return false;
            }
            if !state.queue.is_empty() {
                break;
            }
            if state.closing {
                return false;
            }
            state.sender_waiting = true;
            state = self
                .shared
                .work
                .wait(state)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        if state.queue.len() <= self.max_batch {
            // The whole queue at once, without copying messages while the callers wait for
            // the lock; the queue gets the batch's empty buffer back.
            std::mem::swap(&mut state.queue, batch);
        } else {
            batch.extend(state.queue.drain(..self.max_batch));
        }
        state.in_flight = batch.len();
        // Room in the queue: wake sends blocked on a full one.
        self.shared.progress.notify_all();
        true
    }

    /// While a batch waits for acknowledgements: moves up to `max_batch` more queued
    /// messages onto it, keeping at most `capacity` unconfirmed, so sending goes on up to
    /// the queue bound (memory stays within twice `queue_capacity`).
    fn refill(
        shared: &Shared,
        batch: &mut VecDeque<Message>,
        max_batch: usize,
        capacity: usize,
    ) -> usize {
        let room = capacity.saturating_sub(batch.len()).min(max_batch);
        if room == 0 {
            return 0;
        }
        let mut state = shared.lock();
        let taken = room.min(state.queue.len());
        if taken > 0 {
            batch.extend(state.queue.drain(..taken));
            state.in_flight = batch.len();
            shared.progress.notify_all();
        }
        taken
    }

    /// The first `done` messages of `batch` are delivered (`refused` of them given up).
    fn settle(
        &self,
        batch: &mut VecDeque<Message>,
        done: usize,
        refused: usize,
        note: Option<String>,
    ) {
        batch.drain(..done);
        if refused > 0 {
            self.shared
                .dropped
                .fetch_add(refused as u64, Ordering::Relaxed);
        }
        let mut state = self.shared.lock();
        state.settled += done as u64;
        state.in_flight = batch.len();
        if note.is_some() {
            state.last_error = note;
        }
        self.shared.progress.notify_all();
    }

    /// Sleeps the next backoff delay; false when the client was abandoned meanwhile.
    fn wait_backoff(&mut self) -> bool {
        let delay = self.backoff.next_delay();
        let state = self.shared.lock();
        let (state, _) = self
            .shared
            .work
            .wait_timeout_while(state, delay, |state| !state.abandoned)
            .unwrap_or_else(|poison| poison.into_inner());
        !state.abandoned
    }
}
