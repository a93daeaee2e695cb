//! The control plane: Twilio's Serverless v1 API (CONTRACT.md §3) over the metadata store.
//!
//! [`ControlPlane::handle`] authenticates, routes, and turns every outcome — success or
//! [`ApiError`] — into a response in one place. Handlers live one file per resource.
//!
//! Several processes may serve the API on one shared store, so no check-then-write relies on
//! a lock in this process: a write names the version of every record its decision rests on
//! (an update is conditional, a [`Write::Check`] guards the rest), the store refuses the batch
//! if any changed meanwhile, and the operation reads again and retries ([`retrying`]).

pub mod auth;
pub mod builds;
pub mod deployments;
pub mod environments;
pub mod error;
pub mod form;
pub mod logs;
pub mod maintenance;
pub mod page;
pub mod resources;
pub mod services;
pub mod sessions;
pub mod variables;
pub mod versions;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::store::{BlobStore, Kind, ListQuery, Metadata, Record, StoreError, Write};
use crate::wire::{FEED_POSITION, FEED_WAIT};
use crate::Body;
pub use error::ApiError;
use form::Params;
use page::{Page, PageRequest};
use resources::ResourceKind;

/// Response header naming the edge's listeners' ports (`http=8080, https=8443`), so a client
/// such as `sigil deploy` can print URLs that open. Not part of Twilio's API; clients ignore it.
pub const EDGE_PORTS: &str = "sigil-edge-ports";

/// Attempts of an operation whose write found a record changed since it read it.
const ATTEMPTS: u32 = 10;

/// Runs a read-check-write operation, again while its write finds that a record it read has
/// changed (another request got there first): each attempt reads afresh, so the outcome is
/// that of running after the other request. A small random pause separates attempts so that
/// racing requests do not collide again in step.
pub(crate) async fn retrying<T, Fut>(mut op: impl FnMut() -> Fut) -> Result<T, ApiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(e) if e.stale && attempt < ATTEMPTS => {
                let pause = u64::from(attempt) * (1 + u64::from(crate::sid::random_below(10)));
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The largest form body the API reads (a Build with 1,100 version SIDs is about 50 KB).
pub const MAX_FORM_BODY: usize = 1024 * 1024;

/// An edge in the same process that follows the change feed: after a change, the API waits
/// (bounded) for it to be applied, so the edge serves it before the request returns.
pub trait FeedApplied: Send + Sync + 'static {
    /// Returns once every change up to `position` is applied, or after `within`: whether it
    /// was.
    fn applied_up_to(
        &self,
        position: i64,
        within: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>>;
}

tokio::task_local! {
    /// The feed position a request's change reached ([`FEED_POSITION`]).
    static CHANGED: std::cell::Cell<Option<i64>>;
}

/// Every blob digest the metadata refers to: each version's content, and each Build's entries,
/// their precompressed variants and its packed dependency tree (a Build outlives the Asset
/// whose version it holds).
pub fn referenced_blobs(
    store: &dyn Metadata,
) -> Result<std::collections::HashSet<String>, StoreError> {
    // One record at a time, and only the digests decoded (serde skips the other fields
    // without building them): this reads every Build at start.
    #[derive(serde::Deserialize)]
    struct Digest {
        sha256: String,
    }
    #[derive(serde::Deserialize)]
    struct BuildDigests {
        asset_versions: Vec<Digest>,
        function_versions: Vec<Digest>,
        #[serde(default)]
        encodings: std::collections::BTreeMap<String, Vec<Digest>>,
        #[serde(default)]
        dependency_tree: Option<Digest>,
    }
    let mut live = std::collections::HashSet::new();
    for kind in [Kind::AssetVersion, Kind::FunctionVersion] {
        store.scan_each(kind, &mut |rec| {
            live.insert(rec.decode::<Digest>()?.sha256);
            Ok(())
        })?;
    }
    store.scan_each(Kind::Build, &mut |rec| {
        let build: BuildDigests = rec.decode()?;
        let entries = build
            .asset_versions
            .into_iter()
            .chain(build.function_versions);
        let variants = build.encodings.into_values().flatten();
        live.extend(
            entries
                .chain(variants)
                .chain(build.dependency_tree)
                .map(|d| d.sha256),
        );
        Ok(())
    })?;
    Ok(live)
}

/// The control plane.
pub struct ControlPlane {
    store: Arc<dyn Metadata>,
    blobs: BlobStore,
    base_url: String,
    domain: String,
    /// The [`EDGE_PORTS`] header's value, when an edge serves in the same process.
    edge_ports: Option<HeaderValue>,
    /// The edge in this process, if one serves here.
    feed: Option<Arc<dyn FeedApplied>>,
    /// False while start-up's blob collection runs ([`ControlPlane::start`]).
    ready: tokio::sync::watch::Sender<bool>,
    /// Precompressed variant sets made for Builds, and reused from earlier Builds.
    variants_made: std::sync::atomic::AtomicU64,
    variants_reused: std::sync::atomic::AtomicU64,
    /// Where Builds with Functions get their npm dependencies installed (the functions
    /// directory, npm); unset, Builds are not held for dependencies.
    dependencies: std::sync::OnceLock<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Who is asking and for what: passed to every handler.
pub struct Ctx {
    /// The authenticated Account.
    pub account: String,
    /// The request path without `/v1` (Twilio's 404 messages use it).
    pub path: String,
    /// The query parameters.
    pub query: Params,
}

impl Ctx {
    /// 404 for this request's path.
    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.path)
    }
}

/// The API's routes; the strings are raw path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Services,
    Service(String),
    Environments(String),
    Environment(String, String),
    Resources(String, ResourceKind),
    Resource(String, ResourceKind, String),
    Versions(String, ResourceKind, String),
    Version(String, ResourceKind, String, String),
    FunctionVersionContent(String, String, String),
    AssetVersionContent(String, String, String),
    Builds(String),
    Build(String, String),
    BuildStatus(String, String),
    Deployments(String, String),
    Deployment(String, String, String),
    Variables(String, String),
    Variable(String, String, String),
    Logs(String, String),
    Log(String, String, String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/v1/")?;
        let segs: Vec<String> = rest
            .split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .ok()
                    .map(|c| c.into_owned())
            })
            .collect::<Option<_>>()?;
        if segs.iter().any(String::is_empty) {
            return None;
        }
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let o = |x: &str| x.to_owned();
        let res = |name: &str| match name {
            "Functions" => Some(ResourceKind::Function),
            "Assets" => Some(ResourceKind::Asset),
            _ => None,
        };
        Some(match s.as_slice() {
            ["Services"] => Route::Services,
            ["Services", svc] => Route::Service(o(svc)),
            ["Services", svc, "Environments"] => Route::Environments(o(svc)),
            ["Services", svc, "Environments", env] => Route::Environment(o(svc), o(env)),
            ["Services", svc, "Environments", env, "Deployments"] => {
                Route::Deployments(o(svc), o(env))
            }
            ["Services", svc, "Environments", env, "Deployments", d] => {
                Route::Deployment(o(svc), o(env), o(d))
            }
            ["Services", svc, "Environments", env, "Variables"] => Route::Variables(o(svc), o(env)),
            ["Services", svc, "Environments", env, "Variables", v] => {
                Route::Variable(o(svc), o(env), o(v))
            }
            ["Services", svc, "Environments", env, "Logs"] => Route::Logs(o(svc), o(env)),
            ["Services", svc, "Environments", env, "Logs", l] => Route::Log(o(svc), o(env), o(l)),
            ["Services", svc, "Builds"] => Route::Builds(o(svc)),
            ["Services", svc, "Builds", b] => Route::Build(o(svc), o(b)),
            ["Services", svc, "Builds", b, "Status"] => Route::BuildStatus(o(svc), o(b)),
            ["Services", svc, kind] => Route::Resources(o(svc), res(kind)?),
            ["Services", svc, kind, r] => Route::Resource(o(svc), res(kind)?, o(r)),
            ["Services", svc, kind, r, "Versions"] => Route::Versions(o(svc), res(kind)?, o(r)),
            ["Services", svc, kind, r, "Versions", v] => {
                Route::Version(o(svc), res(kind)?, o(r), o(v))
            }
            ["Services", svc, "Functions", f, "Versions", v, "Content"] => {
                Route::FunctionVersionContent(o(svc), o(f), o(v))
            }
            ["Services", svc, "Assets", a, "Versions", v, "Content"] => {
                Route::AssetVersionContent(o(svc), o(a), o(v))
            }
            _ => return None,
        })
    }

    /// The methods this route answers, for 405's `Allow`.
    fn allow(&self) -> &'static str {
        match self {
            Route::Services
            | Route::Environments(..)
            | Route::Resources(..)
            | Route::Versions(..)
            | Route::Builds(..)
            | Route::Deployments(..)
            | Route::Variables(..) => "GET, POST",
            Route::Service(..) | Route::Resource(..) | Route::Variable(..) => "GET, POST, DELETE",
            Route::Environment(..) | Route::Build(..) => "GET, DELETE",
            Route::Version(..)
            | Route::FunctionVersionContent(..)
            | Route::AssetVersionContent(..)
            | Route::BuildStatus(..)
            | Route::Deployment(..)
            | Route::Logs(..)
            | Route::Log(..) => "GET",
        }
    }
}

/// A JSON response with Twilio's content type.
pub fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

type ApiResult = Result<Response<Body>, ApiError>;

impl ControlPlane {
    /// A control plane over `store` and `blobs`. `base_url` is the public API base (no
    /// trailing slash); `domain` the base domain of Environments; `edge_ports` the ports of
    /// the edge's HTTP and HTTPS listeners, when it serves in the same process.
    pub fn new(
        store: Arc<dyn Metadata>,
        blobs: BlobStore,
        base_url: String,
        domain: String,
        edge_ports: Option<(u16, u16)>,
        feed: Option<Arc<dyn FeedApplied>>,
    ) -> Arc<ControlPlane> {
        Arc::new(ControlPlane {
            store,
            blobs,
            base_url,
            domain,
            edge_ports: edge_ports.map(|(http, https)| {
                HeaderValue::from_str(&format!("http={http}, https={https}"))
                    .expect("digits, letters and punctuation make a header value")
            }),
            feed,
            ready: tokio::sync::watch::channel(true).0,
            variants_made: Default::default(),
            variants_reused: Default::default(),
            dependencies: Default::default(),
        })
    }

    /// Holds each Build with Functions `building` until its dependency set is installed
    /// with `npm` under `functions_dir` (where the edge's workers find it).
    pub fn install_dependencies(&self, functions_dir: std::path::PathBuf, npm: std::path::PathBuf) {
        let _ = self.dependencies.set((functions_dir, npm));
    }

    /// The control plane's lines of `/metrics`.
    pub fn render_metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        format!(
            "# HELP sigil_build_variants_made_total Text assets precompressed (br and gzip) for Builds.\n\
             # TYPE sigil_build_variants_made_total counter\n\
             sigil_build_variants_made_total {}\n\
             # HELP sigil_build_variants_reused_total Text assets whose variants an earlier Build had made.\n\
             # TYPE sigil_build_variants_reused_total counter\n\
             sigil_build_variants_reused_total {}\n",
            self.variants_made.load(Relaxed),
            self.variants_reused.load(Relaxed),
        )
    }

    /// Finishes start-up off the serving path: runs `prepare` — the blob collection, which
    /// must not overlap an upload or a Build — while API requests wait (the edge serves
    /// meanwhile), then opens the API and resumes the Builds a previous run left `building`.
    pub fn start(self: &Arc<Self>, prepare: impl Future<Output = ()> + Send + 'static) {
        self.ready.send_replace(false);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            prepare.await;
            this.ready.send_replace(true);
            match this.resume_builds().await {
                Ok(0) => {}
                Ok(builds) => tracing::info!(builds, "resumed Builds left building"),
                Err(e) => tracing::error!(error = %e, "cannot resume Builds left building"),
            }
        });
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn Metadata> {
        &self.store
    }

    /// The absolute URL of an API path (`/Services/…`).
    fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base_url)
    }

    /// Runs store work off the async threads.
    async fn db<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Metadata) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::from)
    }

    /// Commits writes atomically; a taken unique key comes back as `Ok(Err(key))` for the
    /// caller to word as a 409.
    async fn commit(&self, writes: Vec<Write>) -> Result<Result<(), String>, ApiError> {
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.commit(writes))
            .await
            .map_err(ApiError::internal)?
        {
            Ok(()) => Ok(Ok(())),
            Err(StoreError::Conflict(key)) => Ok(Err(key)),
            Err(e) => Err(ApiError::from(e)),
        }
    }

    /// After a committed change to what edges serve: notes the feed's position for the
    /// response ([`FEED_POSITION`]) and waits, bounded, for the edge in this process to apply
    /// it. The change is committed whatever happens here: a failure is logged, and edges
    /// apply it from the feed all the same.
    async fn changed(&self) {
        let head = match self.db(|s| Ok(s.changes_after(i64::MAX, 0)?.head)).await {
            Ok(head) => head,
            Err(e) => {
                tracing::warn!(error = %e.message, "the change feed's position cannot be read");
                return;
            }
        };
        let _ = CHANGED.try_with(|c| c.set(Some(head)));
        if let Some(feed) = &self.feed {
            if !feed.applied_up_to(head, FEED_WAIT).await {
                tracing::warn!(
                    position = head,
                    "the edge did not apply a change in time; it goes on trying"
                );
            }
        }
    }

    /// Answers one API request. Never fails: errors become Twilio JSON errors here.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if !*self.ready.borrow() {
            // Only during start-up (`start`); the sender lives as long as `self`.
            let _ = self.ready.subscribe().wait_for(|open| *open).await;
        }
        let request_sid = crate::sid::request_sid();
        // The Console's calls: a 401 must not make the browser ask for Basic credentials.
        let unchallenged = sessions::from_console(req.headers());
        let (changed, routed) = CHANGED
            .scope(std::cell::Cell::new(None), async {
                let routed = self.route(req).await;
                (CHANGED.with(std::cell::Cell::get), routed)
            })
            .await;
        let mut resp = match routed {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let h = resp.headers_mut();
        if unchallenged {
            h.remove(header::WWW_AUTHENTICATE);
        }
        if let Some(position) = changed {
            h.insert(FEED_POSITION, HeaderValue::from(position));
        }
        if let Ok(v) = HeaderValue::from_str(&request_sid) {
            h.insert("twilio-request-id", v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("ETag"),
        );
        if let Some(ports) = &self.edge_ports {
            h.insert(EDGE_PORTS, ports.clone());
        }
        resp
    }

    async fn route<B>(self: &Arc<Self>, req: Request<B>) -> ApiResult
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        check_host(&req)?;
        let path = req.uri().path().to_owned();
        if path == "/healthz" {
            return Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            ));
        }
        if path == "/console/session" {
            return match *req.method() {
                Method::POST => {
                    let headers = req.headers().clone();
                    let form = read_form(req).await?;
                    self.sign_in(&headers, &form).await
                }
                Method::GET => self.session_info(req.headers()).await,
                Method::DELETE => self.sign_out(req.headers()).await,
                ref m => Err(ApiError::method_not_allowed(m, "GET, POST, DELETE")),
            };
        }
        if path == "/console" || path.starts_with("/console/") {
            return Ok(crate::console::serve(req.method(), &path));
        }
        if req.method() == Method::OPTIONS {
            return Ok(cors_preflight());
        }
        let account = auth::authenticate(self, req.method(), req.headers()).await?;
        let short = path.strip_prefix("/v1").unwrap_or(&path).to_owned();
        let query = Params::parse(req.uri().query().unwrap_or("").as_bytes())?;
        let ctx = Ctx {
            account,
            path: short,
            query,
        };
        let route = Route::parse(&path).ok_or_else(|| ctx.not_found())?;
        let method = req.method().clone();
        let allowed = route
            .allow()
            .split(", ")
            .any(|m| m == method.as_str() || (m == "GET" && method == Method::HEAD));
        if !allowed {
            return Err(ApiError::method_not_allowed(&method, route.allow()));
        }
        if method == Method::POST {
            if let Route::Versions(svc, kind, res) = &route {
                return self.upload_version(&ctx, svc, *kind, res, req).await;
            }
            let form = read_form(req).await?;
            return self.post(&ctx, route, form).await;
        }
        if method == Method::DELETE {
            return self.delete(&ctx, route).await;
        }
        self.get(&ctx, route).await
    }

    async fn get(self: &Arc<Self>, ctx: &Ctx, route: Route) -> ApiResult {
        match route {
            Route::Services => self.list_services(ctx).await,
            Route::Service(svc) => self.fetch_service(ctx, &svc).await,
            Route::Environments(svc) => self.list_environments(ctx, &svc).await,
            Route::Environment(svc, env) => self.fetch_environment(ctx, &svc, &env).await,
            Route::Resources(svc, kind) => self.list_resources(ctx, &svc, kind).await,
            Route::Resource(svc, kind, r) => self.fetch_resource(ctx, &svc, kind, &r).await,
            Route::Versions(svc, kind, r) => self.list_versions(ctx, &svc, kind, &r).await,
            Route::Version(svc, kind, r, v) => self.fetch_version(ctx, &svc, kind, &r, &v).await,
            Route::FunctionVersionContent(svc, f, v) => {
                self.fetch_function_content(ctx, &svc, &f, &v).await
            }
            Route::AssetVersionContent(svc, a, v) => {
                self.fetch_asset_content(ctx, &svc, &a, &v).await
            }
            Route::Builds(svc) => self.list_builds(ctx, &svc).await,
            Route::Build(svc, b) => self.fetch_build(ctx, &svc, &b).await,
            Route::BuildStatus(svc, b) => self.fetch_build_status(ctx, &svc, &b).await,
            Route::Deployments(svc, env) => self.list_deployments(ctx, &svc, &env).await,
            Route::Deployment(svc, env, d) => self.fetch_deployment(ctx, &svc, &env, &d).await,
            Route::Variables(svc, env) => self.list_variables(ctx, &svc, &env).await,
            Route::Variable(svc, env, v) => self.fetch_variable(ctx, &svc, &env, &v).await,
            Route::Logs(svc, env) => self.list_logs(ctx, &svc, &env).await,
            Route::Log(svc, env, l) => self.fetch_log(ctx, &svc, &env, &l).await,
        }
    }

    async fn post(self: &Arc<Self>, ctx: &Ctx, route: Route, form: Params) -> ApiResult {
        match route {
            Route::Services => self.create_service(ctx, &form).await,
            Route::Service(svc) => self.update_service(ctx, &svc, &form).await,
            Route::Environments(svc) => self.create_environment(ctx, &svc, &form).await,
            Route::Resources(svc, kind) => self.create_resource(ctx, &svc, kind, &form).await,
            Route::Resource(svc, kind, r) => self.update_resource(ctx, &svc, kind, &r, &form).await,
            Route::Builds(svc) => self.create_build(ctx, &svc, &form).await,
            Route::Deployments(svc, env) => self.create_deployment(ctx, &svc, &env, &form).await,
            Route::Variables(svc, env) => self.create_variable(ctx, &svc, &env, &form).await,
            Route::Variable(svc, env, v) => self.update_variable(ctx, &svc, &env, &v, &form).await,
            other => Err(ApiError::method_not_allowed(&Method::POST, other.allow())),
        }
    }

    async fn delete(self: &Arc<Self>, ctx: &Ctx, route: Route) -> ApiResult {
        match route {
            Route::Service(svc) => self.delete_service(ctx, &svc).await,
            Route::Environment(svc, env) => self.delete_environment(ctx, &svc, &env).await,
            Route::Resource(svc, kind, r) => self.delete_resource(ctx, &svc, kind, &r).await,
            Route::Build(svc, b) => self.delete_build(ctx, &svc, &b).await,
            Route::Variable(svc, env, v) => self.delete_variable(ctx, &svc, &env, &v).await,
            other => Err(ApiError::method_not_allowed(&Method::DELETE, other.allow())),
        }
    }

    /// Loads the record `sid` if it is of `kind`, owned by the caller and (when given) a
    /// child of `parent`; anything else is this request's 404.
    async fn load(
        &self,
        ctx: &Ctx,
        kind: Kind,
        prefix: crate::sid::Prefix,
        sid: &str,
        parent: Option<&str>,
    ) -> Result<Record, ApiError> {
        let sid = prefix.parse(sid).ok_or_else(|| ctx.not_found())?;
        let rec = self
            .db(move |s| s.get(&sid))
            .await?
            .ok_or_else(|| ctx.not_found())?;
        let owned = rec.kind == kind && rec.account_sid == ctx.account;
        let placed = parent.is_none_or(|p| rec.parent_sid.as_deref() == Some(p));
        if owned && placed {
            Ok(rec)
        } else {
            Err(ctx.not_found())
        }
    }

    /// Lists one page of `kind` under `parent`, rendering each record with `render`.
    async fn list_page(
        &self,
        ctx: &Ctx,
        kind: Kind,
        parent: Option<String>,
        key: &str,
        filter: ListFilter,
        render: impl Fn(&Record) -> Result<Value, ApiError>,
    ) -> ApiResult {
        let req = PageRequest::parse(&ctx.query)?;
        let (cursor, limit) = req.cursor();
        let query = ListQuery {
            kind,
            account_sid: ctx.account.clone(),
            parent_sid: parent,
            tag: filter.tag,
            created_from: filter.created_from,
            created_to: filter.created_to,
            cursor,
            limit,
        };
        let records = self.db(move |s| s.list(&query)).await?;
        let page = Page::new(&req, records);
        let items = page
            .records
            .iter()
            .map(render)
            .collect::<Result<Vec<_>, _>>()?;
        let body = page.envelope(key, items, &req, &self.url(&ctx.path), &filter.echo);
        Ok(json_response(StatusCode::OK, &body))
    }
}

/// Filters of a list beyond its parent: only Logs have them.
#[derive(Default)]
struct ListFilter {
    tag: Option<String>,
    created_from: Option<i64>,
    created_to: Option<i64>,
    /// The filters as given, echoed into the page URLs.
    echo: Vec<(&'static str, String)>,
}

/// 204 with an empty body (every DELETE).
fn no_content() -> Response<Body> {
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    resp
}

fn cors_preflight() -> Response<Body> {
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(
            "Accept, Authorization, Content-Type, If-Match, If-Modified-Since, If-None-Match, If-Unmodified-Since",
        ),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    resp
}

/// RFC 9112 §3.2: a request with more than one Host header or an invalid one is a 400; so is
/// one whose Host names another host than its absolute target (as at the edge). No Host at all
/// is tolerated: the API does not route by host.
fn check_host<B>(req: &Request<B>) -> Result<(), ApiError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err(ApiError::bad_param("More than one Host header"));
    }
    let host = host
        .to_str()
        .ok()
        .filter(|h| crate::edge::routes::valid_host(h))
        .ok_or_else(|| ApiError::bad_param("The Host header is not a valid host"))?;
    match req.uri().authority() {
        Some(a) if !a.as_str().eq_ignore_ascii_case(host) => Err(ApiError::bad_param(
            "The Host header and the request target name different hosts",
        )),
        _ => Ok(()),
    }
}

/// Reads a form body of at most [`MAX_FORM_BODY`] bytes.
async fn read_form<B>(req: Request<B>) -> Result<Params, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !ct.starts_with("application/x-www-form-urlencoded") {
            return Err(ApiError::unsupported_media(format!(
                "Expected an application/x-www-form-urlencoded body, got {ct:?}"
            )));
        }
    }
    let limited = http_body_util::Limited::new(req.into_body(), MAX_FORM_BODY);
    let bytes = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::too_large(format!(
                "The request body is larger than {MAX_FORM_BODY} bytes"
            )))
        }
        Err(e) if crate::server::is_timeout(e.as_ref()) => return Err(ApiError::body_timeout(e)),
        Err(e) => {
            return Err(ApiError::bad_param(format!(
                "Could not read the request body: {e}"
            )))
        }
    };
    Params::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse() {
        let z = "ZS0123456789abcdef0123456789abcdef";
        assert_eq!(Route::parse("/v1/Services"), Some(Route::Services));
        assert_eq!(
            Route::parse(&format!(
                "/v1/Services/{z}/Functions/ZH1/Versions/ZN1/Content"
            )),
            Some(Route::FunctionVersionContent(
                z.into(),
                "ZH1".into(),
                "ZN1".into()
            ))
        );
        assert_eq!(
            Route::parse("/v1/Services/x/Assets/ZH1/Versions/ZN1/Content"),
            Some(Route::AssetVersionContent(
                "x".into(),
                "ZH1".into(),
                "ZN1".into()
            ))
        );
        assert_eq!(
            Route::parse("/v1/Services/my%2Dname/Assets"),
            Some(Route::Resources("my-name".into(), ResourceKind::Asset))
        );
        for bad in [
            "/v1",
            "/v1/",
            "/v2/Services",
            "/v1/Services/",
            "/v1/Services//Assets",
            "/v1/Services/x/Widgets",
            "/v1/Services/x/Assets/ZH1/Versions/ZN1/Contents",
            "/v1/Services/x/Widgets/ZH1/Versions/ZN1/Content",
            "/v1/Services/%FF",
        ] {
            assert_eq!(Route::parse(bad), None, "{bad}");
        }
    }
}
