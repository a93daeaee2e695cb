//! Content-addressed blobs: one file per sha256, written to a temp file, fsynced, then renamed
//! into place, so a file under `blobs/` is always whole. Identical content is stored once.
//! Blobs are never rewritten in place (a mapped file that shrinks kills its reader with SIGBUS).
//!
//! With a bucket ([`RemoteBlobs`], `--blobs s3://…`) the bucket holds the copy that counts: a
//! new blob is uploaded before it is acknowledged, and the local directory keeps the blobs
//! this process used, fetching (and checking) a missing one from the bucket on first use.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::remote::RemoteBlobs;
use crate::sid::{hex, random_hex};

/// What can go wrong with blobs.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content exceeds the limit it was written under.
    #[error("content is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The file system failed (full disk, permissions, …).
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed, timed out or held something else than the digest says.
    #[error("object storage: {0}")]
    Remote(String),
    /// No copy of the blob exists, here or in the bucket.
    #[error("blob {0} is missing")]
    Missing(String),
}

/// The blob directory, and the bucket behind it if there is one.
#[derive(Debug, Clone)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
    remote: Option<RemoteBlobs>,
}

/// A blob that is safely on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl BlobStore {
    /// Opens the store under `root`, creating it, and clears temp files a crash left behind.
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        let store = BlobStore {
            blobs: root.join("blobs"),
            tmp: root.join("tmp"),
            remote: None,
        };
        std::fs::create_dir_all(&store.blobs)?;
        std::fs::create_dir_all(&store.tmp)?;
        for entry in std::fs::read_dir(&store.tmp)? {
            // Temp files are only ever half-written uploads of a previous run.
            let _ = std::fs::remove_file(entry?.path());
        }
        Ok(store)
    }

    /// Keeps blobs in `remote` too, as the copy that counts.
    pub fn with_remote(mut self, remote: RemoteBlobs) -> BlobStore {
        self.remote = Some(remote);
        self
    }

    /// The bucket, if blobs live in one.
    pub fn remote(&self) -> Option<&RemoteBlobs> {
        self.remote.as_ref()
    }

    /// Where the blob with this digest lives (locally).
    pub fn path(&self, sha256: &str) -> PathBuf {
        let fan = sha256.get(..2).unwrap_or("__");
        self.blobs.join(fan).join(sha256)
    }

    /// Deletes every blob whose digest is not in `live`: the content of deleted Services and
    /// Assets, and a blob whose upload failed after it was placed (a full disk or a kill
    /// before the metadata write). Returns how many files and bytes went. Only for a store
    /// nothing writes to — at start, before serving: an upload placing its blob between the
    /// caller's reading of `live` and this call would lose it. Files that are not at a
    /// blob's address are left alone.
    pub fn remove_unreferenced(
        &self,
        live: &std::collections::HashSet<String>,
    ) -> std::io::Result<(usize, u64)> {
        self.remove_unreferenced_before(
            live,
            std::time::SystemTime::now() + std::time::Duration::from_secs(1),
        )
    }

    /// [`BlobStore::remove_unreferenced`] for files placed before `placed_before` only: while
    /// the store serves, a blob placed by an upload whose record is not written yet is
    /// younger than the grace period this leaves.
    pub fn remove_unreferenced_before(
        &self,
        live: &std::collections::HashSet<String>,
        placed_before: std::time::SystemTime,
    ) -> std::io::Result<(usize, u64)> {
        let (mut files, mut bytes) = (0, 0);
        for fan in std::fs::read_dir(&self.blobs)? {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(fan.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(sha256) = name.to_str() else {
                    continue;
                };
                let is_digest = sha256.len() == 64
                    && sha256
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                if !is_digest || live.contains(sha256) || self.path(sha256) != entry.path() {
                    continue;
                }
                let meta = entry.metadata()?;
                if meta.modified()? >= placed_before {
                    continue;
                }
                let len = meta.len();
                std::fs::remove_file(entry.path())?;
                files += 1;
                bytes += len;
            }
        }
        Ok((files, bytes))
    }

    /// Every blob file here: (digest, size).
    pub fn list_local(&self) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        let Ok(fans) = std::fs::read_dir(&self.blobs) else {
            return found;
        };
        for entry in fans
            .flatten()
            .filter_map(|f| std::fs::read_dir(f.path()).ok())
            .flatten()
            .flatten()
        {
            if let (Some(name), Ok(meta)) = (entry.file_name().to_str(), entry.metadata()) {
                if name.len() == 64 && meta.is_file() {
                    found.push((name.to_owned(), meta.len()));
                }
            }
        }
        found
    }

    /// Whether a whole blob with this digest and size is here (locally).
    pub fn is_local(&self, sha256: &str, size: u64) -> bool {
        std::fs::metadata(self.path(sha256)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Whether a whole blob with this digest and size exists: here, or in the bucket.
    pub async fn contains(&self, sha256: &str, size: u64) -> Result<bool, BlobError> {
        if self.is_local(sha256, size) {
            return Ok(true);
        }
        match &self.remote {
            Some(r) => Ok(r.size(sha256).await? == Some(size)),
            None => Ok(false),
        }
    }

    /// Makes sure the blob is here, fetching it from the bucket (and checking its size and
    /// digest) if it is not; then [`BlobStore::path`] can be opened and mapped.
    pub async fn fetch(&self, sha256: &str, size: u64) -> Result<(), BlobError> {
        if self.is_local(sha256, size) {
            return Ok(());
        }
        let Some(remote) = &self.remote else {
            return Err(BlobError::Missing(sha256.to_owned()));
        };
        let tmp = TempFile(self.tmp.join(random_hex(16)));
        remote.download(sha256, size, &tmp.0).await?;
        let (from, dest) = (tmp.0.clone(), self.path(sha256));
        tokio::task::spawn_blocking(move || place(&from, &dest, size))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        std::mem::forget(tmp); // renamed into place
        Ok(())
    }

    /// Reads a whole blob (Function Version Content, precompression; the edge maps blobs
    /// instead), fetching it from the bucket first if it is not here.
    pub async fn read(&self, sha256: &str, size: u64) -> Result<Vec<u8>, BlobError> {
        self.fetch(sha256, size).await?;
        Ok(tokio::fs::read(self.path(sha256)).await?)
    }

    /// Starts writing a blob of at most `limit` bytes.
    pub async fn writer(&self, limit: u64) -> Result<BlobWriter, BlobError> {
        let tmp_path = self.tmp.join(random_hex(16));
        let file = RunWriter::create(&tmp_path).await?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            tmp_path,
            hasher: Sha256::new(),
            size: 0,
            limit,
        })
    }

    /// Stores `content` whole (tests and small internal writes).
    pub async fn put(&self, content: &[u8]) -> Result<StoredBlob, BlobError> {
        let mut w = self.writer(u64::MAX).await?;
        w.write(content).await?;
        w.finish().await
    }
}

/// A blob being written. Dropped before [`BlobWriter::finish`], it removes its temp file.
pub struct BlobWriter {
    store: BlobStore,
    file: Option<RunWriter>,
    tmp_path: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl BlobWriter {
    /// Appends a chunk; fails once the total passes the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().expect("file is open until finish");
        file.write(chunk).await?;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and fsyncs the content, then moves it to its content address.
    pub async fn finish(mut self) -> Result<StoredBlob, BlobError> {
        let file = self.file.take().expect("file is open until finish");
        file.finish().await?;
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        // Content first: in the bucket (when there is one) before anything refers to it.
        if let Some(remote) = &self.store.remote {
            remote.upload(&self.tmp_path, &sha256, self.size).await?;
        }
        let dest = self.store.path(&sha256);
        let tmp = self.tmp_path.clone();
        let size = self.size;
        let placed = tokio::task::spawn_blocking(move || place(&tmp, &dest, size))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Whatever happened, the temp file is gone or renamed: nothing for Drop to clean.
        self.tmp_path = PathBuf::new();
        placed?;
        Ok(StoredBlob { sha256, size })
    }
}

/// Bytes a blob file is written in: whole, aligned runs of this size, however its content
/// arrives (an upload's parts, a download's chunks, often 4–16 KiB). The page cache gives a
/// write a folio as large as the write and its alignment allow, and a blob served with
/// `sendfile` costs a pipe buffer, a page-cache lookup and a reference per folio: a 16 KiB
/// blob written as it arrived sat in three folios, against one for a file written whole.
const RUN: usize = 1 << 20;

/// A new file written in [`RUN`]s: what arrives is gathered until a run is whole.
pub(super) struct RunWriter {
    file: tokio::fs::File,
    gathered: Vec<u8>,
}

impl RunWriter {
    /// Creates (or truncates) the file at `path`.
    pub(super) async fn create(path: &Path) -> std::io::Result<RunWriter> {
        Ok(RunWriter {
            file: tokio::fs::File::create(path).await?,
            gathered: Vec::new(),
        })
    }

    /// Appends `chunk`, writing every run it completes.
    pub(super) async fn write(&mut self, mut chunk: &[u8]) -> std::io::Result<()> {
        if !self.gathered.is_empty() || chunk.len() < RUN {
            let take = (RUN - self.gathered.len()).min(chunk.len());
            self.gathered.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.gathered.len() < RUN {
                return Ok(());
            }
            self.file.write_all(&self.gathered).await?;
            self.gathered.clear();
        }
        // The file now ends on a run's boundary: whole runs of the chunk go straight out.
        let whole = chunk.len() - chunk.len() % RUN;
        self.file.write_all(&chunk[..whole]).await?;
        self.gathered.extend_from_slice(&chunk[whole..]);
        Ok(())
    }

    /// Writes what is gathered and makes the file durable.
    pub(super) async fn finish(mut self) -> std::io::Result<()> {
        self.file.write_all(&self.gathered).await?;
        self.file.flush().await?;
        self.file.sync_all().await
    }
}

/// Renames a complete temp file into place and makes the rename durable.
fn place(tmp: &Path, dest: &Path, size: u64) -> std::io::Result<()> {
    if std::fs::metadata(dest).is_ok_and(|m| m.len() == size) {
        // Same content is already stored: keep the existing (possibly mapped) file, as if
        // written now (the collection's grace period counts from its last placement).
        std::fs::remove_file(tmp)?;
        std::fs::File::options()
            .write(true)
            .open(dest)?
            .set_modified(std::time::SystemTime::now())?;
        return Ok(());
    }
    let dir = dest.parent().expect("blob paths have a fan-out directory");
    std::fs::create_dir_all(dir)?;
    if let Err(e) = std::fs::rename(tmp, dest) {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

/// A temp file removed when dropped (a download that failed midway).
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_once_by_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let a = store.put(b"hello").await.expect("put");
        let b = store.put(b"hello").await.expect("put again");
        assert_eq!(a, b);
        assert_eq!(
            a.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert!(store.is_local(&a.sha256, 5));
        assert!(store.contains(&a.sha256, 5).await.expect("contains"));
        assert!(!store.contains(&a.sha256, 6).await.expect("contains"));
        assert_eq!(store.read(&a.sha256, 5).await.expect("read"), b"hello");
        assert!(matches!(
            store.fetch(&"0".repeat(64), 1).await,
            Err(BlobError::Missing(_))
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("ls")
                .count(),
            0
        );
    }

    /// What a [`RunWriter`] has handed the file system so far.
    async fn on_disk(w: &mut RunWriter, path: &Path) -> u64 {
        w.file.flush().await.expect("flush");
        std::fs::metadata(path).expect("metadata").len()
    }

    #[tokio::test]
    async fn content_reaches_the_file_in_whole_aligned_runs() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("blob");
        let mut w = RunWriter::create(&path).await.expect("create");
        let content: Vec<u8> = (0..5 * RUN + 123).map(|i| (i % 251) as u8).collect();
        // (chunk length, bytes in the file once it is written): runs only, however the
        // chunks fall — short ones gathered, one ending a run, one spanning several runs.
        let steps = [
            (4096, 0),
            (RUN / 2, 0),
            (RUN / 2 - 4096, RUN),
            (1, RUN),
            (2 * RUN + 10, 3 * RUN),
            (RUN - 11, 4 * RUN),
            (RUN + 123, 5 * RUN),
        ];
        let mut at = 0;
        for (len, written) in steps {
            w.write(&content[at..at + len]).await.expect("write");
            at += len;
            assert_eq!(
                on_disk(&mut w, &path).await,
                written as u64,
                "after {at} bytes"
            );
        }
        assert_eq!(at, content.len());
        w.finish().await.expect("finish");
        assert!(std::fs::read(&path).expect("read") == content);
    }

    #[tokio::test]
    async fn unreferenced_blobs_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let kept = store.put(b"kept").await.expect("put");
        let gone = store.put(b"gone").await.expect("put");
        // Not at a blob's address: left alone.
        let stray = store.path(&kept.sha256).with_file_name("notes.txt");
        std::fs::write(&stray, b"x").expect("stray");
        let live = [kept.sha256.clone()].into_iter().collect();
        assert_eq!(store.remove_unreferenced(&live).expect("gc"), (1, 4));
        assert!(store.is_local(&kept.sha256, 4));
        assert!(!store.is_local(&gone.sha256, 4));
        assert!(stray.exists());
        // Again: nothing more to remove.
        assert_eq!(store.remove_unreferenced(&live).expect("gc"), (0, 0));
    }

    #[tokio::test]
    async fn over_limit_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = BlobStore::open(dir.path()).expect("open");
        let mut w = store.writer(4).await.expect("writer");
        w.write(b"abc").await.expect("under limit");
        assert!(matches!(
            w.write(b"de").await,
            Err(BlobError::TooLarge { limit: 4 })
        ));
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))
                .expect("ls")
                .count(),
            0
        );
    }
}
