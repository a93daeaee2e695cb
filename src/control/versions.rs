//! Function Versions and Asset Versions (`ZN`), their multipart uploads (CONTRACT.md §5) and
//! Function Version Content.
//!
//! An upload streams its `Content` part into a blob writer (hashing as it goes) and only
//! finishes the blob once every part has been read and validated, so a refused upload leaves
//! nothing behind. The record is written after the blob is durable.

use std::future::Future;

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
/// Largest header section of one part, and largest preamble before the first part: multer
/// itself would buffer either up to the whole body limit, rescanning it as it grows.
pub const MAX_PART_HEAD: usize = 16 * 1024;

/// Why an upload stopped while a part's headers were being read.
#[derive(Debug)]
struct PartHeadTooLarge;

impl std::fmt::Display for PartHeadTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a part's headers are longer than {MAX_PART_HEAD} bytes")
    }
}

impl std::error::Error for PartHeadTooLarge {}

/// Follows a multipart body's structure as it streams past, independently of how far multer
/// has read it: the preamble before the first delimiter (`CRLF--boundary`) and, after each
/// delimiter, the bytes up to the blank line that ends the part's headers are counted.
struct HeadGuard {
    /// `\r\n--` + boundary.
    delimiter: Vec<u8>,
    /// The last bytes of the previous chunk, where a delimiter or blank line may begin.
    carry: Vec<u8>,
    state: Scan,
}

/// Where a [`HeadGuard`] is, with the bytes counted so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    Preamble(usize),
    Head(usize),
    Body,
}

impl HeadGuard {
    fn new(boundary: &str) -> HeadGuard {
        HeadGuard {
            delimiter: [b"\r\n--".as_slice(), boundary.as_bytes()].concat(),
            // The first delimiter has no CRLF before it: pretend it had.
            carry: b"\r\n".to_vec(),
            state: Scan::Preamble(0),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), PartHeadTooLarge> {
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(chunk);
        let mut at = 0;
        loop {
            let (end, seen): (&[u8], Option<usize>) = match self.state {
                Scan::Preamble(seen) => (&self.delimiter, Some(seen)),
                Scan::Head(seen) => (b"\r\n\r\n", Some(seen)),
                Scan::Body => (&self.delimiter, None),
            };
            let rest = &window[at..];
            match memchr::memmem::find(rest, end) {
                Some(i) => {
                    if seen.is_some_and(|seen| seen + i > MAX_PART_HEAD) {
                        return Err(PartHeadTooLarge);
                    }
                    at += i + end.len();
                    self.state = match self.state {
                        Scan::Preamble(_) | Scan::Body => Scan::Head(0),
                        Scan::Head(_) => Scan::Body,
                    };
                }
                None => {
                    // Keep what could be the start of `end`; count the rest.
                    let keep = (end.len() - 1).min(rest.len());
                    if let Some(seen) = seen {
                        let seen = seen + rest.len() - keep;
                        if seen > MAX_PART_HEAD {
                            return Err(PartHeadTooLarge);
                        }
                        self.state = match self.state {
                            Scan::Preamble(_) => Scan::Preamble(seen),
                            _ => Scan::Head(seen),
                        };
                    }
                    self.carry = rest[rest.len() - keep..].to_vec();
                    return Ok(());
                }
            }
        }
    }
}

/// The upload body, checked by a [`HeadGuard`] on its way to multer.
struct Guarded<S> {
    inner: std::pin::Pin<Box<S>>,
    guard: HeadGuard,
}

impl<S, O, E> Stream for Guarded<S>
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
        let item = match self.inner.as_mut().poll_next(cx) {
            std::task::Poll::Ready(item) => item,
            std::task::Poll::Pending => return std::task::Poll::Pending,
        };
        std::task::Poll::Ready(item.map(|r| {
            let bytes: Bytes = r.map_err(Into::into)?.into();
            self.guard.feed(&bytes)?;
            Ok(bytes)
        }))
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
    /// When a round of upkeep found that no Build held it past the retention (that round's
    /// Unix seconds). A later round deletes it if it is still set and still no Build holds
    /// it; a Build that names it clears it in its own commit, which changes the record, so
    /// that deletion's check fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unheld_since: Option<i64>,
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
        BlobError::Remote(e) => ApiError::unavailable(e),
        BlobError::Missing(e) => ApiError::internal(e),
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
    let body = Guarded {
        inner: Box::pin(body),
        guard: HeadGuard::new(&boundary),
    };
    let mut multipart = multer::Multipart::with_constraints(
        body,
        boundary,
        multer::Constraints::new().size_limit(limits),
    );

    let mut path: Option<String> = None;
    let mut visibility: Option<String> = None;
    let mut content: Option<(W, Option<String>)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(upload_error)? {
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

    /// A Version (the caller's, of this resource) and its content.
    async fn version_content(
        &self,
        ctx: &Ctx,
        svc: &str,
        kind: ResourceKind,
        res: &str,
        id: &str,
    ) -> Result<(Record, VersionData, Vec<u8>), ApiError> {
        let (rec, data) = self.version(ctx, svc, kind, res, id).await?;
        let bytes = self
            .blobs
            .read(&data.sha256, data.size)
            .await
            .map_err(blob_error)?;
        Ok((rec, data, bytes))
    }

    pub(super) async fn fetch_function_content(
        &self,
        ctx: &Ctx,
        svc: &str,
        function: &str,
        id: &str,
    ) -> ApiResult {
        let (rec, data, bytes) = self
            .version_content(ctx, svc, ResourceKind::Function, function, id)
            .await?;
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

    /// `GET …/Assets/{Sid}/Versions/{Sid}/Content`: the Version's bytes as uploaded, with
    /// its Content-Type. A sigil addition (Twilio's API cannot read an Asset back): what lets
    /// a client — the Console among them — make a new Version of the same content with
    /// another visibility or path.
    pub(super) async fn fetch_asset_content(
        &self,
        ctx: &Ctx,
        svc: &str,
        asset: &str,
        id: &str,
    ) -> ApiResult {
        let (_, data, bytes) = self
            .version_content(ctx, svc, ResourceKind::Asset, asset, id)
            .await?;
        let mut resp = Response::new(crate::Body::new(Bytes::from(bytes)));
        let ctype = data
            .content_type
            .as_deref()
            .and_then(|t| HeaderValue::from_str(t).ok())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, ctype);
        h.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        // Content a user uploaded, on the API's origin: never a page that runs there.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'"),
        );
        Ok(resp)
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
            unheld_since: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn guard_accepts(body: &[u8], piece: usize) -> bool {
        let mut g = HeadGuard::new("B");
        body.chunks(piece).all(|c| g.feed(c).is_ok())
    }

    #[test]
    fn head_guard_counts_headers_and_preamble_not_content() {
        let part = |headers: &str, content: &[u8]| {
            [
                b"--B\r\n",
                headers.as_bytes(),
                b"\r\n\r\n",
                content,
                b"\r\n",
            ]
            .concat()
        };
        let big = vec![b'x'; 200_000];
        let ok = [
            part("Content-Disposition: form-data; name=\"Path\"", b"/a"),
            part("Content-Disposition: form-data; name=\"Content\"", &big),
            b"--B--\r\n".to_vec(),
        ]
        .concat();
        let filler = format!("X: {}", "a".repeat(MAX_PART_HEAD));
        let giant = [part(&filler, b"/a"), b"--B--\r\n".to_vec()].concat();
        let preamble = [vec![b'p'; MAX_PART_HEAD + 10], b"\r\n".to_vec(), ok.clone()].concat();
        for piece in [1, 3, 7, 100, 8192, usize::MAX] {
            assert!(guard_accepts(&ok, piece), "piece {piece}");
            assert!(!guard_accepts(&giant, piece), "piece {piece}");
            assert!(!guard_accepts(&preamble, piece), "piece {piece}");
        }
    }
}
