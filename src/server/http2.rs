//! The edge's HTTP/2 server (TLS with ALPN `h2`, and h2c with prior knowledge), on the `h2`
//! crate directly.
//!
//! Each stream is answered in its connection's task as it is accepted: the edge decides
//! nearly every request without waiting ([`Edge::handle_now`]), and the body — one `Bytes`,
//! often a slice of a mapped blob — is handed to `h2`, which sends it as flow control allows.
//! Only what must wait (a POST body, a blob not mapped yet, the API's host names) gets a task
//! of its own. hyper's HTTP/2 server spawned a task per stream; that, and moving each
//! request's future into it, was most of the user-space cost of a small response (README,
//! "Performance").
//!
//! Limits are hyper's, set from the same flags: concurrent streams, the header-list size,
//! reset floods (pending and provoked), window sizes. A connection must finish the HTTP/2
//! handshake within the header-read timeout, and one that opens no stream for that long is
//! sent GOAWAY (its open streams finish first); on shutdown every connection gets GOAWAY.
//! After GOAWAY a connection is closed once it moves no byte, either way, for a whole
//! header-read period: a client that never acknowledges the GOAWAY's PING, or stops reading
//! its responses, does not hold the connection.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::coalesce::Coalescing;
use super::{App, Limits};
use crate::edge::{Conn, Edge, Handled};
use crate::Body;

/// What a connection with prior knowledge sends first.
pub(super) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Flow-control windows large enough that a fast client is not stalled, and the send buffer
/// per stream (also the API listener's h2c settings, through hyper).
pub(super) const STREAM_WINDOW: u32 = 1 << 20;
pub(super) const CONNECTION_WINDOW: u32 = 8 << 20;
pub(super) const SEND_BUFFER: usize = 1 << 20;

fn builder(limits: &Limits) -> h2::server::Builder {
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(limits.h2_max_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(Some(limits.h2_max_error_resets))
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_send_buffer_size(SEND_BUFFER);
    builder
}

/// Serves HTTP/2 on `io`, whose first bytes read are `prefix`, until the client or shutdown
/// closes it.
pub(super) async fn serve<I>(
    prefix: Bytes,
    io: I,
    app: &Arc<App>,
    edge: &Arc<Edge>,
    conn: Conn,
    stop: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let idle = app.limits.header_read;
    let moved = Arc::new(AtomicU64::new(0));
    let io = Counted {
        io,
        moved: Arc::clone(&moved),
    };
    let io = Coalescing::new(prefix, io, super::WRITE_BUFFER);
    let handshake = builder(&app.limits).handshake::<_, Bytes>(io);
    let mut h2 = match tokio::time::timeout(idle, handshake).await {
        Ok(Ok(h2)) => h2,
        Ok(Err(e)) => {
            tracing::debug!(peer = %conn.peer, error = %e, "HTTP/2 handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %conn.peer, "HTTP/2 handshake timed out");
            return;
        }
    };
    // The timer fires at most once per `idle`: accepting a stream only notes the time.
    let mut last_stream = Instant::now();
    let timer = tokio::time::sleep_until(last_stream + idle);
    tokio::pin!(timer);
    let stopped = stop.changed();
    tokio::pin!(stopped);
    // Set once GOAWAY is sent: then `seen` is the I/O count at the last tick.
    let mut closing = false;
    let mut seen = u64::MAX;
    loop {
        let next = tokio::select! {
            biased;
            next = h2.accept() => next,
            _ = &mut stopped, if !closing => {
                h2.graceful_shutdown();
                closing = true;
                timer.as_mut().reset(Instant::now() + idle);
                continue;
            }
            () = &mut timer => {
                if closing {
                    let now = moved.load(Ordering::Relaxed);
                    if now == seen {
                        tracing::debug!(peer = %conn.peer, "HTTP/2 connection silent after GOAWAY: closed");
                        return;
                    }
                    seen = now;
                    timer.as_mut().reset(Instant::now() + idle);
                } else if last_stream.elapsed() >= idle {
                    tracing::debug!(peer = %conn.peer, "idle HTTP/2 connection: GOAWAY");
                    h2.graceful_shutdown();
                    closing = true;
                    timer.as_mut().reset(Instant::now() + idle);
                } else {
                    timer.as_mut().reset(last_stream + idle);
                }
                continue;
            }
        };
        match next {
            Some(Ok((req, tx))) => {
                last_stream = Instant::now();
                answer(app, edge, &conn, req, tx);
            }
            Some(Err(e)) => {
                tracing::debug!(peer = %conn.peer, error = %e, "HTTP/2 connection error");
                return;
            }
            None => return,
        }
    }
}

/// Answers a stream: at once when the edge can, else from a task of its own.
fn answer(
    app: &Arc<App>,
    edge: &Arc<Edge>,
    conn: &Conn,
    req: Request<h2::RecvStream>,
    tx: h2::server::SendResponse<Bytes>,
) {
    let head = req.method() == Method::HEAD;
    if super::uri_too_long(req.uri(), &app.limits) {
        let resp = crate::edge::plain(http::StatusCode::URI_TOO_LONG, "URI Too Long\n");
        return send(tx, resp, head);
    }
    let req = req.map(|b| super::body::TimedBody::new(RecvBody(b), app.limits.body_read));
    match edge.handle_now(req, conn) {
        Handled::Now(reply) => send(tx, reply.into_response(), head),
        Handled::Later(pending) => {
            let edge = Arc::clone(edge);
            tokio::spawn(async move {
                let reply = edge.handle_later(pending).await;
                send(tx, reply.into_response(), head);
            });
        }
    }
}

/// Sends a response: its head with `Content-Length` and `Date` added when missing, then its
/// body (none for `HEAD`, 1xx, 204 and 304). A streamed body (the API through an edge) is
/// sent from a task of its own as flow control allows.
fn send(mut tx: h2::server::SendResponse<Bytes>, resp: Response<Body>, head: bool) {
    let (mut parts, body) = resp.into_parts();
    let bodiless = super::respond::bodiless(parts.status);
    let body = match body.into_bytes() {
        Ok(bytes) => bytes,
        Err(stream) => {
            if !parts.headers.contains_key(header::DATE) {
                parts.headers.insert(header::DATE, super::respond::date());
            }
            let end = head || bodiless;
            match tx.send_response(Response::from_parts(parts, ()), end) {
                Ok(out) if !end => {
                    tokio::spawn(send_stream(out, stream));
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "HTTP/2 stream closed before its response"),
            }
            return;
        }
    };
    if !bodiless && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    if !parts.headers.contains_key(header::DATE) {
        parts.headers.insert(header::DATE, super::respond::date());
    }
    let body = if head || bodiless { Bytes::new() } else { body };
    let end = body.is_empty();
    // Errors here mean the stream is gone (the client reset it, or the connection closed):
    // nothing is left to answer.
    match tx.send_response(Response::from_parts(parts, ()), end) {
        Ok(mut stream) if !end => {
            if let Err(e) = send_body(&mut stream, body) {
                tracing::debug!(error = %e, "HTTP/2 stream closed before its body was sent");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "HTTP/2 stream closed before its response"),
    }
}

/// DATA payload per frame: with its 9-byte header a frame fills one TLS record (2^14 bytes of
/// plaintext) exactly. Frames of the full 2^14 bytes would each leave a 9-byte record behind
/// them, and a client pays per record: h2load made 64 reads per 256 KiB response instead of 48
/// against nginx.
const DATA_CHUNK: usize = (1 << 14) - 9;

/// Sends a streamed body: each frame's data once the peer's window has room for it (so a
/// slow reader holds back the source instead of filling memory); a failing source resets
/// the stream.
async fn send_stream(mut out: h2::SendStream<Bytes>, mut body: Body) {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            out.send_reset(h2::Reason::INTERNAL_ERROR);
            return;
        };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        while !data.is_empty() {
            out.reserve_capacity(data.len().min(DATA_CHUNK));
            let room = match std::future::poll_fn(|cx| out.poll_capacity(cx)).await {
                Some(Ok(room)) if room > 0 => room,
                Some(Ok(_)) => continue,
                _ => return, // the stream is gone
            };
            if out
                .send_data(data.split_to(room.min(data.len())), false)
                .is_err()
            {
                return;
            }
        }
    }
    let _ = out.send_data(Bytes::new(), true);
}

/// Queues `body` in frames of at most `DATA_CHUNK` (slices of the same bytes, no copies); `h2`
/// sends them as flow control allows.
fn send_body(stream: &mut h2::SendStream<Bytes>, mut body: Bytes) -> Result<(), h2::Error> {
    while body.len() > DATA_CHUNK {
        stream.send_data(body.split_to(DATA_CHUNK), false)?;
    }
    stream.send_data(body, true)
}

/// A request body from `h2`, as an `http_body::Body`: each chunk read gives its flow-control
/// window back, so a client can send the next.
struct RecvBody(h2::RecvStream);

impl hyper::body::Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, h2::Error>>> {
        match self.0.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = self.0.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => match self.0.poll_trailers(cx) {
                Poll::Ready(Ok(Some(trailers))) => {
                    Poll::Ready(Some(Ok(hyper::body::Frame::trailers(trailers))))
                }
                Poll::Ready(Ok(None)) => Poll::Ready(None),
                Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
                Poll::Pending => Poll::Pending,
            },
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}

/// A connection's socket side, counting the reads and writes that moved bytes (what tells a
/// closing connection that is still being served from one that is stuck).
struct Counted<I> {
    io: I,
    moved: Arc<AtomicU64>,
}

impl<I> Counted<I> {
    fn count<T>(&self, done: Poll<io::Result<T>>, moved: bool) -> Poll<io::Result<T>> {
        if moved {
            self.moved.fetch_add(1, Ordering::Relaxed);
        }
        done
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let done = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        let moved = buf.filled().len() > before;
        self.count(Poll::Ready(done), moved)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let done = ready!(Pin::new(&mut self.io).poll_write(cx, buf));
        let moved = matches!(done, Ok(n) if n > 0);
        self.count(Poll::Ready(done), moved)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let done = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, bufs));
        let moved = matches!(done, Ok(n) if n > 0);
        self.count(Poll::Ready(done), moved)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
