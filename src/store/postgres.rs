//! The shared metadata store: PostgreSQL, for several sigil processes at once
//! (`--metadata postgres://…`).
//!
//! The [`Metadata`] trait is synchronous (the control plane calls it on blocking threads, the
//! account commands and start-up from plain code), so this store runs tokio-postgres and a
//! deadpool pool on a small runtime of its own and hands each call to it, waiting at most
//! [`PgStore::OPERATION_TIMEOUT`]: a database that is down or hangs gives
//! [`StoreError::Unavailable`] in bounded time, and the pool reconnects by itself when it is
//! back.
//!
//! Concurrency is the database's: SIDs and unique keys are primary keys (inserted with
//! `ON CONFLICT DO NOTHING`, so a taken key is a row count of 0, not an aborted transaction),
//! a parent is a foreign key (deleting it cascades; inserting under a missing one fails),
//! updates are conditional on the record's version, and a [`Write::Check`] locks the row it
//! checks (`FOR SHARE`) until the batch commits. Each batch is one transaction.

use std::str::FromStr;
use std::sync::mpsc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::{pin_mut, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::metadata::{Change, FeedPage, Kind, ListQuery, Metadata, Record, StoreError, Write};

/// The schema version this binary writes. A database with a newer one is refused.
pub const SCHEMA_VERSION: i32 = 2;

/// Migrations, in order: `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    "
CREATE TABLE records (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    parent_sid  TEXT REFERENCES records(sid) ON DELETE CASCADE,
    tag         TEXT,
    created     BIGINT NOT NULL,
    uniq        TEXT NOT NULL,
    data        BYTEA NOT NULL,
    version     BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX records_list ON records(kind, account_sid, parent_sid, seq);
CREATE INDEX records_parent ON records(parent_sid);
CREATE INDEX records_created ON records(kind, created);
CREATE TABLE uniques (
    key TEXT PRIMARY KEY,
    sid TEXT NOT NULL REFERENCES records(sid) ON DELETE CASCADE
);
CREATE INDEX uniques_sid ON uniques(sid);
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
",
    "
-- The change feed (the kinds named are FEED_KINDS). Each change takes the next position from
-- the one row of feed_head: that row stays locked until the transaction ends, so positions
-- are handed out in commit order and a reader of 'position > p' never skips one still to
-- commit. Cascaded deletes fire the row triggers too.
CREATE TABLE feed_head (
    single   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (single),
    position BIGINT NOT NULL
);
INSERT INTO feed_head (single, position) VALUES (TRUE, 0);
CREATE TABLE changes (
    position    BIGINT PRIMARY KEY,
    kind        TEXT NOT NULL,
    sid         TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    created     BIGINT NOT NULL
);
CREATE FUNCTION sigil_feed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r records;
    p BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE feed_head SET position = position + 1 RETURNING position INTO p;
    INSERT INTO changes (position, kind, sid, account_sid, created)
    VALUES (p, r.kind, r.sid, r.account_sid, extract(epoch FROM now())::bigint);
    PERFORM pg_notify('sigil_changes', p::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER records_feed_write AFTER INSERT OR UPDATE ON records FOR EACH ROW
    WHEN (NEW.kind IN ('environment', 'account', 'api_key')) EXECUTE FUNCTION sigil_feed();
CREATE TRIGGER records_feed_delete AFTER DELETE ON records FOR EACH ROW
    WHEN (OLD.kind IN ('environment', 'account', 'api_key')) EXECUTE FUNCTION sigil_feed();
",
];

/// The channel `sigil_feed()` notifies on each change.
const FEED_CHANNEL: &str = "sigil_changes";

/// Serialises concurrent migrations of several starting processes (`pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x0051_6711_0001;

const COLUMNS: &str = "seq, sid, kind, account_sid, parent_sid, tag, created, uniq, data, version";

/// PostgreSQL-backed [`Metadata`].
pub struct PgStore {
    pool: Pool,
    /// Runs the pool's connections and every call; shut down without waiting on drop.
    runtime: Option<tokio::runtime::Runtime>,
    /// Where the database is, without credentials (for messages).
    target: String,
    /// How to open a connection of its own (the feed's LISTEN).
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    /// The feed's wake-ups, once a reader asked for them ([`Metadata::feed_wakeups`]).
    wakeups: std::sync::OnceLock<tokio::sync::watch::Receiver<i64>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

type PgResult<T> = Result<T, StoreError>;

/// Maps a driver error: lost or refused connections are `Unavailable`; a deadlock or a
/// serialisation failure means another writer got there first (`Stale`: retry).
fn pg(e: tokio_postgres::Error) -> StoreError {
    // The server's message, not the driver's bare "db error".
    let text = e
        .as_db_error()
        .map_or_else(|| e.to_string(), ToString::to_string);
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::T_R_SERIALIZATION_FAILURE =>
        {
            StoreError::Stale(text)
        }
        Some(c) if *c == SqlState::DISK_FULL || *c == SqlState::OUT_OF_MEMORY => {
            StoreError::Full(text)
        }
        Some(c) if c.code().starts_with("08") || c.code().starts_with("57") => {
            // Connection exceptions; operator intervention (shutdown, admin termination).
            StoreError::Unavailable(text)
        }
        Some(_) => StoreError::Backend(text),
        None => StoreError::Unavailable(text),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// A `postgres://` URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => {
            let host = c
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                })
                .unwrap_or_default();
            let port = c.get_ports().first().copied().unwrap_or(5432);
            format!(
                "postgres://{}@{host}:{port}/{}",
                c.get_user().unwrap_or(""),
                c.get_dbname().unwrap_or("")
            )
        }
        Err(_) => "(an unparsable URL)".to_owned(),
    }
}

impl PgStore {
    /// The longest any one call may take, waiting for a connection included.
    pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`), creating or
    /// migrating the schema. Refuses a database whose schema is newer than this binary's.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url)?;
        store.call(|pool| async move { migrate(&pool).await })?;
        Ok(store)
    }

    /// The pool, without touching the database yet.
    fn connect(url: &str) -> Result<PgStore, StoreError> {
        let target = redact(url);
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            StoreError::Backend(format!(
                "not a PostgreSQL URL (postgres://user:password@host:port/database): {e}"
            ))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("sigil");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sigil-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the PostgreSQL runtime: {e}")))?;
        let tls = tls()?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(16)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(5)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| StoreError::Backend(e.to_string()))?
        };
        let store = PgStore {
            pool,
            runtime: Some(runtime),
            target,
            config,
            tls,
            wakeups: std::sync::OnceLock::new(),
        };
        Ok(store)
    }

    /// [`PgStore::open`] for a process that can start without the database (an edge serving
    /// from its route snapshot): when the database cannot be reached, the store is returned
    /// unmigrated and its calls fail as `Unavailable` until the database is back (a control
    /// plane migrates the schema).
    pub fn open_or_later(url: &str) -> Result<PgStore, StoreError> {
        let store = PgStore::connect(url)?;
        match store.call(|pool| async move { migrate(&pool).await }) {
            Ok(()) => {}
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(target = %store.target, error = %e, "the metadata store cannot be reached; starting without it");
            }
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// Runs `work` on the store's runtime and waits for it, at most
    /// [`PgStore::OPERATION_TIMEOUT`].
    fn call<T, F, Fut>(&self, work: F) -> PgResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: std::future::Future<Output = PgResult<T>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        let fut = work(self.pool.clone());
        let target = self.target.clone();
        self.handle().spawn(async move {
            let result = match tokio::time::timeout(PgStore::OPERATION_TIMEOUT, fut).await {
                Ok(r) => r,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "{target} did not answer within {} s",
                    PgStore::OPERATION_TIMEOUT.as_secs()
                ))),
            };
            let _ = tx.send(result);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(StoreError::Backend("the PostgreSQL runtime stopped".into())))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives until drop")
            .handle()
    }
}

/// Keeps a connection that LISTENs on [`FEED_CHANNEL`] and publishes the newest position
/// notified; reconnects (after a pause) whenever the connection is lost, and wakes the readers
/// then too, since notifications sent meanwhile are gone.
async fn listen(
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    target: String,
    head: tokio::sync::watch::Sender<i64>,
) {
    use tokio_postgres::AsyncMessage;
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut conn)) => {
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(|cx| conn.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            if let Ok(position) = n.payload().parse::<i64>() {
                                let _ = tx.send(position);
                            }
                        }
                    }
                });
                match client
                    .batch_execute(&format!("LISTEN {FEED_CHANNEL}"))
                    .await
                {
                    Ok(()) => {
                        tracing::debug!(%target, "listening for changes");
                        head.send_modify(|_| {});
                        while let Some(position) = rx.recv().await {
                            head.send_if_modified(|h| {
                                let newer = position > *h;
                                *h = (*h).max(position);
                                newer
                            });
                        }
                    }
                    Err(e) => tracing::warn!(%target, error = %e, "cannot LISTEN for changes"),
                }
                driver.abort();
                drop(client);
            }
            Err(e) => tracing::debug!(%target, error = %e, "change listener cannot connect"),
        }
        if head.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime waits for its threads, which must not happen on an async
            // thread; nothing is in flight once the store is dropped.
            rt.shutdown_background();
        }
    }
}

/// TLS for the connections, as the URL's `sslmode` asks (`prefer`, the default, uses it when
/// the server offers it; `require` insists): server certificates are checked against the
/// system's roots and, if `SIGIL_METADATA_CA` names a PEM file, its certificates too (a
/// private CA, a managed database's bundle).
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = std::env::var_os("SIGIL_METADATA_CA") {
        let path = std::path::PathBuf::from(path);
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                StoreError::Backend(format!("SIGIL_METADATA_CA {}: {e}", path.display()))
            })?;
        for cert in certs {
            roots.add(cert).map_err(|e| {
                StoreError::Backend(format!("SIGIL_METADATA_CA {}: {e}", path.display()))
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Backend(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Brings the schema to [`SCHEMA_VERSION`], one process at a time.
async fn migrate(pool: &Pool) -> PgResult<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(pg)?;
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(pg)?,
        &[&MIGRATION_LOCK],
    )
    .await
    .map_err(pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS sigil_schema (version INTEGER NOT NULL)")
        .await
        .map_err(pg)?;
    let found: i32 = match tx
        .query_opt(
            &tx.prepare_cached("SELECT version FROM sigil_schema")
                .await
                .map_err(pg)?,
            &[],
        )
        .await
        .map_err(pg)?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute(
                &tx.prepare_cached("INSERT INTO sigil_schema (version) VALUES (0)")
                    .await
                    .map_err(pg)?,
                &[],
            )
            .await
            .map_err(pg)?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the metadata database has schema version {found}, newer than this sigil knows \
             ({SCHEMA_VERSION}): run a newer sigil"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
        tracing::info!(from, to = from + 1, "metadata schema migrated");
    }
    tx.execute(
        &tx.prepare_cached("UPDATE sigil_schema SET version = $1")
            .await
            .map_err(pg)?,
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)
}

fn read_row(row: &Row) -> PgResult<Record> {
    let kind: &str = row.get(2);
    let uniq: &str = row.get(7);
    Ok(Record {
        seq: row.get(0),
        sid: row.get(1),
        kind: Kind::from_name(kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown kind {kind}")))?,
        account_sid: row.get(3),
        parent_sid: row.get(4),
        tag: row.get(5),
        created: row.get(6),
        unique: serde_json::from_str(uniq)
            .map_err(|e| StoreError::Corrupt(format!("unique keys: {e}")))?,
        data: row.get(8),
        version: row.get(9),
    })
}

/// Whether PostgreSQL's `text` can hold `s`: it cannot hold NUL, so no stored SID, key or tag
/// has one, and a lookup of such a string (from a hostile path) finds nothing without asking.
fn storable(s: &str) -> bool {
    !s.contains('\0')
}

fn uniq_json(rec: &Record) -> String {
    serde_json::to_string(&rec.unique).expect("a list of strings serialises")
}

/// Inserts `rec`'s unique keys; a taken one is a conflict (and the caller's transaction is
/// dropped, rolling back).
async fn insert_uniques<C: GenericClient>(tx: &C, rec: &Record) -> PgResult<()> {
    for key in &rec.unique {
        let n = tx
            .execute(
                &tx.prepare_cached(
                    "INSERT INTO uniques (key, sid) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                )
                .await
                .map_err(pg)?,
                &[key, &rec.sid],
            )
            .await
            .map_err(pg)?;
        if n == 0 {
            return Err(StoreError::Conflict(key.clone()));
        }
    }
    Ok(())
}

/// Inserts `rec` at version 1 — only when its parent exists if `only_under_parent` — and
/// returns whether it did. A taken SID is a conflict; a missing parent `Stale` (unless
/// `only_under_parent`, where it is a skip).
async fn insert<C: GenericClient>(tx: &C, rec: &Record, only_under_parent: bool) -> PgResult<bool> {
    let uniq = uniq_json(rec);
    let params: [&(dyn ToSql + Sync); 8] = [
        &rec.sid,
        &rec.kind.as_str(),
        &rec.account_sid,
        &rec.parent_sid,
        &rec.tag,
        &rec.created,
        &uniq,
        &rec.data,
    ];
    let guard = if only_under_parent {
        "WHERE $4::text IS NULL OR EXISTS (SELECT 1 FROM records WHERE sid = $4)"
    } else {
        ""
    };
    let sql = format!(
        "INSERT INTO records (sid, kind, account_sid, parent_sid, tag, created, uniq, data, version)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, 1 {guard}
         ON CONFLICT (sid) DO NOTHING"
    );
    let n = match tx
        .execute(&tx.prepare_cached(sql.as_str()).await.map_err(pg)?, &params)
        .await
    {
        Ok(n) => n,
        Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
            return Err(StoreError::Stale(
                rec.parent_sid.clone().unwrap_or_default(),
            ))
        }
        Err(e) => return Err(pg(e)),
    };
    if n == 0 {
        if only_under_parent {
            return Ok(false);
        }
        return Err(StoreError::Conflict(rec.sid.clone()));
    }
    insert_uniques(tx, rec).await?;
    Ok(true)
}

async fn commit(pool: Pool, writes: Vec<Write>) -> PgResult<()> {
    let mut client = pool.get().await.map_err(pool_error)?;
    // One statement is atomic by itself: no transaction, two round trips fewer (an upload's
    // version, a deletion, whose cascade is the same statement's).
    match writes.as_slice() {
        [Write::Insert(rec)] if rec.unique.is_empty() => {
            insert(&client, rec, false).await?;
            return Ok(());
        }
        [Write::Delete(sid)] => {
            let n = client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM records WHERE sid = $1")
                        .await
                        .map_err(pg)?,
                    &[sid],
                )
                .await
                .map_err(pg)?;
            return if n == 0 {
                Err(StoreError::Stale(sid.clone()))
            } else {
                Ok(())
            };
        }
        _ => {}
    }
    let tx = client.transaction().await.map_err(pg)?;
    for write in &writes {
        match write {
            Write::Insert(rec) => {
                insert(&tx, rec, false).await?;
            }
            Write::Append(rec) => {
                insert(&tx, rec, true).await?;
            }
            Write::Update(rec) => {
                let uniq = uniq_json(rec);
                // Returns the keys the record had: they are rewritten only if they change.
                // FOR NO KEY UPDATE, the lock the UPDATE takes anyway (the SID stays): it does
                // not conflict with the KEY SHARE lock that inserting a child takes on its
                // parent. FOR UPDATE would, so two batches that each insert a child and then
                // update the parent (two racing Deployments of one Environment) deadlocked,
                // one waiting out the server's deadlock_timeout before it could retry.
                let update = tx
                    .prepare_cached(
                        "WITH old AS (SELECT uniq FROM records WHERE sid = $1 AND version = $5 FOR NO KEY UPDATE)
                         UPDATE records r SET tag = $2, uniq = $3, data = $4, version = r.version + 1
                         FROM old WHERE r.sid = $1 AND r.version = $5
                         RETURNING old.uniq",
                    )
                    .await
                    .map_err(pg)?;
                let old: Option<String> = tx
                    .query_opt(
                        &update,
                        &[&rec.sid, &rec.tag, &uniq, &rec.data, &rec.version],
                    )
                    .await
                    .map_err(pg)?
                    .map(|row| row.get(0));
                match old {
                    None => return Err(StoreError::Stale(rec.sid.clone())),
                    Some(old) if old == uniq => {}
                    Some(_) => {
                        tx.execute(
                            &tx.prepare_cached("DELETE FROM uniques WHERE sid = $1")
                                .await
                                .map_err(pg)?,
                            &[&rec.sid],
                        )
                        .await
                        .map_err(pg)?;
                        insert_uniques(&tx, rec).await?;
                    }
                }
            }
            Write::Check { sid, version } => {
                // FOR SHARE: nobody updates or deletes it until this batch commits.
                let found: Option<i64> = tx
                    .query_opt(
                        &tx.prepare_cached("SELECT version FROM records WHERE sid = $1 FOR SHARE")
                            .await
                            .map_err(pg)?,
                        &[sid],
                    )
                    .await
                    .map_err(pg)?
                    .map(|r| r.get(0));
                if found != Some(*version) {
                    return Err(StoreError::Stale(sid.clone()));
                }
            }
            Write::Delete(sid) => {
                // Children and unique keys go with it (ON DELETE CASCADE).
                let n = tx
                    .execute(
                        &tx.prepare_cached("DELETE FROM records WHERE sid = $1")
                            .await
                            .map_err(pg)?,
                        &[sid],
                    )
                    .await
                    .map_err(pg)?;
                if n == 0 {
                    return Err(StoreError::Stale(sid.clone()));
                }
            }
        }
    }
    tx.commit().await.map_err(pg)
}

impl Metadata for PgStore {
    fn get(&self, sid: &str) -> Result<Option<Record>, StoreError> {
        if !storable(sid) {
            return Ok(None);
        }
        let sid = sid.to_owned();
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .query_opt(
                    &client
                        .prepare_cached(&format!("SELECT {COLUMNS} FROM records WHERE sid = $1"))
                        .await
                        .map_err(pg)?,
                    &[&sid],
                )
                .await
                .map_err(pg)?
                .as_ref()
                .map(read_row)
                .transpose()
        })
    }

    fn get_many(&self, sids: &[String]) -> Result<Vec<Option<Record>>, StoreError> {
        let sids: Vec<String> = sids.to_vec();
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let wanted: Vec<&str> = sids
                .iter()
                .map(String::as_str)
                .filter(|s| storable(s))
                .collect();
            let rows = client
                .query(
                    &client
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM records WHERE sid = ANY($1)"
                        ))
                        .await
                        .map_err(pg)?,
                    &[&wanted],
                )
                .await
                .map_err(pg)?;
            let mut found = std::collections::HashMap::with_capacity(rows.len());
            for row in &rows {
                let rec = read_row(row)?;
                found.insert(rec.sid.clone(), rec);
            }
            Ok(sids.iter().map(|sid| found.get(sid).cloned()).collect())
        })
    }

    fn find_unique(&self, key: &str) -> Result<Option<Record>, StoreError> {
        if !storable(key) {
            return Ok(None);
        }
        let key = key.to_owned();
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            client
                .query_opt(
                    &client
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM records
                         WHERE sid = (SELECT sid FROM uniques WHERE key = $1)"
                        ))
                        .await
                        .map_err(pg)?,
                    &[&key],
                )
                .await
                .map_err(pg)?
                .as_ref()
                .map(read_row)
                .transpose()
        })
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Record>, StoreError> {
        let texts = [Some(&q.account_sid), q.parent_sid.as_ref(), q.tag.as_ref()];
        if !texts.into_iter().flatten().all(|t| storable(t)) {
            return Ok(Vec::new());
        }
        let q = q.clone();
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let (newest_first, cursor_value, offset) = q.cursor.window();
            let (cmp, order) = if newest_first {
                ("<", "DESC")
            } else {
                (">", "ASC")
            };
            let sql = format!(
                "SELECT {COLUMNS} FROM records
                 WHERE kind = $1 AND account_sid = $2 AND parent_sid IS NOT DISTINCT FROM $3
                   AND ($4::text IS NULL OR tag = $4)
                   AND ($5::bigint IS NULL OR created >= $5)
                   AND ($6::bigint IS NULL OR created <= $6)
                   AND ($7::bigint IS NULL OR seq {cmp} $7)
                 ORDER BY seq {order} LIMIT $8 OFFSET $9"
            );
            let limit = i64::from(q.limit);
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            let rows = client
                .query(
                    &client.prepare_cached(sql.as_str()).await.map_err(pg)?,
                    &[
                        &q.kind.as_str(),
                        &q.account_sid,
                        &q.parent_sid,
                        &q.tag,
                        &q.created_from,
                        &q.created_to,
                        &cursor_value,
                        &limit,
                        &offset,
                    ],
                )
                .await
                .map_err(pg)?;
            let mut out = rows.iter().map(read_row).collect::<PgResult<Vec<_>>>()?;
            if !newest_first {
                out.reverse();
            }
            Ok(out)
        })
    }

    fn scan_each(
        &self,
        kind: Kind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // The rows stream through a small channel, so only a few are in memory at once; the
        // visitor runs here, on the caller's thread. A scan is start-up work over every record
        // of a kind: it is not bounded by the per-call timeout, only each row's wait is.
        let (tx, rx) = mpsc::sync_channel::<PgResult<Record>>(64);
        let pool = self.pool.clone();
        self.handle().spawn(async move {
            let stream = async {
                let client = pool.get().await.map_err(pool_error)?;
                let no_params: [&(dyn ToSql + Sync); 0] = [];
                let rows = client
                    .query_raw(
                        format!(
                            "SELECT {COLUMNS} FROM records WHERE kind = '{}' ORDER BY seq",
                            // A fixed name from Kind::as_str, never input.
                            kind.as_str()
                        )
                        .as_str(),
                        no_params,
                    )
                    .await
                    .map_err(pg)?;
                pin_mut!(rows);
                while let Some(row) = rows.next().await {
                    let rec = row.map_err(pg).and_then(|r| read_row(&r));
                    let failed = rec.is_err();
                    // Waits only while the visitor is 64 rows behind.
                    let sent = tokio::task::block_in_place(|| tx.send(rec).is_ok());
                    if !sent || failed {
                        return Ok(());
                    }
                }
                Ok::<(), StoreError>(())
            };
            if let Err(e) = stream.await {
                let _ = tx.send(Err(e));
            }
        });
        loop {
            match rx.recv_timeout(PgStore::OPERATION_TIMEOUT) {
                Ok(rec) => visit(rec?)?,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(StoreError::Unavailable(format!(
                        "{} sent no row within {} s",
                        self.target,
                        PgStore::OPERATION_TIMEOUT.as_secs()
                    )))
                }
            }
        }
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.call(|pool| commit(pool, writes))
    }

    fn changes_after(&self, position: i64, limit: u32) -> Result<FeedPage, StoreError> {
        self.call(move |pool| async move {
            let mut client = pool.get().await.map_err(pool_error)?;
            // One snapshot for the head and the changes.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg)?;
            let bounds = tx
                .query_one(
                    &tx.prepare_cached(
                        "SELECT (SELECT min(position) FROM changes), position FROM feed_head",
                    )
                    .await
                    .map_err(pg)?,
                    &[],
                )
                .await
                .map_err(pg)?;
            let (oldest, head): (Option<i64>, i64) = (bounds.get(0), bounds.get(1));
            let rows = tx
                .query(
                    &tx.prepare_cached(
                        "SELECT position, kind, sid, account_sid FROM changes
                         WHERE position > $1 ORDER BY position LIMIT $2",
                    )
                    .await
                    .map_err(pg)?,
                    &[&position, &i64::from(limit)],
                )
                .await
                .map_err(pg)?;
            let changes = rows
                .iter()
                .map(|r| {
                    let kind: &str = r.get(1);
                    Ok(Change {
                        position: r.get(0),
                        kind: Kind::from_name(kind).ok_or_else(|| {
                            StoreError::Corrupt(format!("change of unknown kind {kind}"))
                        })?,
                        sid: r.get(2),
                        account_sid: r.get(3),
                    })
                })
                .collect::<PgResult<Vec<_>>>()?;
            tx.commit().await.map_err(pg)?;
            Ok(FeedPage {
                changes,
                head,
                gap: super::metadata::feed_gap(position, oldest, head),
            })
        })
    }

    fn prune_changes(&self, before: i64) -> Result<usize, StoreError> {
        self.call(move |pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute(
                    &client
                        .prepare_cached(
                            "DELETE FROM changes WHERE created < $1
                             AND position < (SELECT position FROM feed_head)",
                        )
                        .await
                        .map_err(pg)?,
                    &[&before],
                )
                .await
                .map_err(pg)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn feed_wakeups(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        let rx = self.wakeups.get_or_init(|| {
            let (tx, rx) = tokio::sync::watch::channel(0);
            self.handle().spawn(listen(
                self.config.clone(),
                self.tls.clone(),
                self.target.clone(),
                tx,
            ));
            rx
        });
        Some(rx.clone())
    }

    fn try_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool, StoreError> {
        let (name, holder, until) = (name.to_owned(), holder.to_owned(), now.saturating_add(ttl));
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let upsert = client
                .prepare_cached(
                    "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                     WHERE leases.until < $4 OR leases.holder = excluded.holder",
                )
                .await
                .map_err(pg)?;
            let n = client
                .execute(&upsert, &[&name, &holder, &until, &now])
                .await
                .map_err(pg)?;
            Ok(n == 1)
        })
    }

    fn purge_before(&self, kind: Kind, before: i64) -> Result<usize, StoreError> {
        self.call(|pool| async move {
            let client = pool.get().await.map_err(pool_error)?;
            let n = client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM records WHERE kind = $1 AND created < $2")
                        .await
                        .map_err(pg)?,
                    &[&kind.as_str(), &before],
                )
                .await
                .map_err(pg)?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn urls_are_redacted_of_their_password() {
        let r = redact("postgres://sigil:s3cret@db.example:6543/meta?sslmode=disable");
        assert_eq!(r, "postgres://sigil@db.example:6543/meta");
        assert!(!redact("postgres://u:hunter2@h/d").contains("hunter2"));
        assert!(!redact("not a url:hunter2").contains("hunter2"));
    }
}
