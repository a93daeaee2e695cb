//! Following the change feed: the edge learns each Deployment, Environment or Service
//! deletion and auth-token change from the metadata store's feed ([`Metadata::changes_after`]),
//! woken by LISTEN/NOTIFY where the store has it and reading every second regardless, from
//! the position it has applied — so a missed notification, a reconnect or a restart loses
//! nothing. A changed Environment is switched to its new Build only once every blob the Build
//! serves is on local disk (prefetch, then flip); one that cannot be switched yet (the bucket
//! is down, its Build record is missing) keeps serving what it served and is retried every
//! second, counted in the metrics. After each change applied, the route table and tokens are
//! saved to the route snapshot, from which a restart serves while the store is down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};

use super::routes::{Loader, RouteTable, Served, Site};
use super::snapshot::Snapshot;
use super::Edge;
use crate::store::{Kind, Metadata, StoreError};

/// How often the feed is read when nothing wakes the follower.
const POLL: Duration = Duration::from_secs(1);
/// Changes read at once.
const PAGE: u32 = 1000;
/// The route snapshot is saved at most this often (a burst of Deployments writes it once).
const SAVE_EVERY: Duration = Duration::from_secs(1);
/// Downloads in flight while prefetching a Build.
const PREFETCH_CONCURRENCY: usize = 16;

/// Where the follower stands (for `/readyz` and `/metrics`).
#[derive(Debug, Default, Clone)]
struct Status {
    /// Whether a route table is in place (read from the store or a snapshot).
    loaded: bool,
    /// The feed's head when last read.
    head: i64,
    /// The position read up to.
    read: i64,
    /// Environments not switched yet, with the position of their newest change.
    pending: BTreeMap<String, i64>,
    /// The last successful read of the store.
    last_ok: Option<Instant>,
    /// Why the last read failed (cleared by a success).
    last_error: Option<String>,
    /// Failed rounds so far.
    errors: u64,
    /// A full read is needed (start, or the feed was pruned past the position).
    needs_full: bool,
    /// The table changed since the route snapshot was last saved.
    unsaved: bool,
    /// When the route snapshot was last saved.
    saved_at: Option<Instant>,
}

/// The follower.
pub struct Follower {
    store: Arc<dyn Metadata>,
    edge: Arc<Edge>,
    snapshot: Option<Snapshot>,
    status: Mutex<Status>,
    applied: watch::Sender<i64>,
    poke: Notify,
}

fn blocking_error(e: tokio::task::JoinError) -> StoreError {
    StoreError::Backend(format!("a feed task failed: {e}"))
}

impl Follower {
    /// A follower for `edge`; with a snapshot, what it last saved is put in place at once
    /// (and the feed read on from its position).
    pub fn new(store: Arc<dyn Metadata>, edge: Arc<Edge>, snapshot: Option<Snapshot>) -> Arc<Self> {
        let mut status = Status {
            needs_full: true,
            ..Status::default()
        };
        if let Some(snap) = &snapshot {
            match snap.load() {
                Ok(Some(restored)) => {
                    tracing::info!(
                        environments = restored.sites.len(),
                        position = restored.position,
                        "route snapshot restored"
                    );
                    edge.routes.replace_all(restored.sites);
                    edge.tokens.replace(restored.tokens);
                    status.loaded = true;
                    status.needs_full = false;
                    status.read = restored.position;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "route snapshot not restored"),
            }
        }
        let (applied, _) = watch::channel(status.read);
        Arc::new(Follower {
            store,
            edge,
            snapshot,
            status: Mutex::new(status),
            applied,
            poke: Notify::new(),
        })
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the feed once now (at start, so the edge serves a loaded table from its first
    /// request when the store is up).
    pub async fn first_round(&self) -> Result<(), StoreError> {
        let done = self.round().await.inspect_err(|e| self.failed(e));
        self.save_if_due().await;
        done
    }

    /// Follows the feed until the process ends.
    pub async fn run(self: Arc<Self>) {
        let mut wakeups = self.store.feed_wakeups();
        loop {
            {
                let wake = async {
                    match &mut wakeups {
                        Some(w) => {
                            if w.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = wake => {}
                    () = self.poke.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            if let Err(e) = self.round().await {
                self.failed(&e);
            }
            self.save_if_due().await;
        }
    }

    /// Saves the route snapshot if the table changed and the last save is [`SAVE_EVERY`] ago.
    async fn save_if_due(&self) {
        let due = {
            let mut status = self.status();
            let due = status.unsaved && status.saved_at.is_none_or(|t| t.elapsed() >= SAVE_EVERY);
            if due {
                status.unsaved = false;
                status.saved_at = Some(Instant::now());
            }
            due
        };
        if due {
            self.save().await;
        }
    }

    fn failed(&self, e: &StoreError) {
        let mut status = self.status();
        status.errors += 1;
        let text = e.to_string();
        if status.last_error.as_deref() != Some(text.as_str()) {
            tracing::warn!(error = %text, "the change feed cannot be read; serving the routes in place");
        }
        status.last_error = Some(text);
    }

    /// Wakes the follower to read the feed now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// Waits until every change up to `position` is applied, at most `within`: whether it was.
    pub async fn applied_up_to(&self, position: i64, within: Duration) -> bool {
        self.poke();
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(within, applied.wait_for(|p| *p >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The position applied up to: everything at or before it is served.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Metadata) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(store.as_ref()))
            .await
            .map_err(blocking_error)?
    }

    fn keeper(&self) -> impl FnMut(&str, &crate::manifest::BuildManifest) + Send + 'static {
        let snapshot = self.snapshot.clone();
        move |sid, manifest| {
            if let Some(s) = &snapshot {
                s.keep_build(sid, manifest);
            }
        }
    }

    /// One round: a full read if one is needed, else every change after the position read.
    async fn round(&self) -> Result<(), StoreError> {
        let needs_full = self.status().needs_full;
        if needs_full {
            return self.full().await;
        }
        loop {
            let read = self.status().read;
            let page = self.blocking(move |s| s.changes_after(read, PAGE)).await?;
            {
                let mut status = self.status();
                status.head = page.head;
                status.last_ok = Some(Instant::now());
                status.last_error = None;
            }
            // Pruned past this position, or behind it: another (or a restored) database.
            if page.gap || page.head < read {
                tracing::info!(
                    position = read,
                    head = page.head,
                    "the feed does not follow on from this edge's position: reading everything"
                );
                self.status().needs_full = true;
                return self.full().await;
            }
            let Some(last) = page.changes.last().map(|c| c.position) else {
                // Nothing new; Environments left pending are tried again.
                return self.switch(BTreeMap::new(), read).await;
            };
            let mut environments = BTreeMap::new();
            let mut accounts = false;
            for change in &page.changes {
                match change.kind {
                    Kind::Environment => {
                        environments.insert(change.sid.clone(), change.position);
                    }
                    Kind::Account | Kind::ApiKey => accounts = true,
                    _ => {}
                }
            }
            if accounts {
                let tokens = Arc::clone(&self.edge.tokens);
                self.blocking(move |s| tokens.refresh(s)).await?;
            }
            self.switch(environments, last).await?;
            if page.changes.len() < PAGE as usize {
                return Ok(());
            }
        }
    }

    /// Reads everything: the whole table and every token, as of the head read first (so
    /// changes made during the read are applied again after it, harmlessly).
    async fn full(&self) -> Result<(), StoreError> {
        let keep = self.keeper();
        let routes = Arc::clone(&self.edge.routes);
        let tokens = Arc::clone(&self.edge.tokens);
        let (head, sites, broken) = self
            .blocking(move |s| {
                let head = s.changes_after(i64::MAX, 0)?.head;
                tokens.refresh(s)?;
                let mut keep = keep;
                let mut loader = Loader::from_table(&routes);
                let (sites, broken) = RouteTable::read_all(s, &mut loader, &mut keep)?;
                Ok((head, sites, broken))
            })
            .await?;
        let n = sites.len();
        // No prefetch here: a cold edge fills on first request (one download per digest).
        let mut ready = sites;
        let mut pending = BTreeMap::new();
        for (sid, e) in &broken {
            tracing::error!(environment = %sid, error = %e, "an Environment cannot be served; retried every second");
            pending.insert(sid.clone(), head);
        }
        // Sites left pending keep what they served.
        for sid in pending.keys() {
            if let Some(site) = self.edge.routes.of_environment(sid) {
                ready.insert(site.domain.clone(), site);
            }
        }
        self.edge.routes.replace_all(ready);
        tracing::info!(environments = n, position = head, "route table loaded");
        {
            let mut status = self.status();
            status.loaded = true;
            status.needs_full = false;
            status.read = head;
            status.head = head;
            status.pending = pending;
            status.last_ok = Some(Instant::now());
            status.last_error = None;
        }
        self.applied_now();
        self.status().unsaved = true;
        Ok(())
    }

    /// Switches these Environments (and those pending) to what they serve now; those whose
    /// Builds cannot be fetched yet stay pending. Then the position read is `read`.
    async fn switch(
        &self,
        mut environments: BTreeMap<String, i64>,
        read: i64,
    ) -> Result<(), StoreError> {
        let retrying = self.status().pending.clone();
        for (sid, position) in retrying {
            environments.entry(sid).or_insert(position);
        }
        if environments.is_empty() {
            self.status().read = read;
            self.applied_now();
            return Ok(());
        }
        let keep = self.keeper();
        let routes = Arc::clone(&self.edge.routes);
        let sids: Vec<String> = environments.keys().cloned().collect();
        let outcomes = self
            .blocking(move |s| {
                let mut keep = keep;
                let mut loader = Loader::from_table(&routes);
                let mut out = Vec::with_capacity(sids.len());
                for sid in sids {
                    match RouteTable::read(s, &mut loader, &sid, &mut keep) {
                        Err(e @ (StoreError::Unavailable(_) | StoreError::Backend(_))) => {
                            return Err(e)
                        }
                        other => out.push((sid, other)),
                    }
                }
                Ok(out)
            })
            .await?;
        let mut ready: Vec<Served> = Vec::new();
        let mut pending = BTreeMap::new();
        for (sid, outcome) in outcomes {
            let position = environments.get(&sid).copied().unwrap_or(read);
            let was_pending = self.status().pending.contains_key(&sid);
            match outcome {
                Ok(Some(site)) if !self.prefetch(&site, !was_pending).await => {
                    pending.insert(sid, position);
                }
                Ok(site) => ready.push((sid, site)),
                Err(e) => {
                    if !was_pending {
                        tracing::error!(environment = %sid, error = %e, "an Environment cannot be switched; retried every second");
                    }
                    pending.insert(sid, position);
                }
            }
        }
        let switched = ready.len();
        self.edge.routes.apply(ready);
        {
            let mut status = self.status();
            status.pending = pending;
            status.read = read;
        }
        self.applied_now();
        if switched > 0 {
            tracing::info!(environments = switched, position = read, "routes switched");
            self.status().unsaved = true;
        }
        Ok(())
    }

    /// Fetches every blob a Site serves that is not on disk yet: whether all are there. A
    /// failure is logged when `say` (the first time, not at every retry).
    async fn prefetch(&self, site: &Site, say: bool) -> bool {
        if !self.edge.cache.has_remote() {
            return true;
        }
        let mut wanted: Vec<(&str, u64)> = Vec::new();
        for asset in site.assets.values() {
            if asset.is_function || asset.visibility == crate::manifest::Visibility::Private {
                continue;
            }
            for rep in std::iter::once(&asset.identity).chain(&asset.encoded) {
                wanted.push((&rep.sha256, rep.size));
            }
        }
        // What its Functions run with, so that they too run on when the bucket is away.
        if let Some(code) = &site.code {
            let entries = code.functions.iter().chain(&code.private_assets);
            wanted.extend(entries.map(|e| (e.sha256.as_str(), e.size)));
            // The packed dependency tree, unless its set is unpacked here already (the next
            // Build of a known set does not fetch it again, however long ago it left the disk
            // cache).
            if let Some(tree) = &code.dependency_tree {
                if !self.edge.dependencies_unpacked(code) {
                    wanted.push((&tree.sha256, tree.size));
                }
            }
        }
        wanted.sort_unstable();
        wanted.dedup();
        let cache = &self.edge.cache;
        let mut failures = Vec::new();
        let mut inflight = futures_util::stream::FuturesUnordered::new();
        let mut wanted = wanted.into_iter();
        loop {
            while inflight.len() < PREFETCH_CONCURRENCY {
                let Some((sha256, size)) = wanted.next() else {
                    break;
                };
                inflight.push(cache.ensure_local(sha256, size));
            }
            match inflight.next().await {
                Some(Ok(())) => {}
                Some(Err(e)) => failures.push(e.to_string()),
                None => break,
            }
        }
        if let Some(first) = failures.first() {
            if !say {
                return false;
            }
            tracing::warn!(
                environment = %site.environment_sid,
                build = %site.build_sid,
                missing = failures.len(),
                error = %first,
                "a Build's blobs are not all here yet; it serves once they are"
            );
            return false;
        }
        true
    }

    /// Publishes the position applied up to: just before the oldest change still pending.
    fn applied_now(&self) {
        let position = {
            let status = self.status();
            status
                .pending
                .values()
                .min()
                .map_or(status.read, |p| (p - 1).min(status.read))
        };
        self.applied.send_if_modified(|p| {
            let moved = *p != position;
            *p = position;
            moved
        });
    }

    async fn save(&self) {
        let Some(snapshot) = self.snapshot.clone() else {
            return;
        };
        let position = self.applied();
        let sites = self.edge.routes.sites();
        let tokens = self.edge.tokens.export();
        let saved =
            tokio::task::spawn_blocking(move || snapshot.save(position, &sites, tokens)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "route snapshot not saved"),
            Err(e) => tracing::warn!(error = %e, "route snapshot not saved"),
        }
    }

    /// `/readyz`: ready (a table is in place and the feed is read), degraded (serving the
    /// table in place, stale), or not ready (nothing loaded yet); with a line saying why.
    pub fn readiness(&self) -> (bool, String) {
        let status = self.status();
        if !status.loaded {
            return (
                false,
                format!(
                    "starting: no route table yet ({})",
                    status.last_error.as_deref().unwrap_or("reading the store")
                ),
            );
        }
        let age = status.last_ok.map(|t| t.elapsed());
        match (&status.last_error, status.pending.len()) {
            (Some(e), _) => (
                true,
                format!(
                    "degraded: serving the routes in place; the change feed cannot be read ({e}){}",
                    age.map(|a| format!(", last read {} s ago", a.as_secs()))
                        .unwrap_or_default()
                ),
            ),
            (None, 0) => (true, "ready".to_owned()),
            (None, n) => (
                true,
                format!("degraded: {n} Environments wait for their Builds' content"),
            ),
        }
    }

    /// The follower's lines of `/metrics`.
    pub fn render_metrics(&self) -> String {
        let status = self.status().clone();
        let applied = self.applied();
        let age = status.last_ok.map_or(-1.0, |t| t.elapsed().as_secs_f64());
        format!(
            "# TYPE sigil_feed_head gauge\nsigil_feed_head {}\n\
             # TYPE sigil_feed_applied gauge\nsigil_feed_applied {applied}\n\
             # TYPE sigil_feed_lag gauge\nsigil_feed_lag {}\n\
             # TYPE sigil_feed_last_read_seconds gauge\nsigil_feed_last_read_seconds {age:.3}\n\
             # TYPE sigil_feed_errors_total counter\nsigil_feed_errors_total {}\n\
             # TYPE sigil_feed_pending_environments gauge\nsigil_feed_pending_environments {}\n\
             # TYPE sigil_feed_degraded gauge\nsigil_feed_degraded {}\n",
            status.head,
            (status.head - applied).max(0),
            status.errors,
            status.pending.len(),
            u8::from(status.last_error.is_some() || !status.pending.is_empty() || !status.loaded),
        )
    }
}
