//! The route table: host → Site (one Environment's active Build) → path → asset.
//!
//! Built from immutable Build manifests, never from the metadata store on the request path.
//! The whole table is swapped atomically (`ArcSwap`) when a Deployment or deletion changes an
//! Environment; a request takes one `Arc<Site>` and so sees one Build from start to end, and
//! responses in flight finish on the Build they started with.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::edge::http::encoding::Coding;
use crate::manifest::{BuildManifest, Dependency, Deployed, Entry, Visibility};
use crate::store::{Kind, ListQuery, Metadata, Record, StoreError};

/// Whether `value` is a valid Host field value (RFC 9110 §7.2, RFC 3986 §3.2.2):
/// `uri-host [ ":" port ]`, where the host is a registered name (unreserved characters,
/// sub-delims, percent-encoded octets; IPv4 addresses are among them) or a bracketed IP
/// literal, and the port is digits. No userinfo, whitespace or second colon. RFC 9112 §3.2
/// requires a 400 for an invalid Host; an empty value is valid syntax (the target had no
/// authority), and whether it can be routed is the caller's question.
pub fn valid_host(value: &str) -> bool {
    let (host_ok, port) = match value.strip_prefix('[') {
        Some(rest) => {
            let Some((literal, after)) = rest.split_once(']') else {
                return false;
            };
            let port = match after {
                "" => None,
                p => match p.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return false,
                },
            };
            let literal_ok = !literal.is_empty()
                && literal
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
            (literal_ok, port)
        }
        None => match memchr::memchr(b':', value.as_bytes()) {
            Some(i) => (reg_name(&value[..i]), Some(&value[i + 1..])),
            None => (reg_name(value), None),
        },
    };
    host_ok && port.is_none_or(|p| p.bytes().all(|c| c.is_ascii_digit()))
}

/// RFC 3986 `reg-name`: `*( unreserved / pct-encoded / sub-delims )`.
fn reg_name(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
                if !(hex(i + 1) && hex(i + 2)) {
                    return false;
                }
                i += 3;
                continue;
            }
            c if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// The last second an HTTP date can carry (9999-12-31T23:59:59Z).
const MAX_HTTP_DATE: u64 = 253_402_300_799;

/// One representation of an asset: the identity bytes or a precompressed variant.
#[derive(Debug)]
pub struct Representation {
    /// Content coding.
    pub coding: Coding,
    /// Blob address.
    pub sha256: String,
    /// Length in bytes.
    pub size: u64,
    /// Strong ETag, quoted; each variant has its own.
    pub etag: HeaderValue,
}

/// An asset (or function) as the edge serves it, with every header value precomputed.
#[derive(Debug)]
pub struct EdgeAsset {
    /// Normalised path.
    pub path: String,
    /// Who may fetch it.
    pub visibility: Visibility,
    /// A Function Version: sigil does not execute functions.
    pub is_function: bool,
    /// The Function's SID, for request logs.
    pub function_sid: Option<String>,
    /// Content-Type.
    pub content_type: HeaderValue,
    /// Whether the type is HTML (for the root fallback).
    pub is_html: bool,
    /// Last-Modified, Unix seconds (the version's creation).
    pub last_modified: u64,
    /// Last-Modified as an HTTP date.
    pub last_modified_header: HeaderValue,
    /// The identity representation.
    pub identity: Representation,
    /// Precompressed variants, best first.
    pub encoded: Vec<Representation>,
}

impl EdgeAsset {
    /// The edge's view of a manifest entry and its precompressed variants.
    pub fn new(
        entry: &Entry,
        is_function: bool,
        encoded: &[crate::manifest::Encoded],
    ) -> EdgeAsset {
        let content_type = entry.content_type();
        // The manifest was decoded from the store: take only hex digits and a date an HTTP
        // date can carry, so no record, however damaged, can panic here or make an ETag the
        // precondition code cannot read. A sha256 sigil wrote is unchanged by this.
        let base: String = entry
            .sha256
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(32)
            .collect();
        let etag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{base}{suffix}\"")).expect("hex is a valid header")
        };
        let last_modified = u64::try_from(entry.date_created)
            .unwrap_or(0)
            .min(MAX_HTTP_DATE);
        let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(last_modified);
        let mut encoded: Vec<Representation> = encoded
            .iter()
            .map(|e| Representation {
                coding: e.coding,
                sha256: e.sha256.clone(),
                size: e.size,
                etag: etag(&format!("-{}", e.coding.as_str())),
            })
            .collect();
        encoded.sort_by_key(|r| r.size);
        EdgeAsset {
            path: entry.path.clone(),
            visibility: entry.visibility,
            is_function,
            function_sid: is_function.then(|| entry.parent_sid.clone()),
            is_html: content_type.to_ascii_lowercase().starts_with("text/html"),
            content_type: HeaderValue::from_str(&content_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
            last_modified,
            last_modified_header: HeaderValue::from_str(&httpdate::fmt_http_date(date))
                .expect("an HTTP date is a valid header"),
            identity: Representation {
                coding: Coding::Identity,
                sha256: entry.sha256.clone(),
                size: entry.size,
                etag: etag(""),
            },
            encoded,
        }
    }
}

/// One Environment's deployed Build.
#[derive(Debug)]
pub struct Site {
    /// The host name it is served at.
    pub domain: String,
    /// Owner (whose auth tokens sign protected requests).
    pub account_sid: String,
    /// The Service.
    pub service_sid: String,
    /// The Environment.
    pub environment_sid: String,
    /// The Build served.
    pub build_sid: String,
    /// The Deployment that made it live.
    pub deployment_sid: Option<String>,
    /// Path → asset; shared by every Environment serving the same Build.
    pub assets: Arc<Assets>,
    /// When the Deployment made it live, Unix seconds, and as an HTTP date: every asset's
    /// Last-Modified is at least this, so a rollback (a new Deployment of an older Build)
    /// never moves Last-Modified backwards and a client revalidating with only
    /// If-Modified-Since gets the rolled-back content.
    pub deployed: Modified,
    /// Its Logs resource lines this second (`--request-logs-rate`).
    pub log_window: crate::logsink::RateWindow,
    /// What its Functions run with; `None` when the Build has no Functions.
    pub code: Option<Arc<Code>>,
    /// The Environment's Variables, key → value, as its Functions' `context` has them.
    pub variables: Arc<Vec<(String, String)>>,
    /// Whether Functions get `ACCOUNT_SID` and `AUTH_TOKEN` (the Service's
    /// `IncludeCredentials`).
    pub include_credentials: bool,
}

/// What a Build's Functions run with, from its manifest.
#[derive(Debug)]
pub struct Code {
    /// Its Function Versions.
    pub functions: Vec<Entry>,
    /// Its private Asset Versions (`Runtime.getAssets()`).
    pub private_assets: Vec<Entry>,
    /// The npm packages declared.
    pub dependencies: Vec<Dependency>,
    /// The Node.js runtime named.
    pub runtime: String,
    /// The installed dependency tree, packed, when the Build has one.
    pub dependency_tree: Option<crate::manifest::BlobRef>,
}

impl Code {
    /// The code of a Build, if it has Functions.
    pub fn of(b: &BuildManifest) -> Option<Arc<Code>> {
        if b.function_versions.is_empty() {
            return None;
        }
        Some(Arc::new(Code {
            functions: b.function_versions.clone(),
            private_assets: b
                .asset_versions
                .iter()
                .filter(|e| e.visibility == Visibility::Private)
                .cloned()
                .collect(),
            dependencies: b.dependencies.clone(),
            runtime: b.runtime.clone(),
            dependency_tree: b.dependency_tree.clone(),
        }))
    }
}

/// What a Site's Functions are told of its Environment beyond the Build.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Settings {
    /// Variables, key → value.
    #[serde(default)]
    pub variables: Vec<(String, String)>,
    /// The Service's `IncludeCredentials`.
    #[serde(default = "yes")]
    pub include_credentials: bool,
}

fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            variables: Vec::new(),
            include_credentials: true,
        }
    }
}

impl Settings {
    /// An Environment's Variables and its Service's `IncludeCredentials`, from the store.
    pub fn read(store: &dyn Metadata, env: &Record) -> Result<Settings, StoreError> {
        #[derive(serde::Deserialize)]
        struct Variable {
            key: String,
            value: String,
        }
        #[derive(serde::Deserialize)]
        struct Service {
            #[serde(default = "yes")]
            include_credentials: bool,
        }
        let query = ListQuery::children(Kind::Variable, &env.account_sid, &env.sid);
        let mut variables = Vec::new();
        for rec in store.list(&query)? {
            let v: Variable = rec.decode()?;
            variables.push((v.key, v.value));
        }
        variables.sort();
        let include_credentials = match env.parent_sid.as_deref() {
            Some(service) => match store.get(service)? {
                Some(rec) => rec.decode::<Service>()?.include_credentials,
                None => true,
            },
            None => true,
        };
        Ok(Settings {
            variables,
            include_credentials,
        })
    }
}

/// A Last-Modified time, in seconds and as the header says it.
#[derive(Debug, Clone)]
pub struct Modified {
    /// Unix seconds.
    pub secs: u64,
    /// The HTTP date.
    pub header: HeaderValue,
}

impl Modified {
    /// `secs` (clamped to what an HTTP date can carry).
    pub fn at(secs: i64) -> Modified {
        let secs = u64::try_from(secs).unwrap_or(0).min(MAX_HTTP_DATE);
        let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
        Modified {
            secs,
            header: HeaderValue::from_str(&httpdate::fmt_http_date(date))
                .expect("an HTTP date is a valid header"),
        }
    }
}

impl Site {
    /// Writes a line of its Logs resource through `logs`, within `--request-logs-rate`:
    /// `message` is made only when the line is admitted, and a line after some were left out
    /// is preceded by a note of how many.
    pub fn log(
        &self,
        logs: &crate::logsink::LogSink,
        level: &str,
        message: impl FnOnce() -> String,
        function_sid: Option<String>,
    ) {
        // The second, to a tick: every request reads it.
        let now = i64::try_from(crate::clock::coarse_unix_seconds()).unwrap_or(i64::MAX);
        let crate::logsink::Admit::Yes { skipped } = logs.admit(&self.log_window, now) else {
            return;
        };
        if skipped > 0 {
            let note = crate::logsink::skipped_note(skipped);
            logs.record(self.log_entry(now, "warn", note, None));
        }
        logs.record(self.log_entry(now, level, message(), function_sid));
    }

    fn log_entry(
        &self,
        now: i64,
        level: &str,
        message: String,
        function_sid: Option<String>,
    ) -> crate::logsink::LogEntry {
        crate::logsink::LogEntry {
            account_sid: self.account_sid.clone(),
            environment_sid: self.environment_sid.clone(),
            created: now,
            data: crate::logsink::LogData {
                service_sid: self.service_sid.clone(),
                build_sid: self.build_sid.clone(),
                deployment_sid: self.deployment_sid.clone(),
                function_sid,
                request_sid: crate::sid::request_sid(),
                level: level.to_owned(),
                message,
            },
        }
    }

    /// An asset's Last-Modified as this Site serves it: its version's creation, or the
    /// Deployment's time if that is later.
    pub fn last_modified<'a>(&'a self, asset: &'a EdgeAsset) -> (u64, &'a HeaderValue) {
        if self.deployed.secs > asset.last_modified {
            (self.deployed.secs, &self.deployed.header)
        } else {
            (asset.last_modified, &asset.last_modified_header)
        }
    }
}

/// A Build's path → asset map.
pub type Assets = HashMap<String, Arc<EdgeAsset>>;

/// Shares what is shared while loading: one asset map per Build, one [`EdgeAsset`] per
/// version (versions are immutable), so 1,000 Environments of 100 assets cost 100 entries
/// plus 1,000 small maps, not 100,000 entries.
#[derive(Default)]
pub struct Loader {
    by_build: HashMap<String, Arc<Assets>>,
    by_version: HashMap<String, Arc<EdgeAsset>>,
    code: HashMap<String, Option<Arc<Code>>>,
}

impl Site {
    /// The asset for a decoded request path; `/` is the asset at `/`, else the HTML asset at
    /// `/assets/index.html`.
    pub fn lookup(&self, path: &str) -> Option<&Arc<EdgeAsset>> {
        if let Some(a) = self.assets.get(path) {
            return Some(a);
        }
        if path == "/" {
            return self
                .assets
                .get("/assets/index.html")
                .filter(|a| a.is_html && !a.is_function);
        }
        None
    }
}

/// Host → Site, swapped whole.
pub struct RouteTable {
    sites: ArcSwap<HashMap<String, Arc<Site>>>,
    /// Environment SID → domain, to remove a site whose Environment is gone. Writers only.
    domains: Mutex<HashMap<String, String>>,
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable {
            sites: ArcSwap::from_pointee(HashMap::new()),
            domains: Mutex::new(HashMap::new()),
        }
    }
}

/// Domain → Site: a whole route table.
pub type Table = HashMap<String, Arc<Site>>;

/// What an Environment serves now, as read from the store: a Site, or nothing (undeployed or
/// deleted).
pub type Served = (String, Option<Arc<Site>>);

impl Loader {
    /// Starts from the maps the table already holds.
    pub fn from_table(table: &RouteTable) -> Loader {
        let mut loader = Loader::default();
        for site in table.sites.load().values() {
            loader
                .by_build
                .entry(site.build_sid.clone())
                .or_insert_with(|| Arc::clone(&site.assets));
            loader
                .code
                .entry(site.build_sid.clone())
                .or_insert_with(|| site.code.clone());
        }
        loader
    }

    /// The asset map of a Build, made once.
    pub fn assets(&mut self, build_sid: &str, b: &BuildManifest) -> Arc<Assets> {
        if let Some(a) = self.by_build.get(build_sid) {
            return Arc::clone(a);
        }
        let no_encodings = Vec::new();
        let mut assets = HashMap::with_capacity(b.asset_versions.len() + b.function_versions.len());
        for (entries, is_function) in [(&b.asset_versions, false), (&b.function_versions, true)] {
            for e in entries {
                let asset = self.by_version.entry(e.sid.clone()).or_insert_with(|| {
                    let enc = b.encodings.get(&e.sha256).unwrap_or(&no_encodings);
                    Arc::new(EdgeAsset::new(e, is_function, enc))
                });
                assets.insert(e.path.clone(), Arc::clone(asset));
            }
        }
        let assets = Arc::new(assets);
        self.by_build
            .insert(build_sid.to_owned(), Arc::clone(&assets));
        self.code.insert(build_sid.to_owned(), Code::of(b));
        assets
    }

    /// The code of a Build whose asset map is made.
    pub fn code(&self, build_sid: &str) -> Option<Arc<Code>> {
        self.code.get(build_sid).cloned().flatten()
    }

    /// Whether the asset map of this Build is made already.
    pub fn has_build(&self, build_sid: &str) -> bool {
        self.by_build.contains_key(build_sid)
    }

    /// The Site an Environment record describes: `None` when nothing is deployed to it. A
    /// Build not loaded yet is read from `store` and handed to `keep` (the route snapshot). A
    /// Build record that is missing is an error, never a site silently dropped.
    pub fn site(
        &mut self,
        store: &dyn Metadata,
        env: &Record,
        keep: &mut dyn FnMut(&str, &BuildManifest),
    ) -> Result<Option<Arc<Site>>, StoreError> {
        let data: Deployed = env.decode()?;
        let Some(build_sid) = data.build_sid else {
            return Ok(None);
        };
        let assets = match self.by_build.get(&build_sid) {
            Some(a) => Arc::clone(a),
            None => {
                let Some(build) = store.get(&build_sid)? else {
                    return Err(StoreError::Corrupt(format!(
                        "Environment {} is deployed to Build {build_sid}, which is not stored",
                        env.sid
                    )));
                };
                let b: BuildManifest = build.decode()?;
                keep(&build_sid, &b);
                self.assets(&build_sid, &b)
            }
        };
        let service_sid = env.parent_sid.clone().unwrap_or_default();
        let code = self.code(&build_sid);
        let settings = Settings::read(store, env)?;
        let deployment_sid = match data.deployment_sid {
            Some(sid) => Some(sid),
            // Written before Environments kept it: the newest Deployment.
            None => {
                let mut latest = ListQuery::children(Kind::Deployment, &env.account_sid, &env.sid);
                latest.limit = 1;
                store.list(&latest)?.into_iter().next().map(|d| d.sid)
            }
        };
        Ok(Some(Arc::new(Site {
            deployed: Modified::at(data.date_updated),
            domain: data.domain_name,
            account_sid: env.account_sid.clone(),
            service_sid,
            environment_sid: env.sid.clone(),
            build_sid,
            deployment_sid,
            assets,
            log_window: Default::default(),
            code,
            variables: Arc::new(settings.variables),
            include_credentials: settings.include_credentials,
        })))
    }
}

impl RouteTable {
    /// The Site served at `host` (lower case, no port).
    pub fn lookup(&self, host: &str) -> Option<Arc<Site>> {
        self.sites.load().get(host).cloned()
    }

    /// How many Environments are served.
    pub fn len(&self) -> usize {
        self.sites.load().len()
    }

    /// Whether nothing is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every Site served now.
    pub fn sites(&self) -> Vec<Arc<Site>> {
        self.sites.load().values().cloned().collect()
    }

    /// The Site of an Environment, if it is served.
    pub fn of_environment(&self, environment_sid: &str) -> Option<Arc<Site>> {
        let domain = self.domains().get(environment_sid).cloned()?;
        self.lookup(&domain)
    }

    fn domains(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.domains.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the whole table (start-up, a route snapshot, and benchmarks and tests that
    /// build Sites by hand).
    pub fn replace_all(&self, sites: HashMap<String, Arc<Site>>) {
        let mut domains = self.domains();
        domains.clear();
        for site in sites.values() {
            domains.insert(site.environment_sid.clone(), site.domain.clone());
        }
        self.sites.store(Arc::new(sites));
    }

    /// Reads every Environment with an active Deployment: the whole table, to put in place
    /// with [`RouteTable::replace_all`], and the Environments that could not be read (a
    /// damaged record, a missing Build), which are left out.
    pub fn read_all(
        store: &dyn Metadata,
        loader: &mut Loader,
        keep: &mut dyn FnMut(&str, &BuildManifest),
    ) -> Result<(Table, Vec<(String, StoreError)>), StoreError> {
        let mut sites = HashMap::new();
        let mut broken = Vec::new();
        // First the Environments (a store may not take other reads while it scans), then
        // their Builds.
        for env in store.scan(Kind::Environment)? {
            match loader.site(store, &env, keep) {
                Ok(Some(site)) => {
                    sites.insert(site.domain.clone(), site);
                }
                Ok(None) => {}
                Err(e @ (StoreError::Unavailable(_) | StoreError::Backend(_))) => return Err(e),
                Err(e) => broken.push((env.sid.clone(), e)),
            }
        }
        Ok((sites, broken))
    }

    /// Reads what each of these Environments serves now (none when it is gone).
    pub fn read(
        store: &dyn Metadata,
        loader: &mut Loader,
        environment_sid: &str,
        keep: &mut dyn FnMut(&str, &BuildManifest),
    ) -> Result<Option<Arc<Site>>, StoreError> {
        match store
            .get(environment_sid)?
            .filter(|r| r.kind == Kind::Environment)
        {
            Some(env) => loader.site(store, &env, keep),
            None => Ok(None),
        }
    }

    /// Puts what Environments serve now in place, in one swap.
    pub fn apply(&self, served: Vec<Served>) {
        if served.is_empty() {
            return;
        }
        let mut domains = self.domains();
        let mut sites = HashMap::clone(&self.sites.load());
        for (environment_sid, site) in served {
            if let Some(old) = domains.remove(&environment_sid) {
                sites.remove(&old);
            }
            if let Some(site) = site {
                domains.insert(environment_sid, site.domain.clone());
                sites.insert(site.domain.clone(), site);
            }
        }
        self.sites.store(Arc::new(sites));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        for ok in [
            "a-1234.localhost",
            "A-1234.LOCALHOST:8080",
            "a-1234.localhost.",
            "a-1234.localhost:",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "[::ffff:127.0.0.1]:1",
            "xn--hllo-bpa.localhost",
            "a%41b",
            "",
        ] {
            assert!(valid_host(ok), "{ok:?}");
        }
        for bad in [
            "a b",
            "a.localhost, b.localhost",
            "evil@a.localhost",
            "a.localhost:abc",
            "a.localhost:80:80",
            "a.localhost:-1",
            "[::1",
            "[::1]x",
            "[]",
            "[::1]:a",
            "a%4",
            "a%zz",
            "a\tb",
            "a/b",
            "a\\b",
            "ü.localhost",
            "a.localhost\0",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }

    fn entry(sha256: &str, date_created: i64) -> Entry {
        Entry {
            sid: "ZN".into(),
            parent_sid: "ZH".into(),
            date_created,
            path: "/a.txt".into(),
            visibility: Visibility::Public,
            sha256: sha256.into(),
            size: 1,
            content_type: None,
        }
    }

    #[test]
    fn etag_and_date_from_a_sound_entry() {
        let sha = "0123456789abcdef".repeat(4);
        let enc = [crate::manifest::Encoded {
            coding: Coding::Gzip,
            sha256: "ff".repeat(32),
            size: 1,
        }];
        let a = EdgeAsset::new(&entry(&sha, 1_000_000_000), false, &enc);
        assert_eq!(a.identity.etag, format!("\"{}\"", &sha[..32]).as_str());
        assert_eq!(
            a.encoded[0].etag,
            format!("\"{}-gzip\"", &sha[..32]).as_str()
        );
        assert_eq!(a.last_modified_header, "Sun, 09 Sep 2001 01:46:40 GMT");
    }

    /// Found by `cargo fuzz run manifest`: a damaged manifest entry panicked the route loader
    /// with a date past year 9999, and a sha256 holding `"` made an ETag the precondition
    /// code refuses (it expects well-formed tags and panics). Also: a sha256 cut inside a
    /// character, or holding a control character, panicked.
    #[test]
    fn damaged_entries_do_not_panic() {
        let a = EdgeAsset::new(
            &entry(&format!("a{}", "é".repeat(40)), i64::MAX),
            false,
            &[],
        );
        assert_eq!(a.identity.etag, "\"a\"");
        assert_eq!(a.last_modified, MAX_HTTP_DATE);
        assert_eq!(a.last_modified_header, "Fri, 31 Dec 9999 23:59:59 GMT");
        let a = EdgeAsset::new(&entry("ab\"c\u{7f}d\u{0}e", -1), false, &[]);
        let etag = a.identity.etag.to_str().expect("ASCII");
        let mut h = http::HeaderMap::new();
        h.insert(http::header::IF_NONE_MATCH, a.identity.etag.clone());
        assert_eq!(
            crate::edge::http::conditional::evaluate(&http::Method::GET, &h, etag, 0),
            crate::edge::http::conditional::Precondition::NotModified
        );
        assert_eq!(a.identity.etag, "\"abcde\"");
        assert_eq!(a.last_modified, 0);
    }
}
