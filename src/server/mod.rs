//! Listeners and connection handling: the API listener (control plane, `/healthz`, and
//! `/metrics` for `--role all`), the edge's HTTP and HTTPS listeners, and the admin listener
//! (`/healthz`, `/readyz`, `/metrics`); one task per connection. Which of them a process has
//! is its role's (roles.rs).
//!
//! The API is served by hyper 1 through hyper-util's auto (HTTP/1.1 + h2c) builder with a
//! timer, so header-read timeouts work. The edge serves body-less HTTP/1.1 GET/HEAD on its own
//! fast path (h1.rs) and hands other HTTP/1.1 requests to the same hyper builder; its HTTP/2
//! is http2.rs. Graceful shutdown: stop accepting, let in-flight requests finish, give up
//! after a deadline.

mod body;
mod coalesce;
mod h1;
mod http2;
mod ktls;
mod respond;
mod roles;
pub mod tls;

/// The HTTP/1.1 fast path's body writers, for `examples/floor.rs` (a benchmark's floor that
/// sends exactly as sigil does).
#[doc(hidden)]
pub mod send {
    pub use super::h1::{send_file, write_two, COPY_BODY_UP_TO};
}

pub use body::{is_timeout, BodyTimeout};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::config::SecretUrl;
use crate::control::ControlPlane;
use crate::edge::{Conn, Edge};
use crate::store::{BlobStore, Metadata, PgStore, SqliteStore};
use crate::Body;

/// Bytes of HTTP/2 (and handed-off HTTP/1.1) output gathered per write (coalesce.rs).
const WRITE_BUFFER: usize = 32 * 1024;

/// At most this many bytes an HTTPS/1.1 connection that rustls encrypts leaves queued in its
/// socket unsent (`TCP_NOTSENT_LOWAT`): past it the socket takes no more until the peer's
/// window lets the queue drain. Without the bound, a body written faster than the client's
/// window opens piles up in the socket (2–3 MiB a connection, measured), each window update
/// the client sends releases queued data at once, and the client's kernel (most likely
/// timing its round trips by that prompt answer) keeps its receive window small:
/// TLS+HTTP/1.1 8 MiB under wrk fell into a mode of 107–152 requests a second (against ~250)
/// in about half the runs; with the bound every run ran in the fast mode. HTTP/2 is left
/// unbounded: there the bound raised h2load's throughput at 256 KiB by half but doubled its
/// p99 (its ten streams a connection then wait in the client). So is plain HTTP, where the
/// bound cost a fifth of the 8 MiB rate, and kernel TLS (unmeasured), which sends like it.
const TLS_UNSENT_BOUND: u32 = 64 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Data directory, metadata store or blob store.
    #[error("storage: {0}")]
    Storage(String),
    /// A listener could not bind. (The error is part of the message, not a `source`:
    /// printing the chain would say it twice.)
    #[error("cannot listen on {addr}: {error}{hint}", hint = bind_hint(.error))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// Certificate or key.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The metadata database's file in a data directory.
pub const METADATA_FILE: &str = "metadata.db";

/// Opens the metadata store: PostgreSQL at `metadata`, else SQLite in the data directory
/// (which must exist).
pub fn open_store(
    data: &std::path::Path,
    metadata: Option<&SecretUrl>,
) -> Result<Arc<dyn Metadata>, ServerError> {
    if let Some(url) = metadata {
        let store = PgStore::open(url.expose())
            .map_err(|e| ServerError::Storage(format!("{}: {e}", url.redacted())))?;
        return Ok(Arc::new(store));
    }
    let store = SqliteStore::open(&data.join(METADATA_FILE))
        .map_err(|e| ServerError::Storage(e.to_string()))?;
    Ok(Arc::new(store))
}

/// Holds an exclusive lock on `DATA/lock` for as long as the returned file lives: a second
/// `sigil serve` on the same data directory would clear the first one's uploads in progress
/// (`tmp/`) and collect blobs it is placing.
pub fn lock_data_dir(data: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let path = data.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServerError::Storage(format!("{}: {e}", path.display())))?;
    // SAFETY: flock on a descriptor this function owns; the lock goes with the descriptor.
    let locked = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if locked == 0 {
        return Ok(file);
    }
    match std::io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Err(ServerError::Storage(format!(
            "{} is in use by another sigil serve",
            data.display()
        ))),
        e => Err(ServerError::Storage(format!("{}: {e}", path.display()))),
    }
}

/// Deletes the blobs no record refers to (deleted Services and Assets, uploads that failed
/// after placing their blob). At start, while the API waits ([`ControlPlane::start`]), so no
/// upload or Build is placing a blob meanwhile. A failure is logged and leaves the rest in
/// place: serving goes on.
pub(super) async fn collect_blob_garbage(store: Arc<dyn Metadata>, blobs: BlobStore) {
    let collected = tokio::task::spawn_blocking(move || {
        let live = crate::control::referenced_blobs(store.as_ref()).map_err(storage)?;
        blobs.remove_unreferenced(&live).map_err(storage)
    })
    .await
    .map_err(storage)
    .and_then(|r| r);
    match collected {
        Ok((0, _)) => {}
        Ok((files, bytes)) => tracing::info!(files, bytes, "unreferenced blobs removed"),
        Err(e) => tracing::warn!(error = %e, "blob garbage collection skipped"),
    }
}

/// The way out of a failed bind.
fn bind_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            " — another program (or another sigil) listens there; stop it or choose another address with --http / --https / --api"
        }
        std::io::ErrorKind::PermissionDenied => {
            " — ports below 1024 need root or CAP_NET_BIND_SERVICE; choose a port ≥ 1024"
        }
        std::io::ErrorKind::AddrNotAvailable => " — this machine has no such address",
        _ => "",
    }
}

pub(super) fn storage(e: impl std::fmt::Display) -> ServerError {
    ServerError::Storage(e.to_string())
}

pub(super) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| ServerError::Bind { addr, error })?;
    let local = listener
        .local_addr()
        .map_err(|error| ServerError::Bind { addr, error })?;
    Ok((listener, local))
}

/// Binds `addr` with `SO_REUSEPORT`, so that each `--scheduler per-worker` runtime has its own
/// listener on the same address and the kernel spreads new connections over them.
pub(super) fn bind_shared(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        listener.into_std()
    };
    bind().map_err(|error| ServerError::Bind { addr, error })
}

/// What a listener serves.
#[derive(Clone)]
enum Role {
    Api(Arc<ControlPlane>),
    Edge(Arc<Edge>),
    EdgeTls(Arc<Edge>, Arc<Https>),
    Admin(Arc<roles::Admin>),
}

/// An HTTPS listener's handshakes, and the kernel's TLS when `--ktls` found it.
struct Https {
    acceptor: tokio_rustls::TlsAcceptor,
    kernel: Option<ktls::KernelTls>,
}

/// Everything the connections share.
struct App {
    /// `/metrics` on the API listener of `--role all`.
    metrics: Option<Arc<roles::Admin>>,
    /// One permit per open connection, across all listeners (`--max-connections`).
    connections: Arc<Semaphore>,
    limits: Limits,
}

/// Connection limits and timeouts (from `sigil serve` flags).
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    tls_handshake: Duration,
    drain: Duration,
    max_connections: usize,
    max_header_bytes: usize,
    max_uri_bytes: usize,
    body_read: Duration,
    h2_max_streams: u32,
    h2_max_pending_resets: usize,
    h2_max_error_resets: usize,
}

/// Runs sigil in the role `config` names until `shutdown` resolves (roles.rs assembles it).
/// Prints on standard output, once it serves: `sigil: edge listening on http://…` and
/// `… https://…` (roles with an edge), `sigil: admin listening on http://…` (with
/// `--admin`), then the last line, which means ready: `sigil: API listening on URL` (roles
/// with the API) or `sigil: edge ready`; on a first start, before them, the new account's
/// credentials.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    raise_open_files_limit(config.max_connections as u64 + 1024);
    let assembled = roles::assemble(&config).await?;
    let _lock = assembled.lock;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let limits = Limits {
        header_read: config.header_read_timeout,
        tls_handshake: config.tls_handshake_timeout,
        drain: config.drain_timeout,
        max_connections: config.max_connections.min(Semaphore::MAX_PERMITS),
        max_header_bytes: config.max_header_bytes,
        max_uri_bytes: config.max_uri_bytes,
        body_read: config.body_read_timeout,
        h2_max_streams: config.h2_max_streams,
        h2_max_pending_resets: config.h2_max_pending_resets,
        h2_max_error_resets: config.h2_max_error_resets,
    };
    let app = Arc::new(App {
        metrics: assembled.metrics_on_api,
        connections: Arc::new(Semaphore::new(limits.max_connections)),
        limits,
    });
    let workers = start_workers(&config, &assembled.listeners, &app, &stop_rx)?;
    let serving = assembled
        .listeners
        .into_iter()
        .map(|(listener, role)| serve(listener, role, Arc::clone(&app), stop_rx.clone()));
    futures_util::future::join_all(serving).await;
    for worker in workers {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    // Listeners are closed; every connection was told to finish its requests and close.
    // All permits back means all connections are gone.
    tracing::info!("shutting down: draining connections");
    if drained(&app).await {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!("drain deadline passed; closing the remaining connections");
    }
    // The Log lines of the requests answered, queued for their next batch.
    if let Some(logs) = assembled.logs {
        if !logs.close(LOGS_CLOSE).await {
            tracing::warn!("request logs not all written: the store did not take them in time");
        }
    }
    Ok(())
}

/// How long a graceful stop waits for the queued Log lines to be written.
const LOGS_CLOSE: Duration = Duration::from_secs(10);

/// Waits, at most `--drain-timeout`, until every connection (of every runtime) is closed:
/// all permits back. Whether they all closed.
async fn drained(app: &App) -> bool {
    let all = u32::try_from(app.limits.max_connections).unwrap_or(u32::MAX);
    tokio::time::timeout(app.limits.drain, app.connections.acquire_many(all))
        .await
        .is_ok()
}

/// With `--scheduler per-worker`, the further workers: a thread each, running a current-thread
/// runtime that accepts and serves edge connections on its own listeners, bound with
/// `SO_REUSEPORT` to the addresses of this runtime's (roles.rs bound those the same way).
fn start_workers(
    config: &Config,
    listeners: &[(TcpListener, Role)],
    app: &Arc<App>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, ServerError> {
    if config.scheduler != crate::config::Scheduler::PerWorker {
        return Ok(Vec::new());
    }
    let mut threads = Vec::new();
    for worker in 1..config.workers {
        let mut own = Vec::new();
        for (listener, role) in listeners {
            if let Role::Edge(_) | Role::EdgeTls(..) = role {
                let addr = listener.local_addr().map_err(storage)?;
                own.push((bind_shared(addr)?, role.clone()));
            }
        }
        let (app, stop) = (Arc::clone(app), stop.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(storage)?;
        let thread = std::thread::Builder::new()
            .name(format!("sigil-worker-{worker}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let serving = own.into_iter().filter_map(|(listener, role)| {
                        match TcpListener::from_std(listener) {
                            Ok(listener) => {
                                Some(serve(listener, role, Arc::clone(&app), stop.clone()))
                            }
                            Err(e) => {
                                tracing::error!(worker, error = %e, "worker listener not served");
                                None
                            }
                        }
                    });
                    futures_util::future::join_all(serving).await;
                    // This runtime's connections end with it: let them finish first.
                    drained(&app).await;
                });
            })
            .map_err(storage)?;
        threads.push(thread);
    }
    Ok(threads)
}

fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    // HTTP/2 here is the API listener's h2c; the edge's HTTP/2 (http2.rs) has the same limits.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_error_resets)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .initial_stream_window_size(http2::STREAM_WINDOW)
        .initial_connection_window_size(http2::CONNECTION_WINDOW)
        .max_send_buf_size(http2::SEND_BUFFER);
    builder
}

/// Raises the soft limit on open files to the hard one, as nginx's `worker_rlimit_nofile` and
/// Go's runtime do: every connection holds a descriptor, and the usual soft limit (1,024) is
/// far below `--max-connections` (past it, `accept` fails and new connections wait). Warns
/// when even the hard limit is below `wanted`.
fn raise_open_files_limit(wanted: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    // An unlimited hard limit still stops at the kernel's `fs.nr_open` (1,048,576 by default).
    let target = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    if lim.rlim_cur < wanted {
        tracing::warn!(
            limit = lim.rlim_cur,
            wanted,
            "the open-file limit is below --max-connections + 1,024: connections past it wait"
        );
    }
}

async fn serve(listener: TcpListener, role: Role, app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let builder = Arc::new(builder(&app.limits));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        // At the connection cap, a new connection is closed at once: the open ones keep
        // being served.
        let Ok(permit) = Arc::clone(&app.connections).try_acquire_owned() else {
            tracing::warn!(%peer, "connection refused: --max-connections reached");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            role.clone(),
            Arc::clone(&app),
            Arc::clone(&builder),
            stop.clone(),
            permit,
        ));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    role: Role,
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let counted = match &role {
        Role::Edge(edge) | Role::EdgeTls(edge, _) => Some(Arc::clone(&edge.metrics)),
        Role::Api(_) | Role::Admin(_) => None,
    };
    let _active = counted.as_ref().map(|m| m.connection());
    let scheme = if matches!(role, Role::EdgeTls(..)) {
        "https"
    } else {
        "http"
    };
    let conn = Conn { peer, scheme };
    let service = {
        let (app, role) = (Arc::clone(&app), role.clone());
        service_fn(move |req: Request<Incoming>| {
            let (app, role) = (Arc::clone(&app), role.clone());
            async move { Ok::<_, Infallible>(dispatch(&app, &role, req, &conn).await) }
        })
    };
    let result = match role {
        Role::EdgeTls(edge_, https) => {
            let Some(io) = secure(stream, peer, &https, &app.limits).await else {
                return;
            };
            match io {
                Secured::Rustls(tls, h2) => {
                    edge(tls, h2, &app, &edge_, conn, stop, &builder, service).await
                }
                Secured::Corked(tls, h2) => {
                    edge(tls, h2, &app, &edge_, conn, stop, &builder, service).await
                }
                Secured::Kernel(io) => {
                    edge_.metrics.kernel_tls();
                    edge(io, false, &app, &edge_, conn, stop, &builder, service).await
                }
            }
        }
        Role::Edge(edge_) => edge(stream, false, &app, &edge_, conn, stop, &builder, service).await,
        Role::Api(_) | Role::Admin(_) => {
            drive(
                builder.serve_connection_with_upgrades(TokioIo::new(stream), service),
                stop,
            )
            .await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// An HTTPS connection after its handshake.
enum Secured {
    /// Encrypted by rustls; whether ALPN chose HTTP/2.
    Rustls(tokio_rustls::server::TlsStream<TcpStream>, bool),
    /// Encrypted by rustls though read for kernel TLS, which does not take it (HTTP/2, or a
    /// cipher suite the kernel lacks); whether ALPN chose HTTP/2.
    Corked(tokio_rustls::server::TlsStream<ktls::Cork<TcpStream>>, bool),
    /// Encrypted by the kernel (HTTP/1.1).
    Kernel(ktls::KernelStream),
}

/// The handshake of an HTTPS connection and, with `--ktls` where the kernel takes its cipher
/// suite, the hand-over of an HTTP/1.1 one to the kernel; `None` (logged) when either failed.
async fn secure(
    stream: TcpStream,
    peer: SocketAddr,
    https: &Https,
    limits: &Limits,
) -> Option<Secured> {
    let h2 = |session: &rustls::ServerConnection| session.alpn_protocol() == Some(b"h2");
    let Some(kernel) = &https.kernel else {
        let tls = handshake(&https.acceptor, stream, limits, peer).await?;
        let h2 = h2(tls.get_ref().1);
        if !h2 {
            bound_unsent(tls.get_ref().0);
        }
        return Some(Secured::Rustls(tls, h2));
    };
    let mut tls = handshake(&https.acceptor, ktls::Cork::new(stream), limits, peer).await?;
    let session = tls.get_ref().1;
    let h2 = h2(session);
    let takes = session
        .negotiated_cipher_suite()
        .is_some_and(|suite| kernel.takes(suite));
    if h2 || !takes {
        tls.get_mut().0.release();
        if !h2 {
            bound_unsent(tls.get_ref().0.get_ref());
        }
        return Some(Secured::Corked(tls, h2));
    }
    // Bounded like the handshake: the hand-over reads to the end of a record the client may
    // have begun.
    match tokio::time::timeout(limits.tls_handshake, ktls::hand_over(tls)).await {
        Ok(Ok(io)) => Some(Secured::Kernel(io)),
        Ok(Err(e)) => {
            // The keys are out of rustls by then: the connection is closed. Said once loudly
            // (a kernel that takes a suite's keys for sending but not for receiving would
            // close every such connection), then at debug level.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(%peer, error = %e, "kernel TLS refused a connection's keys; such connections are closed (run without --ktls if this repeats)");
            } else {
                tracing::debug!(%peer, error = %e, "kernel TLS refused the connection");
            }
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "kernel TLS hand-over timed out");
            None
        }
    }
}

/// Sets the socket's `TCP_NOTSENT_LOWAT` to `TLS_UNSENT_BOUND`. A kernel that refuses it
/// leaves the socket as it was, which only costs speed.
fn bound_unsent(socket: &TcpStream) {
    if let Err(e) = socket2::SockRef::from(socket).set_tcp_notsent_lowat(TLS_UNSENT_BOUND) {
        tracing::debug!(error = %e, "TCP_NOTSENT_LOWAT refused");
    }
}

/// The TLS handshake on `io`, within `--tls-handshake-timeout`; `None` (logged) when it failed.
async fn handshake<IO>(
    acceptor: &tokio_rustls::TlsAcceptor,
    io: IO,
    limits: &Limits,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<IO>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match tokio::time::timeout(limits.tls_handshake, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// Serves an edge connection: HTTP/2 when ALPN chose it (`h2`), else the HTTP/1.1 fast path
/// until it hands the connection on — to the HTTP/2 server when the client opened with the
/// HTTP/2 preface (h2c with prior knowledge), else to hyper. Either gets the bytes the fast
/// path had read, and output gathered into fewer writes (and TLS records).
#[allow(clippy::too_many_arguments)]
async fn edge<I, S>(
    mut io: I,
    h2: bool,
    app: &Arc<App>,
    edge: &Arc<Edge>,
    conn: Conn,
    mut stop: watch::Receiver<bool>,
    builder: &auto::Builder<TokioExecutor>,
    service: S,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: h1::Socket + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let prefix = if h2 {
        Bytes::new()
    } else {
        match h1::serve(&mut io, edge, &conn, &app.limits, &mut stop).await? {
            h1::Ended::HandOff(prefix) => prefix,
            h1::Ended::Done => return Ok(()),
        }
    };
    if h2 || prefix.starts_with(http2::PREFACE) {
        http2::serve(prefix, io, app, edge, conn, &mut stop).await;
        return Ok(());
    }
    let io = TokioIo::new(coalesce::Coalescing::new(prefix, io, WRITE_BUFFER));
    drive(builder.serve_connection_with_upgrades(io, service), stop).await
}

/// Whether a request target is over `--max-uri-bytes`.
fn uri_too_long(uri: &http::Uri, limits: &Limits) -> bool {
    uri.path_and_query().map_or(0, |pq| pq.as_str().len()) > limits.max_uri_bytes
}

/// Serves a connection; on shutdown, lets its in-flight requests finish and then closes it
/// (HTTP/1.1: no further keep-alive; HTTP/2: GOAWAY).
async fn drive<I, S>(
    conn: auto::UpgradeableConnection<'_, I, S, TokioExecutor>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => return res,
        _ = stop.changed() => conn.as_mut().graceful_shutdown(),
    }
    conn.await
}

async fn dispatch(
    app: &App,
    role: &Role,
    req: Request<Incoming>,
    conn: &Conn,
) -> hyper::Response<Body> {
    let is_api = matches!(role, Role::Api(_) | Role::Admin(_));
    if uri_too_long(req.uri(), &app.limits) {
        return if is_api {
            crate::control::ApiError::uri_too_long(app.limits.max_uri_bytes).into_response()
        } else {
            crate::edge::plain(http::StatusCode::URI_TOO_LONG, "URI Too Long\n")
        };
    }
    let linger = req.version() < http::Version::HTTP_2;
    let req = req.map(|b| body::Linger::new(body::TimedBody::new(b, app.limits.body_read), linger));
    let control = match role {
        Role::Edge(edge) | Role::EdgeTls(edge, _) => return edge.handle(req, conn).await,
        Role::Admin(admin) => return admin.handle(req.uri().path()).await,
        Role::Api(control) => control,
    };
    if req.uri().path() == "/metrics" {
        // Kept here for `--role all` (where it always was); other roles have --admin.
        if let Some(admin) = &app.metrics {
            return admin.handle("/metrics").await;
        }
    }
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    // Boxed: the API's future is large, and the edge requests hyper serves share this
    // future's type, so they would carry its size.
    let resp = Box::pin(control.handle(req)).await;
    tracing::info!(
        peer = %conn.peer,
        %method,
        %path,
        status = resp.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "api request"
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTPS/1.1 connection that rustls encrypts leaves at most `TLS_UNSENT_BOUND` bytes
    /// unsent in its socket; an HTTP/2 one keeps the system's setting (0 on the socket).
    #[tokio::test]
    async fn https_connections_bound_their_unsent_bytes() {
        use rustls::pki_types::pem::PemObject;
        let https = Https {
            acceptor: tokio_rustls::TlsAcceptor::from(
                tls::server_config(None, false).expect("config"),
            ),
            kernel: None,
        };
        let limits = Limits {
            header_read: Duration::from_secs(5),
            tls_handshake: Duration::from_secs(5),
            drain: Duration::from_secs(1),
            max_connections: 1,
            max_header_bytes: 8192,
            max_uri_bytes: 8192,
            body_read: Duration::from_secs(5),
            h2_max_streams: 1,
            h2_max_pending_resets: 1,
            h2_max_error_resets: 1,
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(tls::DEV_CA.as_bytes()) {
            roots.add(cert.expect("pem")).expect("ca");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        for alpn in [&b"h2"[..], b"http/1.1"] {
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let client = tokio::spawn(async move {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
                connector.connect(name, tcp).await.expect("handshake")
            });
            let (stream, peer) = listener.accept().await.expect("accept");
            let Some(Secured::Rustls(tls, h2)) = secure(stream, peer, &https, &limits).await else {
                panic!("no rustls connection");
            };
            assert_eq!(h2, alpn == b"h2");
            let lowat = socket2::SockRef::from(tls.get_ref().0)
                .tcp_notsent_lowat()
                .expect("getsockopt");
            let want = if h2 { 0 } else { TLS_UNSENT_BOUND };
            assert_eq!(lowat, want, "{}", String::from_utf8_lossy(alpn));
            drop(client.await.expect("client"));
        }
    }
}
