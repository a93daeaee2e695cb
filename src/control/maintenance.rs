//! Periodic upkeep, in one process at a time across a fleet (under a lease in the store):
//! request logs past their 30 days, Asset and Function Versions that no Build holds and that
//! are older than the retention (`--retention-days`, as Twilio keeps them 30 days; marked in
//! one round, deleted in a later one), the blobs
//! nothing refers to any more (local files and bucket objects, after a grace period so that a
//! blob whose record is being written stays), Builds left `building` by a process that
//! died, Console sessions past their end, and the change feed's entries older than a week.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::builds::BuildStatus;
use super::versions::VersionData;
use super::ControlPlane;
use crate::store::{Kind, StoreError, Write};

/// The lease the upkeep runs under.
pub const LEASE: &str = "maintenance";
/// How often a process tries to take the lease and run a round.
pub const EVERY: Duration = Duration::from_secs(300);
/// How long a round may hold the lease (it is taken again by its holder each round).
const LEASE_SECS: i64 = 1800;
/// Blobs placed or uploaded less than this long ago are never collected.
pub const BLOB_GRACE: Duration = Duration::from_secs(3600);
/// A Build `building` for longer than this is finished by the upkeep (its process died):
/// longer than an npm install may take (10 minutes) and its packing.
const STALE_BUILD_SECS: i64 = 900;

/// How old a round's mark on an unheld version must be before a later round deletes it:
/// two rounds apart, and more than the clocks of a fleet's processes differ (a mark is
/// stamped with its round's clock).
pub const MARK_AGE_SECS: i64 = 600;

/// How long the change feed keeps a change.
const FEED_RETENTION_SECS: i64 = 7 * 24 * 3600;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Request-log lines deleted.
    pub logs: usize,
    /// Asset and Function Versions deleted (marked by a round at least [`MARK_AGE_SECS`]
    /// earlier, still unheld).
    pub versions: usize,
    /// Asset and Function Versions marked unheld, to be deleted by a later round.
    pub versions_marked: usize,
    /// Local blob files deleted.
    pub local_blobs: usize,
    /// Bucket objects deleted.
    pub remote_blobs: usize,
    /// Builds taken over from a process that left them `building`.
    pub builds_resumed: usize,
}

/// What the upkeep needs to know of a Build.
#[derive(Deserialize)]
struct Held {
    asset_versions: Vec<HeldSid>,
    function_versions: Vec<HeldSid>,
    status: BuildStatus,
}

#[derive(Deserialize)]
struct HeldSid {
    sid: String,
}

impl ControlPlane {
    /// One round of upkeep as of `now` (Unix seconds; tests move it): Versions older than
    /// `retention_secs` that no Build holds are marked, and deleted by a round at least
    /// [`MARK_AGE_SECS`] later if they are still marked and unheld; then every blob nothing
    /// refers to that is older than `blob_grace` (by the wall clock, which stamped the
    /// files).
    pub async fn maintain(
        self: &Arc<Self>,
        now: i64,
        retention_secs: i64,
        blob_grace: Duration,
    ) -> Result<MaintenanceReport, StoreError> {
        let mut report = MaintenanceReport::default();
        let store = Arc::clone(&self.store);
        let (logs, versions, marked, stale) = tokio::task::spawn_blocking(move || {
            let logs = store.purge_before(Kind::Log, now - super::logs::RETENTION_SECS)?;
            // Console sessions past their end (they are refused from then on anyway).
            store.purge_before(Kind::ConsoleSession, now - super::sessions::TTL_SECS)?;
            // An edge that was away longer than this reads everything afresh when it is back.
            store.prune_changes(now - FEED_RETENTION_SECS)?;
            let mut held = HashSet::new();
            let mut stale = Vec::new();
            store.scan_each(Kind::Build, &mut |rec| {
                let b: Held = rec.decode()?;
                if b.status == BuildStatus::Building && rec.created < now - STALE_BUILD_SECS {
                    stale.push(rec.sid.clone());
                }
                held.extend(b.asset_versions.into_iter().map(|v| v.sid));
                held.extend(b.function_versions.into_iter().map(|v| v.sid));
                Ok(())
            })?;
            let mut unheld = Vec::new();
            for kind in [Kind::AssetVersion, Kind::FunctionVersion] {
                store.scan_each(kind, &mut |rec| {
                    if rec.created < now - retention_secs && !held.contains(&rec.sid) {
                        unheld.push(rec);
                    }
                    Ok(())
                })?;
            }
            // A version is deleted in two rounds: this one marks it (with this round's clock),
            // a later one deletes it if it is still marked, still unheld, and the mark is
            // MARK_AGE old. A Build created while a round runs is not in that round's scan;
            // one that names a marked version clears the mark in its own commit, which
            // changes the record, so the deletion's check at the version read here fails and
            // the version stays. (A check alone would not do: it writes nothing, so the
            // deletion's check would pass.) A mark younger than this round may have been made
            // by an overlapping round after this one read the Builds, and is left alone.
            let (mut versions, mut marked) = (0, 0);
            for rec in unheld {
                let data: VersionData = rec.decode()?;
                let (writes, deletes) = match data.unheld_since {
                    Some(since) if since <= now - MARK_AGE_SECS => {
                        let sid = rec.sid.clone();
                        (vec![Write::check(&rec), Write::Delete(sid)], true)
                    }
                    Some(_) => continue,
                    None => {
                        let mut mark = rec;
                        mark.encode(&VersionData {
                            unheld_since: Some(now),
                            ..data
                        });
                        (vec![Write::Update(mark)], false)
                    }
                };
                match store.commit(writes) {
                    Ok(()) if deletes => versions += 1,
                    Ok(()) => marked += 1,
                    Err(StoreError::Stale(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, StoreError>((logs, versions, marked, stale))
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        report.logs = logs;
        report.versions = versions;
        report.versions_marked = marked;
        report.builds_resumed = stale.len();
        for sid in stale {
            tokio::spawn(Arc::clone(self).finish_build(sid));
        }

        let store = Arc::clone(&self.store);
        let live = tokio::task::spawn_blocking(move || super::referenced_blobs(store.as_ref()))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        let before = SystemTime::now()
            .checked_sub(blob_grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let blobs = self.blobs.clone();
        let live = Arc::new(live);
        let local_live = Arc::clone(&live);
        report.local_blobs = tokio::task::spawn_blocking(move || {
            blobs.remove_unreferenced_before(&local_live, before)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .0;
        if let Some(remote) = self.blobs.remote() {
            report.remote_blobs = remote
                .remove_unreferenced(&live, before)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
                .0;
        }
        Ok(report)
    }

    /// Runs the upkeep every [`EVERY`] in whichever process holds the lease.
    /// Without an edge in this process, the dependency sets installed here serve only as a
    /// cache for the next Build: those untouched for [`crate::functions::disk::GRACE`] are
    /// removed (an edge sharing the directory marks what it serves as used at each of its
    /// sweeps, and cleans up itself).
    async fn remove_unused_dependency_sets(&self) {
        let Some((dir, _)) = self.dependencies.get() else {
            return;
        };
        if self.feed.is_some() {
            return;
        }
        let deps = dir.join("deps");
        let removed = tokio::task::spawn_blocking(move || {
            crate::functions::disk::remove_unused(
                &deps,
                &HashSet::new(),
                crate::functions::disk::GRACE,
            )
        })
        .await
        .unwrap_or(0);
        if removed > 0 {
            tracing::info!(removed, "unused dependency sets removed");
        }
    }

    pub fn spawn_maintenance(self: &Arc<Self>, retention_secs: i64) {
        let this = Arc::clone(self);
        let holder = crate::sid::random_hex(16);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(EVERY).await;
                this.remove_unused_dependency_sets().await;
                let (store, me) = (Arc::clone(&this.store), holder.clone());
                let now = crate::clock::now();
                let leased = tokio::task::spawn_blocking(move || {
                    store.try_lease(LEASE, &me, now, LEASE_SECS)
                })
                .await;
                match leased {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => continue,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "upkeep skipped: the store does not answer");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "upkeep lease panicked");
                        continue;
                    }
                }
                match this.maintain(now, retention_secs, BLOB_GRACE).await {
                    Ok(r) if r == MaintenanceReport::default() => {}
                    Ok(r) => tracing::info!(
                        logs = r.logs,
                        versions = r.versions,
                        versions_marked = r.versions_marked,
                        local_blobs = r.local_blobs,
                        remote_blobs = r.remote_blobs,
                        builds_resumed = r.builds_resumed,
                        "upkeep done"
                    ),
                    Err(e) => tracing::warn!(error = %e, "upkeep failed; it runs again later"),
                }
            }
        });
    }
}
