//! Durable storage: content-addressed blobs on disk and metadata behind a trait.

pub mod blobs;
pub mod metadata;
pub mod sqlite;

pub use blobs::{BlobError, BlobStore, BlobWriter, StoredBlob};
pub use metadata::{Cursor, Kind, ListQuery, Metadata, Record, StoreError, Write};
pub use sqlite::SqliteStore;
