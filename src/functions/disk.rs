//! What the functions directory keeps for Builds that are no longer served: their
//! directories (`builds/<ZB>`) and dependency sets (`deps/<sha256>`), removed once unused
//! for [`GRACE`], so the directory does not grow with every Build ever deployed. "Unused"
//! is read from the modification time: every sweep marks what its process serves as used
//! now, and a directory is also marked whenever it is put to use (a rollback to an old Build,
//! a new Build of a known set). So several processes may share one functions directory: each
//! keeps what it serves young, and only what none has used for an hour goes.

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

/// In `dir` (`builds/` or `deps/` of a functions directory): marks the entries named in
/// `keep` as used now, then removes the others untouched for `grace` — and the leftovers of
/// writes interrupted by a crash — each first renamed aside, so that it vanishes at once
/// rather than file by file. How many went.
pub fn remove_unused(dir: &Path, keep: &HashSet<String>, grace: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let path = entry.path();
        if keep.contains(name) {
            touch(&path);
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= grace);
        if !old && !name.starts_with(".gone-") {
            continue;
        }
        let gone = if name.starts_with(".gone-") {
            path.clone()
        } else {
            dir.join(format!(".gone-{name}"))
        };
        let result = std::fs::rename(&path, &gone).and_then(|()| {
            if gone.is_dir() {
                std::fs::remove_dir_all(&gone)
            } else {
                std::fs::remove_file(&gone)
            }
        });
        match result {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove an unused Functions directory")
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
    fn only_what_is_unused_and_old_goes_and_what_is_kept_is_young_again() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let hour = Duration::from_secs(3600);
        let mk = |name: &str, age: Duration| {
            let p = dir.join(name);
            std::fs::create_dir_all(p.join("node_modules/x")).unwrap();
            std::fs::write(p.join("node_modules/x/index.js"), b"1").unwrap();
            aged(&p, age);
            p
        };
        let kept = mk("ZBserved", 2 * hour);
        let old = mk("ZBold", 2 * hour);
        let young = mk("ZBnew", Duration::from_secs(60));
        let crashed = mk(".tmp-ZBx-1", 2 * hour);
        let half_removed = mk(".gone-ZBy", Duration::from_secs(1));
        let file = dir.join(".pack-RQ1");
        std::fs::write(&file, b"x").unwrap();
        aged(&file, 2 * hour);

        let keep = HashSet::from(["ZBserved".to_owned()]);
        assert_eq!(remove_unused(dir, &keep, hour), 4);
        assert!(kept.exists() && young.exists());
        for gone in [&old, &crashed, &half_removed, &file] {
            assert!(!gone.exists(), "{gone:?} removed");
        }
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".gone-")), "{names:?}");
        // What is kept was marked used: unkept, it stays another hour.
        assert_eq!(remove_unused(dir, &HashSet::new(), hour), 0);
        assert!(kept.exists());
        // Touched now, an old directory is young again.
        aged(&young, 2 * hour);
        touch(&young);
        assert_eq!(remove_unused(dir, &HashSet::new(), hour), 0);
        // A directory that is not there yet is no error.
        assert_eq!(remove_unused(&dir.join("absent"), &keep, hour), 0);
    }
}
