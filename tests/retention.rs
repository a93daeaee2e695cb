//! The upkeep (`ControlPlane::maintain`) with a clock moved forward: Versions no Build holds
//! go with their content after the retention, those a Build holds never do, blobs younger
//! than the grace period stay — on the embedded stores and on PostgreSQL + S3.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use sigil::control::maintenance::MARK_AGE_SECS;
use sigil::control::ControlPlane;
use sigil::store::{BlobStore, Metadata, PgStore, RemoteBlobs, SqliteStore};
use support::postgres::Postgres;
use support::s3::{BUCKET, S3};
use support::{ACCOUNT_SID, AUTH_TOKEN};

const DAY: i64 = 24 * 3600;

struct Harness {
    cp: Arc<ControlPlane>,
    store: Arc<dyn Metadata>,
    blobs: BlobStore,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn embedded() -> Harness {
        let dir = tempfile::tempdir().expect("dir");
        let store: Arc<dyn Metadata> =
            Arc::new(SqliteStore::open(&dir.path().join("m.db")).expect("store"));
        let blobs = BlobStore::open(dir.path()).expect("blobs");
        Harness::new(dir, store, blobs)
    }

    fn shared() -> Harness {
        let dir = tempfile::tempdir().expect("dir");
        let url = Postgres::shared().fresh_database();
        let name = url.rsplit('/').next().expect("name").to_owned();
        let store: Arc<dyn Metadata> = Arc::new(PgStore::open(&url).expect("store"));
        for (k, v) in S3::shared().env() {
            std::env::set_var(k, v);
        }
        let remote = RemoteBlobs::from_url(&format!("s3://{BUCKET}/{name}")).expect("bucket");
        let blobs = BlobStore::open(dir.path())
            .expect("blobs")
            .with_remote(remote);
        Harness::new(dir, store, blobs)
    }

    fn new(dir: tempfile::TempDir, store: Arc<dyn Metadata>, blobs: BlobStore) -> Harness {
        sigil::accounts::create(store.as_ref(), "t", Some(ACCOUNT_SID), Some(AUTH_TOKEN))
            .expect("account");
        let cp = ControlPlane::new(
            Arc::clone(&store),
            blobs.clone(),
            "http://api.test".into(),
            "localhost".into(),
            None,
            None,
        );
        Harness {
            cp,
            store,
            blobs,
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, uri: &str, ctype: &str, body: Vec<u8>) -> Value {
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Basic {auth}"))
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let resp = self.cp.handle(req).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert!(status < 300, "{method} {uri}: {status} {json}");
        json
    }

    async fn form(&self, uri: &str, form: &str) -> String {
        let v = self
            .call(
                "POST",
                uri,
                "application/x-www-form-urlencoded",
                form.into(),
            )
            .await;
        v["sid"].as_str().expect("sid").to_owned()
    }

    /// A new Asset (or Function) with one Version of `content`; (resource, version).
    async fn version(&self, svc: &str, kind: &str, path: &str, content: &[u8]) -> (String, String) {
        let res = self
            .form(
                &format!("/v1/Services/{svc}/{kind}"),
                &format!("FriendlyName={path}"),
            )
            .await;
        let boundary = "XyZ";
        let mut body = Vec::new();
        for (name, value) in [("Path", path), ("Visibility", "public")] {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"Content\"; filename=\"f\"\r\nContent-Type: text/plain\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let v = self
            .call(
                "POST",
                &format!("/v1/Services/{svc}/{kind}/{res}/Versions"),
                &format!("multipart/form-data; boundary={boundary}"),
                body,
            )
            .await;
        (res, v["sid"].as_str().expect("sid").to_owned())
    }

    /// The Build's status.
    async fn build_status(&self, svc: &str, build: &str) -> Value {
        let b = self
            .call(
                "GET",
                &format!("/v1/Services/{svc}/Builds/{build}"),
                "",
                vec![],
            )
            .await;
        b["status"].clone()
    }

    /// A Build of the Asset Version `version`, once it is `completed` (10 s at most).
    async fn built(&self, svc: &str, version: &str) -> String {
        let build = self
            .form(
                &format!("/v1/Services/{svc}/Builds"),
                &format!("AssetVersions={version}"),
            )
            .await;
        for _ in 0..500 {
            match self.build_status(svc, &build).await.as_str() {
                Some("building") => tokio::time::sleep(Duration::from_millis(20)).await,
                Some("completed") => return build,
                other => panic!("Build {build}: {other:?}"),
            }
        }
        panic!("Build {build} still building after 10 s");
    }

    fn has_blob(&self, content: &[u8]) -> bool {
        let sha = support::sha256_hex(content);
        self.blobs.is_local(&sha, content.len() as u64)
    }

    async fn in_bucket(&self, content: &[u8]) -> Option<bool> {
        let sha = support::sha256_hex(content);
        let remote = self.blobs.remote()?;
        Some(remote.size(&sha).await.expect("head") == Some(content.len() as u64))
    }
}

async fn unused_versions_go_after_the_retention_and_held_ones_never(h: Harness) {
    let svc = h
        .form("/v1/Services", "UniqueName=keep&FriendlyName=k")
        .await;
    let (asset, old) = h.version(&svc, "Assets", "/a.txt", b"unused content").await;
    let (_, held) = h.version(&svc, "Assets", "/b.txt", b"held content").await;
    let (_, func) = h.version(&svc, "Functions", "/f", b"unused function").await;
    let build = h.built(&svc, &held).await;
    let now = sigil::clock::now();
    let retention = 30 * DAY;
    let round = |at: i64| h.cp.maintain(at, retention, Duration::ZERO);

    // Within the retention: nothing goes.
    let r = round(now + 29 * DAY).await.expect("upkeep");
    assert_eq!(
        (r.versions, r.local_blobs, r.remote_blobs),
        (0, 0, 0),
        "{r:?}"
    );

    // After it, one round marks the unused Asset and Function Versions; nothing goes yet.
    // (The bucket stamps objects in whole seconds: one passes, so that a grace of zero has
    // them written before the round.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let marked_at = now + 31 * DAY;
    let r = round(marked_at).await.expect("upkeep");
    assert_eq!(
        (r.versions, r.versions_marked, r.local_blobs),
        (0, 2, 0),
        "{r:?}"
    );
    assert!(h.store.get(&old).expect("get").is_some());
    assert!(h.has_blob(b"unused content"));

    // A Build that names a marked version unmarks it, so no later round deletes it on that
    // mark, even with that Build gone by then (it may have been created while a round ran,
    // after that round's scan): it is marked again instead.
    let rescue = h.built(&svc, &old).await;
    h.call(
        "DELETE",
        &format!("/v1/Services/{svc}/Builds/{rescue}"),
        "",
        vec![],
    )
    .await;
    // A round soon after: the Function Version's mark is too young (it could be an
    // overlapping round's, made after this round read the Builds), so it stays.
    let r = round(marked_at + 60).await.expect("upkeep");
    assert_eq!(
        (r.versions, r.versions_marked, r.local_blobs),
        (0, 1, 0),
        "{r:?}"
    );
    assert!(h.store.get(&func).expect("get").is_some());
    // Once its mark is old enough, the Function Version goes; the Asset Version, marked
    // again a minute later, stays a minute longer.
    let r = round(marked_at + MARK_AGE_SECS).await.expect("upkeep");
    assert_eq!(
        (r.versions, r.versions_marked, r.local_blobs),
        (1, 0, 1),
        "{r:?}"
    );
    assert!(h.store.get(&func).expect("get").is_none());
    assert!(!h.has_blob(b"unused function"));
    assert!(h.store.get(&old).expect("get").is_some());
    assert!(h.has_blob(b"unused content"));

    // Then the unused Asset Version and its content go too; the held one stays.
    let r = round(marked_at + 60 + MARK_AGE_SECS).await.expect("upkeep");
    assert_eq!((r.versions, r.versions_marked), (1, 0), "{r:?}");
    assert!(h.store.get(&old).expect("get").is_none());
    assert!(h.store.get(&func).expect("get").is_none());
    assert!(h.store.get(&held).expect("get").is_some());
    assert!(
        h.store.get(&asset).expect("get").is_some(),
        "the Asset itself stays"
    );
    assert!(!h.has_blob(b"unused content") && !h.has_blob(b"unused function"));
    assert!(h.has_blob(b"held content"));
    if let Some(in_bucket) = h.in_bucket(b"unused content").await {
        assert!(!in_bucket, "collected from the bucket too");
        assert_eq!(h.in_bucket(b"held content").await, Some(true));
        assert_eq!(r.remote_blobs, 1, "{r:?}");
    }
    assert_eq!(r.local_blobs, 1, "{r:?}");
    assert_eq!(h.build_status(&svc, &build).await, "completed");

    // A blob no record names yet (an upload in flight) is younger than the grace period.
    let orphan = h.blobs.put(b"in flight").await.expect("put");
    let r =
        h.cp.maintain(now + 31 * DAY, retention, Duration::from_secs(3600))
            .await
            .expect("upkeep");
    assert_eq!((r.local_blobs, r.remote_blobs), (0, 0), "{r:?}");
    assert!(h.blobs.is_local(&orphan.sha256, orphan.size));
    let r = round(now + 31 * DAY).await.expect("upkeep");
    assert_eq!(r.local_blobs, 1, "{r:?}");
    assert!(!h.blobs.is_local(&orphan.sha256, orphan.size));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_the_embedded_stores() {
    unused_versions_go_after_the_retention_and_held_ones_never(Harness::embedded()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_postgres_and_s3() {
    unused_versions_go_after_the_retention_and_held_ones_never(Harness::shared()).await;
}
