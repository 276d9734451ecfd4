//! What the integration tests share: the shared vectors, and a small TCP server on a free
//! loopback port that decodes real frames (and answers the acknowledged mode), so the client
//! is tested over real sockets. The real log_server runs the conformance program
//! (tests/interop in the repository).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use log_server_client::frame::{decode_packed, FrameDecoder, Hello, ACK_HELLO};
use log_server_client::{Level, Message};

pub fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schema/vectors/vectors.json")
}

/// One case of schema/vectors/vectors.json: its name, its fields as a message, the packed hex.
pub struct Case {
    pub name: String,
    pub message: Message,
    pub packed: Vec<u8>,
}

pub fn message_from_fields(fields: &serde_json::Value) -> Message {
    let text = |name: &str| -> String {
        fields[name]
            .as_str()
            .unwrap_or_else(|| panic!("field {name} missing"))
            .to_owned()
    };
    Message {
        timestamp: text("timestamp"),
        hostname: text("hostname"),
        logger_name: text("logger_name"),
        module: text("module"),
        level: Level::from_name(&text("level")).expect("known level"),
        filename: text("filename"),
        function_name: text("function_name"),
        line_number: text("line_number"),
        message: text("message"),
        path_name: text("path_name"),
        process_id: text("process_id"),
        process_name: text("process_name"),
        thread_id: text("thread_id"),
        thread_name: text("thread_name"),
        service_name: text("service_name"),
        stack_trace: text("stack_trace"),
        attributes: fields["attributes"]
            .as_array()
            .expect("attributes list")
            .iter()
            .map(|pair| {
                (
                    pair["key"].as_str().unwrap().to_owned(),
                    pair["value"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    }
}

pub fn load_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(vectors_path()).expect("schema/vectors/vectors.json");
    let file: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
    assert_eq!(file["format"], 1);
    file["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().unwrap().to_owned(),
            message: message_from_fields(&case["fields"]),
            packed: hex(case["packed"].as_str().unwrap()),
        })
        .collect()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The lock even when a panicking thread poisoned it: the test server must still shut down
/// (from Drop, while a failed test unwinds) instead of panicking again and aborting the binary.
fn lock(received: &Mutex<Received>) -> MutexGuard<'_, Received> {
    received.lock().unwrap_or_else(|poison| poison.into_inner())
}

#[derive(Default)]
struct Received {
    messages: Vec<Message>,
    connections: usize,
    /// The HelloMsg of each connection, in order (a server started with `start_original`).
    hellos: Vec<Hello>,
}

/// A TCP server on 127.0.0.1 that records every decoded message. With `ack`, it answers the
/// hello and acknowledges each frame, unless `hold_acks` is set. Started with
/// `start_original`, it requires a HelloMsg first on every connection, as the original
/// project's server does.
pub struct TestServer {
    pub address: String,
    received: Arc<(Mutex<Received>, Condvar)>,
    pub hold_acks: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    live: Arc<AtomicUsize>,
    listener: Option<std::thread::JoinHandle<()>>,
    ack: bool,
    hello: bool,
}

impl TestServer {
    pub fn start(ack: bool) -> TestServer {
        Self::start_at("127.0.0.1:0", ack)
    }

    pub fn start_original() -> TestServer {
        Self::with_state("127.0.0.1:0", false, true, Arc::default())
    }

    fn start_at(address: &str, ack: bool) -> TestServer {
        Self::with_state(address, ack, false, Arc::default())
    }

    fn with_state(
        address: &str,
        ack: bool,
        hello: bool,
        received: Arc<(Mutex<Received>, Condvar)>,
    ) -> TestServer {
        let listener = TcpListener::bind(address).expect("bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let hold_acks = Arc::new(AtomicBool::new(false));
        let live = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (received, stop, hold_acks, live) = (
                received.clone(),
                stop.clone(),
                hold_acks.clone(),
                live.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            lock(&received.0).connections += 1;
                            let (received, stop, hold_acks, live) = (
                                received.clone(),
                                stop.clone(),
                                hold_acks.clone(),
                                live.clone(),
                            );
                            live.fetch_add(1, Ordering::SeqCst);
                            std::thread::spawn(move || {
                                serve(stream, ack, hello, &received, &stop, &hold_acks);
                                live.fetch_sub(1, Ordering::SeqCst);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        TestServer {
            address,
            received,
            hold_acks,
            stop,
            live,
            listener: Some(thread),
            ack,
            hello,
        }
    }

    pub fn messages(&self) -> Vec<Message> {
        lock(&self.received.0).messages.clone()
    }

    pub fn connections(&self) -> usize {
        lock(&self.received.0).connections
    }

    pub fn hellos(&self) -> Vec<Hello> {
        lock(&self.received.0).hellos.clone()
    }

    /// Waits (10 s at most) until `count` messages have arrived, and returns them.
    pub fn wait_messages(&self, count: usize) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let (lock, arrived) = &*self.received;
        let mut state = self::lock(lock);
        while state.messages.len() < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                let arrived = state.messages.len();
                drop(state);
                panic!("{arrived} of {count} messages arrived");
            };
            state = arrived
                .wait_timeout(state, left)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
        state.messages.clone()
    }

    /// Closes every connection and the listener, then listens again on the same port with
    /// the messages kept: a server restart as the client sees it.
    pub fn restart(&mut self) {
        self.shut();
        let address = self.address.clone();
        let received = self.received.clone();
        let hold = self.hold_acks.load(Ordering::SeqCst);
        *self = TestServer::with_state(&address, self.ack, self.hello, received);
        self.hold_acks.store(hold, Ordering::SeqCst);
    }

    fn shut(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.listener.take() {
            // A listener that panicked already reported it; panicking here again (in Drop,
            // while a failed test unwinds) would abort every test of the binary.
            if thread.join().is_err() && !std::thread::panicking() {
                panic!("the test server's listener thread panicked");
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shut();
    }
}

fn serve(
    mut stream: TcpStream,
    ack: bool,
    mut greeted: bool,
    received: &(Mutex<Received>, Condvar),
    stop: &AtomicBool,
    hold_acks: &AtomicBool,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut decoder = FrameDecoder::default();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut hello = ack;
    let mut count = 0u64;
    let mut acked = 0u64;
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(n) => decoder.feed(&buffer[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
        if hello {
            let Some(bytes) = decoder.take_bytes::<8>() else {
                continue;
            };
            assert_eq!(&bytes, ACK_HELLO, "the client opens with the hello");
            if stream.write_all(ACK_HELLO).is_err() {
                return;
            }
            hello = false;
        }
        while let Some(payload) = decoder.next_payload() {
            if greeted {
                // Unpacked: starts with the segment count - 1 = 0 (a packed frame never does).
                assert_eq!(
                    payload[..4],
                    [0, 0, 0, 0],
                    "the connection opens with a HelloMsg"
                );
                let hello = Hello::decode(&payload).expect("a valid HelloMsg");
                self::lock(&received.0).hellos.push(hello);
                greeted = false;
                continue;
            }
            let message = decode_packed(&payload).expect("the client sends valid LoggerMsg");
            let (lock, arrived) = received;
            self::lock(lock).messages.push(message);
            arrived.notify_all();
            count += 1;
        }
        if ack && !hold_acks.load(Ordering::SeqCst) && acked < count {
            acked = count;
            if stream.write_all(&acked.to_be_bytes()).is_err() {
                return;
            }
        }
    }
}
