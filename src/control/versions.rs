//! Function Versions and Asset Versions (`ZN`), their multipart uploads (CONTRACT.md §5) and
//! Function Version Content.
//!
//! An upload streams its `Content` part into a blob writer (hashing as it goes) and only
//! finishes the blob once every part has been read and validated, so a refused upload leaves
//! nothing behind. The record is written after the blob is durable.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyStream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::resources::ResourceKind;
use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::iso;
use crate::manifest::Visibility;
use crate::sid::Prefix;
use crate::store::{BlobError, BlobWriter, Record, Write};
use crate::Body;

/// The response header carrying a version's content sha256 (lowercase hex).
pub const CONTENT_SHA256: &str = "sigil-content-sha256";

/// Largest public or protected content: 25 MiB (Twilio's "25 MB").
pub const MAX_CONTENT: u64 = 25 * 1024 * 1024;
/// Largest private content: 10 MiB (Twilio's "10 MB").
pub const MAX_PRIVATE_CONTENT: u64 = 10 * 1024 * 1024;
/// What multipart framing and the text parts may add to the content.
pub const MULTIPART_OVERHEAD: u64 = 64 * 1024;
const MAX_TEXT_PART: u64 = 4 * 1024;
/// Largest header section of one part (and preamble before the first part), give or take
/// the read-ahead of two pieces: multer itself buffers headers without a limit.
pub const MAX_PART_HEAD: u64 = 16 * 1024;
/// The body is handed to multer in pieces of at most this size, so that it never holds much
/// more than a part's headers when it looks for their end.
const PIECE: usize = 8 * 1024;

const NOT_IN_HEAD: u64 = u64::MAX;

/// Why an upload stopped while a part's headers were being read.
#[derive(Debug)]
struct PartHeadTooLarge;

impl std::fmt::Display for PartHeadTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a part's headers are longer than {MAX_PART_HEAD} bytes")
    }
}

impl std::error::Error for PartHeadTooLarge {}

/// The upload body in pieces of at most [`PIECE`] bytes, failing with [`PartHeadTooLarge`]
/// when more than [`MAX_PART_HEAD`] (+ two pieces) pass while a part's headers are awaited.
struct Pieces<S> {
    inner: std::pin::Pin<Box<S>>,
    rest: Bytes,
    /// Bytes handed on since the current part's headers began, or [`NOT_IN_HEAD`] while a
    /// part's content is being read.
    in_head: std::sync::Arc<AtomicU64>,
}

impl<S, O, E> Stream for Pieces<S>
where
    S: Stream<Item = Result<O, E>>,
    O: Into<Bytes>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        while self.rest.is_empty() {
            match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(o))) => self.rest = o.into(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.rest.len().min(PIECE);
        let seen = self.in_head.load(Ordering::Relaxed);
        if seen != NOT_IN_HEAD {
            let seen = seen + n as u64;
            self.in_head.store(seen, Ordering::Relaxed);
            if seen > MAX_PART_HEAD + 2 * PIECE as u64 {
                return Poll::Ready(Some(Err(Box::new(PartHeadTooLarge))));
            }
        }
        let piece = self.rest.split_to(n);
        Poll::Ready(Some(Ok(piece)))
    }
}

/// A text part's value, which must be UTF-8 (multer's `text()` would replace bad bytes).
async fn text_part(field: multer::Field<'_>, name: &str) -> Result<String, ApiError> {
    let bytes = field.bytes().await.map_err(upload_error)?;
    String::from_utf8(bytes.into()).map_err(|_| {
        ApiError::bad_param(format!(
            "Invalid value for parameter {name}: it is not UTF-8"
        ))
    })
}

/// The stored fields of a version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionData {
    /// The Service it belongs to.
    pub service_sid: String,
    /// Normalised path.
    pub path: String,
    /// Who may fetch it.
    pub visibility: Visibility,
    /// Content address.
    pub sha256: String,
    /// Content length.
    pub size: u64,
    /// The Content-Type of the uploaded part, if it had one.
    pub content_type: Option<String>,
}

fn upload_error(e: multer::Error) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::too_large(format!(
                "The upload is larger than the limit ({MAX_CONTENT} bytes of content)"
            ))
        }
        multer::Error::StreamReadFailed(e) if crate::server::is_timeout(e.as_ref()) => {
            ApiError::body_timeout(e)
        }
        multer::Error::StreamReadFailed(e) if e.is::<PartHeadTooLarge>() => {
            ApiError::bad_param(format!("Malformed multipart body: {e}"))
        }
        other => ApiError::bad_param(format!("Malformed multipart body: {other}")),
    }
}

fn blob_error(e: BlobError) -> ApiError {
    match e {
        BlobError::TooLarge { limit } => ApiError::too_large(format!(
            "Content is larger than {limit} bytes, the limit for an asset or function"
        )),
        BlobError::Io(e) => ApiError::unavailable(e),
    }
}

/// Takes the one value of a part that may appear once.
fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(ApiError::bad_param(format!(
            "Parameter {name} was sent more than once"
        )));
    }
    Ok(())
}

/// Where the `Content` part of a version upload goes as it streams in: a [`BlobWriter`] on
/// the server, anything else in tests and fuzz targets.
pub trait ContentSink: Send {
    /// Appends a chunk.
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = Result<(), ApiError>> + Send;
    /// Bytes written so far.
    fn size(&self) -> u64;
}

impl ContentSink for BlobWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), ApiError> {
        BlobWriter::write(self, chunk).await.map_err(blob_error)
    }

    fn size(&self) -> u64 {
        BlobWriter::size(self)
    }
}

/// A version upload whose parts have been read and validated.
#[derive(Debug)]
pub struct Upload<W> {
    /// The normalised `Path`.
    pub path: String,
    /// The `Visibility`.
    pub visibility: Visibility,
    /// Where the `Content` part went.
    pub content: W,
    /// The Content-Type of the `Content` part, if it had a non-empty one.
    pub content_type: Option<String>,
}

/// Reads a multipart version upload (`Path`, `Visibility`, `Content`) with its request's
/// `Content-Type` and declared `Content-Length`, streaming `Content` into a sink made by
/// `new_content` when that part starts, and validates it: every error is the API's answer.
pub async fn read_upload<S, O, E, W, F, Fut>(
    content_type: &str,
    declared_length: Option<u64>,
    body: S,
    mut new_content: F,
) -> Result<Upload<W>, ApiError>
where
    S: Stream<Item = Result<O, E>> + Send + 'static,
    O: Into<Bytes> + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    W: ContentSink,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<W, ApiError>>,
{
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        ApiError::unsupported_media(
            "Expected a multipart/form-data body with a boundary (parts Path, Visibility, Content)",
        )
    })?;
    let max_body = MAX_CONTENT + MULTIPART_OVERHEAD;
    if declared_length.is_some_and(|n| n > max_body) {
        return Err(ApiError::too_large(format!(
            "The upload is larger than the limit ({MAX_CONTENT} bytes of content)"
        )));
    }
    let limits = multer::SizeLimit::new()
        .whole_stream(max_body)
        .for_field("Path", MAX_TEXT_PART)
        .for_field("Visibility", MAX_TEXT_PART);
    let in_head = std::sync::Arc::new(AtomicU64::new(NOT_IN_HEAD));
    let body = Pieces {
        inner: Box::pin(body),
        rest: Bytes::new(),
        in_head: std::sync::Arc::clone(&in_head),
    };
    let mut multipart = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let head_mode = |on: bool| in_head.store(if on { 0 } else { NOT_IN_HEAD }, Ordering::Relaxed);

    let mut path: Option<String> = None;
    let mut visibility: Option<String> = None;
    let mut content: Option<(W, Option<String>)> = None;
    loop {
        head_mode(true);
        let next = multipart.next_field().await.map_err(upload_error);
        head_mode(false);
        let Some(mut field) = next? else { break };
        match field.name() {
            Some("Path") => {
                let v = text_part(field, "Path").await?;
                once(&mut path, "Path", v)?;
            }
            Some("Visibility") => {
                let v = text_part(field, "Visibility").await?;
                once(&mut visibility, "Visibility", v)?;
            }
            Some("Content") => {
                let part_type = field.content_type().map(|m| m.to_string());
                let mut writer = new_content().await?;
                while let Some(chunk) = field.chunk().await.map_err(upload_error)? {
                    writer.write(&chunk).await?;
                }
                once(&mut content, "Content", (writer, part_type))?;
            }
            // Unknown parts are ignored, like unknown form fields; their bytes still count
            // against the whole-body limit.
            _ => while field.chunk().await.map_err(upload_error)?.is_some() {},
        }
    }
    let path = path.ok_or_else(|| ApiError::missing("Path"))?;
    let visibility = visibility.ok_or_else(|| ApiError::missing("Visibility"))?;
    let (writer, part_type) = content.ok_or_else(|| ApiError::missing("Content"))?;
    let path = crate::asset_path::normalize(&path)
        .map_err(|why| ApiError::bad_param(format!("Invalid value for parameter Path: {why}")))?;
    let visibility = Visibility::parse(&visibility).ok_or_else(|| {
        ApiError::bad_param(format!(
            "Invalid value for parameter Visibility: {visibility:?} is not public, protected or private"
        ))
    })?;
    if visibility == Visibility::Private && writer.size() > MAX_PRIVATE_CONTENT {
        return Err(ApiError::too_large(format!(
            "Private content is limited to {MAX_PRIVATE_CONTENT} bytes"
        )));
    }
    Ok(Upload {
        path,
        visibility,
        content: writer,
        content_type: part_type.filter(|t| !t.is_empty()),
    })
}

impl ControlPlane {
    fn version_path(kind: ResourceKind, rec: &Record, d: &VersionData) -> String {
        format!(
            "/Services/{}/{}/{}/Versions/{}",
            d.service_sid,
            kind.segment(),
            rec.parent_sid.as_deref().unwrap_or_default(),
            rec.sid
        )
    }

    fn render_version(&self, kind: ResourceKind, rec: &Record, d: &VersionData) -> Value {
        let path = Self::version_path(kind, rec, d);
        let mut v = json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": d.service_sid,
            kind.parent_field(): rec.parent_sid,
            "path": d.path,
            "visibility": d.visibility.as_str(),
            "date_created": iso(rec.created),
            "url": self.url(&path),
        });
        if kind == ResourceKind::Function {
            v["links"] = json!({"function_version_content": self.url(&format!("{path}/Content"))});
        }
        v
    }

    async fn version(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        res: &str,
        id: &str,
    ) -> Result<(Record, VersionData), ApiError> {
        let (_, resource) = self.resource(ctx, svc, kind, res).await?;
        let rec = self
            .load(
                ctx,
                kind.version_kind(),
                Prefix::Version,
                id,
                Some(&resource.sid),
            )
            .await?;
        let data = rec.decode()?;
        Ok((rec, data))
    }

    pub(super) async fn list_versions(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        res: &str,
    ) -> ApiResult {
        let (_, resource) = self.resource(ctx, svc, kind, res).await?;
        self.list_page(
            ctx,
            kind.version_kind(),
            Some(resource.sid),
            kind.versions_key(),
            ListFilter::default(),
            |r| Ok(self.render_version(kind, r, &r.decode()?)),
        )
        .await
    }

    /// A version's JSON, with its content address in a `Sigil-Content-Sha256` header (not a
    /// field: bodies keep Twilio's shape) so `sigil deploy` can skip unchanged files.
    fn version_response(
        &self,
        status: StatusCode,
        kind: ResourceKind,
        rec: &Record,
        d: &VersionData,
    ) -> Response<Body> {
        let mut resp = json_response(status, &self.render_version(kind, rec, d));
        if let Ok(v) = HeaderValue::from_str(&d.sha256) {
            resp.headers_mut().insert(CONTENT_SHA256, v);
        }
        resp
    }

    pub(super) async fn fetch_version(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        res: &str,
        id: &str,
    ) -> ApiResult {
        let (rec, data) = self.version(ctx, svc, kind, res, id).await?;
        Ok(self.version_response(StatusCode::OK, kind, &rec, &data))
    }

    pub(super) async fn fetch_function_content(
        &self,
        ctx: &Ctx,
        svc: &str,
        function: &str,
        id: &str,
    ) -> ApiResult {
        let (rec, data) = self
            .version(ctx, svc, ResourceKind::Function, function, id)
            .await?;
        let bytes = self
            .blobs
            .read(&data.sha256)
            .await
            .map_err(ApiError::internal)?;
        let path = Self::version_path(ResourceKind::Function, &rec, &data);
        Ok(json_response(
            StatusCode::OK,
            &json!({
                "sid": rec.sid,
                "account_sid": rec.account_sid,
                "service_sid": data.service_sid,
                "function_sid": rec.parent_sid,
                "content": String::from_utf8_lossy(&bytes),
                "url": self.url(&format!("{path}/Content")),
            }),
        ))
    }

    /// `POST …/{Functions|Assets}/{Sid}/Versions` (multipart: `Path`, `Visibility`, `Content`).
    pub(super) async fn upload_version<B>(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        res: &str,
        req: Request<B>,
    ) -> ApiResult
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (service, resource) = self.resource(ctx, svc, kind, res).await?;
        let (parts, body) = req.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let stream = BodyStream::new(body)
            .map_err(Into::into)
            .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
        let upload = read_upload(content_type, declared, stream, || async {
            self.blobs.writer(MAX_CONTENT).await.map_err(blob_error)
        })
        .await?;
        let blob = upload.content.finish().await.map_err(blob_error)?;
        let data = VersionData {
            service_sid: service.sid,
            path: upload.path,
            visibility: upload.visibility,
            sha256: blob.sha256,
            size: blob.size,
            content_type: upload.content_type,
        };
        let rec = Record::new(
            kind.version_kind(),
            Prefix::Version.generate(),
            ctx.account.clone(),
            Some(resource.sid),
            &data,
        );
        let write = rec.clone();
        self.db(move |s| s.commit(vec![Write::Insert(write)]))
            .await?;
        Ok(self.version_response(StatusCode::CREATED, kind, &rec, &data))
    }
}
