//! `sigil deploy` and friends: deploy a Serverless Toolkit project, list deployments, roll
//! back, promote — over HTTP against any sigil (or anything speaking the Serverless v1 API),
//! like any other client.
//!
//! Unchanged files are not uploaded again: the versions in the Environment's active Build are
//! matched by kind, path, visibility and content sha256 (sigil sends a version's sha256 in a
//! `Sigil-Content-Sha256` header; without it every file is uploaded).

pub mod client;
pub mod project;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde_json::Value;

use self::client::{Client, ClientError};
use self::project::{FileKind, LocalFile, ProjectError};
use crate::control::versions::CONTENT_SHA256;
use crate::manifest::Visibility;

/// Why a deploy (or rollback, promote) failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The project could not be read.
    #[error(transparent)]
    Project(#[from] ProjectError),
    /// An API call failed; `what` names the step and the file. (The answer is part of the
    /// message, not a `source`: printing the chain would say it twice.)
    #[error("{what}: {error}")]
    Api {
        /// The step.
        what: String,
        /// The API's answer.
        error: ClientError,
    },
    /// Something the user must fix.
    #[error("{0}")]
    Usage(String),
    /// The Build failed or did not finish.
    #[error("build {build} {reason}")]
    Build {
        /// Its SID.
        build: String,
        /// What happened.
        reason: String,
    },
}

fn api(what: impl Into<String>) -> impl FnOnce(ClientError) -> DeployError {
    let what = what.into();
    move |error| DeployError::Api { what, error }
}

fn s(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

/// What to deploy where.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The project directory.
    pub dir: PathBuf,
    /// Service unique name (default: package.json `name`).
    pub service: Option<String>,
    /// Environment domain suffix; empty is production.
    pub environment: String,
    /// Runtime for the Build (default: the server's).
    pub runtime: Option<String>,
    /// Uploads at once.
    pub concurrency: usize,
}

/// One deployed file.
#[derive(Debug, Clone)]
pub struct DeployedFile {
    /// Served at.
    pub path: String,
    /// Who may fetch it.
    pub visibility: Visibility,
    /// Asset or function.
    pub kind: FileKind,
    /// Uploaded now (false: its version was reused).
    pub uploaded: bool,
}

/// What a deploy did.
#[derive(Debug)]
pub struct DeployReport {
    /// The Service.
    pub service_sid: String,
    /// The Environment.
    pub environment_sid: String,
    /// Its host name.
    pub domain_name: String,
    /// The Build now active.
    pub build_sid: String,
    /// False when nothing changed and the active Build stayed.
    pub deployed: bool,
    /// Every file.
    pub files: Vec<DeployedFile>,
}

/// What `/` serves after a deploy. Twilio's rule, which the edge follows: the asset at `/`,
/// else the one at `/assets/index.html` (a toolkit project's `assets/assets/index.html`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootPage {
    /// `/` is served.
    Served,
    /// `/` is not served, but `/index.html` is (the usual first layout, `assets/index.html`).
    IndexHtmlOnly,
    /// Neither.
    Missing,
}

impl RootPage {
    /// The root page of a set of deployed files.
    pub fn of(files: &[DeployedFile]) -> RootPage {
        let has = |path: &str| {
            files
                .iter()
                .any(|f| f.kind == FileKind::Asset && f.path == path)
        };
        if has("/") || has("/assets/index.html") {
            RootPage::Served
        } else if has("/index.html") {
            RootPage::IndexHtmlOnly
        } else {
            RootPage::Missing
        }
    }

    /// The page to open, relative to the site's root URL.
    pub fn path(self) -> &'static str {
        match self {
            RootPage::IndexHtmlOnly => "index.html",
            RootPage::Served | RootPage::Missing => "",
        }
    }

    /// What to do when `/` is not served.
    pub fn advice(self) -> Option<&'static str> {
        match self {
            RootPage::Served => None,
            RootPage::IndexHtmlOnly => Some(
                "/ is not served: as on Twilio, the root page is the asset at \
                 /assets/index.html (or /), and this project has /index.html; to serve it at /, \
                 move assets/index.html to assets/assets/index.html and deploy again",
            ),
            RootPage::Missing => Some(
                "/ is not served: as on Twilio, the root page is the asset at \
                 /assets/index.html (or /); add assets/assets/index.html and deploy again",
            ),
        }
    }
}

impl DeployReport {
    /// What `/` serves now.
    pub fn root(&self) -> RootPage {
        RootPage::of(&self.files)
    }
}

/// The toolkit's Environment naming: `{suffix}-environment`, or `production` for none.
fn environment_unique_name(suffix: &str) -> String {
    if suffix.is_empty() {
        "production".to_owned()
    } else {
        format!("{suffix}-environment")
    }
}

/// Finds the Service by unique name, creating it when `create`.
async fn service(client: &Client, name: &str, create: bool) -> Result<Value, DeployError> {
    if let Some(svc) = client
        .find(&format!("/Services/{name}"))
        .await
        .map_err(api(format!("looking up Service {name}")))?
    {
        return Ok(svc);
    }
    if !create {
        return Err(DeployError::Usage(format!("no Service named {name}")));
    }
    client
        .post("/Services", &[("UniqueName", name), ("FriendlyName", name)])
        .await
        .map_err(api(format!("creating Service {name}")))
}

/// Finds the Environment by domain suffix (empty: the one without), creating it when `create`.
async fn environment(
    client: &Client,
    svc: &str,
    suffix: &str,
    create: bool,
) -> Result<Value, DeployError> {
    let envs = client
        .list(&format!("/Services/{svc}/Environments"))
        .await
        .map_err(api("listing Environments"))?;
    let found = envs
        .into_iter()
        .find(|e| match e["domain_suffix"].as_str() {
            Some(x) => x.eq_ignore_ascii_case(suffix),
            None => suffix.is_empty(),
        });
    if let Some(env) = found {
        return Ok(env);
    }
    let label = if suffix.is_empty() {
        "production"
    } else {
        suffix
    };
    if !create {
        return Err(DeployError::Usage(format!(
            "no Environment {label} in Service {svc}"
        )));
    }
    let unique = environment_unique_name(suffix);
    let mut form = vec![("UniqueName", unique.as_str())];
    if !suffix.is_empty() {
        form.push(("DomainSuffix", suffix));
    }
    client
        .post(&format!("/Services/{svc}/Environments"), &form)
        .await
        .map_err(api(format!("creating Environment {label}")))
}

type VersionKey = (FileKind, String, Visibility, String);

/// The versions of a Build, keyed by what makes them reusable, with their SIDs.
async fn build_versions(
    client: &Client,
    svc: &str,
    build: &Value,
) -> Result<HashMap<VersionKey, String>, DeployError> {
    let mut wanted = Vec::new();
    for (kind, field, segment, parent) in [
        (FileKind::Asset, "asset_versions", "Assets", "asset_sid"),
        (
            FileKind::Function,
            "function_versions",
            "Functions",
            "function_sid",
        ),
    ] {
        for v in build[field].as_array().into_iter().flatten() {
            let Some(vis) = v["visibility"].as_str().and_then(Visibility::parse) else {
                continue;
            };
            let url = format!(
                "/Services/{svc}/{segment}/{}/Versions/{}",
                s(v, parent),
                s(v, "sid")
            );
            wanted.push((kind, s(v, "path"), vis, s(v, "sid"), url));
        }
    }
    let found: Vec<Option<(VersionKey, String)>> = stream::iter(wanted)
        .map(|(kind, path, vis, sid, url)| async move {
            // A version deleted since (with its Asset or Function) is simply not reused.
            match client.get_with_headers(&url).await {
                Ok((headers, _)) => Ok(headers
                    .get(CONTENT_SHA256)
                    .and_then(|h| h.to_str().ok())
                    .map(|sha| ((kind, path, vis, sha.to_owned()), sid))),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(api("reading the active Build's versions")(e)),
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await?;
    Ok(found.into_iter().flatten().collect())
}

fn key(f: &LocalFile) -> VersionKey {
    (f.kind, f.path.clone(), f.visibility, f.sha256.clone())
}

fn segment(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Asset => "Assets",
        FileKind::Function => "Functions",
    }
}

/// Deploys the project; `progress(file, done, total)` is told of each finished upload.
pub async fn deploy(
    client: &Client,
    opts: &DeployOptions,
    progress: impl Fn(&LocalFile, usize, usize) + Sync,
) -> Result<DeployReport, DeployError> {
    let project = project::load(&opts.dir)?;
    let name = opts
        .service
        .clone()
        .or(project.name.clone())
        .ok_or_else(|| {
            DeployError::Usage("no --service given and no name in package.json".into())
        })?;
    let svc = service(client, &name, true).await?;
    let svc_sid = s(&svc, "sid");
    let env = environment(client, &svc_sid, &opts.environment, true).await?;
    let env_sid = s(&env, "sid");

    let active = match env["build_sid"].as_str() {
        Some(b) => Some(
            client
                .get(&format!("/Services/{svc_sid}/Builds/{b}"))
                .await
                .map_err(api("reading the active Build"))?,
        ),
        None => None,
    };
    let reusable = match &active {
        Some(b) => build_versions(client, &svc_sid, b).await?,
        None => HashMap::new(),
    };

    // Assets and Functions are matched by friendly name (= path), as the toolkit does.
    let mut parents: HashMap<(FileKind, String), String> = HashMap::new();
    for kind in [FileKind::Asset, FileKind::Function] {
        if !project
            .files
            .iter()
            .any(|f| f.kind == kind && !reusable.contains_key(&key(f)))
        {
            continue;
        }
        for r in client
            .list(&format!("/Services/{svc_sid}/{}", segment(kind)))
            .await
            .map_err(api(format!("listing {}", segment(kind))))?
        {
            parents
                .entry((kind, s(&r, "friendly_name")))
                .or_insert_with(|| s(&r, "sid"));
        }
    }
    let mut to_upload = Vec::new();
    for f in &project.files {
        if reusable.contains_key(&key(f)) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) =
            parents.entry((f.kind, f.path.clone()))
        {
            let created = client
                .post(
                    &format!("/Services/{svc_sid}/{}", segment(f.kind)),
                    &[("FriendlyName", &f.path)],
                )
                .await
                .map_err(api(format!(
                    "creating the resource for {}",
                    f.source.display()
                )))?;
            slot.insert(s(&created, "sid"));
        }
        to_upload.push(f);
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let total = to_upload.len();
    let uploaded: Vec<(VersionKey, String)> = stream::iter(to_upload.iter().copied())
        .map(|f| {
            let parent = parents[&(f.kind, f.path.clone())].clone();
            let (svc_sid, done, progress, total) = (&svc_sid, &done, &progress, total);
            async move {
                let what = format!("uploading {} as {}", f.source.display(), f.path);
                let content = tokio::fs::read(&f.source)
                    .await
                    .map_err(|e| DeployError::Usage(format!("{what}: {e}")))?;
                let filename = f
                    .source
                    .file_name()
                    .map_or_else(|| "file".to_owned(), |n| n.to_string_lossy().into_owned());
                let v = client
                    .upload(
                        &format!("/Services/{svc_sid}/{}/{parent}/Versions", segment(f.kind)),
                        &f.path,
                        f.visibility.as_str(),
                        content,
                        filename,
                        &f.content_type,
                    )
                    .await
                    .map_err(api(what))?;
                progress(
                    f,
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1,
                    total,
                );
                Ok::<_, DeployError>((key(f), s(&v, "sid")))
            }
        })
        .buffer_unordered(opts.concurrency.max(1))
        .try_collect()
        .await?;
    let uploaded: HashMap<VersionKey, String> = uploaded.into_iter().collect();

    let mut assets = BTreeSet::new();
    let mut functions = BTreeSet::new();
    let mut files = Vec::new();
    for f in &project.files {
        let k = key(f);
        let (sid, fresh) = match uploaded.get(&k) {
            Some(sid) => (sid.clone(), true),
            None => (reusable[&k].clone(), false),
        };
        match f.kind {
            FileKind::Asset => assets.insert(sid),
            FileKind::Function => functions.insert(sid),
        };
        files.push(DeployedFile {
            path: f.path.clone(),
            visibility: f.visibility,
            kind: f.kind,
            uploaded: fresh,
        });
    }
    let dependencies: Vec<Value> = project
        .dependencies
        .iter()
        .map(|(n, v)| serde_json::json!({"name": n, "version": v}))
        .collect();

    // Nothing changed: the active Build already holds exactly these versions.
    if let Some(b) = &active {
        let sids = |field: &str| -> BTreeSet<String> {
            b[field]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| s(v, "sid"))
                .collect()
        };
        let same_deps = b["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            == dependencies.as_slice();
        let same_runtime = opts.runtime.as_deref().is_none_or(|r| b["runtime"] == r);
        if sids("asset_versions") == assets
            && sids("function_versions") == functions
            && same_deps
            && same_runtime
        {
            return Ok(DeployReport {
                service_sid: svc_sid,
                environment_sid: env_sid,
                domain_name: s(&env, "domain_name"),
                build_sid: s(b, "sid"),
                deployed: false,
                files,
            });
        }
    }

    let deps_json = serde_json::to_string(&dependencies).expect("JSON serialises");
    let mut form: Vec<(&str, &str)> = Vec::new();
    form.extend(assets.iter().map(|a| ("AssetVersions", a.as_str())));
    form.extend(functions.iter().map(|f| ("FunctionVersions", f.as_str())));
    form.push(("Dependencies", &deps_json));
    if let Some(r) = &opts.runtime {
        form.push(("Runtime", r));
    }
    let build = client
        .post(&format!("/Services/{svc_sid}/Builds"), &form)
        .await
        .map_err(api("creating the Build"))?;
    let build_sid = s(&build, "sid");
    wait_for_build(client, &svc_sid, &build_sid).await?;
    client
        .post(
            &format!("/Services/{svc_sid}/Environments/{env_sid}/Deployments"),
            &[("BuildSid", &build_sid)],
        )
        .await
        .map_err(api("deploying the Build"))?;
    Ok(DeployReport {
        service_sid: svc_sid,
        environment_sid: env_sid,
        domain_name: s(&env, "domain_name"),
        build_sid,
        deployed: true,
        files,
    })
}

/// Polls Build Status until it is no longer `building` (5 minutes at most).
async fn wait_for_build(client: &Client, svc: &str, build: &str) -> Result<(), DeployError> {
    for _ in 0..600 {
        let st = client
            .get(&format!("/Services/{svc}/Builds/{build}/Status"))
            .await
            .map_err(api("waiting for the Build"))?;
        match st["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed") => {
                return Err(DeployError::Build {
                    build: build.to_owned(),
                    reason: "failed (see the server log for the reason)".into(),
                })
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    Err(DeployError::Build {
        build: build.to_owned(),
        reason: "did not finish within 5 minutes".into(),
    })
}

/// One line of `sigil deployments`.
#[derive(Debug)]
pub struct DeploymentLine {
    /// The Deployment.
    pub sid: String,
    /// Its Build.
    pub build_sid: String,
    /// When.
    pub date_created: String,
    /// Whether this Deployment is what the Environment serves now.
    pub active: bool,
}

/// An Environment's Deployments, newest first, the active one marked.
pub async fn deployments(
    client: &Client,
    service_name: &str,
    suffix: &str,
) -> Result<(Value, Vec<DeploymentLine>), DeployError> {
    let svc = service(client, service_name, false).await?;
    let env = environment(client, &s(&svc, "sid"), suffix, false).await?;
    let list = client
        .list(&format!(
            "/Services/{}/Environments/{}/Deployments",
            s(&svc, "sid"),
            s(&env, "sid")
        ))
        .await
        .map_err(api("listing Deployments"))?;
    let active_build = env["build_sid"].as_str().map(str::to_owned);
    let mut marked = false;
    let lines = list
        .iter()
        .map(|d| {
            let build_sid = s(d, "build_sid");
            let active = !marked && active_build.as_deref() == Some(build_sid.as_str());
            marked |= active;
            DeploymentLine {
                sid: s(d, "sid"),
                build_sid,
                date_created: s(d, "date_created"),
                active,
            }
        })
        .collect();
    Ok((env, lines))
}

/// Re-deploys `to`, or the Build deployed before the active one. Returns the Build deployed.
pub async fn rollback(
    client: &Client,
    service_name: &str,
    suffix: &str,
    to: Option<&str>,
) -> Result<String, DeployError> {
    let (env, lines) = deployments(client, service_name, suffix).await?;
    let active = env["build_sid"].as_str().unwrap_or_default().to_owned();
    let target = match to {
        Some(b) => b.to_owned(),
        None => lines
            .iter()
            .skip_while(|l| !l.active)
            .find(|l| l.build_sid != active)
            .map(|l| l.build_sid.clone())
            .ok_or_else(|| DeployError::Usage("no earlier Build to roll back to".into()))?,
    };
    if target == active {
        return Err(DeployError::Usage(format!(
            "{target} is already the active Build"
        )));
    }
    client
        .post(
            &format!(
                "/Services/{}/Environments/{}/Deployments",
                s(&env, "service_sid"),
                s(&env, "sid")
            ),
            &[("BuildSid", &target)],
        )
        .await
        .map_err(api(format!("deploying {target}")))?;
    Ok(target)
}

/// Deploys the Build active in `from` to `to` (created if missing). Returns (Build, target
/// Environment).
pub async fn promote(
    client: &Client,
    service_name: &str,
    from: &str,
    to: &str,
) -> Result<(String, Value), DeployError> {
    let svc = service(client, service_name, false).await?;
    let svc_sid = s(&svc, "sid");
    let source = environment(client, &svc_sid, from, false).await?;
    let build = source["build_sid"]
        .as_str()
        .ok_or_else(|| DeployError::Usage(format!("nothing is deployed in {from:?}")))?
        .to_owned();
    let target = environment(client, &svc_sid, to, true).await?;
    if target["build_sid"].as_str() == Some(build.as_str()) {
        return Err(DeployError::Usage(format!(
            "{build} is already active in {to:?}"
        )));
    }
    client
        .post(
            &format!(
                "/Services/{svc_sid}/Environments/{}/Deployments",
                s(&target, "sid")
            ),
            &[("BuildSid", &build)],
        )
        .await
        .map_err(api(format!("deploying {build}")))?;
    Ok((build, target))
}
