//! The metadata model: every resource is a [`Record`] with a kind, a SID, an owner, a parent
//! and a JSON document, plus a set of keys that must be unique across the store.
//!
//! The trait is deliberately small (get, find by unique key, list a page, scan, an atomic batch
//! of writes, purge) so that SQLite and PostgreSQL implement it alike. Business rules (what
//! must be unique, what cascades) are expressed by the callers through `unique` keys and
//! `parent_sid` links; the store enforces them atomically.
//!
//! Concurrency comes from the store, not from a lock in the process, so that several
//! processes can write at once: every record carries a `version` that each update bumps, an
//! update or a [`Write::Check`] names the version its caller read and fails with
//! [`StoreError::Stale`] when another writer got there first (the caller reads again and
//! retries), unique keys are the database's, and a record is never inserted under a parent
//! that is gone.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// What a record is. Stored as text, so the names must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An Account (its own owner).
    Account,
    /// An API key of an Account.
    ApiKey,
    /// A Console session, under the Account or API key it was signed in with.
    ConsoleSession,
    /// A Service.
    Service,
    /// An Environment of a Service.
    Environment,
    /// A Function of a Service.
    Function,
    /// An Asset of a Service.
    Asset,
    /// A Function Version.
    FunctionVersion,
    /// An Asset Version.
    AssetVersion,
    /// A Build of a Service.
    Build,
    /// A Deployment of an Environment.
    Deployment,
    /// A Variable of an Environment.
    Variable,
    /// A Log line of an Environment.
    Log,
}

impl Kind {
    /// The stable name stored with the record.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::ApiKey => "api_key",
            Kind::ConsoleSession => "console_session",
            Kind::Service => "service",
            Kind::Environment => "environment",
            Kind::Function => "function",
            Kind::Asset => "asset",
            Kind::FunctionVersion => "function_version",
            Kind::AssetVersion => "asset_version",
            Kind::Build => "build",
            Kind::Deployment => "deployment",
            Kind::Variable => "variable",
            Kind::Log => "log",
        }
    }

    /// Every kind, in an order where a record's parent's kind comes before its own.
    pub const ALL: [Kind; 13] = [
        Kind::Account,
        Kind::ApiKey,
        Kind::ConsoleSession,
        Kind::Service,
        Kind::Environment,
        Kind::Function,
        Kind::Asset,
        Kind::FunctionVersion,
        Kind::AssetVersion,
        Kind::Build,
        Kind::Deployment,
        Kind::Variable,
        Kind::Log,
    ];

    /// The inverse of [`Kind::as_str`].
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One stored resource.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What it is.
    pub kind: Kind,
    /// Its SID (primary key).
    pub sid: String,
    /// The Account that owns it; an Account owns itself.
    pub account_sid: String,
    /// The record it lives under; deleting that deletes this one too.
    pub parent_sid: Option<String>,
    /// A secondary, filterable reference (a Log's `function_sid`).
    pub tag: Option<String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Store-assigned insertion order; newer records have larger values. Ignored on write.
    pub seq: i64,
    /// Store-assigned: 1 when inserted, one more at each update. An update is applied only if
    /// the stored record still has the version given here (the one its caller read).
    pub version: i64,
    /// Keys that must be unique across the whole store while this record exists.
    pub unique: Vec<String>,
    /// The resource's own fields, as JSON.
    pub data: Vec<u8>,
}

impl Record {
    /// A new record with `data` serialised to JSON.
    pub fn new<T: Serialize>(
        kind: Kind,
        sid: String,
        account_sid: String,
        parent_sid: Option<String>,
        data: &T,
    ) -> Record {
        Record {
            kind,
            sid,
            account_sid,
            parent_sid,
            tag: None,
            created: crate::clock::now(),
            seq: 0,
            version: 0,
            unique: Vec::new(),
            data: serde_json::to_vec(data).expect("resource documents serialise to JSON"),
        }
    }

    /// Decodes the JSON document.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_slice(&self.data)
            .map_err(|e| StoreError::Corrupt(format!("{} {}: {e}", self.kind.as_str(), self.sid)))
    }

    /// Replaces the JSON document.
    pub fn encode<T: Serialize>(&mut self, data: &T) {
        self.data = serde_json::to_vec(data).expect("resource documents serialise to JSON");
    }
}

/// One write of an atomic batch.
#[derive(Debug, Clone)]
pub enum Write {
    /// Inserts a new record; fails with [`StoreError::Conflict`] on a taken SID or unique key,
    /// and with [`StoreError::Stale`] (the parent's SID) when its parent does not exist.
    Insert(Record),
    /// Inserts a new record if its parent still exists, and skips it otherwise (log lines of
    /// an Environment deleted meanwhile).
    Append(Record),
    /// Replaces the document, tag and unique keys of an existing record, if it still has
    /// `version`: else (changed or gone) [`StoreError::Stale`].
    Update(Record),
    /// Writes nothing, but fails the batch like an update would if the record no longer has
    /// this version (a record the batch's decision rests on, e.g. the Build a Deployment
    /// names, or an Environment that must not point at the Build being deleted).
    Check {
        /// The record.
        sid: String,
        /// The version read.
        version: i64,
    },
    /// Deletes a record and, recursively, every record whose parent it is; a record already
    /// gone is [`StoreError::Stale`].
    Delete(String),
}

impl Write {
    /// A check that `rec` is still as it was read.
    pub fn check(rec: &Record) -> Write {
        Write::Check {
            sid: rec.sid.clone(),
            version: rec.version,
        }
    }
}

/// Where a page of a list starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    /// Skip this many records from the newest.
    Offset(u64),
    /// Records older than the one with this `seq` (the next page).
    After(i64),
    /// Records newer than the one with this `seq` (the previous page).
    Before(i64),
}

impl Cursor {
    /// How a backend reads the page: (newest first, the `seq` bound, records to skip). Newest
    /// first, records are older than the bound; otherwise newer, read oldest first (and the
    /// page then reversed, so it is newest first too).
    pub fn window(self) -> (bool, Option<i64>, u64) {
        match self {
            Cursor::Offset(n) => (true, None, n),
            Cursor::After(seq) => (true, Some(seq), 0),
            Cursor::Before(seq) => (false, Some(seq), 0),
        }
    }
}

/// A page request over the records of one kind under one parent and owner.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The kind listed.
    pub kind: Kind,
    /// The owner; only its records are listed.
    pub account_sid: String,
    /// The parent (None: top-level records such as Services).
    pub parent_sid: Option<String>,
    /// Only records with this tag.
    pub tag: Option<String>,
    /// Only records created at or after this Unix time.
    pub created_from: Option<i64>,
    /// Only records created at or before this Unix time.
    pub created_to: Option<i64>,
    /// Where the page starts.
    pub cursor: Cursor,
    /// At most this many records.
    pub limit: u32,
}

impl ListQuery {
    /// Every record of `kind` directly under `parent`, owned by `account_sid`, newest first.
    pub fn children(kind: Kind, account_sid: &str, parent_sid: &str) -> ListQuery {
        ListQuery {
            kind,
            account_sid: account_sid.to_owned(),
            parent_sid: Some(parent_sid.to_owned()),
            tag: None,
            created_from: None,
            created_to: None,
            cursor: Cursor::Offset(0),
            limit: u32::MAX,
        }
    }
}

/// The kinds whose writes enter the change feed: what an edge serves (an Environment names
/// its Build) and whom it believes (an Account's auth tokens, its API keys).
pub const FEED_KINDS: [Kind; 3] = [Kind::Environment, Kind::Account, Kind::ApiKey];

/// One entry of the change feed: a record of a [`FEED_KINDS`] kind was inserted, updated or
/// deleted (a deletion by cascade too). The store writes it in the same transaction as the
/// change, so the feed holds exactly the committed changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its place in the feed: positions grow by one in commit order, so a reader that has
    /// applied everything up to `p` and reads what follows `p` never misses a change.
    pub position: i64,
    /// The kind of the record.
    pub kind: Kind,
    /// The record.
    pub sid: String,
    /// Its owner.
    pub account_sid: String,
}

/// What follows a position in the feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedPage {
    /// The changes, oldest first.
    pub changes: Vec<Change>,
    /// The newest position now.
    pub head: i64,
    /// Changes right after the position asked for were pruned ([`Metadata::prune_changes`]):
    /// the reader cannot catch up change by change and must read everything afresh.
    pub gap: bool,
}

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A SID or unique key is taken; carries the key.
    #[error("conflict on {0}")]
    Conflict(String),
    /// A stored document could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A record the batch relies on changed or is gone since it was read (one updated,
    /// checked or deleted, or the parent of one inserted); nothing was written. Read again and
    /// retry.
    #[error("changed concurrently: {0}")]
    Stale(String),
    /// The backend is out of space (a full disk): the write was rolled back, nothing of it
    /// was kept.
    #[error("storage full: {0}")]
    Full(String),
    /// The backend cannot be reached or did not answer in time; nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// The metadata store. Implementations must make every [`Metadata::commit`] atomic and
/// durable (a successful return survives a crash of the process right after it).
pub trait Metadata: Send + Sync + 'static {
    /// The record with this SID.
    fn get(&self, sid: &str) -> Result<Option<Record>, StoreError>;
    /// The records with these SIDs, in the same order (one query where the backend can).
    fn get_many(&self, sids: &[String]) -> Result<Vec<Option<Record>>, StoreError> {
        sids.iter().map(|sid| self.get(sid)).collect()
    }
    /// The record holding this unique key.
    fn find_unique(&self, key: &str) -> Result<Option<Record>, StoreError>;
    /// A page of records, newest first.
    fn list(&self, query: &ListQuery) -> Result<Vec<Record>, StoreError>;
    /// Every record of a kind, oldest first, handed to `visit` one at a time (start-up work
    /// over many large records: only one is in memory at once); stops at `visit`'s first error.
    fn scan_each(
        &self,
        kind: Kind,
        visit: &mut dyn FnMut(Record) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Every record of a kind, oldest first (start-up loading, not the request path).
    fn scan(&self, kind: Kind) -> Result<Vec<Record>, StoreError> {
        let mut all = Vec::new();
        self.scan_each(kind, &mut |rec| {
            all.push(rec);
            Ok(())
        })?;
        Ok(all)
    }
    /// Applies all writes or none.
    fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Deletes records of a kind created before a Unix time; returns how many.
    fn purge_before(&self, kind: Kind, before: i64) -> Result<usize, StoreError>;
    /// Takes (or, for the same `holder`, extends) the lease `name` until `now + ttl`, if no
    /// other holder has it beyond `now`: whether this holder has it now. Work that must run
    /// in one process at a time across a fleet runs only under its lease.
    fn try_lease(&self, name: &str, holder: &str, now: i64, ttl: i64) -> Result<bool, StoreError>;
    /// At most `limit` changes after `position`, oldest first, with the feed's head.
    fn changes_after(&self, position: i64, limit: u32) -> Result<FeedPage, StoreError>;
    /// Deletes the feed's changes recorded before a Unix time, except the newest; returns
    /// how many. (A reader further behind than that reads everything afresh.)
    fn prune_changes(&self, before: i64) -> Result<usize, StoreError>;
    /// Wakes a feed reader when a change commits, with the head it knows of (PostgreSQL's
    /// LISTEN/NOTIFY); `None` where the store cannot tell, and readers poll.
    fn feed_wakeups(&self) -> Option<tokio::sync::watch::Receiver<i64>> {
        None
    }
}

/// Whether a reader at `position` has lost changes, given the oldest position kept and the
/// head: pruning (which always keeps the newest change) leaves a hole right after it.
pub fn feed_gap(position: i64, oldest_kept: Option<i64>, head: i64) -> bool {
    position < head && oldest_kept.is_none_or(|oldest| oldest > position + 1)
}
