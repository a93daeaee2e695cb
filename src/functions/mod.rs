//! Running deployed Functions: Twilio's handler contract in supervised Node workers.
//!
//! The edge decides access (public, protected by signature, private never) before any of this
//! runs; here a call gets its `event` ([`event`]), a place under the Environment's concurrency
//! cap, its Build's directory ([`tree`], with the dependency set [`deps`] installed), and an
//! idle worker of its (Environment, Build) pool or a new one ([`worker`]) under the host's cap
//! on live workers — never a process per request. The call has `--function-timeout`; past it
//! the answer is 504 and the worker is killed. A worker that dies (an uncaught exception, the
//! memory cap) fails only its own call (500) and is not reused. Pools of Builds no longer
//! deployed are retired: idle workers end at once, busy ones after their call.

pub mod cookies;
pub mod deps;
pub mod disk;
pub mod event;
pub mod tree;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{Notify, OnceCell, Semaphore};

use self::tree::Tree;
use self::worker::{CallError, Slot, Spawn, Worker};
use crate::edge::access::Tokens;
use crate::edge::cache::BlobCache;
use crate::edge::routes::{EdgeAsset, RouteTable, Site};
use crate::logsink::LogSink;
use crate::Body;

/// sigil's runner, written to the functions directory at start.
const RUNNER_JS: &str = include_str!("runner.js");
/// A call waits this long at most for a place under the Environment's cap (then 429), and
/// again for a worker under the host's (then 503).
const QUEUE_WAIT: Duration = Duration::from_secs(2);
/// Idle workers end after this long unused.
const IDLE: Duration = Duration::from_secs(300);
/// How often pools are looked over.
const SWEEP: Duration = Duration::from_secs(5);
/// Every how many sweeps unused directories are looked for (10 minutes).
const DISK_SWEEP_ROUNDS: u64 = 120;

/// Functions settings (`sigil serve` flags).
#[derive(Debug, Clone)]
pub struct FunctionsConfig {
    /// Where Build directories and dependency sets live.
    pub dir: PathBuf,
    /// The `node` binary.
    pub node: PathBuf,
    /// The `npm` binary.
    pub npm: PathBuf,
    /// Longest call.
    pub timeout: Duration,
    /// Memory cap per worker, MiB.
    pub memory_mb: u64,
    /// Calls at once per Environment.
    pub concurrency: usize,
    /// Workers alive at once on this host, busy and idle (`--function-workers`).
    pub workers: usize,
    /// User and group workers run as, when sigil runs as root.
    pub user: Option<(u32, u32)>,
    /// Why Functions cannot run here at all (sigil runs as root and has no user for them).
    pub unavailable: Option<String>,
    /// Stack traces in error replies.
    pub debug: bool,
}

type PoolKey = (String, String);

/// The idle workers of one (Environment, Build).
struct Pool {
    idle: Mutex<Vec<Worker>>,
    retired: std::sync::atomic::AtomicBool,
    /// Told when a worker comes back idle (the runtime's: calls waiting for a worker look again).
    freed: Arc<Notify>,
}

impl Pool {
    fn new(freed: Arc<Notify>) -> Pool {
        Pool {
            idle: Mutex::default(),
            retired: Default::default(),
            freed,
        }
    }

    fn take(&self) -> Option<Worker> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn give_back(&self, worker: Worker) {
        if self.retired.load(std::sync::atomic::Ordering::Acquire) {
            return worker.kill();
        }
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(worker);
        self.freed.notify_waiters();
    }

    fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::Release);
        for w in self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            w.kill();
        }
    }
}

/// A request for a Function, its access decided.
pub struct Call<'a> {
    /// Its method, target and headers.
    pub parts: &'a http::request::Parts,
    /// Its body, read whole.
    pub body: Bytes,
    /// `http` or `https`, as the client asked.
    pub scheme: &'a str,
    /// The host it named (with the port, if it gave one).
    pub authority: &'a str,
}

/// The Functions runtime of an edge.
pub struct Functions {
    config: FunctionsConfig,
    spawn: Option<Spawn>,
    /// The Node each Build `Runtime` runs on (found once).
    runtimes: Mutex<HashMap<String, Spawn>>,
    routes: Arc<RouteTable>,
    tokens: Arc<Tokens>,
    logs: Arc<LogSink>,
    trees: Mutex<HashMap<String, Arc<OnceCell<Arc<Tree>>>>>,
    /// Held (shared) while a Build's directory is made, and (alone) while unused ones are
    /// removed: what is being made is never taken.
    disk: tokio::sync::RwLock<()>,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Places for workers under the host's cap; each worker holds one while it lives.
    slots: Arc<Semaphore>,
    /// Told when a worker goes idle or ends: calls waiting for a worker look again.
    freed: Arc<Notify>,
    sweeping: std::sync::Once,
    started: AtomicU64,
    timeouts: AtomicU64,
    deaths: AtomicU64,
    over_cap: AtomicU64,
    evicted: AtomicU64,
    over_workers: AtomicU64,
}

/// `program` as an absolute path: as given when it names a directory, else found on `PATH`
/// (workers start with an empty environment).
fn on_path(program: &std::path::Path) -> Result<PathBuf, String> {
    if program.components().count() > 1 {
        return Ok(program.to_path_buf());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{} is not on PATH", program.display()))
}

/// A Node.js binary as workers run it: its absolute path, major version and permission-model
/// flag (`--permission` from Node 22, `--experimental-permission` on 20.11 to 21); an error
/// for an older Node or one that cannot be run.
fn node_info(program: &std::path::Path) -> Result<(PathBuf, u32, &'static str), String> {
    let node = on_path(program)?;
    let out = std::process::Command::new(&node)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|e| format!("{}: {e}", node.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut numbers = text.trim().trim_start_matches('v').split('.');
    let mut next = || numbers.next().and_then(|n| n.parse::<u32>().ok());
    let (Some(major), Some(minor)) = (next(), next()) else {
        return Err(format!("{} --version said {text:?}", node.display()));
    };
    let flag = match (major, minor) {
        (22.., _) => "--permission",
        (21, _) | (20, 11..) => "--experimental-permission",
        _ => {
            return Err(format!(
                "{} is Node {major}.{minor}; Functions need 20.11 or newer",
                node.display()
            ))
        }
    };
    Ok((node, major, flag))
}

impl Functions {
    /// The runtime; Node is looked for now, and its absence makes every call a 503 that
    /// says so (the edge serves on).
    pub fn new(
        config: FunctionsConfig,
        routes: Arc<RouteTable>,
        tokens: Arc<Tokens>,
        logs: Arc<LogSink>,
    ) -> Functions {
        let runner = config.dir.join("runner.js");
        let usable = match &config.unavailable {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        };
        let spawn =
            usable
                .and_then(|()| node_info(&config.node))
                .and_then(|(node, major, flag)| {
                    tree::make_dir(&config.dir).map_err(|e| e.to_string())?;
                    if config.user.is_some() {
                        tree::reachable_by_others(&config.dir)?;
                    }
                    write_runner(&runner).map_err(|e| format!("{}: {e}", runner.display()))?;
                    Ok(Spawn {
                        node,
                        major,
                        permission_flag: flag,
                        runner,
                        memory_mb: config.memory_mb,
                        user: config.user,
                        debug: config.debug,
                    })
                });
        let spawn = match spawn {
            Ok(s) => Some(s),
            Err(why) => {
                tracing::error!(error = %why, "Functions cannot run: every Function call will answer 503");
                None
            }
        };
        Functions {
            spawn,
            routes,
            tokens,
            logs,
            runtimes: Mutex::default(),
            trees: Mutex::default(),
            disk: tokio::sync::RwLock::new(()),
            pools: Mutex::default(),
            gates: Mutex::default(),
            slots: Arc::new(Semaphore::new(config.workers)),
            freed: Arc::new(Notify::new()),
            sweeping: std::sync::Once::new(),
            started: Default::default(),
            timeouts: Default::default(),
            deaths: Default::default(),
            over_cap: Default::default(),
            evicted: Default::default(),
            over_workers: Default::default(),
            config,
        }
    }

    /// The Prometheus lines of the Functions runtime.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        crate::edge::metrics::write_families(
            &mut out,
            "counter",
            &[
                (
                    "sigil_function_workers_started_total",
                    "Node workers started for Functions.",
                    self.started.load(Relaxed),
                ),
                (
                    "sigil_function_timeouts_total",
                    "Function calls past --function-timeout (504; the worker killed).",
                    self.timeouts.load(Relaxed),
                ),
                (
                    "sigil_function_worker_deaths_total",
                    "Function calls whose worker died (500): an uncaught exception, the memory cap.",
                    self.deaths.load(Relaxed),
                ),
                (
                    "sigil_function_over_concurrency_total",
                    "Function calls refused over --function-concurrency (429).",
                    self.over_cap.load(Relaxed),
                ),
                (
                    "sigil_function_workers_evicted_total",
                    "Idle Node workers ended to make room under --function-workers.",
                    self.evicted.load(Relaxed),
                ),
                (
                    "sigil_function_over_workers_total",
                    "Function calls refused with every worker under --function-workers busy (503).",
                    self.over_workers.load(Relaxed),
                ),
            ],
        );
        let live = self.config.workers - self.slots.available_permits();
        crate::edge::metrics::write_families(
            &mut out,
            "gauge",
            &[
                (
                    "sigil_function_workers_idle",
                    "Warm Node workers waiting for a call.",
                    self.idle_workers(),
                ),
                (
                    "sigil_function_workers",
                    "Node workers alive, busy and idle (at most --function-workers).",
                    live,
                ),
                (
                    "sigil_function_workers_max",
                    "--function-workers: Node workers alive at most (given, or what fits in memory).",
                    self.config.workers,
                ),
            ],
        );
        out
    }

    /// Whether the dependency set `code` declares is installed or unpacked here already: then
    /// its packed tree need not be fetched before the Build is served.
    pub fn dependencies_unpacked(&self, code: &crate::edge::routes::Code) -> bool {
        deps::set(&code.dependencies)
            .is_ok_and(|set| deps::unpacked(&self.config.dir, &set).is_some())
    }

    /// Runs the Function `asset` of `site` for a request whose access is decided; the Build's
    /// files come from `cache`.
    pub async fn call(
        self: &Arc<Self>,
        cache: &BlobCache,
        site: &Arc<Site>,
        asset: &EdgeAsset,
        call: Call<'_>,
    ) -> Response<Body> {
        let Call {
            parts,
            body,
            scheme,
            authority,
        } = call;
        self.sweeper();
        let Some(code) = site.code.as_ref() else {
            return problem(StatusCode::NOT_FOUND, "no such Function in this Build");
        };
        let Some(spawn) = self.spawn_for(&code.runtime) else {
            return problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Functions cannot run here: Node.js is not available (see sigil's log)",
            );
        };
        let event = match event::build(parts.uri.query(), &parts.headers, &body) {
            Ok(e) => e,
            Err(event::EventError::BadJson) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "the JSON body is not a JSON object",
                )
            }
            Err(event::EventError::BadForm) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "the form body is not UTF-8 after percent-decoding",
                )
            }
        };
        let gate = self.gate(&site.environment_sid);
        let Ok(Ok(_place)) = tokio::time::timeout(QUEUE_WAIT, gate.acquire_owned()).await else {
            self.over_cap.fetch_add(1, Relaxed);
            let mut resp = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "too many calls to this Environment's Functions at once (--function-concurrency)",
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return resp;
        };
        let tree = match self.tree(cache, site, code).await {
            Ok(t) => t,
            Err(why) => {
                tracing::error!(build = %site.build_sid, error = %why, "a Build's Functions cannot be prepared");
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the Build's Functions could not be prepared (see sigil's log)",
                );
            }
        };
        let Some(file) = tree
            .functions
            .iter()
            .find(|(p, _)| *p == asset.path)
            .map(|(_, f)| f.clone())
        else {
            return problem(StatusCode::NOT_FOUND, "no such Function in this Build");
        };
        let mut log = |level: &str, message: String| self.log(site, asset, level, message);
        let pool = self.pool(site);
        let mut worker = match self.worker(&pool, &spawn, &tree, &mut log).await {
            Ok(w) => w,
            Err(resp) => return resp,
        };
        let context = self.context(site, &parts.uri, authority);
        let result = worker
            .call(
                &asset.path,
                &file,
                Value::Object(event),
                context,
                self.config.timeout,
                &mut log,
            )
            .await;
        match result {
            Ok(reply) => {
                pool.give_back(worker);
                reply_response(reply, scheme == "https")
            }
            Err(CallError::Timeout) => {
                self.timeouts.fetch_add(1, Relaxed);
                worker.kill();
                log(
                    "error",
                    format!(
                        "runtime application timed out after {:?}",
                        self.config.timeout
                    ),
                );
                problem(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the Function did not finish in time (--function-timeout)",
                )
            }
            Err(CallError::Died(error)) => {
                self.deaths.fetch_add(1, Relaxed);
                worker.kill();
                log("error", worker::describe(&error));
                let shown = if self.config.debug {
                    error
                } else {
                    json!({"message": error.get("message"), "name": error.get("name")})
                };
                json_response(StatusCode::INTERNAL_SERVER_ERROR, &shown)
            }
        }
    }

    /// An idle worker of `pool`, else a new one under the host's cap (`--function-workers`):
    /// past it the worker idle longest, in any pool, ends to make room, and with every worker
    /// busy the call waits up to [`QUEUE_WAIT`] for one to go idle or end (then 503).
    async fn worker(
        &self,
        pool: &Pool,
        spawn: &Spawn,
        tree: &Tree,
        log: &mut (dyn FnMut(&str, String) + Send),
    ) -> Result<Worker, Response<Body>> {
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        let slot = loop {
            // Listening before looking: what is freed between the two is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(w) = pool.take() {
                return Ok(w);
            }
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                break Slot::new(permit, Arc::clone(&self.freed));
            }
            if let Some(w) = self.longest_idle() {
                self.evicted.fetch_add(1, Relaxed);
                w.kill();
                continue;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                self.over_workers.fetch_add(1, Relaxed);
                let mut resp = problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "every Function worker of this host is busy (--function-workers)",
                );
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(resp);
            }
        };
        match Worker::start(spawn, tree, self.config.timeout, slot, log).await {
            Ok(w) => {
                self.started.fetch_add(1, Relaxed);
                Ok(w)
            }
            Err(why) => {
                // The reason (paths of this host among it) goes to the Logs, not the caller.
                log("error", why);
                Err(problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the Function's worker could not start (see the Environment's Logs)",
                ))
            }
        }
    }

    /// Takes the worker idle longest, over every pool (to end it).
    fn longest_idle(&self) -> Option<Worker> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let (pool, _) = pools
                .values()
                .filter_map(|pool| {
                    let idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                    let since = idle.iter().map(|w| w.idle_since).min()?;
                    Some((pool, since))
                })
                .min_by_key(|(_, since)| *since)?;
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            // (A call may have taken it since: then look again.)
            if let Some(at) = (0..idle.len()).min_by_key(|&i| idle[i].idle_since) {
                return Some(idle.remove(at));
            }
        }
    }

    /// The Node a Build's `Runtime` runs on: `nodeNN` from `PATH` when there is one of that
    /// major version (an operator installs or links it), else `--node` — said once per
    /// Runtime when that is another version.
    fn spawn_for(&self, runtime: &str) -> Option<Spawn> {
        let base = self.spawn.as_ref()?;
        let mut runtimes = self.runtimes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = runtimes.get(runtime) {
            return Some(s.clone());
        }
        let wanted = runtime
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok());
        let own = wanted.filter(|&w| w != base.major).and_then(|w| {
            node_info(std::path::Path::new(runtime))
                .ok()
                .filter(|i| i.1 == w)
        });
        let chosen = match own {
            Some((node, major, flag)) => Spawn {
                node,
                major,
                permission_flag: flag,
                ..base.clone()
            },
            None => {
                if wanted.is_some_and(|w| w != base.major) {
                    tracing::warn!(
                        runtime,
                        node = %base.node.display(),
                        major = base.major,
                        "no `{runtime}` on PATH: Builds with this Runtime run on the Node of --node"
                    );
                }
                base.clone()
            }
        };
        runtimes.insert(runtime.to_owned(), chosen.clone());
        Some(chosen)
    }

    /// `context` without `getTwilioClient` (the runner adds it): the built-in values, then
    /// the Variables (a Variable may replace one, as on Twilio), then the credentials.
    fn context(&self, site: &Site, uri: &http::Uri, authority: &str) -> Value {
        let mut context = serde_json::Map::new();
        context.insert("DOMAIN_NAME".into(), authority.into());
        context.insert("PATH".into(), uri.path().into());
        context.insert("SERVICE_SID".into(), site.service_sid.clone().into());
        context.insert(
            "ENVIRONMENT_SID".into(),
            site.environment_sid.clone().into(),
        );
        for (k, v) in site.variables.iter() {
            context.insert(k.clone(), v.clone().into());
        }
        if site.include_credentials {
            if let Some(token) = self.tokens.primary(&site.account_sid) {
                context.insert("ACCOUNT_SID".into(), site.account_sid.clone().into());
                context.insert("AUTH_TOKEN".into(), token.into());
            }
        }
        Value::Object(context)
    }

    fn log(&self, site: &Site, asset: &EdgeAsset, level: &str, message: String) {
        let level = match level {
            "warn" | "error" => level,
            _ => "info",
        };
        tracing::info!(target: "sigil::function", site = %site.domain, function = %asset.path, level, "{message}");
        site.log(&self.logs, level, || message, asset.function_sid.clone());
    }

    fn gate(&self, environment_sid: &str) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            gates
                .entry(environment_sid.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.config.concurrency))),
        )
    }

    fn pool(&self, site: &Site) -> Arc<Pool> {
        let key = (site.environment_sid.clone(), site.build_sid.clone());
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            pools
                .entry(key)
                .or_insert_with(|| Arc::new(Pool::new(Arc::clone(&self.freed)))),
        )
    }

    async fn tree(
        &self,
        cache: &BlobCache,
        site: &Site,
        code: &crate::edge::routes::Code,
    ) -> Result<Arc<Tree>, String> {
        let cell = {
            let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(trees.entry(site.build_sid.clone()).or_default())
        };
        cell.get_or_try_init(|| async {
            let _making = self.disk.read().await;
            let set = deps::set(&code.dependencies)?;
            let dir = deps::obtain(
                &self.config.dir,
                &self.config.npm,
                &set,
                code.dependency_tree.as_ref(),
                cache,
            )
            .await?;
            tree::materialise(&self.config.dir, &site.build_sid, code, dir, cache)
                .await
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    /// Starts the task that retires pools of Builds no longer served and ends idle workers.
    fn sweeper(self: &Arc<Self>) {
        self.sweeping.call_once(|| {
            let weak: Weak<Functions> = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(SWEEP);
                for round in 0u64.. {
                    tick.tick().await;
                    let Some(functions) = weak.upgrade() else {
                        return;
                    };
                    functions.sweep();
                    if round % DISK_SWEEP_ROUNDS == DISK_SWEEP_ROUNDS - 1 {
                        let _ =
                            tokio::task::spawn_blocking(move || functions.remove_unused()).await;
                    }
                }
            });
        });
    }

    /// Removes the Build directories and dependency sets no served Build uses
    /// ([`disk::remove_unused`]); on a blocking thread. Skipped while a Build's directory is
    /// being made (it runs again at the next round).
    fn remove_unused(&self) {
        let Ok(_alone) = self.disk.try_write() else {
            return;
        };
        let mut builds = HashSet::new();
        let mut sets = HashSet::new();
        let mut keep_set = |dir: &std::path::Path| {
            if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
                sets.insert(name.to_owned());
            }
        };
        for site in self.routes.sites().iter() {
            builds.insert(site.build_sid.clone());
            if let Some(set) = site
                .code
                .as_ref()
                .and_then(|c| deps::set(&c.dependencies).ok())
            {
                keep_set(&deps::dir_of(&self.config.dir, &set));
            }
        }
        // Pools still draining, and trees made for them.
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        builds.extend(pools.keys().map(|(_, build)| build.clone()));
        drop(pools);
        for (build, cell) in self.trees.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            builds.insert(build.clone());
            if let Some(tree) = cell.get() {
                keep_set(&tree.deps);
            }
        }
        let removed = disk::remove_unused(&self.config.dir.join("builds"), &builds, disk::GRACE)
            + disk::remove_unused(&self.config.dir.join("deps"), &sets, disk::GRACE);
        if removed > 0 {
            tracing::info!(
                removed,
                "unused Build directories and dependency sets removed"
            );
        }
    }

    fn sweep(&self) {
        let sites = self.routes.sites();
        let served: std::collections::HashSet<(&str, &str)> = sites
            .iter()
            .map(|s| (s.environment_sid.as_str(), s.build_sid.as_str()))
            .collect();
        let builds: std::collections::HashSet<&str> = served.iter().map(|k| k.1).collect();
        let environments: std::collections::HashSet<&str> = served.iter().map(|k| k.0).collect();
        // What was kept for Builds and Environments no longer served.
        self.trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|build, _| builds.contains(build.as_str()));
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|env, _| environments.contains(env.as_str()));
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.retain(|(environment, build), pool| {
            if !served.contains(&(environment.as_str(), build.as_str())) {
                pool.retire();
                return false;
            }
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let (stale, fresh): (Vec<Worker>, Vec<Worker>) =
                idle.drain(..).partition(|w| w.idle_since.elapsed() > IDLE);
            *idle = fresh;
            for w in stale {
                w.kill();
            }
            true
        });
    }

    /// Workers idle now, over every pool.
    fn idle_workers(&self) -> usize {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools
            .values()
            .map(|p| p.idle.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

fn write_runner(path: &std::path::Path) -> std::io::Result<()> {
    if std::fs::read(path).is_ok_and(|b| b == RUNNER_JS.as_bytes()) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", crate::sid::request_sid()));
    std::fs::write(&tmp, RUNNER_JS)?;
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

/// Response headers a Function may not set: the connection's, and those sigil sets.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "date",
    "server",
];

/// The HTTP response for a runner's reply: cookies as Twilio sends them (a lifetime over a
/// day is a 400, as there), and a header that is not valid HTTP left out.
fn reply_response(reply: worker::Reply, https: bool) -> Response<Body> {
    let body = if reply.base64 {
        use base64::Engine as _;
        match base64::engine::general_purpose::STANDARD.decode(reply.body.as_bytes()) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                return problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the Function's body was damaged",
                )
            }
        }
    } else {
        Bytes::from(reply.body)
    };
    let status = StatusCode::from_u16(reply.status)
        .ok()
        .filter(|s| (200..600).contains(&s.as_u16()))
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = Response::new(Body::new(body));
    *resp.status_mut() = status;
    for (name, value) in reply.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            continue;
        };
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = if name == header::SET_COOKIE {
            let Ok(text) = value.to_str() else { continue };
            match cookies::as_sent(text, https, std::time::SystemTime::now()) {
                Ok(v) => match HeaderValue::from_str(&v) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                Err(why) => return problem(StatusCode::BAD_REQUEST, why),
            }
        } else {
            value
        };
        resp.headers_mut().append(name, value);
    }
    resp
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// An error sigil answers for a Function: `{message, name}` as Twilio's runtime does.
fn problem(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({"message": message, "name": "SigilError"}))
}
