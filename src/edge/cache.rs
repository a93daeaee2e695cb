//! Blob bytes for the edge: memory maps held in a cache keyed by digest, handed to the
//! HTTP servers as `Bytes` without copying (`Bytes::from_owner`) — and, with `--sendfile-from`,
//! for blobs at least that large the open file next to the map, so that plain HTTP/1.1 (and kernel TLS) can send
//! them with `sendfile` (one descriptor per such map, at most [`MAX_KEPT_FILES`]). A hit is a lookup
//! ([`BlobCache::cached`]); a miss ([`BlobCache::load`]) maps the file and asks the kernel to
//! read it ahead (`madvise(WILLNEED)`) on a blocking thread, so page faults do not stall the
//! runtime threads; concurrent misses for one blob share one load.
//!
//! With a bucket behind it, the blob directory is the edge's disk cache (`--cache-dir`): a
//! blob is downloaded on first use or before a Deployment is switched to
//! ([`BlobCache::ensure_local`]), one download per digest however many ask at once, checked
//! and renamed into place, and the least recently used files are unlinked (never truncated:
//! maps of them stay valid) when the directory holds more than `--cache-max-bytes`.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::body::FileRange;
use crate::store::BlobStore;
use crate::Body;

/// A blob's content: its map and, when it is large enough for `sendfile`, its file.
#[derive(Clone, Debug)]
pub struct Blob {
    bytes: Bytes,
    file: Option<Arc<KeptFile>>,
    /// The sizes of bodies that go by `sendfile` (`--sendfile-from`; `None`: none).
    sendfile: Option<RangeInclusive<usize>>,
}

/// Blob files kept open next to their maps at most: each holds a descriptor, which
/// connections need too (`--max-connections` + 1,024 is what the open-file limit is raised
/// for). Past it, bodies are copied from the map.
pub const MAX_KEPT_FILES: usize = 4096;

/// An open blob file, counted while it is kept.
#[derive(Debug)]
struct KeptFile {
    file: Arc<std::fs::File>,
    count: Arc<std::sync::atomic::AtomicUsize>,
}

impl KeptFile {
    /// Keeps `file` if fewer than [`MAX_KEPT_FILES`] are kept now.
    fn keep(file: std::fs::File, count: &Arc<std::sync::atomic::AtomicUsize>) -> Option<KeptFile> {
        count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < MAX_KEPT_FILES).then_some(n + 1)
            })
            .ok()?;
        Some(KeptFile {
            file: Arc::new(file),
            count: Arc::clone(count),
        })
    }
}

impl Drop for KeptFile {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Blob {
    /// All its bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// A body of the bytes in `range` (within the blob), with where they lie in its file
    /// when they are as many as `sendfile` is for.
    pub fn body(&self, range: std::ops::Range<usize>) -> Body {
        let offset = range.start as u64;
        let bytes = self.bytes.slice(range);
        match &self.file {
            Some(kept)
                if self
                    .sendfile
                    .as_ref()
                    .is_some_and(|s| s.contains(&bytes.len())) =>
            {
                Body::from_file(
                    bytes,
                    FileRange {
                        file: Arc::clone(&kept.file),
                        offset,
                    },
                )
            }
            _ => Body::new(bytes),
        }
    }
}

/// The cache.
pub struct BlobCache {
    blobs: BlobStore,
    /// Downloads in flight, one per digest.
    inflight: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// With a byte budget for the directory: the files in it, weighed in KiB, least recently
    /// used unlinked first.
    disk: Option<moka::sync::Cache<String, u64>>,
    downloads: AtomicU64,
    /// Keyed by hex digest; foldhash rather than SipHash: keys are sha256 digests, which
    /// nobody can choose to collide, and the hash is taken on every request. quick_cache, not
    /// moka as for the disk: a hit is looked up on every request, and moka's (which records
    /// the read for its policy) was 4% of the CPU of a 1 KiB response (README, "Performance").
    maps: Arc<Maps>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Bodies of these sizes go by `sendfile` (`--sendfile-from`).
    sendfile_from: Option<RangeInclusive<usize>>,
    /// Blob files kept open now (at most [`MAX_KEPT_FILES`]).
    kept_files: Arc<std::sync::atomic::AtomicUsize>,
}

/// Why bytes could not be had.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CacheError {
    /// The blob is missing, shorter or longer than the manifest says, or unreadable.
    #[error("blob {sha256}: {reason}")]
    Blob {
        /// Its address.
        sha256: String,
        /// What is wrong.
        reason: String,
    },
    /// The blob is not here and the bucket it would come from does not answer (or failed):
    /// worth a retry, unlike a blob that is broken.
    #[error("blob {sha256} cannot be fetched now: {reason}")]
    Unavailable {
        /// Its address.
        sha256: String,
        /// What failed.
        reason: String,
    },
}

fn map_blob(
    blobs: &BlobStore,
    sha256: &str,
    size: u64,
    sendfile_from: Option<RangeInclusive<usize>>,
    kept: &Arc<std::sync::atomic::AtomicUsize>,
) -> Result<Blob, CacheError> {
    let err = |reason: String| CacheError::Blob {
        sha256: sha256.to_owned(),
        reason,
    };
    let file = std::fs::File::open(blobs.path(sha256)).map_err(|e| err(e.to_string()))?;
    let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
    if len != size {
        return Err(err(format!("{len} bytes on disk, {size} expected")));
    }
    if size == 0 {
        // An empty file cannot be mapped.
        return Ok(Blob {
            bytes: Bytes::new(),
            file: None,
            sendfile: None,
        });
    }
    // SAFETY: blob files are written once under a temp name and renamed into place; they are
    // never modified or truncated afterwards (only unlinked, which keeps a mapping valid), so
    // the mapped bytes cannot change or vanish under the `Bytes` that owns the map.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::WillNeed);
    // Kept when a body cut from it (the whole, or a range of a larger blob) can be in range.
    let file = if sendfile_from
        .as_ref()
        .is_some_and(|s| len >= *s.start() as u64)
    {
        KeptFile::keep(file, kept).map(Arc::new)
    } else {
        None
    };
    Ok(Blob {
        bytes: Bytes::from_owner(map),
        file,
        sendfile: sendfile_from,
    })
}

/// The most blobs mapped at once: half of Linux's default `vm.max_map_count` (65,530), which
/// counts every mapping of the process. Past it `mmap` fails, and a site of many small files
/// would get 500s.
pub const MAX_MAPS: u64 = 32_768;

type Maps = quick_cache::sync::Cache<String, Blob, Weight, foldhash::fast::RandomState>;

/// The largest blob, in KiB, that a shard of the cache must be able to hold: uploads are at
/// most 25 MiB (the control plane's limit), and quick_cache keeps no entry heavier than a shard.
const LARGEST_BLOB_KIB: u64 = 32 * 1024;
/// Shards of the cache at most: lookups on different shards do not share a lock.
const MAX_SHARDS: u64 = 16;

/// How many shards a cache of `capacity_kib` has: as many as hold the largest blob each, a
/// power of two, at most [`MAX_SHARDS`].
fn shards(capacity_kib: u64) -> usize {
    let fit = (capacity_kib / LARGEST_BLOB_KIB).clamp(1, MAX_SHARDS);
    // The largest power of two not above `fit`.
    1 << fit.ilog2()
}

/// Weighs a mapped blob ([`weight`]).
#[derive(Clone)]
struct Weight {
    least: u32,
}

impl quick_cache::Weighter<String, Blob> for Weight {
    fn weight(&self, _: &String, blob: &Blob) -> u64 {
        u64::from(weight(blob.bytes.len(), self.least))
    }
}

/// The weight every entry has at least, so that a full cache holds at most [`MAX_MAPS`] maps.
fn least_weight(capacity_kib: u64) -> u32 {
    u32::try_from(capacity_kib.div_ceil(MAX_MAPS).max(1)).unwrap_or(u32::MAX)
}

/// A blob's weight: its size in KiB (so a u32 covers 25 MiB blobs), rounded up, at least `least`.
fn weight(len: usize, least: u32) -> u32 {
    u32::try_from(len / 1024 + 1).unwrap_or(u32::MAX).max(least)
}

impl BlobCache {
    /// A cache over `blobs` holding up to `capacity_bytes` of mapped content, in at most
    /// [`MAX_MAPS`] maps.
    pub fn new(blobs: BlobStore, capacity_bytes: u64) -> BlobCache {
        let capacity_kib = capacity_bytes / 1024;
        let least = least_weight(capacity_kib);
        let options = quick_cache::OptionsBuilder::new()
            .weight_capacity(capacity_kib)
            .estimated_items_capacity(usize::try_from(capacity_kib / u64::from(least)).unwrap_or(1))
            .shards(shards(capacity_kib))
            .build()
            .expect("capacity and items are set");
        let maps = Maps::with_options(
            options,
            Weight { least },
            foldhash::fast::RandomState::default(),
            quick_cache::sync::DefaultLifecycle::default(),
        );
        BlobCache {
            blobs,
            maps: Arc::new(maps),
            inflight: std::sync::Mutex::default(),
            disk: None,
            downloads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            sendfile_from: None,
            kept_files: Arc::default(),
        }
    }

    /// Keeps blobs of at least the least of `sizes` open next to their map, and marks the
    /// bodies of those sizes cut from them for `sendfile` (`--sendfile-from`).
    pub fn with_sendfile_from(mut self, sizes: Option<RangeInclusive<usize>>) -> BlobCache {
        self.sendfile_from = sizes;
        self
    }

    /// Keeps the blob directory under `max_bytes`, unlinking the least recently used files;
    /// the files there now are counted first (in no particular order of use).
    pub fn with_disk_budget(mut self, max_bytes: u64) -> BlobCache {
        let blobs = self.blobs.clone();
        let disk = moka::sync::Cache::builder()
            .max_capacity(max_bytes / 1024)
            .weigher(|_: &String, size: &u64| u32::try_from(size / 1024 + 1).unwrap_or(u32::MAX))
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .eviction_listener(move |sha256: Arc<String>, _size, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    // Unlinked, never truncated: a map of it stays valid.
                    let _ = std::fs::remove_file(blobs.path(&sha256));
                }
            })
            .build();
        for (sha256, size) in self.blobs.list_local() {
            disk.insert(sha256, size);
        }
        self.disk = Some(disk);
        self
    }

    /// Makes sure a blob is in the blob directory, downloading it from the bucket if it is
    /// not: one download per digest at a time, the others wait for it.
    pub async fn ensure_local(&self, sha256: &str, size: u64) -> Result<(), CacheError> {
        if self.blobs.is_local(sha256, size) {
            self.used(sha256, size);
            return Ok(());
        }
        let gate = Arc::clone(
            self.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(sha256.to_owned())
                .or_default(),
        );
        let fetched = {
            let _turn = gate.lock().await;
            // The download this waited for may have placed it.
            if self.blobs.is_local(sha256, size) {
                Ok(())
            } else {
                self.downloads.fetch_add(1, Ordering::Relaxed);
                self.blobs.fetch(sha256, size).await
            }
        };
        {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            // The last one out removes the gate (the map's own reference and this one).
            if Arc::strong_count(&gate) <= 2 {
                inflight.remove(sha256);
            }
        }
        fetched.map_err(|e| match e {
            crate::store::BlobError::Remote(_) => CacheError::Unavailable {
                sha256: sha256.to_owned(),
                reason: e.to_string(),
            },
            _ => CacheError::Blob {
                sha256: sha256.to_owned(),
                reason: e.to_string(),
            },
        })?;
        self.used(sha256, size);
        Ok(())
    }

    fn used(&self, sha256: &str, size: u64) {
        if let Some(disk) = &self.disk {
            if disk.get(sha256).is_none() {
                disk.insert(sha256.to_owned(), size);
                // Evict now rather than at some later cache operation.
                disk.run_pending_tasks();
            }
        }
    }

    /// Whether blobs come from a bucket (and so may need fetching before they are served).
    pub fn has_remote(&self) -> bool {
        self.blobs.remote().is_some()
    }

    /// The whole content of a blob if it is mapped already: a lookup, no waiting.
    pub fn cached(&self, sha256: &str) -> Option<Blob> {
        let bytes = self.maps.get(sha256)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(bytes)
    }

    /// Maps a blob that [`BlobCache::cached`] did not have.
    pub async fn load(&self, sha256: &str, size: u64) -> Result<Blob, CacheError> {
        self.misses.fetch_add(1, Ordering::Relaxed);
        // With a bucket, a blob this process has not used yet is fetched first (a stat when
        // it is here already).
        if self.blobs.remote().is_some() {
            self.ensure_local(sha256, size).await?;
        }
        let maps = Arc::clone(&self.maps);
        let blobs = self.blobs.clone();
        let key = sha256.to_owned();
        let sendfile_from = self.sendfile_from.clone();
        let kept = Arc::clone(&self.kept_files);
        // On a blocking thread: the map and its read-ahead may wait for the disk, and a
        // concurrent miss for the same blob waits there for this one's result.
        tokio::task::spawn_blocking(move || {
            maps.get_or_insert_with(key.as_str(), || {
                map_blob(&blobs, &key, size, sendfile_from, &kept)
            })
        })
        .await
        .map_err(|e| CacheError::Blob {
            sha256: sha256.to_owned(),
            reason: e.to_string(),
        })?
    }

    /// (hits, misses, downloads from the bucket) so far.
    pub fn stats(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            self.downloads.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_are_counted_and_capped() {
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(MAX_KEPT_FILES - 1));
        let open = || tempfile::tempfile().expect("file");
        let last = KeptFile::keep(open(), &count).expect("one more fits");
        assert!(KeptFile::keep(open(), &count).is_none(), "over the cap");
        assert_eq!(count.load(Ordering::Relaxed), MAX_KEPT_FILES);
        drop(last);
        assert_eq!(count.load(Ordering::Relaxed), MAX_KEPT_FILES - 1);
        assert!(KeptFile::keep(open(), &count).is_some());
    }

    #[test]
    fn every_shard_holds_the_largest_blob() {
        for (capacity_mib, want) in [
            (1, 1),
            (31, 1),
            (64, 2),
            (100, 2),
            (128, 4),
            (1024, 16),
            (1 << 20, 16),
        ] {
            let n = shards(capacity_mib * 1024);
            assert_eq!(n, want, "{capacity_mib} MiB");
            assert!(n == 1 || capacity_mib * 1024 / n as u64 >= LARGEST_BLOB_KIB);
        }
    }

    /// The largest upload stays mapped once loaded (quick_cache drops an entry heavier than
    /// its shard), and a blob larger than the whole cache is still served, just not kept.
    #[tokio::test]
    async fn the_largest_blob_is_kept_and_one_over_capacity_still_served() {
        let dir = tempfile::tempdir().expect("dir");
        let blobs = BlobStore::open(dir.path()).expect("store");
        let large = blobs.put(&vec![7u8; 25 << 20]).await.expect("put");
        for capacity_mib in [32, 64, 1024] {
            let cache = BlobCache::new(blobs.clone(), capacity_mib << 20);
            assert!(cache.cached(&large.sha256).is_none());
            let blob = cache.load(&large.sha256, large.size).await.expect("load");
            assert_eq!(blob.bytes().len(), 25 << 20);
            assert!(
                cache.cached(&large.sha256).is_some(),
                "{capacity_mib} MiB cache"
            );
        }
        let small = BlobCache::new(blobs, 8 << 20);
        let blob = small.load(&large.sha256, large.size).await.expect("load");
        assert_eq!(blob.bytes()[..], vec![7u8; 25 << 20][..]);
        assert!(small.cached(&large.sha256).is_none());
    }

    #[test]
    fn a_full_cache_holds_at_most_max_maps() {
        for capacity_kib in [1, 1024, 1 << 20, 64 << 20, u64::from(u32::MAX) * 7] {
            let least = least_weight(capacity_kib);
            // Even the smallest blobs: capacity / weight entries fit.
            let entries = capacity_kib / u64::from(weight(0, least));
            assert!(entries <= MAX_MAPS, "{capacity_kib} KiB: {entries} maps");
        }
        // The default 1 GiB: every entry weighs at least 32 KiB; larger blobs their size.
        let least = least_weight(1 << 20);
        assert_eq!(least, 32);
        assert_eq!(weight(1024, least), 32);
        assert_eq!(weight(1 << 20, least), 1025);
    }
}
