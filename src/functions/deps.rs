//! A Build's npm dependencies, installed once per set: `deps/<sha256 of the set>/node_modules`
//! under the functions directory, shared by every Build that declares the same set. The set
//! is what the Build declares plus `twilio` when it names none (Twilio adds it); the
//! `@twilio/runtime-handler` entry is left out, since sigil's runner stands in for it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::manifest::Dependency;

/// The `twilio` version a Build gets when it declares none.
pub const DEFAULT_TWILIO: &str = "^5";
/// Longest an `npm install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
/// How much of npm's error output a failed Build reports.
const ERROR_CHARS: usize = 1500;

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
    let dir = dir_of(functions_dir, set);
    if dir.join("node_modules").is_dir() {
        return Ok(dir);
    }
    let parent = dir.parent().expect("deps/<hash> has a parent");
    super::tree::make_dir(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = parent.join(format!(
        ".tmp-{}-{}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("deps"),
        crate::sid::request_sid()
    ));
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
            match std::fs::rename(&from, &to) {
                Ok(()) => Ok(()),
                // Installed meanwhile by another Build of the same set.
                Err(_) if to.join("node_modules").is_dir() => Ok(()),
                Err(e) => Err(format!("{}: {e}", to.display())),
            }
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
}
