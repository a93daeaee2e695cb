//! Assembles each role of `sigil serve` from the configuration — the one place that knows
//! which parts a role has:
//!
//! - `all`: the control plane and the edge in one process, on SQLite and local blobs by
//!   default; the edge follows the store's change feed and the API waits for it after each
//!   change. `/metrics` is on the API listener too (where it always was).
//! - `control`: the API listener only (plus the upkeep).
//! - `edge`: the edge's listeners only, following the shared store's feed, with its disk cache
//!   and route snapshot in `--cache-dir`, and the API's host names proxied to `--control-url`.
//!
//! Every role can have `--admin` (`/healthz`, `/readyz`, `/metrics`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use super::{
    bind, bind_shared, collect_blob_garbage, lock_data_dir, open_store, storage, Role, ServerError,
};
use crate::config::{Config, Scheduler, ServeRole};
use crate::control::{ControlPlane, FeedApplied};
use crate::edge::access::Tokens;
use crate::edge::cache::BlobCache;
use crate::edge::feed::Follower;
use crate::edge::proxy::Proxy;
use crate::edge::routes::RouteTable;
use crate::edge::snapshot::Snapshot;
use crate::edge::{ApiBody, ApiHandler, Conn, Edge, EdgeConfig};
use crate::logsink::LogSink;
use crate::store::{BlobStore, Metadata, PgStore, RemoteBlobs};
use crate::Body;

/// A role, ready to serve.
pub(super) struct Assembled {
    /// Each listener and what it serves.
    pub listeners: Vec<(TcpListener, Role)>,
    /// What `/metrics` on the API listener shows (`--role all` only: the edge's counters and
    /// its feed's).
    pub metrics_on_api: Option<Arc<Admin>>,
    /// The data (or cache) directory's lock, held while the process serves.
    pub lock: std::fs::File,
    /// The edge's request-log writer, closed at a graceful stop.
    pub logs: Option<Arc<LogSink>>,
}

/// The control plane in this process, as the edge's API handler.
struct InProcess(Arc<ControlPlane>);

impl ApiHandler for InProcess {
    fn handle(
        &self,
        mut req: Request<ApiBody>,
        conn: Conn,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> {
        // As a proxied request would say it (the edge has decided the scheme, trusting only
        // its trusted proxies): the Console's cookie is `Secure` behind HTTPS.
        req.headers_mut().insert(
            "x-forwarded-proto",
            http::HeaderValue::from_static(conn.scheme),
        );
        Box::pin(self.0.handle(req))
    }
}

/// The API waits for the edge in the same process through its feed follower.
impl FeedApplied for Follower {
    fn applied_up_to(
        &self,
        position: i64,
        within: Duration,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(Follower::applied_up_to(self, position, within))
    }
}

/// What `/healthz`, `/readyz` and `/metrics` on the admin listener read.
pub struct Admin {
    store: Arc<dyn Metadata>,
    edge: Option<(Arc<Edge>, Arc<Follower>)>,
    control: Option<Arc<ControlPlane>>,
}

/// A `/metrics` response.
pub(super) fn metrics_response(text: String) -> Response<Body> {
    let mut resp = Response::new(Body::new(text));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = crate::edge::plain(status, &body);
    *resp.status_mut() = status;
    resp
}

impl Admin {
    pub(super) async fn handle(&self, path: &str) -> Response<Body> {
        match path {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => {
                let (ready, why) = self.readiness().await;
                let status = if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(status, format!("{why}\n"))
            }
            "/metrics" => {
                let mut out = String::new();
                if let Some((edge, follower)) = &self.edge {
                    out.push_str(&edge.render_metrics());
                    out.push_str(&follower.render_metrics());
                }
                if let Some(control) = &self.control {
                    out.push_str(&control.render_metrics());
                }
                metrics_response(out)
            }
            _ => text(StatusCode::NOT_FOUND, "Not Found\n".into()),
        }
    }

    /// An edge is ready once it has a route table (degraded, still ready, when the store is
    /// down: it serves what it has); a control plane when its store answers.
    async fn readiness(&self) -> (bool, String) {
        let mut lines = Vec::new();
        let mut ready = true;
        if let Some((_, follower)) = &self.edge {
            let (ok, why) = follower.readiness();
            ready &= ok;
            lines.push(format!("edge: {why}"));
        }
        if self.control.is_some() {
            let store = Arc::clone(&self.store);
            let answered = tokio::time::timeout(
                Duration::from_secs(5),
                tokio::task::spawn_blocking(move || store.changes_after(i64::MAX, 0)),
            )
            .await;
            match answered {
                Ok(Ok(Ok(_))) => lines.push("control: ready".into()),
                Ok(Ok(Err(e))) => {
                    ready = false;
                    lines.push(format!("control: not ready: the metadata store fails: {e}"));
                }
                _ => {
                    ready = false;
                    lines.push("control: not ready: the metadata store does not answer".into());
                }
            }
        }
        (ready, lines.join("\n"))
    }
}

/// Opens the blob store in `dir`, with the bucket behind it if there is one.
async fn blob_store(
    dir: &std::path::Path,
    bucket: Option<&String>,
) -> Result<BlobStore, ServerError> {
    let mut blobs = BlobStore::open(dir).map_err(storage)?;
    if let Some(url) = bucket {
        let remote = RemoteBlobs::from_url(url).map_err(storage)?;
        // A look at the bucket now, so that a wrong endpoint, bucket or key shows at start;
        // not fatal: a store that is down now may be up by the first upload.
        if let Err(e) = remote.size(&"0".repeat(64)).await {
            tracing::warn!(bucket = %remote.target(), error = %e, "the blob bucket does not answer");
        }
        blobs = blobs.with_remote(remote);
    }
    Ok(blobs)
}

/// Builds the role `config` names: opens the stores, binds the listeners, starts the
/// background work, and prints the banner.
pub(super) async fn assemble(config: &Config) -> Result<Assembled, ServerError> {
    let has_edge = config.role != ServeRole::Control;
    let has_api = config.role != ServeRole::Edge;
    let home = if has_api {
        &config.data
    } else {
        &config.cache_dir
    };
    std::fs::create_dir_all(home)
        .map_err(|e| ServerError::Storage(format!("{}: {e}", home.display())))?;
    let store: Arc<dyn Metadata> = match (&config.metadata, has_api) {
        // An edge starts without the database when it has to (it serves its snapshot).
        (Some(url), false) => Arc::new(
            PgStore::open_or_later(url.expose())
                .map_err(|e| ServerError::Storage(format!("{}: {e}", url.redacted())))?,
        ),
        _ => open_store(&config.data, config.metadata.as_ref())?,
    };
    // Held while serving: see lock_data_dir.
    let lock = lock_data_dir(home)?;
    let blobs = blob_store(home, config.blobs.as_ref()).await?;
    if has_edge && config.functions.user.is_some() {
        crate::functions::tree::keep_from_workers(home, &config.functions.dir)
            .map_err(|e| ServerError::Storage(format!("{}: {e}", home.display())))?;
    }

    let tls = if has_edge {
        Some(super::tls::server_config(
            config.tls.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
            config.ktls,
        )?)
    } else {
        None
    };
    let api = if has_api {
        Some(bind(config.api).await?)
    } else {
        None
    };
    // With a runtime per worker, each binds its own edge listeners to the same addresses.
    let bind_edge = |addr| async move {
        if config.scheduler == Scheduler::PerWorker && config.workers > 1 {
            let listener = TcpListener::from_std(bind_shared(addr)?).map_err(storage)?;
            let local = listener.local_addr().map_err(storage)?;
            Ok((listener, local))
        } else {
            bind(addr).await
        }
    };
    let edge_listeners = match tls {
        Some(tls) => Some((
            bind_edge(config.http).await?,
            bind_edge(config.https).await?,
            tls,
        )),
        None => None,
    };
    let admin_listener = match config.admin {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };

    if has_api {
        // The first account is created only now that the listeners are bound and TLS is
        // configured, and its token printed at once: a start that fails on a taken port or
        // a bad certificate creates nothing, so the next start creates (and shows) it.
        let fixed = config.account.clone();
        let store = Arc::clone(&store);
        let created = tokio::task::spawn_blocking(move || {
            let fixed = fixed
                .as_ref()
                .map(|(sid, token)| (sid.as_str(), token.as_str()));
            crate::accounts::bootstrap(store.as_ref(), fixed)
        })
        .await
        .map_err(storage)?
        .map_err(storage)?;
        if let Some((sid, token)) = created {
            // Printed once, to the terminal, never to the log.
            println!("sigil: created account {sid}");
            println!("sigil: auth token {token} (shown once; keep it)");
        }
    }

    // The edge: its route table follows the feed.
    let mut edge_parts = None;
    let mut log_sink = None;
    let mut edge_ports = None;
    let mut lines = Vec::new();
    let mut listeners = Vec::new();
    if let Some(((http, http_addr), (https, https_addr), tls)) = edge_listeners {
        let mut cache = BlobCache::new(blobs.clone(), config.cache_bytes)
            .with_sendfile_from(config.sendfile_from.clone());
        if let Some(max) = config.cache_max_bytes {
            cache = cache.with_disk_budget(max);
        }
        let snapshot = if has_api {
            None
        } else {
            Some(Snapshot::open(&config.cache_dir).map_err(storage)?)
        };
        let edge_config = EdgeConfig {
            api_hosts: [
                format!("serverless.{}", config.domain),
                format!("serverless-upload.{}", config.domain),
            ],
            max_post_body: config.edge_max_body,
            cache_control_public: config.cache_control_public.clone(),
            cache_control_protected: config.cache_control_protected.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            access_log: config.access_log,
            request_logs: config.request_logs,
        };
        // The API handler is set once the control plane exists (below) or the follower does.
        let api_slot: Arc<ApiSlot> = Arc::new(ApiSlot::default());
        let logs = LogSink::spawn(Arc::clone(&store), config.request_logs_rate);
        log_sink = Some(Arc::clone(&logs));
        let edge = Arc::new(
            Edge::new(
                Arc::new(RouteTable::default()),
                Arc::new(Tokens::default()),
                cache,
                logs,
                Some(Arc::clone(&api_slot) as Arc<dyn ApiHandler>),
                edge_config,
            )
            .with_functions(config.functions.clone()),
        );
        let follower = Follower::new(Arc::clone(&store), Arc::clone(&edge), snapshot);
        match follower.first_round().await {
            Ok(()) => {}
            Err(e) if has_api => return Err(storage(e)),
            Err(_) => {} // said by the follower; it goes on trying
        }
        tokio::spawn(Arc::clone(&follower).run());
        if let Some(url) = &config.control_url {
            let proxy = Proxy::new(
                url,
                Some(Arc::clone(&follower)),
                config.trusted_proxies.clone(),
            )
            .map_err(storage)?;
            api_slot.set(Arc::new(proxy));
        }
        edge_ports = Some((http_addr.port(), https_addr.port()));
        lines.push(format!("sigil: edge listening on http://{http_addr}"));
        lines.push(format!("sigil: edge listening on https://{https_addr}"));
        listeners.push((http, Role::Edge(Arc::clone(&edge))));
        let kernel = if config.ktls {
            match super::ktls::KernelTls::probe() {
                Ok(kernel) => {
                    lines.push(format!(
                        "sigil: kernel TLS for HTTPS/1.1 ({})",
                        kernel.suites().join(", ")
                    ));
                    Some(kernel)
                }
                Err(why) => {
                    tracing::warn!("--ktls: {why}; HTTPS stays with rustls");
                    lines.push(format!("sigil: kernel TLS unavailable: {why}"));
                    None
                }
            }
        } else {
            None
        };
        let https_role = super::Https {
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            kernel,
        };
        listeners.push((
            https,
            Role::EdgeTls(Arc::clone(&edge), Arc::new(https_role)),
        ));
        edge_parts = Some((edge, follower, api_slot));
    }

    let has_listener = api.is_some();
    let mut control_plane = None;
    if let Some((api, api_addr)) = api {
        let base_url = config
            .public_api_url
            .clone()
            .unwrap_or_else(|| format!("http://{api_addr}"));
        let control = ControlPlane::new(
            Arc::clone(&store),
            blobs.clone(),
            base_url,
            config.domain.clone(),
            edge_ports,
            edge_parts
                .as_ref()
                .map(|(_, follower, _)| Arc::clone(follower) as Arc<dyn FeedApplied>),
        );
        control.install_dependencies(config.functions.dir.clone(), config.functions.npm.clone());
        // The API waits for the blob collection; the edge does not (it reads referenced
        // blobs only).
        control.start(collect_blob_garbage(Arc::clone(&store), blobs.clone()));
        control.spawn_maintenance(i64::try_from(config.retention.as_secs()).unwrap_or(i64::MAX));
        if let Some((_, _, slot)) = &edge_parts {
            slot.set(Arc::new(InProcess(Arc::clone(&control))));
        }
        control_plane = Some(Arc::clone(&control));
        listeners.push((api, Role::Api(control)));
        lines.push(format!("sigil: API listening on http://{api_addr}"));
    } else {
        lines.push("sigil: edge ready".into());
    }
    let admin = Arc::new(Admin {
        store: Arc::clone(&store),
        edge: edge_parts
            .as_ref()
            .map(|(edge, follower, _)| (Arc::clone(edge), Arc::clone(follower))),
        control: control_plane,
    });
    let metrics_on_api = (has_listener && has_edge).then(|| Arc::clone(&admin));
    if let Some((listener, addr)) = admin_listener {
        listeners.push((listener, Role::Admin(admin)));
        lines.insert(
            lines.len() - 1,
            format!("sigil: admin listening on http://{addr}"),
        );
    }
    for line in &lines {
        println!("{line}");
    }
    tracing::info!(role = ?config.role, domain = %config.domain, "sigil ready");
    Ok(Assembled {
        listeners,
        metrics_on_api,
        lock,
        logs: log_sink,
    })
}

/// The edge's API handler, set once what answers exists: the control plane in this process
/// is made after the edge (it waits on the edge's follower).
#[derive(Default)]
struct ApiSlot(std::sync::OnceLock<Arc<dyn ApiHandler>>);

impl ApiSlot {
    fn set(&self, handler: Arc<dyn ApiHandler>) {
        let _ = self.0.set(handler);
    }
}

impl ApiHandler for ApiSlot {
    fn handle(
        &self,
        req: Request<ApiBody>,
        conn: Conn,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> {
        match self.0.get() {
            Some(handler) => handler.handle(req, conn),
            None => Box::pin(async { crate::edge::no_api() }),
        }
    }
}
