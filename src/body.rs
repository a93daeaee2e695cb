//! The response body of every handler: one chunk of bytes ready at once — nearly every
//! response, served by the edge's own HTTP/1.1 and HTTP/2 writers without any polling — or a
//! stream, for the control plane's answer passed through an edge's proxy. A chunk of a blob
//! also says where it lies in the blob's file ([`FileRange`]), so that the plain-HTTP/1.1
//! writer can have the kernel send it (`sendfile`) rather than copy it out of the map.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// What a streamed body's errors become.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Stream = Pin<Box<dyn hyper::body::Body<Data = Bytes, Error = BoxError> + Send>>;

/// Where a chunk's bytes lie in a file that never changes (a blob): the same bytes.
#[derive(Clone, Debug)]
pub struct FileRange {
    /// The file, open for reading.
    pub file: Arc<std::fs::File>,
    /// Where the chunk starts in it.
    pub offset: u64,
}

/// A response body.
pub struct Body(Inner);

enum Inner {
    /// The whole content (`None` once it has been polled out), and where it lies in a file
    /// when it is a blob's.
    Full(Option<Bytes>, Option<FileRange>),
    /// Frames as they come.
    Stream(Stream),
}

impl Body {
    /// A body of these bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Body {
        Body(Inner::Full(Some(bytes.into()), None))
    }

    /// A body of `bytes`, which are also the file's from `file.offset` on.
    pub fn from_file(bytes: Bytes, file: FileRange) -> Body {
        Body(Inner::Full(Some(bytes), Some(file)))
    }

    /// A body read from `stream` as it is sent.
    pub fn stream<B>(stream: B) -> Body
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        use http_body_util::BodyExt;
        Body(Inner::Stream(Box::pin(stream.map_err(Into::into))))
    }

    /// The whole content, when the body is one chunk ready at once; a stream is given back.
    pub fn into_bytes(self) -> Result<Bytes, Body> {
        self.into_chunk().map(|(bytes, _)| bytes)
    }

    /// The whole content and where it lies in a file, if it does; a stream is given back.
    pub fn into_chunk(self) -> Result<(Bytes, Option<FileRange>), Body> {
        match self.0 {
            Inner::Full(bytes, file) => Ok((bytes.unwrap_or_default(), file)),
            stream @ Inner::Stream(_) => Err(Body(stream)),
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::new(Bytes::new())
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Inner::Full(b, file) => f
                .debug_tuple("Body::Full")
                .field(&b.as_ref().map_or(0, Bytes::len))
                .field(&file.as_ref().map(|f| f.offset))
                .finish(),
            Inner::Stream(_) => f.write_str("Body::Stream"),
        }
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().0 {
            Inner::Full(bytes, _) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Inner::Stream(s) => s.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Inner::Full(bytes, _) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Inner::Stream(s) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Inner::Full(bytes, _) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Inner::Stream(s) => s.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn a_full_body_is_one_frame_and_a_stream_its_frames() {
        let full = Body::new("abc");
        assert_eq!(hyper::body::Body::size_hint(&full).exact(), Some(3));
        assert_eq!(full.collect().await.expect("body").to_bytes(), "abc");
        assert!(hyper::body::Body::is_end_stream(&Body::new(Bytes::new())));
        let streamed = Body::stream(http_body_util::Full::new(Bytes::from("xyz")));
        let streamed = streamed.into_bytes().expect_err("a stream stays a stream");
        assert_eq!(streamed.collect().await.expect("body").to_bytes(), "xyz");
        assert_eq!(Body::new("q").into_bytes().expect("full"), "q");
    }
}
