//! `cargo run --release --example bench --all-features -- --tcp HOST:PORT --grpc HOST:PORT
//! [--count N]`, against a running log_server:
//! - the cost to the calling thread of one `tracing::info!` through [`LogServerLayer`] and,
//!   in the same run, through `tracing_subscriber::fmt` writing to a file;
//! - messages per second into the server over TCP and over gRPC `LogBatch` (queued until
//!   flushed, i.e. written to the socket / accepted by the server).
//!
//! Every loop is bounded by `--count`. Figures go to stdout, one line each.

use std::time::{Duration, Instant};

use log_server_client::{Client, Level, LogServerLayer};
use tracing_subscriber::layer::SubscriberExt;

struct Args {
    tcp: String,
    grpc: String,
    count: usize,
}

fn parse() -> Args {
    let mut args = Args {
        tcp: "127.0.0.1:4020".into(),
        grpc: "127.0.0.1:4021".into(),
        count: 200_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--tcp", Some(v)) => args.tcp = v.clone(),
            ("--grpc", Some(v)) => args.grpc = v.clone(),
            ("--count", Some(v)) => args.count = v.parse().expect("--count N"),
            _ => panic!("usage: bench [--tcp HOST:PORT] [--grpc HOST:PORT] [--count N]"),
        }
    }
    args
}

/// CPU time of the calling thread: on a shared, loaded machine wall time mostly measures
/// the neighbours, while this is what the call costs the thread that logs.
fn thread_cpu() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// (wall, calling thread's CPU) nanoseconds per `tracing::info!` with three fields inside a
/// span with one, under `subscriber`.
fn per_event(subscriber: impl tracing::Subscriber + Send + Sync, count: usize) -> (f64, f64) {
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("request", id = 7);
        let _entered = span.enter();
        let (wall, cpu) = (Instant::now(), thread_cpu());
        for i in 0..count {
            tracing::info!(user = "ann", attempt = i, ok = true, "request handled");
        }
        let per = |d: Duration| d.as_nanos() as f64 / count as f64;
        (per(wall.elapsed()), per(thread_cpu() - cpu))
    })
}

fn client(builder: log_server_client::Builder, count: usize) -> Client {
    builder
        .service_name("bench")
        .queue_capacity(count)
        .build()
        .expect("client")
}

fn tracing_costs(args: &Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ratios = Vec::new();
    // Alternating rounds, so that a noisy neighbour affects both sides alike.
    for round in 0..5 {
        let file = std::fs::File::create(dir.path().join(format!("fmt{round}.log"))).expect("file");
        let fmt = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(file)
                .with_ansi(false),
        );
        let (fmt_wall, fmt_cpu) = per_event(fmt, args.count);

        let ours = client(Client::builder().address(&args.tcp), args.count);
        let layer = tracing_subscriber::registry().with(LogServerLayer::new(ours.clone()));
        let (layer_wall, layer_cpu) = per_event(layer, args.count);
        ours.flush(Duration::from_secs(60)).expect("delivered");
        assert_eq!(
            ours.dropped(),
            0,
            "nothing dropped, so the comparison is fair"
        );
        ours.shutdown(Duration::from_secs(5)).expect("shut down");

        println!(
            "tracing round {round}: fmt layer to a file {fmt_cpu:.0} ns CPU ({fmt_wall:.0} wall), \
             LogServerLayer {layer_cpu:.0} ns CPU ({layer_wall:.0} wall): {:.2}x CPU",
            layer_cpu / fmt_cpu
        );
        ratios.push(layer_cpu / fmt_cpu);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "tracing median of 5: LogServerLayer costs the calling thread {:.2}x the CPU of the fmt layer to a file",
        ratios[2]
    );
}

fn throughput(name: &str, builder: log_server_client::Builder, count: usize) {
    let client = client(builder, count);
    // One message first: the connection is up before the clock starts.
    client.log(Level::Info, "warm-up").expect("queued");
    client.flush(Duration::from_secs(10)).expect("connected");
    let started = Instant::now();
    for i in 0..count {
        client
            .send(
                client
                    .message(Level::Info, "throughput")
                    .attribute("i", i.to_string()),
            )
            .expect("queued");
    }
    client.flush(Duration::from_secs(120)).expect("delivered");
    let seconds = started.elapsed().as_secs_f64();
    client.shutdown(Duration::from_secs(5)).expect("shut down");
    println!(
        "{name}: {count} messages in {seconds:.2} s = {:.0} msgs/s",
        count as f64 / seconds
    );
}

fn main() {
    let args = parse();
    tracing_costs(&args);
    throughput("tcp", Client::builder().address(&args.tcp), args.count);
    throughput(
        "tcp ack",
        Client::builder().address(&args.tcp).ack(true),
        args.count,
    );
    throughput(
        "grpc LogBatch",
        Client::builder().grpc(&args.grpc),
        args.count,
    );
}
