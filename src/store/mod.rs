//! Durable storage: content-addressed blobs on disk and metadata behind a trait, embedded
//! (SQLite) or shared by several processes (PostgreSQL).

pub mod blobs;
pub mod copy;
pub mod metadata;
pub mod postgres;
pub mod remote;
pub mod sqlite;

pub use blobs::{BlobError, BlobStore, BlobWriter, StoredBlob};
pub use metadata::{
    Change, Cursor, FeedPage, Kind, ListQuery, Metadata, Record, StoreError, Write, FEED_KINDS,
};
pub use postgres::PgStore;
pub use remote::RemoteBlobs;
pub use sqlite::SqliteStore;
