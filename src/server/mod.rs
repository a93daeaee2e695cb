//! Listeners and connection handling: hyper 1 through hyper-util's auto (HTTP/1.1 + h2)
//! builder, with a timer (so header-read timeouts work), one task per connection, and
//! graceful shutdown: stop accepting, let in-flight requests finish, give up after a deadline.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::control::ControlPlane;
use crate::store::{BlobStore, Metadata, SqliteStore};

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Data directory, metadata store or blob store.
    #[error("storage: {0}")]
    Storage(String),
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the metadata store of a data directory (creating the directory).
pub fn open_store(data: &std::path::Path) -> Result<SqliteStore, ServerError> {
    std::fs::create_dir_all(data)
        .map_err(|e| ServerError::Storage(format!("{}: {e}", data.display())))?;
    SqliteStore::open(&data.join("metadata.db")).map_err(|e| ServerError::Storage(e.to_string()))
}

/// Runs sigil until `shutdown` resolves. Prints `sigil: API listening on URL` on standard
/// output once it serves (and, on a first start, the new account's credentials, once).
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let store: Arc<dyn Metadata> = Arc::new(open_store(&config.data)?);
    let blobs = BlobStore::open(&config.data).map_err(|e| ServerError::Storage(e.to_string()))?;
    let fixed = config
        .account
        .as_ref()
        .map(|(sid, token)| (sid.as_str(), token.as_str()));
    let created = crate::accounts::bootstrap(store.as_ref(), fixed)
        .map_err(|e| ServerError::Storage(e.to_string()))?;

    let api = TcpListener::bind(config.api)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.api,
            source,
        })?;
    let api_addr = api.local_addr().map_err(|source| ServerError::Bind {
        addr: config.api,
        source,
    })?;
    let base_url = config
        .public_api_url
        .clone()
        .unwrap_or_else(|| format!("http://{api_addr}"));
    let control = ControlPlane::new(store, blobs, base_url, config.domain.clone(), None);
    control
        .resume_builds()
        .await
        .map_err(|e| ServerError::Storage(e.to_string()))?;

    if let Some((sid, token)) = created {
        // Printed once, to the terminal, never to the log.
        println!("sigil: created account {sid}");
        println!("sigil: auth token {token} (shown once; keep it)");
    }
    println!("sigil: API listening on http://{api_addr}");
    tracing::info!(%api_addr, domain = %config.domain, "sigil ready");

    serve_api(api, control, shutdown).await;
    Ok(())
}

async fn serve_api(
    listener: TcpListener,
    control: Arc<ControlPlane>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
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
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let control = Arc::clone(&control);
        let service = service_fn(move |req: Request<Incoming>| {
            let control = Arc::clone(&control);
            async move {
                let started = Instant::now();
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let resp = control.handle(req).await;
                tracing::info!(
                    %peer,
                    %method,
                    %path,
                    status = resp.status().as_u16(),
                    micros = started.elapsed().as_micros() as u64,
                    "api request"
                );
                Ok::<_, Infallible>(resp)
            }
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracing::info!("shutting down: draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(DRAIN_DEADLINE) => tracing::warn!("drain deadline passed; closing"),
    }
}
