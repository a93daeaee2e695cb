//! What an HTTP/1.1 response costs with no HTTP in it, for `benches/compare.py` (`FLOOR=on`):
//! sigil's runtime shape (one worker: a current-thread runtime; more: the multi-thread one)
//! and sigil's own body writers, with nothing else. Every head that arrives (found by its
//! blank line, nothing parsed) gets the same response: a fixed head the size of sigil's, then
//! the file sent as sigil sends it with its default `--sendfile-from auto` (the same rule
//! decides): by `sendfile` behind the head (sent with `MSG_MORE`) when its size is in that
//! range, else copied behind the head, in one `write` up to 4 KiB and by `writev` above. A
//! server's CPU per request minus this one's is what its own request handling costs.
//!
//! Usage: `floor ADDR FILE [WORKERS]`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use sigil::body::FileRange;
use sigil::server::send::{send_file, write_two, COPY_BODY_UP_TO};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Reply {
    head: Vec<u8>,
    body: Vec<u8>,
    /// The head with the body behind it, for a body sent in one `write`.
    whole: Option<Vec<u8>>,
    /// The file, for a body sent by `sendfile`.
    file: Option<FileRange>,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, path, workers) = match args.as_slice() {
        [addr, path] => (addr, path, 1),
        [addr, path, workers] => (addr, path, workers.parse().expect("WORKERS")),
        _ => {
            eprintln!("usage: floor ADDR FILE [WORKERS]");
            std::process::exit(64);
        }
    };
    let addr: SocketAddr = addr.parse().expect("ADDR");
    let body = std::fs::read(path).expect("FILE");
    let len = body.len();
    // The fields sigil sends for an asset, with values of the same length.
    let head = format!(
        "HTTP/1.1 200 OK\r\netag: \"{:032x}\"\r\nlast-modified: Tue, 01 Dec 2026 07:22:02 GMT\r\n\
         cache-control: public, max-age=60\r\ncontent-type: application/octet-stream\r\n\
         accept-ranges: bytes\r\naccess-control-allow-origin: *\r\ncontent-length: {len}\r\n\
         date: Tue, 01 Dec 2026 07:22:11 GMT\r\n\r\n",
        0
    )
    .into_bytes();
    let sendfile = sigil::config::auto_sendfile_from().is_some_and(|sizes| sizes.contains(&len));
    let reply = Arc::new(Reply {
        whole: (len <= COPY_BODY_UP_TO).then(|| [&head[..], &body[..]].concat()),
        file: sendfile.then(|| FileRange {
            file: Arc::new(std::fs::File::open(path).expect("FILE")),
            offset: 0,
        }),
        head,
        body,
    });
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    }
    .enable_all()
    .build()
    .expect("runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr).await.expect("bind");
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("floor: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let reply = reply.clone();
            tokio::spawn(async move {
                let _ = connection(tcp, &reply).await;
            });
        }
    });
}

/// Answers every head that arrives on `tcp` until it closes.
async fn connection(mut tcp: TcpStream, reply: &Reply) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        buf.reserve(4 * 1024);
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let _ = buf.split_to(end + 4);
            match (&reply.whole, &reply.file) {
                (Some(whole), _) => tcp.write_all(whole).await?,
                (None, Some(file)) => send_file(&tcp, &reply.head, file, reply.body.len()).await?,
                (None, None) => write_two(&mut tcp, &reply.head, &reply.body).await?,
            }
        }
    }
}
