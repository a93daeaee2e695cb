//! `sigil copy-store`: moves a single-node installation (SQLite and files in `--data`) to the
//! shared stores (PostgreSQL and a bucket). Content first, records second — every blob is in
//! the bucket before any record that names it — and every record keeps its SID, so accounts,
//! tokens, API keys, URLs and the active Deployments carry over. Re-runnable: what the target
//! has already is left as it is and counted.

use std::path::Path;

use super::blobs::BlobError;
use super::metadata::{Kind, Metadata, Record, StoreError, Write};
use super::remote::RemoteBlobs;

/// Records written per transaction.
const BATCH: usize = 500;

/// What a copy did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Blobs uploaded now.
    pub blobs_uploaded: usize,
    /// Their bytes.
    pub bytes_uploaded: u64,
    /// Blobs the bucket had already.
    pub blobs_present: usize,
    /// Records copied now, per kind (in [`Kind::ALL`] order, kinds with none left out).
    pub records: Vec<(Kind, usize)>,
    /// Records the target had already.
    pub records_present: usize,
    /// Records left behind because their parent is gone (nothing could reach them).
    pub orphans: usize,
}

/// Why a copy stopped (what was copied before stays; run it again to go on).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// Reading or writing content.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Reading or writing records.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Uploads every blob file under `blobs_dir` (content-addressed: `xx/sha256`) that the
/// bucket does not have.
async fn copy_blobs(
    blobs_dir: &Path,
    remote: &RemoteBlobs,
    report: &mut CopyReport,
) -> Result<(), CopyError> {
    let fans = match std::fs::read_dir(blobs_dir) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BlobError::Io(e).into()),
    };
    for fan in fans {
        let fan = fan.map_err(BlobError::Io)?;
        if !fan.file_type().map_err(BlobError::Io)?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(fan.path()).map_err(BlobError::Io)? {
            let entry = entry.map_err(BlobError::Io)?;
            let name = entry.file_name();
            let Some(sha256) = name.to_str() else {
                continue;
            };
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let size = entry.metadata().map_err(BlobError::Io)?.len();
            if remote.size(sha256).await? == Some(size) {
                report.blobs_present += 1;
                continue;
            }
            remote.upload(&entry.path(), sha256, size).await?;
            report.blobs_uploaded += 1;
            report.bytes_uploaded += size;
        }
    }
    Ok(())
}

/// Counts of one kind's records.
#[derive(Default)]
struct Counts {
    copied: usize,
    present: usize,
    orphans: usize,
}

/// Inserts one batch of records, skipping those the target has and those whose parent it
/// does not have (a record whose parent was deleted: the embedded store did not refuse them
/// before records were versioned).
fn copy_batch(
    target: &dyn Metadata,
    batch: &mut Vec<Record>,
    counts: &mut Counts,
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let sids: Vec<String> = batch.iter().map(|r| r.sid.clone()).collect();
    let there = target.get_many(&sids)?;
    let parents: Vec<String> = batch.iter().filter_map(|r| r.parent_sid.clone()).collect();
    let parents_there: std::collections::HashSet<String> = target
        .get_many(&parents)?
        .into_iter()
        .flatten()
        .map(|r| r.sid)
        .collect();
    let mut writes = Vec::with_capacity(batch.len());
    for (rec, found) in batch.drain(..).zip(there) {
        if found.is_some() {
            counts.present += 1;
        } else if rec
            .parent_sid
            .as_ref()
            .is_some_and(|p| !parents_there.contains(p))
        {
            counts.orphans += 1;
        } else {
            writes.push(Write::Insert(rec));
        }
    }
    counts.copied += writes.len();
    if !writes.is_empty() {
        target.commit(writes)?;
    }
    Ok(())
}

/// Copies the blobs under `blobs_dir` to `remote`, then every record of `source` to
/// `target`. The stores' calls block: run it on a runtime of its own (the command does).
pub async fn copy_store(
    source: &dyn Metadata,
    blobs_dir: &Path,
    target: &dyn Metadata,
    remote: &RemoteBlobs,
) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    copy_blobs(blobs_dir, remote, &mut report).await?;
    // Parents first: a record is inserted only under a parent copied before it.
    for kind in Kind::ALL {
        let mut counts = Counts::default();
        let mut batch = Vec::with_capacity(BATCH);
        source.scan_each(kind, &mut |rec| {
            batch.push(rec);
            if batch.len() == BATCH {
                copy_batch(target, &mut batch, &mut counts)?;
            }
            Ok(())
        })?;
        copy_batch(target, &mut batch, &mut counts)?;
        report.records_present += counts.present;
        report.orphans += counts.orphans;
        if counts.copied > 0 {
            report.records.push((kind, counts.copied));
        }
    }
    Ok(report)
}
