//! What an HTTP/1.1 response costs with no HTTP in it, for `benches/compare.py` (`FLOOR=on`):
//! the same runtime (tokio, a current-thread runtime per worker on `SO_REUSEPORT` listeners)
//! and the same system calls as sigil's fast path, and nothing else. Every head that arrives
//! (found by its blank line, nothing parsed) gets the same response: a fixed head the size of
//! sigil's, and the file — copied behind the head in one `write` up to 4 KiB (as sigil does),
//! else the head sent with `MSG_MORE` and the file by `sendfile`. A server's CPU per request
//! minus this one's is what its own request handling costs.
//!
//! Usage: `floor ADDR FILE [WORKERS]`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpSocket, TcpStream};

/// Bodies up to this size are copied behind the head (sigil's `COPY_BODY_UP_TO`).
const COPY_UP_TO: usize = 4 * 1024;

struct Reply {
    file: std::fs::File,
    /// The head alone, and the head with the body behind it (when the body is copied).
    head: Vec<u8>,
    whole: Option<Vec<u8>>,
    len: usize,
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
    let whole = (len <= COPY_UP_TO).then(|| [&head[..], &body[..]].concat());
    let reply = Arc::new(Reply {
        file: std::fs::File::open(path).expect("FILE"),
        head,
        whole,
        len,
    });
    let threads: Vec<_> = (0..workers)
        .map(|_| {
            let reply = reply.clone();
            std::thread::spawn(move || worker(addr, reply))
        })
        .collect();
    for t in threads {
        t.join().expect("worker");
    }
}

fn worker(addr: SocketAddr, reply: Arc<Reply>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket.set_reuseport(true).expect("SO_REUSEPORT");
        socket.bind(addr).expect("bind");
        let listener = socket.listen(1024).expect("listen");
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
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
async fn connection(mut tcp: TcpStream, reply: &Reply) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        buf.reserve(4 * 1024);
        if tcp.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let _ = buf.split_to(end + 4);
            match &reply.whole {
                Some(whole) => tcp.write_all(whole).await?,
                None => send_file(&tcp, reply).await?,
            }
        }
    }
}

/// The head with `MSG_MORE`, then the file by `sendfile`, as sigil sends a large body.
async fn send_file(tcp: &TcpStream, reply: &Reply) -> io::Result<()> {
    use rustix::net::SendFlags;
    let mut head = &reply.head[..];
    while !head.is_empty() {
        let n = tcp
            .async_io(Interest::WRITABLE, || {
                rustix::net::send(tcp, head, SendFlags::MORE | SendFlags::NOSIGNAL)
                    .map_err(io::Error::from)
            })
            .await?;
        head = &head[n..];
    }
    let mut offset = 0u64;
    while offset < reply.len as u64 {
        let want = reply.len - offset as usize;
        let n = tcp
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, &reply.file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}
