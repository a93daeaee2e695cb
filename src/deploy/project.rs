//! A Serverless Toolkit project on disk: `assets/` (or `static/`) and `functions/`, with the
//! toolkit's naming rules.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::Visibility;

/// An asset or a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// Under `assets/`.
    Asset,
    /// Under `functions/`.
    Function,
}

/// One file to deploy.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Asset or function.
    pub kind: FileKind,
    /// The URL path it is served at.
    pub path: String,
    /// From `.protected.` / `.private.` in its name; public otherwise.
    pub visibility: Visibility,
    /// Where it is on disk.
    pub source: PathBuf,
    /// Its content's sha256 (lowercase hex).
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// The Content-Type to upload it with.
    pub content_type: String,
}

/// A project.
#[derive(Debug)]
pub struct Project {
    /// `name` from package.json.
    pub name: Option<String>,
    /// `dependencies` from package.json, as (name, version).
    pub dependencies: Vec<(String, String)>,
    /// Every file, sorted by kind and path.
    pub files: Vec<LocalFile>,
}

/// Why a project cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The project directory does not exist.
    #[error("project folder {0} does not exist (give the folder of a Serverless Toolkit project: `sigil deploy DIR`)")]
    Missing(PathBuf),
    /// A file or directory could not be read. (The error is part of the message, not a
    /// `source`: printing the chain would say it twice.)
    #[error("{path}: {error}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// package.json is not valid.
    #[error("{path}: {reason}")]
    PackageJson {
        /// Which.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Nothing to deploy.
    #[error("nothing to deploy in {0}: a Serverless Toolkit project keeps its files in assets/ (or static/) and functions/, and there are none")]
    Empty(PathBuf),
    /// Two files map to one path.
    #[error("{first} and {second} would both be served at {path}")]
    Collision {
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
        /// The path.
        path: String,
    },
}

/// The URL path and visibility of a file at `relative` (with `/` separators) under the assets
/// or functions directory: `.protected.` / `.private.` before the extension set the visibility
/// and are removed, whitespace becomes `-`, and functions lose `.js`.
pub fn url_path(kind: FileKind, relative: &str) -> (String, Visibility) {
    let (dir, name) = relative
        .rsplit_once('/')
        .map_or(("", relative), |(d, n)| (d, n));
    let mut visibility = Visibility::Public;
    let mut name = name.to_owned();
    for (marker, vis) in [
        (".protected", Visibility::Protected),
        (".private", Visibility::Private),
    ] {
        // `x.protected.js` and also a bare `x.protected` (no other extension).
        if let Some(i) = name.find(&format!("{marker}.")) {
            name.replace_range(i..i + marker.len(), "");
            visibility = vis;
        } else if let Some(stem) = name.strip_suffix(marker) {
            name = stem.to_owned();
            visibility = vis;
        }
    }
    if kind == FileKind::Function {
        if let Some(stem) = name.strip_suffix(".js") {
            name = stem.to_owned();
        }
    }
    let full = if dir.is_empty() {
        format!("/{name}")
    } else {
        format!("/{dir}/{name}")
    };
    let path: String = full
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .collect();
    (path, visibility)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError + '_ {
    move |error| ProjectError::Io {
        path: path.to_owned(),
        error,
    }
}

/// Every regular file under `dir`, skipping dot-files and dot-directories, as (relative path
/// with `/`, absolute path).
fn walk(dir: &Path) -> Result<Vec<(String, PathBuf)>, ProjectError> {
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), dir.to_owned())];
    while let Some((prefix, d)) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(io(&d))? {
            let entry = entry.map_err(io(&d))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let ty = entry.file_type().map_err(io(&entry.path()))?;
            if ty.is_dir() {
                stack.push((rel, entry.path()));
            } else if ty.is_file() || ty.is_symlink() {
                out.push((rel, entry.path()));
            }
        }
    }
    Ok(out)
}

/// Reads the project in `dir`.
pub fn load(dir: &Path) -> Result<Project, ProjectError> {
    if !dir.is_dir() {
        return Err(ProjectError::Missing(dir.to_owned()));
    }
    let package = dir.join("package.json");
    let (name, dependencies) = match std::fs::read(&package) {
        Ok(bytes) => {
            let json: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| ProjectError::PackageJson {
                    path: package.clone(),
                    reason: e.to_string(),
                })?;
            let name = json["name"].as_str().map(str::to_owned);
            let deps = json["dependencies"]
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            (name, deps)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, Vec::new()),
        Err(e) => return Err(io(&package)(e)),
    };
    let assets_dir = [dir.join("assets"), dir.join("static")]
        .into_iter()
        .find(|d| d.is_dir());
    let functions_dir = Some(dir.join("functions")).filter(|d| d.is_dir());
    if assets_dir.is_none() && functions_dir.is_none() {
        return Err(ProjectError::Empty(dir.to_owned()));
    }
    let mut files: Vec<LocalFile> = Vec::new();
    for (kind, root) in [
        (FileKind::Asset, assets_dir),
        (FileKind::Function, functions_dir),
    ] {
        let Some(root) = root else { continue };
        for (rel, source) in walk(&root)? {
            let (path, visibility) = url_path(kind, &rel);
            let content = std::fs::read(&source).map_err(io(&source))?;
            let content_type = match kind {
                FileKind::Function => "application/javascript".to_owned(),
                FileKind::Asset => mime_guess::from_path(&path)
                    .first_raw()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
            };
            if let Some(other) = files.iter().find(|f| f.path == path) {
                return Err(ProjectError::Collision {
                    first: other.source.clone(),
                    second: source,
                    path,
                });
            }
            files.push(LocalFile {
                kind,
                path,
                visibility,
                sha256: crate::sid::hex(&Sha256::digest(&content)),
                size: content.len() as u64,
                source,
                content_type,
            });
        }
    }
    if files.is_empty() {
        return Err(ProjectError::Empty(dir.to_owned()));
    }
    files.sort_by(|a, b| {
        (a.kind == FileKind::Function, &a.path).cmp(&(b.kind == FileKind::Function, &b.path))
    });
    Ok(Project {
        name,
        dependencies,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::FileKind::*;
    use super::*;
    use crate::manifest::Visibility::*;

    #[test]
    fn toolkit_naming_rules() {
        for (kind, rel, path, vis) in [
            (Asset, "logo.png", "/logo.png", Public),
            (Asset, "assets/index.html", "/assets/index.html", Public),
            (Asset, "message.protected.xml", "/message.xml", Protected),
            (Asset, "keys.private.json", "/keys.json", Private),
            (Asset, "dir/my file.txt", "/dir/my-file.txt", Public),
            (Asset, "a\tb c.txt", "/a-b-c.txt", Public),
            (Asset, "secret.private", "/secret", Private),
            (Function, "hello.js", "/hello", Public),
            (Function, "api/token.protected.js", "/api/token", Protected),
            (Function, "util.private.js", "/util", Private),
            (Function, "data.json", "/data.json", Public),
        ] {
            assert_eq!(url_path(kind, rel), (path.to_owned(), vis), "{rel}");
        }
    }

    #[test]
    fn loads_a_project() {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        std::fs::create_dir_all(d.join("assets/assets")).expect("mkdir");
        std::fs::create_dir_all(d.join("functions")).expect("mkdir");
        std::fs::write(
            d.join("package.json"),
            r#"{"name":"demo","dependencies":{"twilio":"^5.0.0"}}"#,
        )
        .expect("w");
        std::fs::write(d.join("assets/assets/index.html"), "<h1>hi</h1>").expect("w");
        std::fs::write(d.join("assets/.DS_Store"), "junk").expect("w");
        std::fs::write(
            d.join("functions/hi.protected.js"),
            "exports.handler=()=>{}",
        )
        .expect("w");
        let p = load(d).expect("load");
        assert_eq!(p.name.as_deref(), Some("demo"));
        assert_eq!(p.dependencies, [("twilio".to_owned(), "^5.0.0".to_owned())]);
        let paths: Vec<_> = p
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.visibility, f.content_type.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("/assets/index.html", Public, "text/html"),
                ("/hi", Protected, "application/javascript")
            ]
        );
        // An asset and a function at one path.
        std::fs::write(d.join("assets/hi"), "clash").expect("w");
        assert!(matches!(load(d), Err(ProjectError::Collision { .. })));
        assert!(matches!(
            load(tempfile::tempdir().expect("d").path()),
            Err(ProjectError::Empty(_))
        ));
    }
}
