//! The edge's route snapshot on local disk, so that an edge restarted while PostgreSQL is
//! down serves what it served before: `DIR/routes/state.json` (the feed position, each
//! served Environment's Site without its assets, and the auth tokens that sign protected
//! requests) and one `DIR/routes/builds/{Build SID}.json` per Build (its manifest, written
//! once: Builds are immutable). Files are written under a temp name, synced and renamed, so
//! a crash leaves the previous snapshot whole; the directory and files are the owner's only
//! (the tokens are secrets).

use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::routes::{Loader, Site};
use crate::manifest::BuildManifest;

/// The snapshot's directory.
#[derive(Debug, Clone)]
pub struct Snapshot {
    dir: PathBuf,
}

/// A Site as the snapshot keeps it (its assets are its Build's file).
#[derive(Serialize, Deserialize)]
struct SavedSite {
    domain: String,
    account_sid: String,
    service_sid: String,
    environment_sid: String,
    build_sid: String,
    deployment_sid: Option<String>,
    #[serde(default)]
    deployed_at: u64,
    #[serde(default)]
    settings: super::routes::Settings,
}

#[derive(Serialize, Deserialize)]
struct State {
    position: i64,
    sites: Vec<SavedSite>,
    tokens: HashMap<String, Vec<String>>,
}

/// What a snapshot restores.
pub struct Restored {
    /// The feed position it was taken at.
    pub position: i64,
    /// Domain → Site.
    pub sites: HashMap<String, Arc<Site>>,
    /// Account SID → auth tokens.
    pub tokens: HashMap<String, Vec<String>>,
}

/// Why a snapshot could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("route snapshot {path}: {error}")]
pub struct SnapshotError {
    path: PathBuf,
    error: String,
}

/// A SID fit to be a file name (they are letters and digits).
fn file_safe(sid: &str) -> bool {
    !sid.is_empty() && sid.len() <= 64 && sid.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Snapshot {
    /// The snapshot under `dir` (`DIR/routes`), created if needed.
    pub fn open(dir: &Path) -> Result<Snapshot, SnapshotError> {
        let dir = dir.join("routes");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir.join("builds"))
            .map_err(|e| SnapshotError {
                path: dir.clone(),
                error: e.to_string(),
            })?;
        Ok(Snapshot { dir })
    }

    fn build_path(&self, build_sid: &str) -> PathBuf {
        self.dir.join("builds").join(format!("{build_sid}.json"))
    }

    /// Writes `bytes` to `path` whole or not at all (temp file, sync, rename), readable by
    /// the owner only.
    fn write_file(&self, path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
        let err = |e: std::io::Error| SnapshotError {
            path: path.to_owned(),
            error: e.to_string(),
        };
        let tmp = path.with_extension(format!("tmp{}", crate::sid::random_below(1 << 30)));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        let written = file
            .write_all(bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(err(e));
        }
        Ok(())
    }

    /// Keeps a Build's manifest (once: a Build never changes).
    pub fn keep_build(&self, build_sid: &str, manifest: &BuildManifest) {
        if !file_safe(build_sid) {
            return;
        }
        let path = self.build_path(build_sid);
        if path.exists() {
            return;
        }
        let bytes = serde_json::to_vec(manifest).expect("manifests serialise to JSON");
        if let Err(e) = self.write_file(&path, &bytes) {
            tracing::warn!(error = %e, "could not keep a Build in the route snapshot");
        }
    }

    /// Saves the table and tokens as of `position`, then removes the Builds no Site serves.
    pub fn save(
        &self,
        position: i64,
        sites: &[Arc<Site>],
        tokens: HashMap<String, Vec<String>>,
    ) -> Result<(), SnapshotError> {
        let state = State {
            position,
            sites: sites
                .iter()
                .filter(|s| file_safe(&s.build_sid))
                .map(|s| SavedSite {
                    domain: s.domain.clone(),
                    account_sid: s.account_sid.clone(),
                    service_sid: s.service_sid.clone(),
                    environment_sid: s.environment_sid.clone(),
                    build_sid: s.build_sid.clone(),
                    deployment_sid: s.deployment_sid.clone(),
                    deployed_at: s.deployed.secs,
                    settings: super::routes::Settings {
                        variables: s.variables.as_ref().clone(),
                        include_credentials: s.include_credentials,
                    },
                })
                .collect(),
            tokens,
        };
        let bytes = serde_json::to_vec(&state).expect("the state serialises to JSON");
        self.write_file(&self.dir.join("state.json"), &bytes)?;
        let live: std::collections::HashSet<String> = state
            .sites
            .iter()
            .map(|s| format!("{}.json", s.build_sid))
            .collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("builds")) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                if !live.contains(name.to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// The snapshot last saved, if there is one; Sites whose Build file is missing or damaged
    /// are left out (and logged).
    pub fn load(&self) -> Result<Option<Restored>, SnapshotError> {
        let path = self.dir.join("state.json");
        let err = |error: String| SnapshotError {
            path: path.clone(),
            error,
        };
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(e.to_string())),
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))?;
        let mut loader = Loader::default();
        let mut sites = HashMap::new();
        for saved in state.sites {
            let assets = if loader.has_build(&saved.build_sid) {
                loader.assets(&saved.build_sid, &BuildManifest::default())
            } else {
                let path = self.build_path(&saved.build_sid);
                let manifest = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        serde_json::from_slice::<BuildManifest>(&b).map_err(|e| e.to_string())
                    });
                match manifest {
                    Ok(m) => loader.assets(&saved.build_sid, &m),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "a Build of the route snapshot cannot be read");
                        continue;
                    }
                }
            };
            let code = loader.code(&saved.build_sid);
            let site = Site {
                deployed: super::routes::Modified::at(
                    i64::try_from(saved.deployed_at).unwrap_or(i64::MAX),
                ),
                domain: saved.domain,
                account_sid: saved.account_sid,
                service_sid: saved.service_sid,
                environment_sid: saved.environment_sid,
                build_sid: saved.build_sid,
                deployment_sid: saved.deployment_sid,
                code,
                assets,
                log_window: Default::default(),
                variables: Arc::new(saved.settings.variables),
                include_credentials: saved.settings.include_credentials,
            };
            sites.insert(site.domain.clone(), Arc::new(site));
        }
        Ok(Some(Restored {
            position: state.position,
            sites,
            tokens: state.tokens,
        }))
    }
}
