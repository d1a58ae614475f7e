//! A TCP proxy that holds back what clients send by a fixed delay, so that a loopback S3
//! server answers as if it were far away: each request reaches the server one delay after
//! the client sent it, as over a network with that one-way latency (the answers come back
//! at once). For benchmarks (`DELAY_MS` in benches/s3_peers.sh), where a tool's rate then
//! depends on how many requests it keeps in flight and sends per object, as against S3.
//!
//! It forwards bytes unchanged and in order, both ways, one upstream connection per client
//! connection; it reads no HTTP and owns nothing else.
//!
//! ```sh
//! delay_proxy --upstream 127.0.0.1:9000 --delay-ms 20    # prints the port it listens on
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

#[derive(Parser)]
struct Args {
    /// The server, as IP:PORT.
    #[arg(long)]
    upstream: SocketAddr,
    /// How long what a client sends is held back, in milliseconds.
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
    /// Where to listen (port 0: any free port; the port is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
}

/// Chunks read from a client and not yet due: past this, the proxy stops reading, and TCP
/// holds the client back.
const QUEUED_CHUNKS: usize = 256;

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!("{}", listener.local_addr()?.port());
    let delay = Duration::from_millis(args.delay_ms);
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(async move {
            // A broken connection is the client's or the server's business: they see it.
            let _ = relay(client, args.upstream, delay).await;
        });
    }
}

/// Forwards one client connection: client to server through the delay, server to client
/// as it comes. Each direction is shut down when its source closes.
async fn relay(client: TcpStream, upstream: SocketAddr, delay: Duration) -> io::Result<()> {
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (from_client, mut to_client) = client.into_split();
    let (mut from_server, to_server) = server.into_split();
    let (due, queue) = mpsc::channel(QUEUED_CHUNKS);
    let up = tokio::spawn(forward_when_due(queue, to_server));
    let stamp = tokio::spawn(stamp_chunks(from_client, due, delay));
    let down = async {
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await
    };
    let (down, stamp, up) = tokio::join!(down, stamp, up);
    down?;
    stamp??;
    up?
}

/// Reads what the client sends and queues each chunk with the time it is due: its arrival
/// plus the delay, so a chunk waits for no earlier one's sleep.
async fn stamp_chunks(
    mut from_client: OwnedReadHalf,
    due: mpsc::Sender<(Instant, Vec<u8>)>,
    delay: Duration,
) -> io::Result<()> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = from_client.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let chunk = (Instant::now() + delay, buf[..n].to_vec());
        if due.send(chunk).await.is_err() {
            // The writer stopped: the server's side is gone.
            return Ok(());
        }
    }
}

/// Writes each chunk to the server once it is due, in order; closes the server's side
/// when the client has closed its own and everything is written.
async fn forward_when_due(
    mut queue: mpsc::Receiver<(Instant, Vec<u8>)>,
    mut to_server: OwnedWriteHalf,
) -> io::Result<()> {
    while let Some((at, chunk)) = queue.recv().await {
        sleep_until(at).await;
        to_server.write_all(&chunk).await?;
    }
    to_server.shutdown().await
}
