//! The body-read deadline (`--body-read-timeout`): a request body that has not fully arrived
//! within it fails with [`BodyTimeout`], which the edge answers with 408 and the API with a
//! Twilio JSON 408. And the lingering read of an HTTP/1.1 body answered before its end
//! ([`Linger`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

/// The error a body gives when its deadline passed.
#[derive(Debug)]
pub struct BodyTimeout(pub Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// Whether a body error (possibly boxed by `Limited` or multer) is a [`BodyTimeout`].
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A body that must be read whole within a deadline, counted from its first read; a body
/// that is already at its end (a GET) never starts a timer.
pub struct TimedBody<B> {
    inner: B,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> TimedBody<B> {
    /// `inner` with `limit`.
    pub fn new(inner: B, limit: Duration) -> TimedBody<B> {
        TimedBody {
            inner,
            limit,
            deadline: None,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if !this.inner.is_end_stream() {
            let limit = this.limit;
            let deadline = this
                .deadline
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Some(Err(Box::new(BodyTimeout(limit)))));
            }
        }
        Pin::new(&mut this.inner).poll_frame(cx).map_err(Into::into)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The most of an abandoned HTTP/1.1 request body [`Linger`] reads and discards.
pub const LINGER_BYTES: u64 = 256 << 20;

/// An HTTP/1.1 request body that, dropped before its end — the request was answered without
/// reading it all: a 413 for a declared length over the limit, a 401, a form over 1 MiB — is
/// read to its end and discarded by a task of its own, as nginx's lingering close does. An
/// HTTP/1.1 client commonly writes its whole body before it reads anything (Python's `http`,
/// so the Twilio helper library): had the connection closed with its body unread, it would
/// get a broken pipe or a reset instead of the answer. Bounded: at most [`LINGER_BYTES`],
/// within the body's read deadline (a [`TimedBody`] inside); past either the body is dropped
/// and the connection closed. HTTP/2 needs none of it: a stream is reset on its own.
pub struct Linger<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    inner: Option<B>,
    linger: bool,
}

impl<B> Linger<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    /// `inner`, drained on drop when `linger` (the request is HTTP/1.x).
    pub fn new(inner: B, linger: bool) -> Linger<B> {
        Linger {
            inner: Some(inner),
            linger,
        }
    }
}

impl<B> Drop for Linger<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if !self.linger || body.is_end_stream() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(discard(body, LINGER_BYTES));
        }
    }
}

/// Reads `body` to its end, or to an error, or until more than `limit` bytes came.
async fn discard<B>(mut body: B, limit: u64)
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut left = limit;
    while let Some(Ok(frame)) = body.frame().await {
        let n = frame.data_ref().map_or(0, |d| d.len() as u64);
        let Some(l) = left.checked_sub(n) else {
            return;
        };
        left = l;
    }
}

impl<B> Body for Linger<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.inner.as_mut() {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of `frames` 1 KiB frames (endless when `None`), counting the frames read.
    struct Frames {
        frames: Option<usize>,
        read: usize,
    }

    impl Body for &mut Frames {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if self.frames == Some(self.read) {
                return Poll::Ready(None);
            }
            self.read += 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&[0; 1024])))))
        }
    }

    #[tokio::test]
    async fn discarding_stops_at_the_end_or_past_the_limit() {
        let mut finite = Frames {
            frames: Some(5),
            read: 0,
        };
        discard(&mut finite, 1 << 20).await;
        assert_eq!(finite.read, 5);
        let mut endless = Frames {
            frames: None,
            read: 0,
        };
        discard(&mut endless, 10 * 1024).await;
        assert_eq!(
            endless.read, 11,
            "the frame that goes past the limit ends it"
        );
    }
}
