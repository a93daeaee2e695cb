//! Blobs in S3-compatible object storage (`--blobs s3://bucket[/prefix]`), shared by every
//! sigil process: the copy that counts. Each process keeps the blobs it uses in its own
//! `--data/blobs` too (the edge maps local files), fetching a missing one on first use.
//!
//! Requests are signed by the `object_store` crate; endpoint, region and credentials come
//! from the standard AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint), so
//! AWS S3, R2, MinIO, Garage, Ceph RGW and s3s all work. Keys are content addresses
//! (`{prefix}/blobs/{first two hex digits}/{sha256}`): a retried upload rewrites the same
//! bytes, and an object, once there, never changes.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use super::blobs::BlobError;
use crate::sid::hex;

/// Uploads up to this size are one PUT; larger ones multipart, one part in memory at a time
/// per upload (S3's smallest part is 5 MiB).
const PART: usize = 5 * 1024 * 1024;

/// An upload of a blob the bucket wrote less than this long ago is skipped.
pub const FRESH: Duration = Duration::from_secs(600);

fn unix(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The bucket (and prefix) blobs live in.
#[derive(Clone)]
pub struct RemoteBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    /// `s3://bucket/prefix` (no credentials: those are in the environment).
    target: String,
}

impl std::fmt::Debug for RemoteBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.target)
    }
}

fn remote(e: impl std::fmt::Display) -> BlobError {
    BlobError::Remote(e.to_string())
}

impl RemoteBlobs {
    /// The bucket of an `s3://bucket[/prefix]` URL, configured from the AWS variables.
    pub fn from_url(url: &str) -> Result<RemoteBlobs, BlobError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BlobError::Remote(format!(
                "--blobs {url:?} is not an s3://bucket[/prefix] URL"
            ))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(BlobError::Remote(format!(
                "--blobs {url:?} names no bucket"
            )));
        }
        let prefix = prefix.trim_matches('/').to_owned();
        // Timeouts through the config keys: replacing the client options would drop what
        // from_env put there (AWS_ALLOW_HTTP among them).
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                "5s",
            )
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            })
            .build()
            .map_err(remote)?;
        Ok(RemoteBlobs {
            store: Arc::new(store),
            target: format!("s3://{bucket}/{prefix}"),
            prefix,
        })
    }

    /// Where it is, for messages (no credentials).
    pub fn target(&self) -> &str {
        &self.target
    }

    fn key(&self, sha256: &str) -> Key {
        let fan = sha256.get(..2).unwrap_or("__");
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Key::from(format!("{prefix}blobs/{fan}/{sha256}"))
    }

    /// The size of the blob in the bucket, if it is there.
    pub async fn size(&self, sha256: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.key(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(remote(e)),
        }
    }

    /// Uploads the whole file at `path` as the blob `sha256` of `size` bytes — a large one
    /// only if the bucket does not have it from less than [`FRESH`] ago; returns once the
    /// store acknowledged it.
    /// (An older copy is written again: the collection's grace period counts from the last
    /// write, so the blob cannot be collected before the record that names it is written.)
    pub async fn upload(&self, path: &Path, sha256: &str, size: u64) -> Result<(), BlobError> {
        let key = self.key(sha256);
        let mut file = tokio::fs::File::open(path).await?;
        if size <= PART as u64 {
            // Small: one PUT costs what a HEAD to skip it would.
            let mut content = Vec::with_capacity(size as usize);
            file.read_to_end(&mut content).await?;
            self.store.put(&key, content.into()).await.map_err(remote)?;
            return Ok(());
        }
        match self.store.head(&key).await {
            Ok(meta)
                if meta.size == size
                    && meta.last_modified.timestamp()
                        > unix(std::time::SystemTime::now()) - FRESH.as_secs() as i64 =>
            {
                return Ok(())
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(remote(e)),
        }
        let upload = self.store.put_multipart(&key).await.map_err(remote)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            // At most two parts in flight: memory stays bounded however large the blob.
            writer.wait_for_capacity(2).await.map_err(remote)?;
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(remote)?;
        Ok(())
    }

    /// Deletes from the bucket every blob not in `live` that was written before
    /// `written_before` (a grace period: a blob another process has just uploaded may not be
    /// referenced by a record yet); returns how many objects and bytes went.
    pub async fn remove_unreferenced(
        &self,
        live: &std::collections::HashSet<String>,
        written_before: std::time::SystemTime,
    ) -> Result<(usize, u64), BlobError> {
        let root = if self.prefix.is_empty() {
            Key::from("blobs")
        } else {
            Key::from(format!("{}/blobs", self.prefix))
        };
        let cutoff = unix(written_before);
        let mut doomed = Vec::new();
        let mut listing = self.store.list(Some(&root));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(remote)?;
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let is_digest =
                name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if is_digest && !live.contains(name) && meta.last_modified.timestamp() < cutoff {
                doomed.push((meta.location.clone(), meta.size));
            }
        }
        let (mut objects, mut bytes) = (0, 0);
        for (key, size) in doomed {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    objects += 1;
                    bytes += size;
                }
                Err(e) => return Err(remote(e)),
            }
        }
        Ok((objects, bytes))
    }

    /// Downloads the blob `sha256` into the new file `dest`, checking its size and digest on
    /// the way; a blob that does not match is an error and leaves `dest` for the caller to
    /// remove.
    pub async fn download(&self, sha256: &str, size: u64, dest: &Path) -> Result<(), BlobError> {
        let got = match self.store.get(&self.key(sha256)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::Missing(sha256.to_owned()))
            }
            Err(e) => return Err(remote(e)),
        };
        let mut file = super::blobs::RunWriter::create(dest).await?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(remote)?;
            len += chunk.len() as u64;
            if len > size {
                break;
            }
            hasher.update(&chunk);
            file.write(&chunk).await?;
        }
        let digest = hex(&hasher.finalize());
        if len != size || digest != sha256 {
            return Err(BlobError::Remote(format!(
                "{} holds {len} bytes with sha256 {digest} at {sha256}, not the {size} expected",
                self.target
            )));
        }
        file.finish().await?;
        Ok(())
    }
}
