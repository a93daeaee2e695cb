//! Crash safety (#6): uploads, Builds and Deployments racing `kill -9` at random moments, and
//! uploads into a full disk.
//!
//! `sigkill_loop` keeps one data directory and, every iteration, starts sigil on it, lets a
//! worker upload (0 B to 3 MiB) / build / deploy while a reader fetches through the edge, and
//! SIGKILLs the process after a random delay. After each restart it checks: sigil started
//! (printed ready, `/healthz` 200); every acknowledged upload is there with its sha256 and its
//! blob is whole; every blob file's name is its sha256 and `tmp/` was cleared; a request cut by
//! the kill left either nothing or a whole record; the Deployments are exactly the acknowledged
//! ones, plus the one in flight if it committed; the Environment's active Build is the last of
//! them and the edge serves exactly its content, precompressed variants included (and not the
//! paths of older Builds); acknowledged Builds finish. The reader asserts the edge only ever
//! served whole acknowledged content. At the end one Build of every version is served and
//! compared. The seed is printed; `SIGIL_CRASH_SEED=N` replays a run's choices (the kill
//! moments still race).
//!
//! `full_disk_upload` runs sigil on a 4 MiB tmpfs (needs root / CAP_SYS_ADMIN for `mount`):
//! an upload whose blob does not fit, and uploads whose blob fits but whose record does not,
//! answer a JSON 503 / 20503, keep no record and no temp file, and sigil keeps serving.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};

use support::{Part, Sigil, ACCOUNT_SID, AUTH_TOKEN};

/// Precompressed responses decoded and compared (to show the path is exercised).
static VARIANTS_CHECKED: AtomicUsize = AtomicUsize::new(0);
/// Kill-and-restart rounds of `sigkill_loop`.
const ITERATIONS: usize = 20;
/// The path every pipeline uploads a new content to (so the edge's answer for it changes).
const CURRENT: &str = "/current.bin";

// ---------------------------------------------------------------------------------------------
// Small helpers

/// xorshift64*: a seeded, dependency-free generator (quality is irrelevant here).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
    /// Compressible text (so Builds make br/gzip variants of it).
    fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 6] = [b"sigil ", b"edge ", b"blob ", b"crash ", b"safe ", b"\n"];
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(WORDS[(self.next() % 6) as usize]);
        }
        out.truncate(n);
        out
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn blob_path(data: &Path, sha: &str) -> PathBuf {
    data.join("blobs").join(&sha[..2]).join(sha)
}

/// An API client that reports transport errors instead of panicking: a request cut by the kill
/// is not a failure, it is "in flight" (it may or may not have committed).
#[derive(Clone)]
struct RawApi {
    base: String,
    http: reqwest::blocking::Client,
}

type Answer = Result<(u16, reqwest::header::HeaderMap, Value), reqwest::Error>;

impl RawApi {
    fn new(base: &str) -> RawApi {
        RawApi {
            base: base.to_owned(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Answer {
        let r = rb.basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN)).send()?;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text()?;
        let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, headers, json))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).form(form))
    }

    fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    fn upload(&self, versions: &str, path: &str, content: Vec<u8>, ctype: &str) -> Answer {
        let form = reqwest::blocking::multipart::Form::new()
            .text("Path", path.to_owned())
            .text("Visibility", "public")
            .part(
                "Content",
                reqwest::blocking::multipart::Part::bytes(content)
                    .file_name("f")
                    .mime_str(ctype)
                    .expect("mime"),
            );
        self.send(
            self.http
                .post(format!("{}{versions}", self.base))
                .multipart(form),
        )
    }
}

/// Fails the test on a non-2xx answer (sigil never answers an error to these requests);
/// `None` when the transport failed (the kill).
#[track_caller]
fn acked(what: &str, a: Answer, want: u16) -> Option<(reqwest::header::HeaderMap, Value)> {
    match a {
        Ok((status, headers, json)) => {
            assert_eq!(status, want, "{what}: unexpected answer {json}");
            Some((headers, json))
        }
        Err(_) => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The model of what sigil acknowledged

/// An upload sigil holds: acknowledged, or found committed after its request was cut.
#[derive(Debug, Clone)]
struct Version {
    sid: String,
    path: String,
    sha256: String,
    size: u64,
    /// It was uploaded with a 2xx (versus: committed by a request cut by the kill).
    acked: bool,
}

/// What was in flight when the kill came (the worker does one request at a time).
#[derive(Debug, Clone)]
enum InFlight {
    /// Nothing (before the first kill).
    Nothing,
    /// An upload of this content to `CURRENT` or another path.
    Upload { sha256: String, size: u64 },
    /// A Build POST, or waiting for a Build (acknowledged: `Some(sid)`).
    Build(Option<String>),
    /// A Deployment POST of this Build.
    Deploy(String),
}

/// Everything the server acknowledged (plus what was found committed after an in-flight
/// request), shared with the worker and the edge reader.
#[derive(Default)]
struct Model {
    /// Version sid → version, for the one Asset all versions belong to.
    versions: BTreeMap<String, Version>,
    /// The acknowledged contents of `CURRENT`: all the edge may ever serve there.
    current: Vec<Vec<u8>>,
    /// Build sid → its versions (acknowledged Builds only).
    builds: BTreeMap<String, Vec<String>>,
    /// Versions whose record was fetched after a restart.
    fetched: BTreeSet<String>,
    /// Builds not yet seen `completed` after a restart.
    unchecked_builds: Vec<String>,
    /// Builds whose POST was cut by the kill but committed.
    extra_builds: BTreeSet<String>,
    /// Requests cut by the kill that had committed, by kind.
    committed_in_flight: BTreeMap<&'static str, usize>,
    /// Deployment sids, oldest first, with the Build each names.
    deployments: Vec<(String, String)>,
}

impl Model {
    fn active_build(&self) -> Option<&str> {
        self.deployments.last().map(|(_, b)| b.as_str())
    }
}

/// Fixed resources, created once before the first kill.
struct Fixture {
    svc: String,
    env: String,
    domain: String,
    versions_url: String,
}

// ---------------------------------------------------------------------------------------------
// The worker and the reader

/// Uploads, builds and deploys until a request fails (the kill); returns what was in flight.
fn worker(api: RawApi, fx: &Fixture, model: &Mutex<Model>, iter: usize, seed: u64) -> InFlight {
    let mut rng = Rng::new(seed);
    for pipeline in 0.. {
        let mut versions = Vec::new();
        let files = rng.range(1, 3);
        for k in 0..files {
            let path = if k == 0 {
                CURRENT.to_owned()
            } else {
                format!("/i{iter}/p{pipeline}/f{k}")
            };
            // Sizes from 0 to 3 MiB: small ones often, large ones so kills land mid-upload
            // (at most 1 MiB at `CURRENT`, which the reader keeps in memory to compare).
            let large = if k == 0 { 1024 * 1024 } else { 3 * 1024 * 1024 };
            let (size, ctype) = match rng.range(0, 9) {
                0..=1 => (rng.range(0, 64), "application/octet-stream"),
                2..=3 => (rng.range(1, 16 * 1024), "text/plain"),
                4..=6 => (rng.range(1, 256 * 1024), "application/octet-stream"),
                _ => (rng.range(256 * 1024, large), "application/octet-stream"),
            };
            let content = if ctype == "text/plain" {
                rng.text(size as usize)
            } else {
                rng.bytes(size as usize)
            };
            let sha = sha256(&content);
            let kept = (path == CURRENT).then(|| content.clone());
            let answer = api.upload(&fx.versions_url, &path, content, ctype);
            let Some((headers, json)) = acked("upload", answer, 201) else {
                return InFlight::Upload { sha256: sha, size };
            };
            let echoed = headers
                .get("sigil-content-sha256")
                .and_then(|v| v.to_str().ok());
            assert_eq!(echoed, Some(sha.as_str()), "upload of {path}: sha256");
            let sid = json["sid"].as_str().expect("version sid").to_owned();
            let mut m = model.lock().expect("model");
            m.current.extend(kept);
            m.versions.insert(
                sid.clone(),
                Version {
                    sid: sid.clone(),
                    path,
                    sha256: sha,
                    size,
                    acked: true,
                },
            );
            versions.push(sid);
        }

        let form: Vec<(&str, &str)> = versions.iter().map(|v| ("AssetVersions", &**v)).collect();
        let answer = api.post(&format!("/v1/Services/{}/Builds", fx.svc), &form);
        let Some((_, json)) = acked("build", answer, 201) else {
            return InFlight::Build(None);
        };
        let build = json["sid"].as_str().expect("build sid").to_owned();
        {
            let mut m = model.lock().expect("model");
            m.builds.insert(build.clone(), versions.clone());
            m.unchecked_builds.push(build.clone());
        }
        loop {
            let status = api.get(&format!("/v1/Services/{}/Builds/{build}/Status", fx.svc));
            let Some((_, json)) = acked("build status", status, 200) else {
                return InFlight::Build(Some(build));
            };
            match json["status"].as_str() {
                Some("building") => std::thread::sleep(Duration::from_millis(10)),
                Some("completed") => break,
                other => panic!("build {build} is {other:?}"),
            }
        }

        let answer = api.post(
            &format!(
                "/v1/Services/{}/Environments/{}/Deployments",
                fx.svc, fx.env
            ),
            &[("BuildSid", &build)],
        );
        let Some((_, json)) = acked("deployment", answer, 201) else {
            return InFlight::Deploy(build);
        };
        let sid = json["sid"].as_str().expect("deployment sid").to_owned();
        assert_eq!(json["build_sid"], build.as_str());
        model.lock().expect("model").deployments.push((sid, build));
    }
    unreachable!("the loop ends with the kill")
}

/// Fetches `CURRENT` through the edge until told to stop; every whole 200 body must be exactly
/// one of the contents acknowledged for it. Returns how many bodies it checked.
fn reader(edge: support::Edge, domain: String, model: &Mutex<Model>, stop: &AtomicBool) -> usize {
    let url = edge.url(&domain, CURRENT);
    let mut checked = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
        let deployed = !model.lock().expect("model").deployments.is_empty();
        // A transport error (the kill, a body cut short) is not a body served.
        let Ok(r) = edge.http.get(&url).send() else {
            continue;
        };
        let status = r.status().as_u16();
        let Ok(body) = r.bytes() else { continue };
        match status {
            200 => {
                let m = model.lock().expect("model");
                assert!(
                    m.current.iter().any(|c| c[..] == body[..]),
                    "the edge served {} bytes at {CURRENT} that are no acknowledged content \
                     (sha256 {})",
                    body.len(),
                    sha256(&body)
                );
                checked += 1;
            }
            // Before the first Deployment.
            404 => assert!(!deployed, "{CURRENT} is gone from the edge"),
            other => panic!("edge answered {other} for {CURRENT}"),
        }
    }
    checked
}

// ---------------------------------------------------------------------------------------------
// Checks after a restart

/// Every file under `blobs/` is named after the sha256 of its content (so none is partial);
/// `verified` remembers files already hashed (blobs are never rewritten in place; a changed
/// size or mtime is hashed again).
fn check_blob_store(data: &Path, verified: &mut HashMap<PathBuf, (u64, SystemTime)>) {
    // A Build that was interrupted is resumed in the background once sigil serves, and writes
    // its br/gzip variants through tmp/: give it time to finish (no upload runs here).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let tmp = loop {
        let tmp: Vec<_> = std::fs::read_dir(data.join("tmp"))
            .expect("tmp/")
            .map(|e| e.expect("entry").path())
            .collect();
        if tmp.is_empty() || std::time::Instant::now() > deadline {
            break tmp;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        tmp.is_empty(),
        "temp files left in tmp/ with no upload or Build running: {tmp:?} (sigil clears tmp/ \
         at start)"
    );
    for fan in std::fs::read_dir(data.join("blobs")).expect("blobs/") {
        let fan = fan.expect("entry");
        assert!(fan.file_type().expect("type").is_dir(), "{:?}", fan.path());
        let fan_name = fan.file_name().into_string().expect("utf-8");
        for blob in std::fs::read_dir(fan.path()).expect("fan-out dir") {
            let blob = blob.expect("entry").path();
            let name = blob.file_name().expect("name").to_str().expect("utf-8");
            assert!(
                name.len() == 64 && name.starts_with(&fan_name),
                "stray file in the blob store: {blob:?}"
            );
            let meta = std::fs::metadata(&blob).expect("stat");
            let stamp = (meta.len(), meta.modified().expect("mtime"));
            if verified.get(&blob) == Some(&stamp) {
                continue;
            }
            let content = std::fs::read(&blob).expect("read blob");
            assert_eq!(
                sha256(&content),
                name,
                "blob {blob:?} ({} bytes) is not the content its name says",
                content.len()
            );
            verified.insert(blob, stamp);
        }
    }
}

/// The records of a list, oldest first: (sid, `field`), following `next_page_url` (a release
/// build gets through more than one page of versions in the loop). Read without the harness's
/// spec validation, which is slow on long pages in debug builds (the other tests validate
/// these shapes).
fn list_all(api: &RawApi, url: &str, key: &str, field: &str) -> Vec<(String, String)> {
    let mut records = Vec::new();
    let mut next = format!("{url}?PageSize=1000");
    loop {
        let (status, _, page) = api.get(&next).expect("the list is answered");
        assert_eq!(status, 200, "{next}: {page}");
        records.extend(
            page[key]
                .as_array()
                .unwrap_or_else(|| panic!("{key} in {page}"))
                .iter()
                .map(|v| (text(v, "sid"), text(v, field))),
        );
        let Some(more) = page["meta"]["next_page_url"].as_str() else {
            break;
        };
        // Absolute; the client takes paths.
        let path = more.find("/v1/").map(|i| &more[i..]).expect("an API URL");
        next = path.to_owned();
    }
    records.reverse();
    records
}

fn text(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
        .to_owned()
}

/// Fetches `path` through the edge and asserts it is exactly version `v`'s content: its
/// blob file, which [`check_blob_store`] hashed.
fn expect_edge(edge: &support::Edge, data: &Path, domain: &str, path: &str, v: &Version) {
    let r = edge.get(&edge.url(domain, path), &[]).expect(200);
    let blob = std::fs::read(blob_path(data, &v.sha256)).expect("blob");
    assert_eq!(blob.len() as u64, v.size);
    assert!(
        r.body == blob,
        "the edge serves {path} with other bytes than version {} ({} bytes, sha256 {})",
        v.sid,
        r.body.len(),
        sha256(&r.body)
    );
    // The precompressed variants a Build made (text content; the kill often lands while a
    // Build makes them) decode to the same bytes.
    for coding in ["br", "gzip"] {
        let r = edge
            .get(&edge.url(domain, path), &[("accept-encoding", coding)])
            .expect(200);
        let decoded = match r.header("content-encoding") {
            None => r.body,
            Some(c) => {
                assert_eq!(c, coding, "{path}");
                VARIANTS_CHECKED.fetch_add(1, Ordering::Relaxed);
                let mut out = Vec::new();
                let read = if c == "br" {
                    brotli::Decompressor::new(&r.body[..], 4096).read_to_end(&mut out)
                } else {
                    flate2::read::GzDecoder::new(&r.body[..]).read_to_end(&mut out)
                };
                read.unwrap_or_else(|e| panic!("{path} in {c} does not decode: {e}"));
                out
            }
        };
        assert!(
            decoded == blob,
            "the edge serves {path} in {coding} with other bytes than version {}",
            v.sid
        );
    }
}

/// All checks of one restart; resolves what was in flight at the kill.
fn check_after_restart(
    sigil: &Sigil,
    fx: &Fixture,
    model: &Mutex<Model>,
    in_flight: &InFlight,
    verified: &mut HashMap<PathBuf, (u64, SystemTime)>,
) {
    let api = sigil.client();
    let raw = RawApi::new(&sigil.api);
    api.get("/healthz").expect(200);
    check_blob_store(sigil.data(), verified);
    let mut m = model.lock().expect("model");

    // Every acknowledged version is there, names its content, and that blob is whole (the
    // blob store check above hashed every file).
    let listed: BTreeSet<String> = list_all(&raw, &fx.versions_url, "asset_versions", "path")
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    let mut fetched = std::mem::take(&mut m.fetched);
    for v in m.versions.values() {
        assert!(
            listed.contains(&v.sid),
            "version {} ({}) is lost",
            v.sid,
            v.path
        );
        // Records are never rewritten: each is fetched after the first restart it lives
        // through (the listing above shows the others are still there).
        if fetched.insert(v.sid.clone()) {
            let r = api
                .get(&format!("{}/{}", fx.versions_url, v.sid))
                .expect(200);
            assert_eq!(
                r.header("sigil-content-sha256").as_deref(),
                Some(&*v.sha256)
            );
        }
        let len = std::fs::metadata(blob_path(sigil.data(), &v.sha256))
            .unwrap_or_else(|e| panic!("blob of version {} ({}): {e}", v.sid, v.path))
            .len();
        assert_eq!(len, v.size, "blob of version {}", v.sid);
    }
    m.fetched = fetched;
    // At most one version more: the upload in flight, whole.
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|s| !m.versions.contains_key(*s))
        .collect();
    match (in_flight, unknown.as_slice()) {
        (_, []) => {}
        (InFlight::Upload { sha256, size }, [sid]) => {
            let sid = (*sid).clone();
            let r = api.get(&format!("{}/{sid}", fx.versions_url)).expect(200);
            assert_eq!(r.header("sigil-content-sha256").as_deref(), Some(&**sha256));
            let len = std::fs::metadata(blob_path(sigil.data(), sha256))
                .expect("the committed in-flight upload has its blob")
                .len();
            assert_eq!(len, *size);
            let v = Version {
                sid: sid.clone(),
                path: r.s("path"),
                sha256: sha256.clone(),
                size: *size,
                acked: false,
            };
            m.versions.insert(sid, v);
            *m.committed_in_flight.entry("upload").or_default() += 1;
        }
        (_, more) => panic!("versions nobody uploaded: {more:?} (in flight: {in_flight:?})"),
    }

    // Acknowledged Builds are there and finish (a Build left `building` is resumed); at most
    // one more exists, from a Build POST in flight, and it finishes too.
    let builds = format!("/v1/Services/{}/Builds", fx.svc);
    let listed: Vec<String> = list_all(&raw, &builds, "builds", "status")
        .into_iter()
        .map(|(sid, _)| sid)
        .collect();
    for b in m.builds.keys() {
        assert!(listed.contains(b), "build {b} is lost");
    }
    let unknown: Vec<&String> = listed
        .iter()
        .filter(|b| !m.builds.contains_key(*b) && !m.extra_builds.contains(*b))
        .collect();
    match (in_flight, unknown.as_slice()) {
        (_, []) => {}
        (InFlight::Build(None), [b]) => {
            let b = (*b).clone();
            m.unchecked_builds.push(b.clone());
            m.extra_builds.insert(b);
            *m.committed_in_flight.entry("build").or_default() += 1;
        }
        (_, more) => panic!("builds nobody made: {more:?} (in flight: {in_flight:?})"),
    }
    for build in std::mem::take(&mut m.unchecked_builds) {
        assert_eq!(api.wait_build(&fx.svc, &build), "completed", "{build}");
    }

    // Deployments: exactly the acknowledged ones, oldest first, plus the in-flight one if it
    // committed; the Environment points at the last.
    let listed = list_all(
        &raw,
        &format!(
            "/v1/Services/{}/Environments/{}/Deployments",
            fx.svc, fx.env
        ),
        "deployments",
        "build_sid",
    );
    let known = m.deployments.len();
    assert!(
        listed.len() >= known && listed[..known] == m.deployments[..],
        "acknowledged deployments {:?}, listed after the restart {listed:?}",
        m.deployments
    );
    match (in_flight, &listed[known..]) {
        (_, []) => {}
        (InFlight::Deploy(build), [(sid, b)]) if b == build => {
            m.deployments.push((sid.clone(), b.clone()));
            *m.committed_in_flight.entry("deployment").or_default() += 1;
        }
        (_, extra) => panic!("deployments nobody made: {extra:?} (in flight: {in_flight:?})"),
    }
    let env = api
        .get(&format!("/v1/Services/{}/Environments/{}", fx.svc, fx.env))
        .expect(200);
    assert_eq!(
        env.json["build_sid"].as_str(),
        m.active_build(),
        "the Environment's active Build is not its last Deployment's"
    );

    // The edge serves exactly the active Build, and nothing of the older ones.
    let edge = sigil.edge(&[&fx.domain]);
    match m.active_build() {
        None => {
            edge.get(&edge.url(&fx.domain, CURRENT), &[]).expect(404);
        }
        Some(active) => {
            let mut served = HashSet::new();
            for sid in &m.builds[active] {
                let v = &m.versions[sid];
                expect_edge(&edge, sigil.data(), &fx.domain, &v.path, v);
                served.insert(v.path.clone());
            }
            // A path only an older Build has is not served.
            if let Some(v) = m
                .versions
                .values()
                .find(|v| v.acked && !served.contains(&v.path))
            {
                edge.get(&edge.url(&fx.domain, &v.path), &[]).expect(404);
            }
        }
    }
}

/// Runs `checks`; when they fail, says whether sigil was still running (a request refused
/// because the server died is a different failure from a wrong answer).
fn with_exit_status(sigil: &mut Sigil, checks: impl FnOnce(&Sigil)) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| checks(sigil)));
    if let Err(panic) = result {
        match sigil.wait_exit(Duration::from_millis(500)) {
            Some(status) => eprintln!("sigil exited during the checks: {status}"),
            None => eprintln!("sigil was still running when the checks failed"),
        }
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn sigkill_loop() {
    let seed = std::env::var("SIGIL_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    println!("crash_safety::sigkill_loop seed {seed} (replay: SIGIL_CRASH_SEED={seed})");
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let fx = {
        let sigil = Sigil::start_in(&data, &[], true);
        let api = sigil.client();
        let svc = api.service("crashy");
        let env = api.environment(&svc, "production", None);
        let fx = Fixture {
            env: env.s("sid"),
            domain: env.s("domain_name"),
            versions_url: api.versions_url(&svc, "Assets"),
            svc,
        };
        sigil.kill9();
        fx
    };

    let model = Mutex::new(Model::default());
    let mut verified = HashMap::new();
    let mut in_flight = InFlight::Nothing;
    let mut landed: BTreeMap<&str, usize> = BTreeMap::new();
    let read_total = AtomicUsize::new(0);
    for iter in 0..ITERATIONS {
        let mut sigil = Sigil::start_in(&data, &[], true);
        assert!(
            sigil.banner.iter().any(|l| l.contains("edge listening")),
            "iteration {iter}: sigil did not print its listeners: {:?}",
            sigil.banner
        );
        with_exit_status(&mut sigil, |sigil| {
            check_after_restart(sigil, &fx, &model, &in_flight, &mut verified)
        });

        let delay = Duration::from_millis(rng.range(20, 1500));
        let worker_seed = rng.next();
        let stop = AtomicBool::new(false);
        in_flight = std::thread::scope(|s| {
            let api = RawApi::new(&sigil.api);
            let w = s.spawn(|| worker(api, &fx, &model, iter, worker_seed));
            let edge = sigil.edge(&[&fx.domain]);
            let domain = fx.domain.clone();
            let r = s.spawn(|| reader(edge, domain, &model, &stop));
            std::thread::sleep(delay);
            sigil.kill9();
            stop.store(true, Ordering::Relaxed);
            read_total.fetch_add(
                r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
                Ordering::Relaxed,
            );
            w.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        let stage = match &in_flight {
            InFlight::Nothing => "nothing",
            InFlight::Upload { size, .. } if *size > 256 * 1024 => "large upload",
            InFlight::Upload { .. } => "small upload",
            InFlight::Build(None) => "build POST",
            InFlight::Build(Some(_)) => "build running",
            InFlight::Deploy(_) => "deployment POST",
        };
        *landed.entry(stage).or_default() += 1;
    }

    // One last clean start: everything acknowledged is intact, then served through the edge
    // by a Build of every version (the newest of `CURRENT`).
    let mut sigil = Sigil::start_in(&data, &[], true);
    with_exit_status(&mut sigil, |sigil| {
        check_after_restart(sigil, &fx, &model, &in_flight, &mut verified)
    });
    let m = model.lock().expect("model");
    let api = sigil.client();
    // A path may appear once in a Build: one version of `CURRENT` (the others were served
    // when their Build was active, and their blobs were hashed after every restart).
    let current = m.versions.values().find(|v| v.path == CURRENT);
    let all: Vec<&Version> = m
        .versions
        .values()
        .filter(|v| v.path != CURRENT)
        .chain(current)
        .collect();
    let sids: Vec<&str> = all.iter().map(|v| v.sid.as_str()).collect();
    let (build, status) = api.build(&fx.svc, &sids, &[]);
    assert_eq!(status, "completed");
    let verify = api.environment(&fx.svc, "verify", Some("verify"));
    let site = support::Site {
        domain: verify.s("domain_name"),
        env: verify.s("sid"),
        svc: fx.svc.clone(),
    };
    api.deploy(&site, &build);
    let edge = sigil.edge(&[&site.domain]);
    for v in &all {
        expect_edge(&edge, sigil.data(), &site.domain, &v.path, v);
    }
    println!(
        "crash_safety::sigkill_loop: {ITERATIONS} kills, landing in {landed:?}; \
         cut requests that had committed: {:?}; {} versions ({} acknowledged), {} builds, \
         {} deployments survived; {} edge bodies checked during the races, {} precompressed \
         ones after restarts",
        m.committed_in_flight,
        m.versions.len(),
        m.versions.values().filter(|v| v.acked).count(),
        m.builds.len() + m.extra_builds.len(),
        m.deployments.len(),
        read_total.load(Ordering::Relaxed),
        VARIANTS_CHECKED.load(Ordering::Relaxed),
    );
}

// ---------------------------------------------------------------------------------------------

/// A tmpfs mounted for the test's lifetime; unmounted on drop, even when the test fails.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "full_disk_upload needs root (CAP_SYS_ADMIN) to mount a small tmpfs: `mount -t tmpfs` \
             failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Free bytes (statfs).
    fn free(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(self.path())
            .output()
            .expect("stat runs");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut it = text
            .split_whitespace()
            .map(|n| n.parse::<u64>().expect("number"));
        it.next().expect("blocks") * it.next().expect("block size")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process holding a file): detach it so nothing leaks.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

/// The files under `dir/sub`, recursively.
fn files(dir: &Path, sub: &str) -> BTreeSet<PathBuf> {
    fn walk(p: &Path, out: &mut BTreeSet<PathBuf>) {
        for e in std::fs::read_dir(p).expect("read_dir") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(e.path());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&dir.join(sub), &mut out);
    out
}

/// The version sids of an Asset.
fn version_sids(raw: &RawApi, versions: &str) -> Vec<String> {
    list_all(raw, versions, "asset_versions", "path")
        .into_iter()
        .map(|(sid, _)| sid)
        .collect()
}

/// Fills the file system with a filler file until `left` bytes are free; returns its path.
fn fill(fs: &Tmpfs, left: u64) -> PathBuf {
    use std::io::Write;
    let filler = fs.path().join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let free = fs.free();
    f.write_all(&vec![0xf1; free.saturating_sub(left) as usize])
        .expect("fill");
    f.sync_all().expect("sync");
    filler
}

#[test]
fn full_disk_upload() {
    if support::on_shared_stores() {
        // Metadata and blobs are not on the full disk there; the embedded run checks this.
        eprintln!("full_disk_upload: the shared stores are not on the filled disk: skipped");
        return;
    }
    let fs = Tmpfs::mount("4m");
    let data = fs.path().join("data");
    let mut sigil = Sigil::start_in(&data, &[], true);
    with_exit_status(&mut sigil, |sigil| full_disk_checks(&fs, sigil));
}

fn full_disk_checks(fs: &Tmpfs, sigil: &Sigil) {
    let data = sigil.data();
    let api = sigil.client();
    let raw = RawApi::new(&sigil.api);
    let svc = api.service("fulldisk");
    let versions = api.versions_url(&svc, "Assets");
    let upload = |content: Vec<u8>| {
        api.upload(
            &versions,
            vec![
                Part::text("Path", "/big.bin"),
                Part::text("Visibility", "public"),
                Part::file("Content", content, "big.bin", "application/octet-stream"),
            ],
        )
    };
    let expect_full = |r: &support::Resp| {
        assert_eq!(
            (r.status, &r.json["code"]),
            (503, &Value::from(20503)),
            "an upload into a full disk: {}",
            r.text
        );
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
    };
    // Let the metadata store settle (the first writes grow the database and its WAL).
    let mut sids = vec![upload(b"warm-up".to_vec()).expect(201).s("sid")];
    let mut verified = HashMap::new();

    // 1. The blob does not fit: larger than the free space, within the API's limit.
    let blobs_before = files(data, "blobs");
    let free_before = fs.free();
    let big = Rng::new(7).bytes(free_before as usize + 1024 * 1024);
    let r = upload(big);
    expect_full(&r);
    // Nothing partial is kept: no new blob, no temp file, the space is free again, no record.
    assert_eq!(files(data, "blobs"), blobs_before, "a blob was kept");
    assert_eq!(files(data, "tmp"), BTreeSet::new(), "a temp file was kept");
    assert_eq!(
        fs.free(),
        free_before,
        "the failed upload still holds space"
    );
    assert_eq!(version_sids(&raw, &versions), sids, "versions");
    // Still serving: health, and an upload that fits.
    api.get("/healthz").expect(200);
    let small = b"fits on the disk".to_vec();
    let r = upload(small.clone()).expect(201);
    assert_eq!(r.header("sigil-content-sha256"), Some(sha256(&small)));
    sids.push(r.s("sid"));

    // 2. The blob fits (exactly, or nearly) but the metadata store's write then finds the disk
    // full: the same JSON 503, no record, no temp file; the blob that was placed is whole (it
    // is an orphan: no version names it).
    let mut rng = Rng::new(8);
    let mut metadata_full = 0;
    for slack in [0, 4096, 16 * 1024, 128 * 1024] {
        let filler = fill(fs, 192 * 1024);
        let content = rng.bytes((fs.free() - slack) as usize);
        let r = upload(content.clone());
        if r.status == 201 {
            sids.push(r.s("sid"));
            assert_eq!(r.header("sigil-content-sha256"), Some(sha256(&content)));
        } else {
            expect_full(&r);
            if blob_path(data, &sha256(&content)).exists() {
                metadata_full += 1;
            }
        }
        assert_eq!(files(data, "tmp"), BTreeSet::new(), "a temp file was kept");
        assert_eq!(version_sids(&raw, &versions), sids, "versions");
        check_blob_store(data, &mut verified);
        std::fs::remove_file(filler).expect("rm filler");
        api.get("/healthz").expect(200);
        let small = rng.bytes(100);
        let r = upload(small.clone()).expect(201);
        assert_eq!(r.header("sigil-content-sha256"), Some(sha256(&small)));
        sids.push(r.s("sid"));
    }
    assert!(
        metadata_full > 0,
        "no upload filled the disk between its blob and its record; the test did not \
         exercise a full metadata store"
    );
    // Every version that was acknowledged is whole.
    check_blob_store(data, &mut verified);
    for sid in &sids {
        let r = api.get(&format!("{versions}/{sid}")).expect(200);
        let sha = r.header("sigil-content-sha256").expect("sha256 header");
        assert!(blob_path(data, &sha).exists(), "the blob of {sid}");
    }
}
