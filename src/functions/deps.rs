//! A Build's npm dependencies, installed once per set: `deps/<sha256 of the set>/node_modules`
//! under the functions directory, shared by every Build that declares the same set. The set
//! is what the Build declares plus `twilio` when it names none (Twilio adds it); the
//! `@twilio/runtime-handler` entry is left out, since sigil's runner stands in for it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::edge::cache::BlobCache;
use crate::manifest::{BlobRef, Dependency};
use crate::store::BlobStore;

/// The `twilio` version a Build gets when it declares none.
pub const DEFAULT_TWILIO: &str = "^5";
/// Longest an `npm install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of npm's error output a failed Build reports.
const ERROR_CHARS: usize = 1500;
/// Most bytes a packed tree may unpack to, and most entries it may hold: a tree that says
/// more is refused rather than allowed to fill the disk.
const MAX_UNPACKED: u64 = 2 << 30;
const MAX_ENTRIES: usize = 500_000;

/// Why a dependency is refused before npm is asked: only packages from the public
/// registry, by name and version range (Twilio's rule; a `file:`, git or URL version would
/// read the host's files or other sources at Build time).
pub fn check(dep: &Dependency) -> Result<(), String> {
    let name_ok = {
        let bare = match dep.name.strip_prefix('@') {
            // An empty scope fails `ok` below.
            Some(scoped) => scoped.split_once('/'),
            None => Some(("x", dep.name.as_str())),
        };
        bare.is_some_and(|(scope, name)| {
            let ok = |s: &str| {
                !s.is_empty()
                    && !s.starts_with('.')
                    && s.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._~".contains(&b)
                    })
            };
            ok(scope) && ok(name) && dep.name.len() <= 214
        })
    };
    if !name_ok {
        return Err(format!("{:?} is not an npm package name", dep.name));
    }
    let version_ok = !dep.version.is_empty()
        && dep.version.len() <= 256
        && dep
            .version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" .-+^~<>=|*x".contains(&b));
    if !version_ok {
        return Err(format!(
            "{}@{:?}: only version ranges from the npm registry are allowed (no file:, git or URL)",
            dep.name, dep.version
        ));
    }
    Ok(())
}

/// The set installed for `declared`: checked, `twilio` added, runtime-handler left out,
/// sorted and without duplicates.
pub fn set(declared: &[Dependency]) -> Result<Vec<Dependency>, String> {
    let mut set: Vec<Dependency> = declared
        .iter()
        .filter(|d| d.name != "@twilio/runtime-handler")
        .map(|d| {
            let version = if d.version.trim().is_empty() {
                "*".to_owned()
            } else {
                d.version.trim().to_owned()
            };
            Dependency {
                name: d.name.clone(),
                version,
            }
        })
        .collect();
    for d in &set {
        check(d)?;
    }
    if !set.iter().any(|d| d.name == "twilio") {
        set.push(Dependency {
            name: "twilio".into(),
            version: DEFAULT_TWILIO.into(),
        });
    }
    set.sort();
    set.dedup_by(|a, b| a.name == b.name);
    Ok(set)
}

/// The directory of a set: `deps/<sha256 of its package.json>`.
pub fn dir_of(functions_dir: &Path, set: &[Dependency]) -> PathBuf {
    let digest = Sha256::digest(package_json(set));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    functions_dir.join("deps").join(hex)
}

/// The directory of `set` when it is installed or unpacked here (a set's `node_modules` is
/// renamed into place whole, so one that exists is complete).
pub fn unpacked(functions_dir: &Path, set: &[Dependency]) -> Option<PathBuf> {
    let dir = dir_of(functions_dir, set);
    dir.join("node_modules").is_dir().then_some(dir)
}

fn package_json(set: &[Dependency]) -> Vec<u8> {
    let deps: serde_json::Map<String, serde_json::Value> = set
        .iter()
        .map(|d| (d.name.clone(), d.version.clone().into()))
        .collect();
    serde_json::to_vec_pretty(&serde_json::json!({
        "name": "sigil-build",
        "private": true,
        "dependencies": deps,
    }))
    .expect("a JSON object serialises")
}

/// Installs `set` with npm unless it is installed: the directory that holds its
/// `node_modules`. Installed into a temporary directory and renamed into place, so a
/// directory that exists is whole; a failure says what npm said.
pub async fn install(
    functions_dir: &Path,
    npm: &Path,
    set: &[Dependency],
) -> Result<PathBuf, String> {
    if let Some(dir) = unpacked(functions_dir, set) {
        super::disk::touch(&dir);
        return Ok(dir);
    }
    let dir = dir_of(functions_dir, set);
    let tmp = temp_beside(&dir, "tmp")?;
    let result = async {
        super::tree::make_dir(&tmp).map_err(|e| e.to_string())?;
        std::fs::write(tmp.join("package.json"), package_json(set)).map_err(|e| e.to_string())?;
        let run = tokio::process::Command::new(npm)
            .args([
                "install",
                "--omit=dev",
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--no-package-lock",
                "--loglevel=error",
            ])
            .current_dir(&tmp)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(INSTALL_TIMEOUT, run)
            .await
            .map_err(|_| format!("npm install took longer than {INSTALL_TIMEOUT:?}"))?
            .map_err(|e| format!("npm could not be run ({}): {e}", npm.display()))?;
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stderr);
            let text = text.trim();
            let tail: String = text
                .chars()
                .rev()
                .take(ERROR_CHARS)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(format!("npm install failed ({}): {tail}", out.status));
        }
        // Thousands of files: off the runtime's threads.
        let (from, to) = (tmp.clone(), dir.clone());
        tokio::task::spawn_blocking(move || {
            super::tree::open_to_workers(&from).map_err(|e| e.to_string())?;
            place(&from, &to)
        })
        .await
        .map_err(|e| e.to_string())?
    }
    .await;
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| dir)
}

/// Why a tree was not packed.
#[derive(Debug)]
pub enum PackError {
    /// The tree cannot be packed (too large for edges to unpack, unreadable): the Build
    /// fails, saying this.
    Pack(String),
    /// Blob storage failed, or the set vanished meanwhile: try again later.
    Store(String),
}

/// The packed form of the set installed at `dir` (its `node_modules`), stored in `blobs`
/// (and so in the bucket, in a fleet): what travels to edges that did not install it. The
/// same tree packs to the same bytes, so a Build of a known set stores nothing new — and
/// storing it again refreshes the blob against the collection's grace period.
pub async fn packed(dir: &Path, blobs: &BlobStore) -> Result<BlobRef, PackError> {
    // Written to a file beside the sets (never whole in memory), then streamed into the
    // blob store.
    let tmp = temp_beside(dir, "pack").map_err(PackError::Pack)?;
    let result = async {
        let (from, to) = (dir.to_path_buf(), tmp.clone());
        tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&to)?;
            pack_into(&from, file, MAX_UNPACKED, MAX_ENTRIES)
        })
        .await
        .map_err(|e| PackError::Pack(e.to_string()))?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => PackError::Store(format!(
                "the dependency set was removed while it was packed: {e}"
            )),
            _ => PackError::Pack(format!("could not pack the dependency tree: {e}")),
        })?;
        let store = |e: crate::store::BlobError| PackError::Store(e.to_string());
        let mut file = tokio::fs::File::open(&tmp)
            .await
            .map_err(|e| PackError::Store(e.to_string()))?;
        let mut writer = blobs.writer(u64::MAX).await.map_err(store)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf)
                .await
                .map_err(|e| PackError::Store(e.to_string()))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await.map_err(store)?;
        }
        let stored = writer.finish().await.map_err(store)?;
        Ok(BlobRef {
            sha256: stored.sha256,
            size: stored.size,
        })
    }
    .await;
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Packs `dir/node_modules` into `out` as a gzipped tar: directories and regular files only
/// (npm's `.bin` links are left out: workers may not spawn processes), in name order, with
/// fixed owners, modes and times, so the same tree packs to the same bytes and blob. A tree
/// over `max_bytes` or `max_entries` — more than an edge would unpack — is refused.
fn pack_into(
    dir: &Path,
    out: impl std::io::Write,
    max_bytes: u64,
    max_entries: usize,
) -> std::io::Result<()> {
    let too_large = || {
        std::io::Error::other(format!(
            "the installed dependency tree is larger than edges unpack ({max_bytes} bytes or \
             {max_entries} entries)"
        ))
    };
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let (mut bytes, mut count) = (0u64, 0usize);
    let mut stack = vec![PathBuf::from("node_modules")];
    while let Some(rel) = stack.pop() {
        count += 1;
        if count > max_entries {
            return Err(too_large());
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_mtime(0);
        header.set_size(0);
        tar.append_data(&mut header, &rel, std::io::empty())?;
        let mut entries: Vec<(std::ffi::OsString, std::fs::FileType)> =
            std::fs::read_dir(dir.join(&rel))?
                .map(|e| e.and_then(|e| Ok((e.file_name(), e.file_type()?))))
                .collect::<std::io::Result<_>>()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Directories go on the stack in reverse, so they come out in name order.
        for (name, kind) in entries.iter().rev() {
            let path = rel.join(name);
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let file = std::fs::File::open(dir.join(&path))?;
                let meta = file.metadata()?;
                count += 1;
                bytes += meta.len();
                if count > max_entries || bytes > max_bytes {
                    return Err(too_large());
                }
                let mut header = tar::Header::new_ustar();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if meta.permissions().mode() & 0o111 != 0 {
                    0o755
                } else {
                    0o644
                });
                header.set_mtime(0);
                header.set_size(meta.len());
                tar.append_data(&mut header, &path, file)?;
            }
        }
    }
    tar.into_inner()?.finish()?.flush()
}

/// Unpacks a tree [`pack_into`] made into `dir` (which then holds `node_modules`): into a
/// temporary directory, then renamed into place, so a directory that exists is whole. Only
/// directories and regular files under `node_modules/` by plain relative names are
/// accepted, within [`MAX_UNPACKED`] bytes and [`MAX_ENTRIES`] entries.
fn unpack(packed: &[u8], dir: &Path) -> Result<(), String> {
    unpack_within(packed, dir, MAX_UNPACKED, MAX_ENTRIES)
}

/// [`unpack`] with the limits given.
fn unpack_within(
    packed: &[u8],
    dir: &Path,
    max_bytes: u64,
    max_entries: usize,
) -> Result<(), String> {
    let tmp = temp_beside(dir, "unpack")?;
    let result = (|| {
        super::tree::make_dir(&tmp).map_err(|e| e.to_string())?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(packed));
        let (mut bytes, mut count) = (0u64, 0usize);
        for entry in archive.entries().map_err(|e| e.to_string())? {
            let mut entry = entry.map_err(|e| format!("a damaged dependency tree: {e}"))?;
            let path = entry.path().map_err(|e| e.to_string())?.into_owned();
            let plain = path.starts_with("node_modules")
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            let kind = entry.header().entry_type();
            if !plain || !(kind.is_dir() || kind.is_file()) {
                return Err(format!(
                    "the dependency tree holds {} ({kind:?}), which it may not",
                    path.display()
                ));
            }
            count += 1;
            bytes += entry.size();
            if count > max_entries || bytes > max_bytes {
                return Err("the dependency tree is larger than an edge unpacks".into());
            }
            entry
                .unpack(tmp.join(&path))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if !tmp.join("node_modules").is_dir() {
            return Err("the dependency tree has no node_modules".into());
        }
        super::tree::open_to_workers(&tmp).map_err(|e| e.to_string())?;
        place(&tmp, dir)
    })();
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// A fresh name beside the set directory `dir` (`deps/.{what}-<hash>-<id>`), its parent
/// made: where a set is written before it is renamed into place. Interrupted, it is left for
/// [`super::disk::remove_unused`].
fn temp_beside(dir: &Path, what: &str) -> Result<PathBuf, String> {
    let parent = dir.parent().expect("deps/<hash> has a parent");
    super::tree::make_dir(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    Ok(parent.join(format!(
        ".{what}-{}-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("deps"),
        crate::sid::request_sid()
    )))
}

/// Renames a whole set directory into place; one placed meanwhile (by another Build of the
/// same set) is as good.
fn place(from: &Path, to: &Path) -> Result<(), String> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(_) if to.join("node_modules").is_dir() => Ok(()),
        Err(e) => Err(format!("{}: {e}", to.display())),
    }
}

/// The directory holding `set`'s `node_modules` on an edge: there already (installed by a
/// control plane sharing the directory, or earlier), else unpacked from the Build's packed
/// `tree` (fetched like any blob), else — for Builds recorded before trees were packed —
/// installed with npm here.
pub async fn obtain(
    functions_dir: &Path,
    npm: &Path,
    set: &[Dependency],
    tree: Option<&BlobRef>,
    cache: &BlobCache,
) -> Result<PathBuf, String> {
    if let Some(dir) = unpacked(functions_dir, set) {
        super::disk::touch(&dir);
        return Ok(dir);
    }
    let dir = dir_of(functions_dir, set);
    let Some(tree) = tree else {
        return install(functions_dir, npm, set).await;
    };
    let blob = cache
        .load(&tree.sha256, tree.size)
        .await
        .map_err(|e| format!("the Build's dependency tree could not be read: {e}"))?;
    let to = dir.clone();
    tokio::task::spawn_blocking(move || unpack(blob.bytes(), &to))
        .await
        .map_err(|e| e.to_string())??;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(name: &str, version: &str) -> Dependency {
        Dependency {
            name: name.into(),
            version: version.into(),
        }
    }

    #[test]
    fn only_registry_packages_by_range() {
        for (name, version, ok) in [
            ("lodash", "^4.17.21", true),
            ("@twilio/voice-sdk", "2.x", true),
            ("left-pad", "*", true),
            ("a", ">=1.0.0 <2 || 3.1.0-beta.1", true),
            ("lodash", "file:../secret", false),
            ("lodash", "git+ssh://git@github.com/x/y.git", false),
            ("lodash", "https://example.com/x.tgz", false),
            ("lodash", "user/repo", false),
            ("lodash", "npm:other@1", false),
            ("Lodash", "1", false),
            ("../x", "1", false),
            ("@scope", "1", false),
            ("@/x", "1", false),
            (".hidden", "1", false),
            ("", "1", false),
        ] {
            assert_eq!(check(&dep(name, version)).is_ok(), ok, "{name}@{version}");
        }
    }

    #[test]
    fn the_set_adds_twilio_and_leaves_out_the_runtime_handler() {
        let got = set(&[
            dep("@twilio/runtime-handler", "2.1.0"),
            dep("lodash", ""),
            dep("axios", "1"),
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                dep("axios", "1"),
                dep("lodash", "*"),
                dep("twilio", DEFAULT_TWILIO)
            ]
        );
        let pinned = set(&[dep("twilio", "5.0.3")]).unwrap();
        assert_eq!(pinned, [dep("twilio", "5.0.3")]);
        assert!(set(&[dep("x", "file:/etc")]).is_err());
    }

    #[test]
    fn sets_that_agree_share_a_directory() {
        let base = Path::new("/f");
        let a = set(&[dep("b", "1"), dep("a", "2")]).unwrap();
        let b = set(&[
            dep("a", "2"),
            dep("b", "1"),
            dep("@twilio/runtime-handler", "1"),
        ])
        .unwrap();
        let c = set(&[dep("a", "3"), dep("b", "1")]).unwrap();
        assert_eq!(dir_of(base, &a), dir_of(base, &b));
        assert_ne!(dir_of(base, &a), dir_of(base, &c));
        assert!(dir_of(base, &a).starts_with("/f/deps"));
    }

    fn tree_with_files(root: &Path) {
        let pkg = root.join("node_modules/pkg");
        std::fs::create_dir_all(pkg.join("lib/deep")).unwrap();
        std::fs::write(pkg.join("index.js"), "module.exports = 1;\n").unwrap();
        std::fs::write(pkg.join("lib/deep/x.json"), "{}").unwrap();
        std::fs::write(pkg.join("cli.js"), "#!/usr/bin/env node\n").unwrap();
        std::fs::set_permissions(pkg.join("cli.js"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::create_dir_all(root.join("node_modules/.bin")).unwrap();
        std::os::unix::fs::symlink("../pkg/cli.js", root.join("node_modules/.bin/pkg")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", pkg.join("passwd")).unwrap();
    }

    #[test]
    fn a_tree_packs_to_the_same_bytes_and_unpacks_whole() {
        let from = tempfile::tempdir().unwrap();
        tree_with_files(from.path());
        let pack = |dir: &Path| {
            let mut out = Vec::new();
            pack_into(dir, &mut out, MAX_UNPACKED, MAX_ENTRIES).map(|()| out)
        };
        let packed = pack(from.path()).unwrap();
        assert_eq!(pack(from.path()).unwrap(), packed, "deterministic");
        // A tree over either limit is refused when packed, as it would be when unpacked: the
        // Build fails instead of edges. (8 entries: 5 directories, 3 files; 42 bytes.)
        for (bytes, entries, ok) in [(42, 8, true), (41, 8, false), (42, 7, false)] {
            let got = pack_into(from.path(), std::io::sink(), bytes, entries);
            assert_eq!(got.is_ok(), ok, "{bytes} bytes, {entries} entries: {got:?}");
        }

        let to = tempfile::tempdir().unwrap();
        let dir = to.path().join("deps/abc");
        unpack(&packed, &dir).unwrap();
        let pkg = dir.join("node_modules/pkg");
        assert_eq!(
            std::fs::read_to_string(pkg.join("index.js")).unwrap(),
            "module.exports = 1;\n"
        );
        assert_eq!(std::fs::read(pkg.join("lib/deep/x.json")).unwrap(), b"{}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&pkg.join("cli.js")), 0o755);
        assert_eq!(mode(&pkg.join("index.js")), 0o644);
        assert_eq!(mode(&pkg.join("lib")), 0o755);
        // Links are left out, whether inside the tree or out of it.
        assert!(pkg.join("passwd").symlink_metadata().is_err());
        assert!(dir
            .join("node_modules/.bin/pkg")
            .symlink_metadata()
            .is_err());
        // Nothing temporary is left beside it.
        let left: Vec<_> = std::fs::read_dir(to.path().join("deps"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["abc"]);
        // A second unpacking of the same set finds it there.
        unpack(&packed, &dir).unwrap();
    }

    /// A tar with one entry whose name is written raw (the `tar` crate refuses to write
    /// such names itself).
    fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            if *kind == tar::EntryType::Symlink {
                header.set_link_name("/etc").unwrap();
            }
            header.set_cksum();
            tar.append(&header, *data).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn an_unpacked_tree_stays_inside_node_modules() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let dir_entry = ("node_modules", Directory, &b""[..]);
        for (entries, why) in [
            (
                vec![dir_entry, ("node_modules/../escape.js", Regular, &b"x"[..])],
                "a parent step",
            ),
            (
                vec![dir_entry, ("/etc/cron.d/x", Regular, b"x")],
                "an absolute path",
            ),
            (
                vec![dir_entry, ("elsewhere.js", Regular, b"x")],
                "outside node_modules",
            ),
            (
                vec![dir_entry, ("node_modules/link", Symlink, b"")],
                "a link",
            ),
            (
                vec![dir_entry, ("node_modules/fifo", tar::EntryType::Fifo, b"")],
                "a fifo",
            ),
            (vec![("node_modules.js", Regular, b"x")], "no node_modules"),
            (vec![], "nothing at all"),
        ] {
            let to = tempfile::tempdir().unwrap();
            let dir = to.path().join("deps/abc");
            assert!(unpack(&raw_tar(&entries), &dir).is_err(), "{why}");
            assert!(!dir.exists(), "{why}: nothing placed");
            assert!(!to.path().join("escape.js").exists(), "{why}");
            let left = std::fs::read_dir(to.path().join("deps")).unwrap().count();
            assert_eq!(left, 0, "{why}: the temporary directory is removed");
        }
        let to = tempfile::tempdir().unwrap();
        assert!(unpack(b"not a tar at all", &to.path().join("deps/abc")).is_err());
        let good = raw_tar(&[dir_entry, ("node_modules/a.js", Regular, b"1")]);
        unpack(&good, &to.path().join("deps/abc")).unwrap();
    }

    #[test]
    fn a_tree_over_either_limit_is_refused() {
        use tar::EntryType::{Directory, Regular};
        // 4 entries, 10 bytes.
        let packed = raw_tar(&[
            ("node_modules", Directory, b""),
            ("node_modules/a.js", Regular, b"12345"),
            ("node_modules/b.js", Regular, b"123"),
            ("node_modules/c.js", Regular, b"12"),
        ]);
        for (bytes, entries, ok) in [
            (10, 4, true),
            (9, 4, false),
            (10, 3, false),
            (1_000, 1_000, true),
            (9, 1_000, false),
            (1_000, 3, false),
        ] {
            let to = tempfile::tempdir().unwrap();
            let dir = to.path().join("deps/abc");
            let got = unpack_within(&packed, &dir, bytes, entries);
            assert_eq!(got.is_ok(), ok, "{bytes} bytes, {entries} entries: {got:?}");
            assert_eq!(dir.join("node_modules/c.js").is_file(), ok);
        }
    }
}
