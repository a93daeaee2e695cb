//! The embedded metadata store: SQLite (bundled, nothing to install) in WAL mode with
//! `synchronous=FULL`, so a committed transaction survives a crash of the process and of the
//! machine. One connection behind a mutex: the API is low-volume and the edge never reads it.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::metadata::{Change, FeedPage, Kind, ListQuery, Metadata, Record, StoreError, Write};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sid         TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    parent_sid  TEXT,
    tag         TEXT,
    created     INTEGER NOT NULL,
    uniq        TEXT NOT NULL,
    data        BLOB NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS records_list ON records(kind, account_sid, parent_sid, seq);
CREATE INDEX IF NOT EXISTS records_parent ON records(parent_sid);
CREATE INDEX IF NOT EXISTS records_created ON records(kind, created);
CREATE TABLE IF NOT EXISTS uniques (
    key TEXT PRIMARY KEY,
    sid TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uniques_sid ON uniques(sid);
CREATE TABLE IF NOT EXISTS leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
    position    INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    sid         TEXT NOT NULL,
    account_sid TEXT NOT NULL,
    created     INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS records_feed_insert AFTER INSERT ON records
    WHEN NEW.kind IN ('environment', 'account', 'api_key')
BEGIN
    INSERT INTO changes (kind, sid, account_sid, created)
    VALUES (NEW.kind, NEW.sid, NEW.account_sid, CAST(strftime('%s', 'now') AS INTEGER));
END;
CREATE TRIGGER IF NOT EXISTS records_feed_update AFTER UPDATE ON records
    WHEN NEW.kind IN ('environment', 'account', 'api_key')
BEGIN
    INSERT INTO changes (kind, sid, account_sid, created)
    VALUES (NEW.kind, NEW.sid, NEW.account_sid, CAST(strftime('%s', 'now') AS INTEGER));
END;
CREATE TRIGGER IF NOT EXISTS records_feed_delete AFTER DELETE ON records
    WHEN OLD.kind IN ('environment', 'account', 'api_key')
BEGIN
    INSERT INTO changes (kind, sid, account_sid, created)
    VALUES (OLD.kind, OLD.sid, OLD.account_sid, CAST(strftime('%s', 'now') AS INTEGER));
END;
";

/// The schema version this binary writes (`PRAGMA user_version`): 0 before records had a
/// `version`, 1 with it, 2 with the change feed (the `changes` table and its triggers; the
/// kinds they name are [`super::FEED_KINDS`]).
const SCHEMA_VERSION: i64 = 2;

const COLUMNS: &str = "seq, sid, kind, account_sid, parent_sid, tag, created, uniq, data, version";

/// SQLite-backed [`Metadata`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    // SQLITE_FULL: the transaction is rolled back, so the caller may say nothing was written.
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
        return StoreError::Full(e.to_string());
    }
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let conn = Connection::open(path).map_err(backend)?;
        // WAL lets `sigil account …` write while a server runs; FULL makes every commit durable.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(backend)?;
        migrate(&conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves SQLite consistent (transactions roll back),
        // so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates the schema, or brings an older one up to [`SCHEMA_VERSION`]; refuses a newer one.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::Backend(format!(
            "the metadata database has schema version {found}, newer than this sigil knows \
             ({SCHEMA_VERSION}): run a newer sigil"
        )));
    }
    let had_records: bool = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'",
            [],
            |_| Ok(true),
        )
        .optional()
        .map_err(backend)?
        .unwrap_or(false);
    if had_records && found < 1 {
        // Version 0 → 1: records get a version, 1 for every existing one.
        conn.execute_batch("ALTER TABLE records ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
            .map_err(backend)?;
    }
    conn.execute_batch(SCHEMA).map_err(backend)?;
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(backend)
}

fn read_row(row: &Row<'_>) -> rusqlite::Result<Record> {
    let kind: String = row.get(2)?;
    let uniq: String = row.get(7)?;
    Ok(Record {
        seq: row.get(0)?,
        sid: row.get(1)?,
        kind: Kind::from_name(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown kind {kind}").into(),
            )
        })?,
        account_sid: row.get(3)?,
        parent_sid: row.get(4)?,
        tag: row.get(5)?,
        created: row.get(6)?,
        unique: serde_json::from_str(&uniq).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, e.into())
        })?,
        data: row.get(8)?,
        version: row.get(9)?,
    })
}

fn insert_uniques(tx: &rusqlite::Transaction<'_>, rec: &Record) -> Result<(), StoreError> {
    for key in &rec.unique {
        let taken: Option<String> = tx
            .prepare_cached("SELECT sid FROM uniques WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(backend)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(key.clone()));
        }
        tx.prepare_cached("INSERT INTO uniques (key, sid) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![key, rec.sid]))
            .map_err(backend)?;
    }
    Ok(())
}

/// The stored version of a record, if it exists.
fn version_of(tx: &rusqlite::Transaction<'_>, sid: &str) -> Result<Option<i64>, StoreError> {
    // Cached statements here and in the inserts: a request-log batch makes these per line, and
    // parsing their SQL each time was most of a line's cost.
    tx.prepare_cached("SELECT version FROM records WHERE sid = ?1")
        .and_then(|mut s| s.query_row([sid], |r| r.get(0)).optional())
        .map_err(backend)
}

/// Inserts a record at version 1: a taken SID or unique key is a conflict, a missing parent
/// stale.
fn insert(tx: &rusqlite::Transaction<'_>, rec: &Record) -> Result<(), StoreError> {
    if version_of(tx, &rec.sid)?.is_some() {
        return Err(StoreError::Conflict(rec.sid.clone()));
    }
    if let Some(parent) = &rec.parent_sid {
        if version_of(tx, parent)?.is_none() {
            return Err(StoreError::Stale(parent.clone()));
        }
    }
    insert_uniques(tx, rec)?;
    tx.prepare_cached(
        "INSERT INTO records (sid, kind, account_sid, parent_sid, tag, created, uniq, data, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
    )
    .and_then(|mut s| {
        s.execute(params![
            rec.sid,
            rec.kind.as_str(),
            rec.account_sid,
            rec.parent_sid,
            rec.tag,
            rec.created,
            uniq_json(rec),
            rec.data
        ])
    })
    .map_err(backend)?;
    Ok(())
}

fn uniq_json(rec: &Record) -> String {
    serde_json::to_string(&rec.unique).expect("a list of strings serialises")
}

impl Metadata for SqliteStore {
    fn get(&self, sid: &str) -> Result<Option<Record>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM records WHERE sid = ?1"),
            [sid],
            read_row,
        )
        .optional()
        .map_err(backend)
    }

    fn find_unique(&self, key: &str) -> Result<Option<Record>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!(
                "SELECT {COLUMNS} FROM records WHERE sid = (SELECT sid FROM uniques WHERE key = ?1)"
            ),
            [key],
            read_row,
        )
        .optional()
        .map_err(backend)
    }

    fn list(&self, q: &ListQuery) -> Result<Vec<Record>, StoreError> {
        let conn = self.conn();
        let (newest_first, cursor_value, offset) = q.cursor.window();
        let (cmp, order) = if newest_first {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let cursor_sql = format!("AND (?7 IS NULL OR seq {cmp} ?7)");
        let sql = format!(
            "SELECT {COLUMNS} FROM records
             WHERE kind = ?1 AND account_sid = ?2 AND parent_sid IS ?3
               AND (?4 IS NULL OR tag = ?4)
               AND (?5 IS NULL OR created >= ?5)
               AND (?6 IS NULL OR created <= ?6)
               {cursor_sql}
             ORDER BY seq {order} LIMIT ?8 OFFSET ?9"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows = stmt
            .query_map(
                params![
                    q.kind.as_str(),
                    q.account_sid,
                    q.parent_sid,
                    q.tag,
                    q.created_from,
                    q.created_to,
                    cursor_value,
                    q.limit,
                    offset
                ],
                read_row,
            )
            .map_err(backend)?;
        let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
        if !newest_first {
            out.reverse();
        }
        Ok(out)
    }

    fn scan_each(
        &self,
        kind: Kind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM records WHERE kind = ?1 ORDER BY seq"
            ))
            .map_err(backend)?;
        for row in stmt.query_map([kind.as_str()], read_row).map_err(backend)? {
            visit(row.map_err(backend)?)?;
        }
        Ok(())
    }

    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(backend)?;
        for write in writes {
            match write {
                Write::Insert(rec) => insert(&tx, &rec)?,
                Write::Append(rec) => match insert(&tx, &rec) {
                    Err(StoreError::Stale(parent)) if rec.parent_sid.as_ref() == Some(&parent) => {}
                    other => other?,
                },
                Write::Update(rec) => {
                    let n = tx
                        .execute(
                            "UPDATE records SET tag = ?2, uniq = ?3, data = ?4, version = version + 1
                             WHERE sid = ?1 AND version = ?5",
                            params![rec.sid, rec.tag, uniq_json(&rec), rec.data, rec.version],
                        )
                        .map_err(backend)?;
                    if n == 0 {
                        return Err(StoreError::Stale(rec.sid));
                    }
                    tx.execute("DELETE FROM uniques WHERE sid = ?1", [&rec.sid])
                        .map_err(backend)?;
                    insert_uniques(&tx, &rec)?;
                }
                Write::Check { sid, version } => {
                    if version_of(&tx, &sid)? != Some(version) {
                        return Err(StoreError::Stale(sid));
                    }
                }
                Write::Delete(sid) => {
                    tx.execute(
                        "CREATE TEMP TABLE IF NOT EXISTS doomed (sid TEXT PRIMARY KEY)",
                        [],
                    )
                    .map_err(backend)?;
                    tx.execute("DELETE FROM temp.doomed", []).map_err(backend)?;
                    tx.execute(
                        "INSERT INTO temp.doomed
                         WITH RECURSIVE sub(sid) AS (
                             SELECT sid FROM records WHERE sid = ?1
                             UNION ALL
                             SELECT r.sid FROM records r JOIN sub ON r.parent_sid = sub.sid)
                         SELECT sid FROM sub",
                        [&sid],
                    )
                    .map_err(backend)?;
                    tx.execute(
                        "DELETE FROM uniques WHERE sid IN (SELECT sid FROM temp.doomed)",
                        [],
                    )
                    .map_err(backend)?;
                    let n = tx
                        .execute(
                            "DELETE FROM records WHERE sid IN (SELECT sid FROM temp.doomed)",
                            [],
                        )
                        .map_err(backend)?;
                    if n == 0 {
                        return Err(StoreError::Stale(sid));
                    }
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn try_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool, StoreError> {
        let conn = self.conn();
        let n = conn
            .execute(
                "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.until < ?4 OR leases.holder = excluded.holder",
                params![name, holder, now.saturating_add(ttl), now],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    fn purge_before(&self, kind: Kind, before: i64) -> Result<usize, StoreError> {
        let conn = self.conn();
        conn.execute(
            "DELETE FROM records WHERE kind = ?1 AND created < ?2",
            params![kind.as_str(), before],
        )
        .map_err(backend)
    }

    fn changes_after(&self, position: i64, limit: u32) -> Result<FeedPage, StoreError> {
        let conn = self.conn();
        // One read transaction: the head and the changes agree.
        let tx = conn.unchecked_transaction().map_err(backend)?;
        // Cached statements: every edge reads the feed each second, and parsing the SQL
        // was most of what a read that finds nothing new cost.
        let (oldest, head): (Option<i64>, i64) = tx
            .prepare_cached(
                "SELECT (SELECT min(position) FROM changes),
                        COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0)",
            )
            .and_then(|mut stmt| stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(backend)?;
        let mut stmt = tx
            .prepare_cached(
                "SELECT position, kind, sid, account_sid FROM changes
                 WHERE position > ?1 ORDER BY position LIMIT ?2",
            )
            .map_err(backend)?;
        let changes = stmt
            .query_map(params![position, limit], |r| {
                let kind: String = r.get(1)?;
                Ok((r.get(0)?, kind, r.get(2)?, r.get(3)?))
            })
            .map_err(backend)?
            .map(|row| {
                let (position, kind, sid, account_sid) = row.map_err(backend)?;
                let kind = Kind::from_name(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("change of unknown kind {kind}")))?;
                Ok(Change {
                    position,
                    kind,
                    sid,
                    account_sid,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(FeedPage {
            changes,
            head,
            gap: super::metadata::feed_gap(position, oldest, head),
        })
    }

    fn prune_changes(&self, before: i64) -> Result<usize, StoreError> {
        self.conn()
            .execute(
                "DELETE FROM changes WHERE created < ?1
                 AND position < (SELECT max(position) FROM changes)",
                [before],
            )
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    //! SQLite only: a full disk and the schema migration. The store's contract is checked on
    //! both backends in tests/store_conformance.rs.
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("meta.db")).expect("open");
        (dir, store)
    }

    fn rec(kind: Kind, sid: &str, parent: Option<&str>) -> Record {
        Record::new(
            kind,
            sid.into(),
            "AC1".into(),
            parent.map(Into::into),
            &serde_json::json!({"n": sid}),
        )
    }

    #[test]
    fn a_full_database_is_full_and_keeps_nothing() {
        let (_d, s) = store();
        s.commit(vec![Write::Insert(rec(Kind::Service, "ZS0", None))])
            .expect("insert");
        // SQLite answers SQLITE_FULL at its page limit, as on a full disk.
        s.conn()
            .pragma_update(None, "max_page_count", 8)
            .expect("pragma");
        let mut big = rec(Kind::Service, "ZS1", None);
        big.data = vec![b'x'; 64 * 1024];
        big.unique = vec!["svc:big".into()];
        assert!(matches!(
            s.commit(vec![Write::Insert(big)]),
            Err(StoreError::Full(_))
        ));
        assert!(s.get("ZS1").expect("get").is_none());
        assert!(s.find_unique("svc:big").expect("find").is_none());
        s.commit(vec![Write::Insert(rec(Kind::Service, "ZS2", None))])
            .expect("a small write still fits");
    }

    #[test]
    fn a_database_of_the_first_schema_is_migrated_and_a_newer_one_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("meta.db");
        {
            // The schema as the first releases wrote it: no version column, user_version 0.
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE records (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL, account_sid TEXT NOT NULL, parent_sid TEXT, tag TEXT,
                    created INTEGER NOT NULL, uniq TEXT NOT NULL, data BLOB NOT NULL);
                 CREATE TABLE uniques (key TEXT PRIMARY KEY, sid TEXT NOT NULL);
                 INSERT INTO records (sid, kind, account_sid, created, uniq, data)
                 VALUES ('ZS1', 'service', 'AC1', 1, '[]', X'7B7D');",
            )
            .expect("old schema");
        }
        let s = SqliteStore::open(&path).expect("migrated");
        let mut old = s.get("ZS1").expect("get").expect("kept");
        assert_eq!(old.version, 1);
        old.encode(&serde_json::json!({"n": 1}));
        s.commit(vec![Write::Update(old)]).expect("update");
        assert_eq!(s.get("ZS1").expect("get").expect("kept").version, 2);
        drop(s);
        SqliteStore::open(&path).expect("opens again");
        Connection::open(&path)
            .expect("open")
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pragma");
        let Err(e) = SqliteStore::open(&path) else {
            panic!("a newer schema was opened")
        };
        assert!(e.to_string().contains("newer than this sigil knows"), "{e}");
    }
}
