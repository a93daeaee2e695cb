//! Builds (`ZB`) and Build Status: CONTRACT.md §4.6.
//!
//! Creating a Build records its manifest — every version's path, visibility, content address,
//! size and type — once; it is never changed afterwards. The Build starts `building`; a
//! background task checks that every blob is whole and moves it to `completed`, or to `failed`
//! with the reason (logged, and sent in the `Sigil-Build-Error` header of Build Status).
//! Builds still `building` when the server stopped are finished on the next start.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::environments::EnvironmentData;
use super::resources::ResourceKind;
use super::versions::VersionData;
use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now};
use crate::manifest::BlobRef;
use crate::manifest::{is_text, Encoded, Entry, Visibility};
use crate::sid::Prefix;
use crate::store::{Kind, ListQuery, Record, StoreError, Write};

/// The runtime a Build gets when the request names none [GUESS: the newest in the spec].
pub const DEFAULT_RUNTIME: &str = "node22";
/// How many of a Service's newest Builds are searched for variants to reuse.
const EARLIER_BUILDS: u32 = 20;
/// At most this many public and protected asset versions in one Build.
pub const MAX_PUBLIC_ASSETS: usize = 1000;
/// At most this many private asset versions in one Build.
pub const MAX_PRIVATE_ASSETS: usize = 50;
/// At most this many function versions in one Build.
pub const MAX_FUNCTIONS: usize = 50;

/// A Build's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Being checked.
    Building,
    /// Ready to deploy.
    Completed,
    /// Cannot be deployed.
    Failed,
}

impl BuildStatus {
    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Building => "building",
            BuildStatus::Completed => "completed",
            BuildStatus::Failed => "failed",
        }
    }
}

pub use crate::manifest::Dependency;

/// The stored fields of a Build; `asset_versions` + `function_versions` are its manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildData {
    /// The Service.
    pub service_sid: String,
    /// Asset versions in the order given.
    pub asset_versions: Vec<Entry>,
    /// Function versions in the order given.
    pub function_versions: Vec<Entry>,
    /// Declared dependencies.
    pub dependencies: Vec<Dependency>,
    /// Runtime name (`node22`, …).
    pub runtime: String,
    /// State.
    pub status: BuildStatus,
    /// Why it failed.
    pub failure: Option<String>,
    /// Precompressed variants of text assets, by the sha256 of the original; made while the
    /// Build is `building`, complete once it is `completed`.
    #[serde(default)]
    pub encodings: BTreeMap<String, Vec<Encoded>>,
    /// The installed dependency tree, packed ([`crate::manifest::BuildManifest`]).
    #[serde(default)]
    pub dependency_tree: Option<BlobRef>,
    /// Last change, Unix seconds.
    pub date_updated: i64,
}

/// Parses `Dependencies`: a JSON array of `{name, version}`, also wrapped in one pair of
/// literal double quotes as the Serverless Toolkit sends it (CONTRACT.md §10.1).
pub fn parse_dependencies(raw: Option<&str>) -> Result<Vec<Dependency>, String> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(Vec::new());
    };
    let unwrapped = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let parsed: Value = serde_json::from_str(unwrapped)
        .or_else(|_| {
            // A JSON string holding the array (quotes escaped inside) is accepted too.
            serde_json::from_str::<String>(raw).and_then(|s| serde_json::from_str(&s))
        })
        .map_err(|e| format!("not a JSON array: {e}"))?;
    let items = parsed.as_array().ok_or("not a JSON array")?;
    items
        .iter()
        .map(|item| {
            let name = item.get("name").and_then(Value::as_str);
            let version = item.get("version").and_then(Value::as_str);
            match (name, version) {
                (Some(n), Some(v)) if !n.is_empty() => Ok(Dependency {
                    name: n.to_owned(),
                    version: v.to_owned(),
                }),
                _ => Err(format!(
                    "{item} is not an object with string name and version"
                )),
            }
        })
        .collect()
}

/// `node` followed by a version number; newer runtimes than the spec lists are accepted
/// (the toolkit already sends `node24`).
fn valid_runtime(runtime: &str) -> bool {
    runtime
        .strip_prefix("node")
        .is_some_and(|n| !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn entry(rec: &Record, d: VersionData) -> Entry {
    Entry {
        sid: rec.sid.clone(),
        parent_sid: rec.parent_sid.clone().unwrap_or_default(),
        date_created: rec.created,
        path: d.path,
        visibility: d.visibility,
        sha256: d.sha256,
        size: d.size,
        content_type: d.content_type,
    }
}

impl ControlPlane {
    fn render_build_entry(&self, kind: ResourceKind, rec: &Record, e: &Entry) -> Value {
        json!({
            "sid": e.sid,
            "account_sid": rec.account_sid,
            "service_sid": rec.parent_sid,
            kind.parent_field(): e.parent_sid,
            "date_created": iso(e.date_created),
            "path": e.path,
            "visibility": e.visibility.as_upper(),
        })
    }

    fn build_path(rec: &Record) -> String {
        format!(
            "/Services/{}/Builds/{}",
            rec.parent_sid.as_deref().unwrap_or_default(),
            rec.sid
        )
    }

    fn render_build(&self, rec: &Record, d: &BuildData) -> Value {
        let path = Self::build_path(rec);
        let render = |kind, entries: &[Entry]| -> Vec<Value> {
            entries
                .iter()
                .map(|e| self.render_build_entry(kind, rec, e))
                .collect()
        };
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": rec.parent_sid,
            "asset_versions": render(ResourceKind::Asset, &d.asset_versions),
            "function_versions": render(ResourceKind::Function, &d.function_versions),
            "dependencies": d.dependencies,
            "runtime": d.runtime,
            "status": d.status.as_str(),
            "date_created": iso(rec.created),
            "date_updated": iso(d.date_updated),
            "url": self.url(&path),
            "links": {"build_status": self.url(&format!("{path}/Status"))},
        })
    }

    async fn build(&self, ctx: &Ctx, svc: &str, id: &str) -> Result<(Record, BuildData), ApiError> {
        let (service, _) = self.service(ctx, svc).await?;
        let rec = self
            .load(ctx, Kind::Build, Prefix::Build, id, Some(&service.sid))
            .await?;
        let data = rec.decode()?;
        Ok((rec, data))
    }

    pub(super) async fn list_builds(&self, ctx: &Ctx, svc: &str) -> ApiResult {
        let (service, _) = self.service(ctx, svc).await?;
        self.list_page(
            ctx,
            Kind::Build,
            Some(service.sid),
            "builds",
            ListFilter::default(),
            |r| Ok(self.render_build(r, &r.decode()?)),
        )
        .await
    }

    pub(super) async fn fetch_build(&self, ctx: &Ctx, svc: &str, id: &str) -> ApiResult {
        let (rec, data) = self.build(ctx, svc, id).await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_build(&rec, &data),
        ))
    }

    pub(super) async fn fetch_build_status(&self, ctx: &Ctx, svc: &str, id: &str) -> ApiResult {
        let (rec, data) = self.build(ctx, svc, id).await?;
        let mut resp = json_response(
            StatusCode::OK,
            &json!({
                "sid": rec.sid,
                "account_sid": rec.account_sid,
                "service_sid": rec.parent_sid,
                "status": data.status.as_str(),
                "url": self.url(&format!("{}/Status", Self::build_path(&rec))),
            }),
        );
        // On one line: npm's errors span several.
        let one_line = |w: String| w.replace(|c: char| c.is_control(), " ");
        if let Some(why) = data
            .failure
            .and_then(|w| HeaderValue::from_str(&one_line(w)).ok())
        {
            resp.headers_mut().insert("sigil-build-error", why);
        }
        Ok(resp)
    }

    pub(super) async fn create_build(
        self: &Arc<Self>,
        ctx: &Ctx,
        svc: &str,
        form: &super::Params,
    ) -> ApiResult {
        let parse_sids = |name: &str| -> Result<Vec<String>, ApiError> {
            form.all(name)
                .into_iter()
                .map(|v| {
                    Prefix::Version.parse(v).ok_or_else(|| {
                        ApiError::bad_param(format!(
                            "Invalid value for parameter {name}: {v:?} is not a version SID (ZN…)"
                        ))
                    })
                })
                .collect()
        };
        let asset_sids = parse_sids("AssetVersions")?;
        let function_sids = parse_sids("FunctionVersions")?;
        if asset_sids.is_empty() && function_sids.is_empty() {
            return Err(ApiError::bad_param(
                "At least one function version or asset version is required (AssetVersions or FunctionVersions)",
            ));
        }
        let dependencies = parse_dependencies(form.get("Dependencies")).map_err(|why| {
            ApiError::bad_param(format!("Invalid value for parameter Dependencies: {why}"))
        })?;
        let runtime = match form.get("Runtime") {
            None | Some("") => DEFAULT_RUNTIME.to_owned(),
            Some(r) if valid_runtime(r) => r.to_owned(),
            Some(r) => {
                return Err(ApiError::bad_param(format!(
                    "Invalid value for parameter Runtime: {r:?} is not a runtime such as {DEFAULT_RUNTIME}"
                )))
            }
        };
        // More SIDs than any Build may hold are refused before they are looked up.
        let (most_assets, most_functions) = (MAX_PUBLIC_ASSETS + MAX_PRIVATE_ASSETS, MAX_FUNCTIONS);
        for (count, max, what) in [
            (asset_sids.len(), most_assets, "asset versions"),
            (function_sids.len(), most_functions, "function versions"),
        ] {
            if count > max {
                return Err(ApiError::bad_param(format!(
                    "A Build holds at most {max} {what}; this one has {count}"
                )));
            }
        }
        // Again when a version it names changed meanwhile (the upkeep marked it unheld).
        let (rec, data) = super::retrying(|| {
            self.build_once(
                ctx,
                svc,
                &asset_sids,
                &function_sids,
                &dependencies,
                &runtime,
            )
        })
        .await?;
        tokio::spawn(Arc::clone(self).finish_build(rec.sid.clone()));
        Ok(json_response(
            StatusCode::CREATED,
            &self.render_build(&rec, &data),
        ))
    }

    /// One attempt at recording a Build of the named versions: each is looked up and checked
    /// again in the Build's commit (a version the upkeep marked unheld is unmarked there).
    async fn build_once(
        &self,
        ctx: &Ctx,
        svc: &str,
        asset_sids: &[String],
        function_sids: &[String],
        dependencies: &[Dependency],
        runtime: &str,
    ) -> Result<(Record, BuildData), ApiError> {
        let (service, _) = self.service(ctx, svc).await?;
        let service_sid = service.sid.clone();
        let account = ctx.account.clone();
        let (a_sids, f_sids) = (asset_sids.to_vec(), function_sids.to_vec());
        let (assets, functions, checks) = self
            .db(move |s| {
                // Each SID resolves to its manifest entry if it is a version of the right kind
                // in this Service and account, else to None; each found one is checked again
                // when the Build is written (the upkeep may delete an unused version).
                let mut checks = Vec::new();
                let mut lookup =
                    |kind: Kind, sids: &[String]| -> Result<Vec<Option<Entry>>, StoreError> {
                        s.get_many(sids)?
                            .into_iter()
                            .map(|found| {
                                Ok(match found {
                                    Some(r) if r.kind == kind && r.account_sid == account => {
                                        let d: VersionData = r.decode()?;
                                        checks.push(if d.unheld_since.is_some() {
                                            // The upkeep would delete it: this commit
                                            // changes it, so that deletion's check fails.
                                            let mut held = r.clone();
                                            held.encode(&VersionData {
                                                unheld_since: None,
                                                ..d.clone()
                                            });
                                            Write::Update(held)
                                        } else {
                                            Write::check(&r)
                                        });
                                        (d.service_sid == service_sid).then(|| entry(&r, d))
                                    }
                                    _ => None,
                                })
                            })
                            .collect()
                    };
                let assets = lookup(Kind::AssetVersion, &a_sids)?;
                let functions = lookup(Kind::FunctionVersion, &f_sids)?;
                Ok((assets, functions, checks))
            })
            .await?;
        let resolve = |param: &str, sids: Vec<String>, found: Vec<Option<Entry>>| {
            sids.into_iter()
                .zip(found)
                .map(|(sid, e)| {
                    e.ok_or_else(|| {
                        ApiError::bad_param(format!(
                            "Invalid value for parameter {param}: {sid} is not a {} of Service {}",
                            if param == "AssetVersions" {
                                "Asset Version"
                            } else {
                                "Function Version"
                            },
                            service.sid
                        ))
                    })
                })
                .collect::<Result<Vec<Entry>, ApiError>>()
        };
        let asset_versions = resolve("AssetVersions", asset_sids.to_vec(), assets)?;
        let function_versions = resolve("FunctionVersions", function_sids.to_vec(), functions)?;

        let mut paths = HashSet::new();
        for e in asset_versions.iter().chain(&function_versions) {
            if !paths.insert(e.path.as_str()) {
                return Err(ApiError::bad_param(format!(
                    "Two versions in the Build have the path {}; a path may appear once",
                    e.path
                )));
            }
        }
        let private = asset_versions
            .iter()
            .filter(|e| e.visibility == Visibility::Private)
            .count();
        let limits = [
            (
                asset_versions.len() - private,
                MAX_PUBLIC_ASSETS,
                "public and protected asset versions",
            ),
            (private, MAX_PRIVATE_ASSETS, "private asset versions"),
            (function_versions.len(), MAX_FUNCTIONS, "function versions"),
        ];
        for (count, max, what) in limits {
            if count > max {
                return Err(ApiError::bad_param(format!(
                    "A Build holds at most {max} {what}; this one has {count}"
                )));
            }
        }

        let created = now();
        let data = BuildData {
            service_sid: service.sid.clone(),
            asset_versions,
            function_versions,
            dependencies: dependencies.to_vec(),
            runtime: runtime.to_owned(),
            status: BuildStatus::Building,
            failure: None,
            encodings: BTreeMap::new(),
            dependency_tree: None,
            date_updated: created,
        };
        let mut rec = Record::new(
            Kind::Build,
            Prefix::Build.generate(),
            ctx.account.clone(),
            Some(service.sid),
            &data,
        );
        rec.created = created;
        let mut writes = checks;
        writes.push(Write::Insert(rec.clone()));
        self.db(move |s| s.commit(writes)).await?;
        Ok((rec, data))
    }

    /// Moves a `building` Build to `completed` or `failed`.
    pub(super) async fn finish_build(self: Arc<Self>, sid: String) {
        if let Err(e) = self.try_finish_build(&sid).await {
            tracing::error!(build = %sid, error = %e.message, "could not finish build");
        }
    }

    async fn try_finish_build(&self, sid: &str) -> Result<(), ApiError> {
        let key = sid.to_owned();
        let Some(rec) = self.db(move |s| s.get(&key)).await? else {
            return Ok(()); // deleted meanwhile
        };
        let data: BuildData = rec.decode()?;
        if data.status != BuildStatus::Building {
            return Ok(());
        }
        let entries: Vec<Entry> = data
            .asset_versions
            .iter()
            .chain(&data.function_versions)
            .cloned()
            .collect();
        let mut missing = None;
        for e in &entries {
            match self.blobs.contains(&e.sha256, e.size).await {
                Ok(true) => {}
                Ok(false) => {
                    missing = Some(format!(
                        "the content of {} ({}, sha256 {}) is missing from blob storage",
                        e.path, e.sid, e.sha256
                    ));
                    break;
                }
                // Not a verdict on the Build: it stays `building`, to be finished later.
                Err(e) => return Err(ApiError::unavailable(e)),
            }
        }
        let mut dependency_tree = None;
        let missing = match missing {
            None if !data.function_versions.is_empty() => {
                match self.install_build_dependencies(&data.dependencies).await? {
                    Ok(tree) => {
                        dependency_tree = tree;
                        None
                    }
                    Err(why) => Some(why),
                }
            }
            other => other,
        };
        let (failure, encodings) = match missing {
            Some(why) => (Some(why), BTreeMap::new()),
            None => match self
                .precompress(&rec.account_sid, &data.service_sid, &data.asset_versions)
                .await
            {
                Ok(enc) => (None, enc),
                Err(e) => (Some(format!("could not precompress: {e}")), BTreeMap::new()),
            },
        };

        let (failure, encodings, dependency_tree) = (&failure, &encodings, &dependency_tree);
        // Conditional on the version read: of two processes finishing one Build, one writes
        // the result and the other, reading again, finds it finished.
        super::retrying(|| async move {
            let key = sid.to_owned();
            let Some(mut rec) = self.db(move |s| s.get(&key)).await? else {
                return Ok(());
            };
            let mut data: BuildData = rec.decode()?;
            if data.status != BuildStatus::Building {
                return Ok(());
            }
            match failure {
                Some(why) => tracing::warn!(build = %sid, reason = %why, "build failed"),
                None => tracing::info!(build = %sid, "build completed"),
            }
            data.status = if failure.is_some() {
                BuildStatus::Failed
            } else {
                BuildStatus::Completed
            };
            data.failure = failure.clone();
            data.encodings = encodings.clone();
            data.dependency_tree = dependency_tree.clone();
            data.date_updated = now();
            rec.encode(&data);
            self.db(move |s| s.commit(vec![Write::Update(rec)])).await
        })
        .await
    }

    /// Installs a Build's dependency set (Twilio's rules: registry packages only, `twilio`
    /// added) where the edge's workers find it, and stores it packed for edges elsewhere;
    /// the inner error (the Build's failure) says what npm said; the outer one is blob
    /// storage's, which leaves the Build `building`, to be finished later.
    async fn install_build_dependencies(
        &self,
        declared: &[Dependency],
    ) -> Result<Result<Option<BlobRef>, String>, ApiError> {
        let set = match crate::functions::deps::set(declared) {
            Ok(set) => set,
            Err(why) => {
                return Ok(Err(format!(
                    "Some dependencies could not be validated: {why}"
                )))
            }
        };
        let Some((dir, npm)) = self.dependencies.get() else {
            return Ok(Ok(None));
        };
        let installed = match crate::functions::deps::install(dir, npm, &set).await {
            Ok(installed) => installed,
            Err(why) => return Ok(Err(why)),
        };
        match crate::functions::deps::packed(&installed, &self.blobs).await {
            Ok(tree) => Ok(Ok(Some(tree))),
            Err(crate::functions::deps::PackError::Store(e)) => Err(ApiError::unavailable(e)),
            Err(crate::functions::deps::PackError::Pack(why)) => Ok(Err(why)),
        }
    }

    /// The br and gzip variants of every distinct text asset: those an earlier Build of the
    /// Service made for the same content are reused (a redeploy changes few files, and
    /// brotli at its best level is slow), the others made now.
    async fn precompress(
        &self,
        account_sid: &str,
        service_sid: &str,
        assets: &[Entry],
    ) -> Result<BTreeMap<String, Vec<Encoded>>, crate::store::BlobError> {
        let wanted: std::collections::BTreeSet<String> = assets
            .iter()
            .filter(|e| e.visibility != Visibility::Private && is_text(&e.content_type()))
            .map(|e| e.sha256.clone())
            .collect();
        let earlier = self
            .earlier_variants(account_sid, service_sid, &wanted)
            .await;
        let mut out: BTreeMap<String, Vec<Encoded>> = BTreeMap::new();
        for e in assets {
            if !wanted.contains(&e.sha256) || out.contains_key(&e.sha256) {
                continue;
            }
            if let Some(variants) = earlier.get(&e.sha256) {
                let mut all_there = true;
                for v in variants {
                    all_there &= self.blobs.contains(&v.sha256, v.size).await?;
                }
                if all_there {
                    self.variants_reused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    out.insert(e.sha256.clone(), variants.clone());
                    continue;
                }
            }
            let content = self.blobs.read(&e.sha256, e.size).await?;
            let variants =
                tokio::task::spawn_blocking(move || crate::precompress::variants(&content))
                    .await
                    .map_err(std::io::Error::other)??;
            let mut encoded = Vec::new();
            for (coding, bytes) in variants {
                let blob = self.blobs.put(&bytes).await?;
                encoded.push(Encoded {
                    coding,
                    sha256: blob.sha256,
                    size: blob.size,
                });
            }
            self.variants_made
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.insert(e.sha256.clone(), encoded);
        }
        Ok(out)
    }

    /// The variants the Service's newest Builds hold for the `wanted` digests. A failure to
    /// read them only means making the variants again.
    async fn earlier_variants(
        &self,
        account_sid: &str,
        service_sid: &str,
        wanted: &std::collections::BTreeSet<String>,
    ) -> BTreeMap<String, Vec<Encoded>> {
        #[derive(Deserialize)]
        struct Variants {
            #[serde(default)]
            encodings: BTreeMap<String, Vec<Encoded>>,
        }
        if wanted.is_empty() {
            return BTreeMap::new();
        }
        let mut query = ListQuery::children(Kind::Build, account_sid, service_sid);
        query.limit = EARLIER_BUILDS;
        let wanted = wanted.clone();
        self.db(move |s| {
            let mut found = BTreeMap::new();
            for rec in s.list(&query)? {
                for (sha256, variants) in rec.decode::<Variants>()?.encodings {
                    if wanted.contains(&sha256) && !variants.is_empty() {
                        found.entry(sha256).or_insert(variants);
                    }
                }
            }
            Ok(found)
        })
        .await
        .unwrap_or_default()
    }

    /// Finishes the Builds a previous run left `building` (call once at start).
    pub(super) async fn resume_builds(self: &Arc<Self>) -> Result<usize, StoreError> {
        // One record at a time, only its status decoded: every Build is read.
        #[derive(Deserialize)]
        struct Status {
            status: BuildStatus,
        }
        let store = Arc::clone(&self.store);
        let building = tokio::task::spawn_blocking(move || {
            let mut building = Vec::new();
            store.scan_each(Kind::Build, &mut |rec| {
                if rec.decode::<Status>()?.status == BuildStatus::Building {
                    building.push(rec.sid);
                }
                Ok(())
            })?;
            Ok::<_, StoreError>(building)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        let resumed = building.len();
        for sid in building {
            tokio::spawn(Arc::clone(self).finish_build(sid));
        }
        Ok(resumed)
    }

    pub(super) async fn delete_build(&self, ctx: &Ctx, svc: &str, id: &str) -> ApiResult {
        super::retrying(|| async move {
            let (rec, _) = self.build(ctx, svc, id).await?;
            let query = ListQuery::children(
                Kind::Environment,
                &ctx.account,
                rec.parent_sid.as_deref().unwrap_or_default(),
            );
            let envs = self.db(move |s| s.list(&query)).await?;
            // The deletion holds only if no Environment changed since it was read here: a
            // Deployment of this Build racing it either commits first (then this attempt's
            // write fails and the next finds the Build deployed) or fails itself.
            let mut writes = Vec::with_capacity(envs.len() + 1);
            for env in &envs {
                let d: EnvironmentData = env.decode()?;
                if d.build_sid.as_deref() == Some(rec.sid.as_str()) {
                    return Err(ApiError::conflict(format!(
                        "Build {} is deployed to Environment {}; deploy another Build there first",
                        rec.sid, env.sid
                    )));
                }
                writes.push(Write::check(env));
            }
            writes.push(Write::Delete(rec.sid));
            self.db(move |s| s.commit(writes)).await?;
            Ok(super::no_content())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependencies_in_every_form_clients_send() {
        let plain = r#"[{"name":"twilio","version":"3.29.2"}]"#;
        let want = vec![Dependency {
            name: "twilio".into(),
            version: "3.29.2".into(),
        }];
        assert_eq!(parse_dependencies(Some(plain)), Ok(want.clone()));
        assert_eq!(
            parse_dependencies(Some(&format!("\"{plain}\""))),
            Ok(want.clone())
        );
        let escaped = serde_json::to_string(plain).expect("json");
        assert_eq!(parse_dependencies(Some(&escaped)), Ok(want));
        assert_eq!(parse_dependencies(None), Ok(vec![]));
        assert_eq!(parse_dependencies(Some("[]")), Ok(vec![]));
        assert_eq!(parse_dependencies(Some("\"[]\"")), Ok(vec![]));
        for bad in [
            "{",
            "{}",
            "[1]",
            r#"[{"name":"x"}]"#,
            r#"[{"name":"","version":"1"}]"#,
        ] {
            assert!(parse_dependencies(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn runtimes() {
        for ok in ["node8", "node22", "node24", "node100"] {
            assert!(valid_runtime(ok), "{ok}");
        }
        for bad in ["node", "nodejs", "node22x", "python3", "node1000"] {
            assert!(!valid_runtime(bad), "{bad}");
        }
    }
}
