//! Byte relay for native gRPC behind the gRPC-Web front listener (sources/grpc_web.py).
//!
//! Relaying in Python costs the event loop (and the GIL) a callback and a copy per chunk in
//! each direction, on the same thread as every call's handler: about a quarter of native
//! gRPC's unary rate on this machine (docs/benchmarks.md). Here each relayed connection gets
//! two plain threads that copy with blocking reads and writes, without the GIL.

use pyo3::prelude::*;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

/// Relayed connections still open (the front counts them against --max_connections).
static OPEN: AtomicUsize = AtomicUsize::new(0);
/// Bytes copied per read: grpcio writes HTTP/2 frames of up to 16 KiB, several at once.
const CHUNK_BYTES: usize = 64 * 1024;
/// Stack of a copy thread: it holds one chunk buffer (on the heap) and little else.
const THREAD_STACK_BYTES: usize = 64 * 1024;

/// Take `client_fd` (a connected TCP socket; this function owns it from now on), and on a
/// thread of its own connect to the Unix socket `upstream`, send `first` (the bytes the
/// front already read), then copy both ways until both directions have ended. Returns at
/// once; if grpcio cannot be reached the client's connection is closed.
#[pyfunction]
pub fn relay_to_unix(client_fd: RawFd, upstream: &str, first: &[u8]) -> PyResult<()> {
    // SAFETY: the caller hands over an open socket descriptor that nothing else uses.
    let client = unsafe { TcpStream::from_raw_fd(client_fd) };
    client.set_nonblocking(false)?; // it comes from an event loop
    client.set_nodelay(true)?;
    let (upstream, first) = (upstream.to_owned(), first.to_vec());
    OPEN.fetch_add(1, Ordering::Relaxed);
    let spawned = spawn("grpc-relay-up", move || {
        if relay(client, &upstream, &first).is_err() {
            OPEN.fetch_sub(1, Ordering::Relaxed);
        }
    });
    if let Err(exc) = spawned {
        OPEN.fetch_sub(1, Ordering::Relaxed);
        return Err(exc.into());
    }
    Ok(())
}

/// Relayed connections open now.
#[pyfunction]
pub fn relayed_connections() -> usize {
    OPEN.load(Ordering::Relaxed)
}

fn spawn(name: &str, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread::Builder::new()
        .name(name.into())
        .stack_size(THREAD_STACK_BYTES)
        .spawn(job)
        .map(drop)
}

/// Runs on the up thread: connect, start the down thread, copy client -> grpcio. An error
/// before both threads run means the relay never started (the caller uncounts it).
fn relay(client: TcpStream, upstream: &str, first: &[u8]) -> io::Result<()> {
    let mut server = UnixStream::connect(upstream)?;
    server.write_all(first)?;
    let halves = Arc::new(AtomicUsize::new(2));
    let (mut client_in, mut server_out) = (client.try_clone()?, server.try_clone()?);
    let down_halves = Arc::clone(&halves);
    spawn("grpc-relay-down", move || {
        let (mut reader, mut writer) = (server, client);
        let ended = copy(&mut reader, &mut writer);
        end_half(ended, &reader, &writer, &down_halves, true);
    })?;
    let ended = copy(&mut client_in, &mut server_out);
    end_half(ended, &client_in, &server_out, &halves, false);
    Ok(())
}

trait Shut {
    fn shut(&self, how: Shutdown);
}

impl Shut for TcpStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

impl Shut for UnixStream {
    fn shut(&self, how: Shutdown) {
        let _ = self.shutdown(how);
    }
}

/// One direction is over. The client's end of stream is passed on as a half-close (grpcio
/// may still answer); grpcio's end of stream, or an error either way, closes both sockets
/// both ways, so the other thread's blocking read returns too (a client that never closes
/// cannot hold a thread).
fn end_half(
    ended: io::Result<()>,
    reader: &impl Shut,
    writer: &impl Shut,
    halves: &AtomicUsize,
    closes_all: bool,
) {
    if ended.is_ok() && !closes_all {
        writer.shut(Shutdown::Write);
    } else {
        reader.shut(Shutdown::Both);
        writer.shut(Shutdown::Both);
    }
    if halves.fetch_sub(1, Ordering::AcqRel) == 1 {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

fn copy(reader: &mut impl Read, writer: &mut impl Write) -> io::Result<()> {
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(exc) if exc.kind() == io::ErrorKind::Interrupted => continue,
            Err(exc) => return Err(exc),
        };
        writer.write_all(&buffer[..n])?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    /// grpcio's stand-in: echoes what it reads until the client half-closes, then closes.
    fn echo_server(path: &std::path::Path) -> thread::JoinHandle<Vec<u8>> {
        let listener = UnixListener::bind(path).unwrap();
        thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let n = conn.read(&mut buffer).unwrap();
                if n == 0 {
                    return seen;
                }
                seen.extend_from_slice(&buffer[..n]);
                conn.write_all(&buffer[..n]).unwrap();
            }
        })
    }

    #[test]
    fn relays_both_ways_first_bytes_first_and_passes_the_half_close_on() {
        let dir = std::env::temp_dir().join(format!("relay-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grpc.sock");
        let _ = std::fs::remove_file(&path);
        let server = echo_server(&path);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let upstream = path.to_str().unwrap().to_owned();
        let relaying = thread::spawn(move || relay(accepted, &upstream, b"PRI *"));
        let mut client_in = client.try_clone().unwrap();
        let reading = thread::spawn(move || {
            let mut back = Vec::new();
            client_in.read_to_end(&mut back).unwrap();
            back
        });
        let big = vec![7u8; 300_000]; // several chunks, more than a socket buffer
        client.write_all(&big).unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        let back = reading.join().unwrap();
        relaying.join().unwrap().unwrap();
        let seen = server.join().unwrap();
        assert_eq!(&seen[..5], b"PRI *");
        assert_eq!(seen.len(), 5 + big.len());
        assert_eq!(back, seen, "everything came back, in order, then the close");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreachable_upstream_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(relay(accepted, "/nonexistent/grpc.sock", b"").is_err());
    }
}
