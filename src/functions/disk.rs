//! What the functions directory keeps for Builds that are no longer served: their
//! directories (`builds/<ZB>`) and dependency sets (`deps/<sha256>`), removed once unused
//! for [`GRACE`], so the directory does not grow with every Build ever deployed. A directory
//! is "used" while a served Build needs it; its modification time is refreshed whenever it
//! is put to use (a rollback to an old Build, a new Build of a known set), so one put to use
//! just now is never taken.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long an unused directory is kept.
pub const GRACE: Duration = Duration::from_secs(3600);

/// Marks `dir` as used now.
pub fn touch(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.set_modified(SystemTime::now());
    }
}

/// Removes from `functions_dir` the Build directories not named in `builds`, the dependency
/// sets not named in `sets` (with their `.packed` records) and the leftovers of writes
/// interrupted by a crash, each only when untouched for `grace`: how many entries went.
pub fn remove_unused(
    functions_dir: &Path,
    builds: &HashSet<String>,
    sets: &HashSet<String>,
    grace: Duration,
) -> usize {
    let mut removed = 0;
    for (sub, keep) in [("builds", builds), ("deps", sets)] {
        let Ok(entries) = std::fs::read_dir(functions_dir.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let owner = name.strip_suffix(".packed").unwrap_or(name);
            if keep.contains(owner) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= grace);
            if !old {
                continue;
            }
            let path = entry.path();
            let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match gone {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove an unused Functions directory")
                }
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aged(path: &Path, age: Duration) {
        let f = std::fs::File::open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn only_what_is_unused_and_old_goes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let hour = Duration::from_secs(3600);
        let mk = |rel: &str, age: Duration| {
            let p = dir.join(rel);
            if rel.ends_with(".packed") {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, b"{}").unwrap();
            } else {
                std::fs::create_dir_all(p.join("node_modules/x")).unwrap();
            }
            aged(&p, age);
            p
        };
        let served_build = mk("builds/ZBserved", 2 * hour);
        let old_build = mk("builds/ZBold", 2 * hour);
        let new_build = mk("builds/ZBnew", Duration::from_secs(60));
        let crashed = mk("builds/.tmp-ZBx-1", 2 * hour);
        let used_set = mk("deps/aaaa", 2 * hour);
        let used_record = mk("deps/aaaa.packed", 2 * hour);
        let old_set = mk("deps/bbbb", 2 * hour);
        let old_record = mk("deps/bbbb.packed", 2 * hour);
        let new_set = mk("deps/cccc", Duration::from_secs(60));
        let half_unpacked = mk("deps/.unpack-dddd-1", 2 * hour);

        let builds = HashSet::from(["ZBserved".to_owned()]);
        let sets = HashSet::from(["aaaa".to_owned()]);
        assert_eq!(remove_unused(dir, &builds, &sets, hour), 5);
        for kept in [&served_build, &new_build, &used_set, &used_record, &new_set] {
            assert!(kept.exists(), "{kept:?} kept");
        }
        for gone in [&old_build, &crashed, &old_set, &old_record, &half_unpacked] {
            assert!(!gone.exists(), "{gone:?} removed");
        }
        // Touched now, an old directory is young again.
        aged(&new_set, 2 * hour);
        touch(&new_set);
        assert_eq!(remove_unused(dir, &builds, &sets, hour), 0);
        assert!(new_set.exists());
        // A functions directory with nothing in it yet is no error.
        assert_eq!(remove_unused(&dir.join("absent"), &builds, &sets, hour), 0);
    }
}
