//! A Build's directory, as its workers read it: `builds/<ZB>/` under the functions directory,
//! with `functions/<version SID>.js`, `assets/<version SID>` for private assets (what
//! `Runtime.getAssets()` opens), and `node_modules` linked to its dependency set. Written
//! once from the Build's blobs into a temporary directory and renamed into place, so a
//! directory that exists is whole. Named by SID, never by a path a user chose, as Twilio's
//! runtime does (`/var/task/handlers/ZH….js`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::edge::cache::BlobCache;
use crate::edge::routes::Code;
use crate::sid::Prefix;

/// The marker written last into a whole directory.
const COMPLETE: &str = ".complete";

/// A Build's directory on disk.
#[derive(Debug)]
pub struct Tree {
    /// `builds/<ZB>`.
    pub root: PathBuf,
    /// The dependency set's directory (holds `node_modules`).
    pub deps: PathBuf,
    /// Function path → its file.
    pub functions: Vec<(String, PathBuf)>,
    /// Private asset path → its file.
    pub assets: Vec<(String, PathBuf)>,
}

/// Creates a directory (and its parents) readable by the workers' user.
pub fn make_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Makes everything under `dir` readable (not writable) by others: workers may run as
/// another user, whatever the umask sigil runs under.
pub fn open_to_workers(dir: &Path) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                // Executables (package bins) stay executable.
                let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
            }
        }
    }
    Ok(())
}

/// The directory of Build `build_sid` with `code`, written from the blobs in `cache` unless
/// it is there; `deps` is its installed dependency set.
pub async fn materialise(
    functions_dir: &Path,
    build_sid: &str,
    code: &Code,
    deps: PathBuf,
    cache: &BlobCache,
) -> Result<Tree, String> {
    let sid = Prefix::Build
        .parse(build_sid)
        .filter(|s| s == build_sid)
        .ok_or_else(|| format!("{build_sid:?} is not a Build SID"))?;
    let builds = functions_dir.join("builds");
    let root = builds.join(&sid);
    let file_of = |dir: &str, version_sid: &str| -> Result<PathBuf, String> {
        // Version SIDs are checked like the Build's: they name files.
        if Prefix::Version.parse(version_sid).as_deref() != Some(version_sid) {
            return Err(format!("{version_sid:?} is not a Version SID"));
        }
        Ok(PathBuf::from(dir).join(if dir == "functions" {
            format!("{version_sid}.js")
        } else {
            version_sid.to_owned()
        }))
    };
    let mut functions = Vec::new();
    for e in &code.functions {
        functions.push((e.path.clone(), e, file_of("functions", &e.sid)?));
    }
    let mut assets = Vec::new();
    for e in &code.private_assets {
        assets.push((e.path.clone(), e, file_of("assets", &e.sid)?));
    }
    let tree = Tree {
        root: root.clone(),
        deps: deps.clone(),
        functions: functions
            .iter()
            .map(|(p, _, f)| (p.clone(), root.join(f)))
            .collect(),
        assets: assets
            .iter()
            .map(|(p, _, f)| (p.clone(), root.join(f)))
            .collect(),
    };
    if root.join(COMPLETE).is_file() {
        super::disk::touch(&root);
        return Ok(tree);
    }
    // The bytes first (a blob may be fetched from the bucket), then the files, written off
    // the runtime's threads.
    let mut files = Vec::with_capacity(functions.len() + assets.len());
    for (_, entry, file) in functions.iter().chain(&assets) {
        let blob = cache
            .load(&entry.sha256, entry.size)
            .await
            .map_err(|e| format!("the content of {} ({}): {e}", entry.path, entry.sid))?;
        files.push((file.clone(), blob.bytes().clone()));
    }
    let tmp = builds.join(format!(".tmp-{sid}-{}", crate::sid::request_sid()));
    let write = {
        let (tmp, root) = (tmp.clone(), root.clone());
        move || -> Result<(), String> {
            make_dir(&builds).map_err(|e| format!("{}: {e}", builds.display()))?;
            for dir in ["functions", "assets"] {
                make_dir(&tmp.join(dir)).map_err(|e| e.to_string())?;
            }
            for (file, bytes) in &files {
                std::fs::write(tmp.join(file), bytes).map_err(|e| e.to_string())?;
            }
            std::os::unix::fs::symlink(deps.join("node_modules"), tmp.join("node_modules"))
                .map_err(|e| e.to_string())?;
            std::fs::write(tmp.join(COMPLETE), b"").map_err(|e| e.to_string())?;
            open_to_workers(&tmp).map_err(|e| e.to_string())?;
            match std::fs::rename(&tmp, &root) {
                Ok(()) => Ok(()),
                // Written meanwhile by another call.
                Err(_) if root.join(COMPLETE).is_file() => Ok(()),
                Err(e) => Err(format!("{}: {e}", root.display())),
            }
        }
    };
    let written = tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    written.map(|()| tree)
}

/// Whether another user (the workers') can reach `dir`: every directory above it must let
/// others pass (`o+x`); the error says which does not and what to do.
pub fn reachable_by_others(dir: &Path) -> Result<(), String> {
    let dir = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for ancestor in dir.ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor)
            .map_err(|e| format!("{}: {e}", ancestor.display()))?
            .permissions()
            .mode();
        if mode & 0o001 == 0 {
            return Err(format!(
                "Function workers run as --function-user and cannot reach {}: {} is mode {:o}; \
                 let others pass it (chmod o+x) or set --functions-dir to a directory they can reach",
                dir.display(),
                ancestor.display(),
                mode & 0o777
            ));
        }
    }
    Ok(())
}

/// Closes the data directory to the workers' user: its entries lose every permission of
/// "others", and the directory itself keeps only the right to pass through (when the
/// functions directory lies inside it) — so a Function cannot read the metadata, the blobs
/// or another account's content by file, even if it escaped Node's permission model.
pub fn keep_from_workers(data: &Path, functions_dir: &Path) -> std::io::Result<()> {
    let inside = functions_dir.starts_with(data);
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        if inside && functions_dir.starts_with(entry.path()) {
            continue;
        }
        let mode = entry.metadata()?.permissions().mode();
        if entry.file_type()?.is_symlink() {
            continue;
        }
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & !0o007))?;
    }
    let mode = std::fs::metadata(data)?.permissions().mode() & !0o007;
    let mode = if inside { mode | 0o001 } else { mode };
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_cannot_pass_is_named() {
        let top = tempfile::tempdir().unwrap();
        let inner = top.path().join("a").join("functions");
        make_dir(&inner).unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let why = reachable_by_others(&inner).unwrap_err();
        assert!(
            why.contains(&format!("{} is mode 700", top.path().display())),
            "{why}"
        );
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        reachable_by_others(&inner).unwrap();
    }

    #[test]
    fn the_data_directory_is_closed_to_others_but_its_functions() {
        let data = tempfile::tempdir().unwrap();
        let d = data.path();
        for (name, mode) in [("metadata.db", 0o644), ("blobs", 0o755)] {
            let p = d.join(name);
            if name.contains('.') {
                std::fs::write(&p, b"x").unwrap();
            } else {
                std::fs::create_dir(&p).unwrap();
            }
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        make_dir(&d.join("functions")).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        keep_from_workers(d, &d.join("functions")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(d), 0o751);
        assert_eq!(mode(&d.join("metadata.db")), 0o640);
        assert_eq!(mode(&d.join("blobs")), 0o750);
        assert_eq!(mode(&d.join("functions")), 0o755);
        // Elsewhere, the data directory is closed altogether.
        keep_from_workers(d, Path::new("/srv/functions")).unwrap();
        assert_eq!(mode(d), 0o750);
        assert_eq!(mode(&d.join("functions")), 0o750);
    }
}
