//! The edge's HTTP/1.1 fast path: body-less `GET` and `HEAD` requests, parsed with `httparse`
//! straight out of the connection's read buffer and answered with one `write`/`writev` each.
//!
//! It takes only what it fully understands: an HTTP/1.1 `GET`/`HEAD` in origin form without
//! `Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade` or `HTTP2-Settings`. Anything
//! else — a POST, HTTP/1.0, the h2c preface, a head httparse rejects — ends the fast path, and
//! hyper serves the rest of the connection starting with the bytes already read, so every
//! request with a body, every upgrade and every malformed request meets hyper's own handling.
//! A request never reaches the edge twice and no byte is read past a request here without
//! being handed on. Why it exists: README, "Performance" (hyper's HTTP/1 dispatch was the
//! largest user-space cost per small request).
//!
//! On a plain TCP connection, a body the cache marked for it (`--sendfile-from`: one that lies in
//! a blob's file and is large enough) leaves through `sendfile` behind its head (sent with
//! `MSG_MORE`, so both share segments): the kernel reads it from the page cache, with no copy
//! out of the map. So it does on a connection the kernel encrypts (`--ktls`, ktls.rs). TLS in
//! rustls copies either way (it encrypts in user space) and keeps the mapped bytes.

use std::io::{self, IoSlice};
use std::ops::Range;

use bytes::{Bytes, BytesMut};
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri,
};
use http_body_util::Empty;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::Limits;
use crate::body::FileRange;
use crate::edge::reply::{Reply, Value};
use crate::edge::{Conn, Edge};
use crate::Body;

/// A connection the fast path serves: plain TCP or kernel TLS, whose large bodies can go by
/// `sendfile`, or TLS in rustls, which cannot.
pub(super) trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// The TCP socket when what is written to it reaches the client as written (the kernel
    /// encrypting it, with kernel TLS).
    fn plain(&self) -> Option<&TcpStream> {
        None
    }
}

impl Socket for TcpStream {
    fn plain(&self) -> Option<&TcpStream> {
        Some(self)
    }
}

impl Socket for tokio_rustls::server::TlsStream<TcpStream> {}

/// A handshake read for kernel TLS whose connection stayed with rustls.
impl Socket for tokio_rustls::server::TlsStream<super::ktls::Cork<TcpStream>> {}

impl Socket for super::ktls::KernelStream {
    fn plain(&self) -> Option<&TcpStream> {
        Some(self.socket())
    }
}

/// Headers per request at most (hyper's default; above it hyper answers 431).
const MAX_HEADERS: usize = 100;
/// Responses up to this size are copied behind their head and sent with one `write`.
pub const COPY_BODY_UP_TO: usize = 4 * 1024;
/// Body bytes written before other connections get a turn.
const WRITE_TURN: usize = 512 << 10;

/// How the fast path left a connection.
pub(super) enum Ended {
    /// Closed: by the client, after `Connection: close`, on a timeout, an error or shutdown.
    Done,
    /// A request the fast path does not take: hyper serves the connection from here on,
    /// starting with these bytes (that request, and whatever followed it).
    HandOff(Bytes),
}

/// A parsed request head: offsets into the buffer it was parsed from.
struct Head {
    len: usize,
    method: Method,
    target: Range<usize>,
    headers: usize,
    close: bool,
}

enum Parsed {
    Complete(Head),
    Partial,
    HandOff,
}

/// Serves requests on `io` until it closes or a request needs hyper.
pub(super) async fn serve<I>(
    io: &mut I,
    edge: &Edge,
    conn: &Conn,
    limits: &Limits,
    stop: &mut watch::Receiver<bool>,
) -> io::Result<Ended>
where
    I: Socket,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut fields = [const { (0..0, 0..0) }; MAX_HEADERS];
    // One timer and one shutdown waiter per connection, not per request: a request only
    // notes its deadline, and the timer, when it fires early, moves on to it. (Registering
    // and cancelling a timer and a watch waiter per request took two locks each.)
    let timer = tokio::time::sleep(limits.header_read);
    tokio::pin!(timer);
    let mut stop_clone = stop.clone();
    let stopped = stop_clone.changed();
    tokio::pin!(stopped);
    loop {
        // Read until a whole head is buffered; the header-read timeout covers the wait for
        // the next request on an idle keep-alive connection too.
        // On the coarse clock: a precise read per request cost more than the deadline needs.
        let deadline = crate::clock::coarse_monotonic() + limits.header_read;
        let head = loop {
            if !buf.is_empty() {
                match parse(&buf, &mut fields) {
                    Parsed::Complete(head) => break head,
                    Parsed::HandOff => return Ok(Ended::HandOff(buf.freeze())),
                    Parsed::Partial if buf.len() >= limits.max_header_bytes => {
                        let status = if buf.contains(&b'\n') {
                            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
                        } else {
                            StatusCode::URI_TOO_LONG
                        };
                        refuse(io, &mut out, status).await?;
                        return Ok(Ended::Done);
                    }
                    Parsed::Partial => {}
                }
            }
            buf.reserve(4 * 1024);
            let read = tokio::select! {
                biased;
                r = io.read_buf(&mut buf) => r,
                () = &mut timer => {
                    match deadline.checked_sub(crate::clock::coarse_monotonic()) {
                        Some(left) if !left.is_zero() => {
                            timer.as_mut().reset(tokio::time::Instant::now() + left);
                            continue;
                        }
                        _ => return Ok(Ended::Done),
                    }
                }
                // Shutdown closes a connection between requests, never in the middle of one.
                _ = &mut stopped, if buf.is_empty() => return Ok(Ended::Done),
            };
            if read? == 0 {
                return Ok(Ended::Done);
            }
        };
        if head.target.len() > limits.max_uri_bytes {
            refuse(io, &mut out, StatusCode::URI_TOO_LONG).await?;
            return Ok(Ended::Done);
        }
        let bytes = buf.split_to(head.len).freeze();
        let Some(req) = request(&bytes, &head, &fields) else {
            // Valid to httparse, not to `http` (e.g. a target `Uri` refuses): hyper decides.
            let mut rest = BytesMut::from(bytes);
            rest.extend_from_slice(&buf);
            return Ok(Ended::HandOff(rest.freeze()));
        };
        let reply = edge.reply(req, conn).await;
        drop(bytes);
        let close = head.close || *stop.borrow();
        let sent = write_reply(io, &mut out, reply, head.method == Method::HEAD, close).await?;
        if sent > 0 {
            edge.metrics.sent_from_file(sent as u64);
        }
        if close {
            return Ok(Ended::Done);
        }
    }
}

/// Parses the head at the start of `buf`, recording header name/value offsets in `fields`.
fn parse(buf: &[u8], fields: &mut [(Range<usize>, Range<usize>); MAX_HEADERS]) -> Parsed {
    // Left uninitialised: writing 100 empty headers before each parse was three quarters of
    // the parse's time.
    let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::HandOff,
    };
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Parsed::HandOff,
    };
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Parsed::HandOff;
    };
    if req.version != Some(1) {
        return Parsed::HandOff;
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let mut close = false;
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"http2-settings")
        {
            return Parsed::HandOff;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    return Parsed::HandOff;
                }
            }
        }
        fields[i] = (offset(name), offset(h.value));
    }
    Parsed::Complete(Head {
        len,
        method,
        target: offset(path.as_bytes()),
        headers: req.headers.len(),
        close,
    })
}

/// The `http::Request` of a parsed head; header values and the target share `bytes`.
fn request(
    bytes: &Bytes,
    head: &Head,
    fields: &[(Range<usize>, Range<usize>)],
) -> Option<Request<Empty<Bytes>>> {
    let mut headers = HeaderMap::with_capacity(head.headers);
    for (name, value) in &fields[..head.headers] {
        let name = &bytes[name.clone()];
        // The one non-standard header every webhook carries, named without an allocation
        // (`http` copies any other name it does not know).
        let name = if name.eq_ignore_ascii_case(crate::signature::HEADER.as_ref()) {
            crate::signature::HEADER
        } else {
            HeaderName::from_bytes(name).ok()?
        };
        let value = HeaderValue::from_maybe_shared(bytes.slice(value.clone())).ok()?;
        headers.append(name, value);
    }
    let uri = Uri::from_maybe_shared(bytes.slice(head.target.clone())).ok()?;
    let mut req = Request::new(Empty::new());
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Some(req)
}

/// Answers `status` with a short text and closes (the request could not be read).
async fn refuse<I>(io: &mut I, out: &mut Vec<u8>, status: StatusCode) -> io::Result<()>
where
    I: Socket,
{
    let text = format!("{}\n", status.canonical_reason().unwrap_or("Bad Request"));
    let resp = crate::edge::plain(status, &text);
    write_response(io, out, resp, false, true).await?;
    linger(io).await;
    Ok(())
}

/// Closes the sending side, then reads and drops what the client still sends (at most 1 MiB,
/// at most a second) before the socket is closed: closing with unread bytes would make the
/// kernel send RST, and the client could lose the response it has not read yet.
async fn linger<I>(io: &mut I)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let _ = io.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut total = 0;
        while total < 1 << 20 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
}

/// Writes `reply`: an asset's head from its fields (with `Date` added, and `Connection:
/// close` when closing), then its body unless `head_only`; any other reply as
/// [`write_response`] does. Returns how many body bytes went by `sendfile`.
async fn write_reply<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    reply: Reply,
    head_only: bool,
    close: bool,
) -> io::Result<usize>
where
    I: Socket,
{
    let asset = match reply {
        Reply::Asset(asset) => asset,
        Reply::Response(resp) => return write_response(io, out, resp, head_only, close).await,
    };
    let status = asset.status();
    status_line(out, status);
    asset.fields(|name, value| match value {
        Value::Header(v) => field(out, name, v.as_bytes()),
        Value::Length(n) => field(out, name, itoa::Buffer::new().format(n).as_bytes()),
    });
    end_head(out, true, close);
    // Its fields carry the `Content-Length` of a 200 or 206; a 304 has no body.
    let body = asset.into_body().into_chunk();
    write_body(
        io,
        out,
        body,
        head_only || super::respond::bodiless(status),
        false,
    )
    .await
}

/// Writes `resp`: the head (with `Content-Length`, `Date` and, when closing,
/// `Connection: close` added as hyper would) and, unless `head_only`, the body. A streamed
/// body (the API through an edge) goes out as it comes: with its own length when it has one,
/// else chunked. Returns how many body bytes went by `sendfile`.
async fn write_response<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    resp: Response<Body>,
    head_only: bool,
    close: bool,
) -> io::Result<usize>
where
    I: Socket,
{
    let (parts, body) = resp.into_parts();
    let body = body.into_chunk();
    status_line(out, parts.status);
    for (name, value) in &parts.headers {
        field(out, name, value.as_bytes());
    }
    let bodiless_status = super::respond::bodiless(parts.status);
    let has_length = parts.headers.contains_key(header::CONTENT_LENGTH);
    let chunked = body.is_err() && !bodiless_status && !has_length;
    if chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if !bodiless_status && !has_length {
        let length = body.as_ref().map_or(0, |(bytes, _)| bytes.len());
        field(
            out,
            &header::CONTENT_LENGTH,
            itoa::Buffer::new().format(length).as_bytes(),
        );
    }
    end_head(out, !parts.headers.contains_key(header::DATE), close);
    write_body(io, out, body, head_only || bodiless_status, chunked).await
}

/// Starts a head in `out` with the status line.
fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes a header field to `out`.
fn field(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Ends the head in `out`: `Date` when asked, `Connection: close` when closing.
fn end_head(out: &mut Vec<u8>, date: bool, close: bool) {
    if date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(super::respond::date().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Sends the head in `out`, then the body unless `skip`: a chunk with the head (or behind
/// it, by `sendfile` when it lies in a file and the socket is plain), a stream as it comes
/// (`chunked` or not). Returns how many body bytes went by `sendfile`.
async fn write_body<I>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: Result<(Bytes, Option<FileRange>), Body>,
    skip: bool,
    chunked: bool,
) -> io::Result<usize>
where
    I: Socket,
{
    let (body, file) = match body {
        Ok(chunk) => chunk,
        Err(stream) if !skip => {
            io.write_all(out).await?;
            write_stream(io, stream, chunked).await?;
            return Ok(0);
        }
        Err(_) => (Bytes::new(), None),
    };
    let body: &[u8] = if skip { &[] } else { &body };
    if let (Some(tcp), Some(file)) = (io.plain(), file.filter(|_| !body.is_empty())) {
        send_file(tcp, out, &file, body.len()).await?;
        return Ok(body.len());
    }
    if body.len() <= COPY_BODY_UP_TO {
        out.extend_from_slice(body);
        io.write_all(out).await?;
    } else {
        write_two(io, out, body).await?;
    }
    io.flush().await?;
    Ok(0)
}

/// Sends `head`, then `len` bytes of `file` from its offset with `sendfile`: the head with
/// `MSG_MORE`, so that the kernel puts the first body bytes in its segment. Like
/// [`write_two`], the task yields after each `WRITE_TURN` bytes.
pub async fn send_file(
    tcp: &TcpStream,
    mut head: &[u8],
    file: &FileRange,
    len: usize,
) -> io::Result<()> {
    use rustix::net::SendFlags;
    while !head.is_empty() {
        let n = tcp
            .async_io(Interest::WRITABLE, || {
                rustix::net::send(tcp, head, SendFlags::MORE | SendFlags::NOSIGNAL)
                    .map_err(io::Error::from)
            })
            .await?;
        head = &head[n..];
    }
    let mut offset = file.offset;
    let end = file.offset + len as u64;
    let mut turn = 0;
    while offset < end {
        let want = usize::try_from(end - offset)
            .unwrap_or(usize::MAX)
            .min(WRITE_TURN - turn);
        let n = tcp
            .async_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, &*file.file, Some(&mut offset), want)
                    .map_err(io::Error::from)
            })
            .await?;
        if n == 0 {
            // The file is shorter than its map said: it cannot be, blobs never change.
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        turn += n;
        if turn >= WRITE_TURN {
            turn = 0;
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// Writes a streamed body frame by frame, in chunks when `chunked`. A stream that fails part
/// way ends the connection (the caller closes it): the client sees a cut, not a whole body.
async fn write_stream<I>(io: &mut I, mut body: Body, chunked: bool) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| io::Error::other(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers: not sent over HTTP/1.1 here
        };
        if data.is_empty() {
            continue;
        }
        if chunked {
            io.write_all(format!("{:x}\r\n", data.len()).as_bytes())
                .await?;
            write_two(io, &data, b"\r\n").await?;
        } else {
            io.write_all(&data).await?;
        }
        io.flush().await?;
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    io.flush().await
}

/// Writes `a` then `b`, both in one `writev` where the socket takes them. After each
/// `WRITE_TURN` bytes the task yields, so that one client reading a large body fast does not
/// keep the others waiting (nginx's `sendfile_max_chunk` does the same).
pub async fn write_two<I>(io: &mut I, mut a: &[u8], mut b: &[u8]) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    let mut turn = 0;
    while !a.is_empty() || !b.is_empty() {
        let chunk = &b[..b.len().min(WRITE_TURN - turn)];
        let n = if a.is_empty() {
            io.write(chunk).await?
        } else {
            io.write_vectored(&[IoSlice::new(a), IoSlice::new(chunk)])
                .await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
        turn += n - from_a;
        if turn >= WRITE_TURN {
            turn = 0;
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A socket that takes at most `per_write` bytes per call (from the first buffer of a
    /// vectored write on, as a kernel does) and records them.
    struct Trickle {
        per_write: usize,
        got: Vec<u8>,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.per_write);
            self.got.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut left = self.per_write;
            for b in bufs {
                let n = b.len().min(left);
                self.got.extend_from_slice(&b[..n]);
                left -= n;
            }
            Poll::Ready(Ok(self.per_write - left))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Trickle {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Socket for Trickle {}

    #[tokio::test]
    async fn head_and_body_arrive_whole_in_order_however_the_socket_takes_them() {
        let head: Vec<u8> = (0..300u32).map(|i| (i % 7) as u8 + b'a').collect();
        let body: Vec<u8> = (0..(3 * WRITE_TURN + 12_345) as u32)
            .map(|i| (i % 251) as u8)
            .collect();
        for per_write in [
            1,
            100,
            299,
            300,
            301,
            4096,
            WRITE_TURN - 1,
            WRITE_TURN,
            usize::MAX,
        ] {
            // A byte at a time is slow for megabytes: use a shorter body there.
            let body = if per_write < 1000 {
                &body[..70_000]
            } else {
                &body[..]
            };
            let mut socket = Trickle {
                per_write,
                got: Vec::new(),
            };
            write_two(&mut socket, &head, body).await.expect("written");
            assert_eq!(socket.got.len(), head.len() + body.len(), "{per_write}");
            assert_eq!(&socket.got[..head.len()], &head[..], "{per_write}");
            assert_eq!(&socket.got[head.len()..], body, "{per_write}");
        }
    }

    /// `sendfile` from an offset, through a real socket whose reader is slower than the
    /// writer: the head, then exactly the file's bytes from there, in order.
    #[tokio::test]
    async fn send_file_sends_the_head_then_the_range_of_the_file() {
        use std::io::Write;
        let content: Vec<u8> = (0..(3 * WRITE_TURN + 12_345) as u32)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut file = tempfile::tempfile().expect("file");
        file.write_all(&content).expect("written");
        let file = FileRange {
            file: std::sync::Arc::new(file),
            offset: 777,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let len = content.len() - 777 - 5;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                match client.read(&mut buf).await.expect("read") {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        send_file(&server, b"HEAD\r\n\r\n", &file, len)
            .await
            .expect("sent");
        drop(server);
        let got = reader.await.expect("reader");
        assert_eq!(&got[..8], b"HEAD\r\n\r\n");
        assert_eq!(got.len(), 8 + len);
        assert!(
            got[8..] == content[777..777 + len],
            "the file's bytes, in order"
        );
    }

    /// A stream of two chunks (the API through an edge): chunked without a length, raw with
    /// the upstream's length, nothing for HEAD.
    #[tokio::test]
    async fn a_streamed_body_goes_out_chunked_or_with_its_length() {
        let two = || {
            let chunks = futures_util::stream::iter([
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from("abc"))),
                Ok(hyper::body::Frame::data(Bytes::from("defgh"))),
            ]);
            Body::stream(http_body_util::StreamBody::new(chunks))
        };
        let written = |resp: Response<Body>, head_only: bool| async move {
            let mut sock = Trickle {
                per_write: 7,
                got: Vec::new(),
            };
            write_response(&mut sock, &mut Vec::new(), resp, head_only, false)
                .await
                .expect("written");
            String::from_utf8(sock.got).expect("text")
        };
        let text = written(Response::new(two()), false).await;
        assert!(text.contains("transfer-encoding: chunked\r\n"), "{text}");
        assert!(!text.contains("content-length"), "{text}");
        assert!(
            text.ends_with("\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n"),
            "{text}"
        );
        let mut sized = Response::new(two());
        sized
            .headers_mut()
            .insert(header::CONTENT_LENGTH, http::HeaderValue::from(8));
        let text = written(sized, false).await;
        assert!(!text.contains("chunked"), "{text}");
        assert!(text.ends_with("\r\n\r\nabcdefgh"), "{text}");
        let text = written(Response::new(two()), true).await;
        assert!(text.ends_with("\r\n\r\n"), "{text}");
    }
}
