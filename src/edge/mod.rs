//! The edge: serves each Environment's deployed Build at its domain.
//!
//! A request is answered in three steps: find the Site and asset (routes), decide access
//! (access), work out the HTTP outcome from the request's headers and the asset's validators
//! (http) — all pure and in memory — and only then fetch bytes from the blob cache. The
//! [`Outcome`] becomes a reply in exactly one place, [`Edge::respond`] (an asset's header
//! fields are listed in [`reply::AssetReply::fields`]). Requests for the API's host names go
//! to an [`ApiHandler`] instead: the control plane in the same process, or [`proxy::Proxy`] to
//! a remote one. In a fleet, [`feed::Follower`] keeps the route table
//! in line with the store's change feed and [`snapshot::Snapshot`] keeps it on disk.

pub mod access;
pub mod cache;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod reply;
pub mod routes;
pub mod snapshot;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use ::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;

use self::access::{decide, Access, OwnedPayload, Proof, Tokens};
use self::cache::{Blob, BlobCache, CacheError};
use self::http::conditional::{self, Precondition};
use self::http::encoding::{self, Coding};
use self::http::range::{self, RangeOutcome};
use self::metrics::Metrics;
use self::reply::{AssetReply, Reply};
use self::routes::{EdgeAsset, Representation, RouteTable, Site};
use crate::functions::Functions;
use crate::logsink::LogSink;
use crate::manifest::Visibility;
use crate::Body;

/// The body of a request for the API's host names, as the edge hands it on.
pub type ApiBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Where requests for the API's host names go: the control plane in this process, or a
/// proxy to one elsewhere ([`proxy::Proxy`]).
pub trait ApiHandler: Send + Sync + 'static {
    /// Answers one API request that arrived on `conn`.
    fn handle(
        &self,
        req: Request<ApiBody>,
        conn: Conn,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + '_>>;
}

/// Edge settings (from `sigil serve` flags).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// `serverless.{domain}` and `serverless-upload.{domain}`.
    pub api_hosts: [String; 2],
    /// Largest POST body read at the edge.
    pub max_post_body: usize,
    /// Cache-Control of public assets.
    pub cache_control_public: HeaderValue,
    /// Cache-Control of protected assets.
    pub cache_control_protected: HeaderValue,
    /// Peers whose `X-Forwarded-Proto` / `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// One tracing line per edge request.
    pub access_log: bool,
    /// One Log line (the API's Logs resource) per edge request.
    pub request_logs: bool,
}

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The client (or proxy).
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
}

/// The edge.
pub struct Edge {
    /// Host → Site.
    pub routes: Arc<RouteTable>,
    /// Auth tokens for signatures.
    pub tokens: Arc<Tokens>,
    /// Blob bytes.
    pub cache: BlobCache,
    /// Counters.
    pub metrics: Arc<Metrics>,
    logs: Arc<LogSink>,
    api: Option<Arc<dyn ApiHandler>>,
    functions: Option<Arc<Functions>>,
    config: EdgeConfig,
}

/// What the edge answers, decided before any byte is fetched.
enum Outcome {
    /// 200 or 206 with a representation (or a slice of it).
    Serve {
        asset: Arc<EdgeAsset>,
        coding: Coding,
        range: Option<(u64, u64)>,
        head: bool,
    },
    /// 304 with the validators.
    NotModified {
        asset: Arc<EdgeAsset>,
        coding: Coding,
    },
    /// 412.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */size`.
    RangeNotSatisfiable { size: u64 },
    /// 204 CORS preflight.
    Preflight {
        request_headers: Option<HeaderValue>,
    },
    /// 403.
    Forbidden,
    /// 404.
    NotFound,
    /// 405 with `Allow`.
    MethodNotAllowed {
        /// What `Allow` lists.
        allow: &'static str,
    },
    /// 400 with a reason.
    BadRequest(&'static str),
    /// 413.
    TooLarge,
    /// 408: the body did not arrive in time.
    Timeout,
    /// 501: a Function path on an edge that runs no Functions.
    FunctionNotExecuted,
    /// What a Function answered (or sigil for it: a time-out, a crash, the cap).
    Ran {
        /// Boxed: every Outcome would otherwise carry its size.
        resp: Box<Response<Body>>,
        function_sid: Option<String>,
    },
}

const ALLOW: &str = "GET, HEAD, POST, OPTIONS";
/// What a Function path allows (Twilio's runtime serves these three only).
const FUNCTION_ALLOW: &str = "GET, POST, OPTIONS";

/// What [`Edge::handle_now`] did with a request.
pub enum Handled<B> {
    /// Answered.
    Now(Reply),
    /// Needs waiting for: finish it with [`Edge::handle_later`].
    Later(Pending<B>),
}

/// A request the edge has started to answer and must wait to finish.
pub struct Pending<B>(Box<Later<B>>);

enum Later<B> {
    /// For the API's host names: the control plane answers.
    Api(Request<B>, Conn),
    /// A POST, or a Function call: its body is read, access decided (a signature may cover
    /// the body), then the asset served or the Function run.
    Body {
        function: bool,
        site: Arc<Site>,
        asset: Arc<EdgeAsset>,
        req: Request<B>,
        scheme: &'static str,
        authority: String,
        line: Option<RequestLine>,
        started: Option<SystemTime>,
    },
    /// The outcome is decided; the blob it serves is not mapped yet.
    Load {
        site: Arc<Site>,
        line: Option<RequestLine>,
        outcome: Outcome,
        started: Option<SystemTime>,
    },
}

/// The host a request names: the URI's authority (HTTP/2, absolute-form), else the single
/// Host header. Two Host headers, an invalid one (RFC 9112 §3.2), or a Host that disagrees
/// with the authority, are refused.
fn request_host(req: &::http::request::Parts) -> Result<&str, &'static str> {
    let mut hosts = req.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err("more than one Host header");
    }
    let host = host
        .map(|h| h.to_str().map_err(|_| "the Host header is not ASCII"))
        .transpose()?;
    if host.is_some_and(|h| !routes::valid_host(h)) {
        return Err("the Host header is not a valid host");
    }
    if req
        .uri
        .authority()
        .is_some_and(|a| !routes::valid_host(a.as_str()))
    {
        return Err("the request target's host is not valid");
    }
    match (req.uri.authority(), host) {
        (Some(a), Some(h)) if !a.as_str().eq_ignore_ascii_case(h) => {
            Err("the Host header and the request target name different hosts")
        }
        (Some(a), _) => Ok(a.as_str()),
        (None, Some(h)) if !h.is_empty() => Ok(h),
        _ => Err("no Host header"),
    }
}

/// The asset path a request's path names: percent-decoded once (never normalised: `..` and
/// `%2F` are looked up as they are, and match nothing), which must be UTF-8 without NUL.
pub fn decode_path(raw: &str) -> Result<std::borrow::Cow<'_, str>, &'static str> {
    let path = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| "the path is not UTF-8 after percent-decoding")?;
    if path.contains('\0') {
        return Err("the path contains NUL");
    }
    Ok(path)
}

/// `Example.COM:8443` → `example.com` (borrowed when it is already in that form).
fn host_name(authority: &str) -> std::borrow::Cow<'_, str> {
    let without_port = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        memchr::memrchr(b':', authority.as_bytes()).map_or(authority, |i| &authority[..i])
    };
    let name = without_port.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The value a trusted proxy added to a list header such as `X-Forwarded-Proto`: the last
/// one. A proxy appends to what it received, so the values before it are what the client
/// (or a proxy further out, not trusted) wrote.
fn forwarded_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let v = headers.get_all(name).iter().next_back()?.to_str().ok()?;
    v.rsplit(',')
        .next()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl Edge {
    /// An edge over `routes`, reading blobs through `cache`.
    pub fn new(
        routes: Arc<RouteTable>,
        tokens: Arc<Tokens>,
        cache: BlobCache,
        logs: Arc<LogSink>,
        api: Option<Arc<dyn ApiHandler>>,
        config: EdgeConfig,
    ) -> Edge {
        Edge {
            routes,
            tokens,
            cache,
            metrics: Arc::new(Metrics::default()),
            logs,
            api,
            functions: None,
            config,
        }
    }

    /// Runs Functions with these settings (an edge without them answers 501 for Functions).
    pub fn with_functions(mut self, config: crate::functions::FunctionsConfig) -> Edge {
        self.functions = Some(Arc::new(Functions::new(
            config,
            Arc::clone(&self.routes),
            Arc::clone(&self.tokens),
            Arc::clone(&self.logs),
        )));
        self
    }

    /// Whether the dependency set of `code` is unpacked on this host already (without
    /// Functions: never).
    pub(crate) fn dependencies_unpacked(&self, code: &routes::Code) -> bool {
        self.functions
            .as_ref()
            .is_some_and(|f| f.dependencies_unpacked(code))
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.config.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// Answers one request that arrived on `conn`.
    pub async fn handle<B>(&self, req: Request<B>, conn: &Conn) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.reply(req, conn).await.into_response()
    }

    /// Answers one request that arrived on `conn`, an asset's answer unrendered (for the
    /// HTTP/1.1 fast path, which writes its head fields itself).
    pub async fn reply<B>(&self, req: Request<B>, conn: &Conn) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match self.handle_now(req, conn) {
            Handled::Now(reply) => reply,
            // Boxed: it is rare, and every request's future would otherwise carry its size.
            Handled::Later(pending) => Box::pin(self.handle_later(pending)).await,
        }
    }

    /// Answers a request without waiting, which is what nearly every request allows: all but
    /// a POST body to read, a blob not mapped yet, and the API's host names. Those come back
    /// as [`Pending`], for [`Edge::handle_later`]. (The HTTP/2 server answers each stream in
    /// its connection's task this way and spawns a task only for what is pending.)
    pub fn handle_now<B>(&self, req: Request<B>, conn: &Conn) -> Handled<B> {
        // Only the access log reads the clock (the wall clock: its line's time is read again
        // at the end, and the difference is how long the request took).
        let started = self.config.access_log.then(SystemTime::now);
        let trusted = self.trusted(conn.peer.ip());
        // Taken apart here and put together again only for what waits: the authority below
        // borrows from the parts, and a request answered now never copies it.
        let (parts, body) = req.into_parts();
        let forwarded_host = trusted
            .then(|| forwarded_value(&parts.headers, "x-forwarded-host"))
            .flatten()
            .map(|h| {
                // Checked like a Host header: it names the Site and goes into the signed URL.
                if routes::valid_host(h) {
                    Ok(h)
                } else {
                    Err("the X-Forwarded-Host header is not a valid host")
                }
            });
        // Only the logs read it; borrowed, and copied only for what waits.
        let line = (self.config.access_log || self.config.request_logs).then(|| Line {
            method: &parts.method,
            path: parts.uri.path(),
        });
        let authority = match forwarded_host.unwrap_or_else(|| request_host(&parts)) {
            Ok(a) => a,
            Err(why) => {
                let outcome = Outcome::BadRequest(why);
                return Handled::Now(self.finish(None, line, outcome, None, started));
            }
        };
        let host = host_name(authority);
        // The scheme the client used: a trusted proxy's word, else this connection's.
        let scheme = match trusted
            .then(|| forwarded_value(&parts.headers, "x-forwarded-proto"))
            .flatten()
        {
            Some(p) if p.eq_ignore_ascii_case("https") => "https",
            Some(p) if p.eq_ignore_ascii_case("http") => "http",
            _ => conn.scheme,
        };
        if self
            .config
            .api_hosts
            .iter()
            .any(|h| h.as_str() == host.as_ref())
        {
            let conn = Conn { scheme, ..*conn };
            let req = Request::from_parts(parts, body);
            return Handled::Later(Pending(Box::new(Later::Api(req, conn))));
        }
        let Some(site) = self.routes.lookup(&host) else {
            let outcome = Outcome::NotFound;
            return Handled::Now(self.finish(None, line, outcome, None, started));
        };
        let asset = match route(&site, &parts) {
            Ok(asset) => asset,
            Err(outcome) => return self.conclude(site, line, outcome, started),
        };
        let function = asset.is_function && self.functions.is_some();
        if function && parts.method == Method::HEAD {
            let outcome = Outcome::MethodNotAllowed {
                allow: FUNCTION_ALLOW,
            };
            return self.conclude(site, line, outcome, started);
        }
        if function || parts.method == Method::POST {
            let authority = authority.to_owned();
            let line = line.map(Line::to_owned);
            return Handled::Later(Pending(Box::new(Later::Body {
                function,
                site,
                asset,
                req: Request::from_parts(parts, body),
                scheme,
                authority,
                line,
                started,
            })));
        }
        let outcome = self.access(&site, &parts, Bytes::new(), asset, scheme, authority);
        self.conclude(site, line, outcome, started)
    }

    /// Finishes what [`Edge::handle_now`] left pending.
    pub async fn handle_later<B>(&self, Pending(later): Pending<B>) -> Reply
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut later = *later;
        loop {
            later = match later {
                Later::Api(req, conn) => {
                    let Some(api) = &self.api else {
                        return no_api().into();
                    };
                    let req = req.map(|b| b.map_err(Into::into).boxed_unsync());
                    return api.handle(req, conn).await.into();
                }
                Later::Body {
                    function,
                    site,
                    asset,
                    req,
                    scheme,
                    authority,
                    line,
                    started,
                } => {
                    if function {
                        let outcome = self
                            .run_function(&site, asset, req, scheme, &authority)
                            .await;
                        let line = line.as_ref().map(RequestLine::line);
                        return self.finish(Some(&site), line, outcome, None, started);
                    }
                    let (parts, body) = req.into_parts();
                    let outcome = match self.read_body(body).await {
                        Ok(body) => self.access(&site, &parts, body, asset, scheme, &authority),
                        Err(outcome) => outcome,
                    };
                    let line = line.as_ref().map(RequestLine::line);
                    match self.conclude(site, line, outcome, started) {
                        Handled::Now(reply) => return reply,
                        Handled::Later(Pending(later)) => *later,
                    }
                }
                Later::Load {
                    site,
                    line,
                    outcome,
                    started,
                } => {
                    let blob = match blob_of(&outcome) {
                        Some(rep) => Some(self.cache.load(&rep.sha256, rep.size).await),
                        None => None,
                    };
                    let line = line.as_ref().map(RequestLine::line);
                    return self.finish(Some(&site), line, outcome, blob, started);
                }
            }
        }
    }

    /// A request's whole body, up to `--edge-max-body` (413) and within the body-read
    /// deadline (408).
    async fn read_body<B>(&self, body: B) -> Result<Bytes, Outcome>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let body = http_body_util::Limited::new(body, self.config.max_post_body);
        match body.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Outcome::TooLarge),
            Err(e) if crate::server::is_timeout(e.as_ref()) => Err(Outcome::Timeout),
            Err(_) => Err(Outcome::BadRequest("the request body could not be read")),
        }
    }

    /// A Function call: the body read (bounded, in time), access decided as for an asset,
    /// then the Function run.
    async fn run_function<B>(
        &self,
        site: &Arc<Site>,
        asset: Arc<EdgeAsset>,
        req: Request<B>,
        scheme: &str,
        authority: &str,
    ) -> Outcome
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let Some(functions) = &self.functions else {
            return Outcome::FunctionNotExecuted;
        };
        let (parts, body) = req.into_parts();
        let body = match self.read_body(body).await {
            Ok(body) => body,
            Err(outcome) => return outcome,
        };
        // Twilio's runtime refuses a GET that carries a body.
        if parts.method == Method::GET && !body.is_empty() {
            return Outcome::Forbidden;
        }
        if let Some(refused) = self.refused(site, &parts, body.clone(), &asset, scheme, authority) {
            return refused;
        }
        let resp = functions
            .call(
                &self.cache,
                site,
                &asset,
                crate::functions::Call {
                    parts: &parts,
                    body,
                    scheme,
                    authority,
                },
            )
            .await;
        Outcome::Ran {
            resp: Box::new(resp),
            function_sid: asset.function_sid.clone(),
        }
    }

    /// Why a request whose body has been read may not have `asset`, if it may not.
    fn refused(
        &self,
        site: &Site,
        parts: &::http::request::Parts,
        body: Bytes,
        asset: &EdgeAsset,
        scheme: &str,
        authority: &str,
    ) -> Option<Outcome> {
        let proof = if asset.visibility == Visibility::Protected {
            match proof(parts, body, scheme, authority) {
                Ok(p) => Some(p),
                Err(why) => return Some(Outcome::BadRequest(why)),
            }
        } else {
            None
        };
        match decide(
            &self.tokens,
            &site.account_sid,
            asset.visibility,
            proof.as_ref(),
        ) {
            Access::Allowed => None,
            Access::Private => Some(Outcome::Forbidden),
            Access::MissingSignature | Access::BadSignature => {
                self.metrics.signature_failure();
                Some(Outcome::Forbidden)
            }
        }
    }

    /// Access for a request whose body (empty unless a POST) has been read, then the HTTP
    /// outcome.
    fn access(
        &self,
        site: &Site,
        parts: &::http::request::Parts,
        body: Bytes,
        asset: Arc<EdgeAsset>,
        scheme: &str,
        authority: &str,
    ) -> Outcome {
        if let Some(refused) = self.refused(site, parts, body, &asset, scheme, authority) {
            return refused;
        }
        if asset.is_function {
            return Outcome::FunctionNotExecuted;
        }
        http_outcome(&parts.method, &parts.headers, asset, site)
    }

    /// The response to `outcome`, unless the blob it serves is not mapped yet.
    fn conclude<B>(
        &self,
        site: Arc<Site>,
        line: Option<Line<'_>>,
        outcome: Outcome,
        started: Option<SystemTime>,
    ) -> Handled<B> {
        let blob = match blob_of(&outcome) {
            None => None,
            Some(rep) => match self.cache.cached(&rep.sha256) {
                Some(blob) => Some(Ok(blob)),
                None => {
                    return Handled::Later(Pending(Box::new(Later::Load {
                        site,
                        line: line.map(Line::to_owned),
                        outcome,
                        started,
                    })))
                }
            },
        };
        Handled::Now(self.finish(Some(&site), line, outcome, blob, started))
    }

    /// Turns an outcome (with the bytes it serves, if any) into a response (the one place),
    /// counts and logs it.
    fn finish(
        &self,
        site: Option<&Site>,
        line: Option<Line<'_>>,
        outcome: Outcome,
        blob: Option<Result<Blob, CacheError>>,
        started: Option<SystemTime>,
    ) -> Reply {
        // Read before `respond` consumes the outcome, and only when a Log line will be written.
        let function_sid = match &outcome {
            Outcome::Serve { asset, .. } | Outcome::NotModified { asset, .. }
                if self.config.request_logs =>
            {
                asset.function_sid.clone()
            }
            Outcome::Ran { function_sid, .. } => function_sid.clone(),
            _ => None,
        };
        let reply = self.respond(site, outcome, blob);
        let status = reply.status().as_u16();
        let sent = reply.body_len().unwrap_or(0);
        self.metrics.request(status, sent);
        if let (Some(started), Some(line)) = (started, line) {
            crate::logline::access(&crate::logline::Access {
                site: site.map(|s| s.domain.as_str()).unwrap_or("-"),
                method: line.method.as_str(),
                path: line.path,
                status,
                bytes: sent,
                started,
            });
        }
        if let (Some(site), Some(line)) = (site.filter(|_| self.config.request_logs), line) {
            let level = match status {
                500.. => "error",
                400.. => "warn",
                _ => "info",
            };
            let message = || format!("{} {} {status} {sent}", line.method, line.path);
            site.log(&self.logs, level, message, function_sid);
        }
        reply
    }

    /// The reply to `outcome`: an asset's unrendered, any other a `Response`.
    fn respond(
        &self,
        site: Option<&Site>,
        outcome: Outcome,
        blob: Option<Result<Blob, CacheError>>,
    ) -> Reply {
        let last_modified = |asset: &EdgeAsset| match site {
            Some(site) => site.last_modified(asset).1.clone(),
            None => asset.last_modified_header.clone(),
        };
        match outcome {
            Outcome::Serve {
                asset,
                coding,
                range,
                head: _,
            } => {
                let size = representation(&asset, coding).size;
                let (start, len, status, content_range) = match range {
                    Some((start, end)) => {
                        let cr = format!("bytes {start}-{end}/{size}");
                        let cr = HeaderValue::from_str(&cr).expect("ASCII");
                        (
                            start,
                            end - start + 1,
                            StatusCode::PARTIAL_CONTENT,
                            Some(cr),
                        )
                    }
                    None => (0, size, StatusCode::OK, None),
                };
                // `conclude` fetched the bytes unless this is a HEAD.
                let body = match blob {
                    None => Body::default(),
                    Some(Ok(blob)) => {
                        let end = usize::try_from(start + len).expect("fits: it is mapped");
                        let start = usize::try_from(start).expect("fits: it is mapped");
                        blob.body(start..end)
                    }
                    Some(Err(e @ CacheError::Unavailable { .. })) => {
                        tracing::warn!(error = %e, path = %asset.path, "blob not fetched");
                        let mut resp =
                            plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n");
                        resp.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                        return resp.into();
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, path = %asset.path, "cannot read blob");
                        let resp =
                            plain(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error\n");
                        return resp.into();
                    }
                };
                Reply::Asset(AssetReply {
                    status,
                    last_modified: last_modified(&asset),
                    cache_control: self.cache_control(&asset),
                    content_range,
                    len,
                    body,
                    asset,
                    coding,
                })
            }
            Outcome::NotModified { asset, coding } => Reply::Asset(AssetReply {
                status: StatusCode::NOT_MODIFIED,
                last_modified: last_modified(&asset),
                cache_control: self.cache_control(&asset),
                content_range: None,
                len: 0,
                body: Body::default(),
                asset,
                coding,
            }),
            Outcome::RangeNotSatisfiable { size } => {
                let mut resp = plain(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable\n");
                let range = HeaderValue::from_str(&format!("bytes */{size}")).expect("ASCII");
                resp.headers_mut().insert(header::CONTENT_RANGE, range);
                resp.into()
            }
            Outcome::Preflight { request_headers } => {
                let mut resp = Response::new(Body::default());
                *resp.status_mut() = StatusCode::NO_CONTENT;
                let h = resp.headers_mut();
                h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOW),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    request_headers.unwrap_or_else(|| HeaderValue::from_static("*")),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("86400"),
                );
                resp.into()
            }
            Outcome::MethodNotAllowed { allow } => {
                let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                resp.into()
            }
            Outcome::PreconditionFailed => {
                plain(StatusCode::PRECONDITION_FAILED, "Precondition Failed\n").into()
            }
            Outcome::Forbidden => plain(StatusCode::FORBIDDEN, "Forbidden\n").into(),
            Outcome::NotFound => plain(StatusCode::NOT_FOUND, "Not Found\n").into(),
            Outcome::TooLarge => plain(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large\n").into(),
            Outcome::Timeout => plain(StatusCode::REQUEST_TIMEOUT, "Request Timeout\n").into(),
            Outcome::BadRequest(why) => {
                plain(StatusCode::BAD_REQUEST, &format!("Bad Request: {why}\n")).into()
            }
            Outcome::Ran { resp, .. } => Reply::Response(*resp),
            Outcome::FunctionNotExecuted => plain(
                StatusCode::NOT_IMPLEMENTED,
                "sigil serves assets; this path is a Function, and Functions are not executed\n",
            )
            .into(),
        }
    }

    /// The Cache-Control of an asset's 200 (and 304).
    fn cache_control(&self, asset: &EdgeAsset) -> HeaderValue {
        if asset.visibility == Visibility::Public {
            self.config.cache_control_public.clone()
        } else {
            self.config.cache_control_protected.clone()
        }
    }

    /// The Prometheus exposition of the edge's counters.
    pub fn render_metrics(&self) -> String {
        let mut text = self.metrics.render(
            self.cache.stats(),
            self.routes.len(),
            (self.logs.dropped(), self.logs.over_rate()),
        );
        if let Some(f) = &self.functions {
            text.push_str(&f.render_metrics());
        }
        text
    }
}

/// What the logs say of a request, borrowed from it while it is answered.
#[derive(Clone, Copy)]
struct Line<'a> {
    method: &'a Method,
    path: &'a str,
}

impl Line<'_> {
    /// A copy to keep across an `await`.
    fn to_owned(self) -> RequestLine {
        RequestLine {
            method: self.method.clone(),
            path: self.path.to_owned(),
        }
    }
}

/// A [`Line`] kept while the request waits (for its body, a Function, a blob).
struct RequestLine {
    method: Method,
    path: String,
}

impl RequestLine {
    fn line(&self) -> Line<'_> {
        Line {
            method: &self.method,
            path: &self.path,
        }
    }
}

/// The answer for the API's host names on an edge with no control plane to send them to.
pub fn no_api() -> Response<Body> {
    crate::wire::error_response(
        StatusCode::BAD_GATEWAY,
        20503,
        "This edge serves no API (it has no --control-url)",
    )
}

/// A plain-text response: the edge's answer for every error.
pub fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(text.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The asset a request names, or the answer when there is none it may have — decided
/// before any body is read.
fn route(site: &Site, req: &::http::request::Parts) -> Result<Arc<EdgeAsset>, Outcome> {
    let method = &req.method;
    if method == Method::OPTIONS {
        return Err(Outcome::Preflight {
            request_headers: req
                .headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned(),
        });
    }
    if method != Method::GET && method != Method::HEAD && method != Method::POST {
        return Err(Outcome::MethodNotAllowed { allow: ALLOW });
    }
    let path = decode_path(req.uri.path()).map_err(Outcome::BadRequest)?;
    let asset = site.lookup(&path).ok_or(Outcome::NotFound)?;
    if asset.visibility == Visibility::Private {
        return Err(Outcome::Forbidden);
    }
    Ok(Arc::clone(asset))
}

/// The representation whose bytes an outcome sends, if it sends any.
fn blob_of(outcome: &Outcome) -> Option<&Representation> {
    match outcome {
        Outcome::Serve {
            asset,
            coding,
            head: false,
            ..
        } => Some(representation(asset, *coding)),
        _ => None,
    }
}

fn representation(asset: &EdgeAsset, coding: Coding) -> &Representation {
    asset
        .encoded
        .iter()
        .find(|r| r.coding == coding)
        .unwrap_or(&asset.identity)
}

/// Builds what a protected request offers: the URL as the client asked for it, and its form
/// parameters or body.
fn proof<'a>(
    parts: &'a ::http::request::Parts,
    body: Bytes,
    scheme: &'a str,
    authority: &'a str,
) -> Result<Proof<'a>, &'static str> {
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let url = crate::signature::Url::from_parts(scheme, authority, target);
    // A `bodySHA256` in the URL says the body is validated by its hash, so such a request is
    // never taken for an empty form: an empty body must hash to it too.
    let names_body_hash = || {
        url.as_ref()
            .is_some_and(|u| u.body_sha256_param().is_some())
    };
    let is_form = || {
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
    };
    let payload = if body.is_empty() && !names_body_hash() {
        OwnedPayload::Form(Vec::new())
    } else if is_form() {
        let params = crate::wire::decode_pairs(&body)
            .map_err(|_| "the form body is not UTF-8 after percent-decoding")?;
        OwnedPayload::Form(params)
    } else {
        OwnedPayload::Body(body)
    };
    Ok(Proof {
        url,
        payload,
        signature: parts.headers.get(crate::signature::HEADER),
    })
}

/// Content coding, preconditions and range for an asset the client may have.
fn http_outcome(
    method: &Method,
    headers: &HeaderMap,
    asset: Arc<EdgeAsset>,
    site: &Site,
) -> Outcome {
    let head = method == Method::HEAD;
    let range_header = (method == Method::GET)
        .then(|| headers.get(header::RANGE).and_then(|v| v.to_str().ok()))
        .flatten();
    // A Range applies to the identity bytes: no compression on a range response.
    let coding = if range_header.is_some() {
        Coding::Identity
    } else {
        // At most br and gzip: no allocation (identity fills the unused slot).
        let mut available = [Coding::Identity; 2];
        for (slot, r) in available.iter_mut().zip(&asset.encoded) {
            *slot = r.coding;
        }
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        encoding::choose(accept, &available)
    };
    let rep = representation(&asset, coding);
    let etag = rep.etag.to_str().expect("ETags are ASCII");
    let (last_modified, _) = site.last_modified(&asset);
    match conditional::evaluate(method, headers, etag, last_modified) {
        Precondition::Failed => return Outcome::PreconditionFailed,
        Precondition::NotModified => return Outcome::NotModified { asset, coding },
        Precondition::Proceed => {}
    }
    let size = rep.size;
    let range = match range_header {
        Some(value) if conditional::if_range_allows(headers, etag, last_modified) => {
            match range::evaluate(value, size) {
                RangeOutcome::Full => None,
                RangeOutcome::Partial { start, end } => Some((start, end)),
                RangeOutcome::Unsatisfiable => return Outcome::RangeNotSatisfiable { size },
            }
        }
        _ => None,
    };
    Outcome::Serve {
        asset,
        coding,
        range,
        head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        assert_eq!(host_name("Example.COM:8443"), "example.com");
        assert_eq!(host_name("example.com."), "example.com");
        assert_eq!(host_name("[::1]:8080"), "[::1]");
        assert_eq!(host_name("a-1234.localhost"), "a-1234.localhost");
    }

    fn req(host: &[&str], uri: &str) -> ::http::request::Parts {
        let mut b = Request::builder().uri(uri);
        for h in host {
            b = b.header(header::HOST, *h);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn request_hosts() {
        assert_eq!(
            request_host(&req(&["a.localhost"], "/x")),
            Ok("a.localhost")
        );
        assert_eq!(
            request_host(&req(&[], "https://b.localhost/x")),
            Ok("b.localhost")
        );
        assert_eq!(
            request_host(&req(&["B.localhost"], "https://b.localhost/x")),
            Ok("b.localhost")
        );
        assert!(request_host(&req(&["a", "b"], "/x")).is_err());
        assert!(request_host(&req(&["a.localhost"], "https://b.localhost/x")).is_err());
        assert!(request_host(&req(&[], "/x")).is_err());
        assert!(request_host(&req(&["a.localhost:abc"], "/x")).is_err());
        assert!(request_host(&req(&["evil@a.localhost"], "/x")).is_err());
        assert!(request_host(&req(&["a.localhost b"], "/x")).is_err());
        assert!(request_host(&req(&[], "https://evil@b.localhost/x")).is_err());
    }
}
