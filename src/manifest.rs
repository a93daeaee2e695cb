//! What a Build holds: for each version, its path, visibility and content address. Written
//! once when the Build is created and never changed; the edge serves from it alone.

use serde::{Deserialize, Serialize};

use crate::edge::http::encoding::Coding;

/// Who may fetch a version's content at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone.
    Public,
    /// Only requests with a valid `X-Twilio-Signature`.
    Protected,
    /// Nobody (functions may read it; the edge answers 403).
    Private,
}

impl Visibility {
    /// Parses `public` / `protected` / `private`, in any case (one of Twilio's samples sends
    /// `Public`).
    pub fn parse(text: &str) -> Option<Visibility> {
        [
            Visibility::Public,
            Visibility::Protected,
            Visibility::Private,
        ]
        .into_iter()
        .find(|v| v.as_str().eq_ignore_ascii_case(text))
    }

    /// Lower case, as the version resources write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Protected => "protected",
            Visibility::Private => "private",
        }
    }

    /// Upper case, as Build responses write it (CONTRACT.md §4.6).
    pub fn as_upper(self) -> &'static str {
        match self {
            Visibility::Public => "PUBLIC",
            Visibility::Protected => "PROTECTED",
            Visibility::Private => "PRIVATE",
        }
    }
}

/// One version in a Build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The version's SID (`ZN`).
    pub sid: String,
    /// The Asset's or Function's SID (`ZH`).
    pub parent_sid: String,
    /// When the version was created, Unix seconds.
    pub date_created: i64,
    /// The URL path it is served at (normalised, see `asset_path`).
    pub path: String,
    /// Who may fetch it.
    pub visibility: Visibility,
    /// sha256 of the content, lowercase hex: the blob's address.
    pub sha256: String,
    /// Content length in bytes.
    pub size: u64,
    /// The Content-Type it was uploaded with, if any.
    pub content_type: Option<String>,
}

impl Entry {
    /// The Content-Type to serve: as uploaded, else guessed from the path's extension
    /// (`application/octet-stream` counts as "not given"); text types get `charset=utf-8`.
    pub fn content_type(&self) -> String {
        let given = self
            .content_type
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("application/octet-stream"));
        let base = match given {
            Some(t) => t.to_owned(),
            None => mime_guess::from_path(&self.path)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_owned(),
        };
        if is_text(&base) && !base.to_ascii_lowercase().contains("charset=") {
            format!("{base}; charset=utf-8")
        } else {
            base
        }
    }
}

/// Whether a media type is text (gets a charset, and is worth compressing).
pub fn is_text(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+xml")
        || essence.ends_with("+json")
        || matches!(
            essence.as_str(),
            "application/javascript"
                | "application/ecmascript"
                | "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "application/xhtml+xml"
                | "application/wasm"
                | "image/svg+xml"
        )
}

/// A precompressed variant of a blob, made when its Build was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encoded {
    /// The content coding.
    pub coding: Coding,
    /// Address of the compressed bytes.
    pub sha256: String,
    /// Their length.
    pub size: u64,
}

/// What an edge reads of a stored Build: its entries and their precompressed variants (the
/// control plane's Build document has more; the rest is skipped). Also the form of a Build in
/// an edge's route snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildManifest {
    /// Asset versions.
    pub asset_versions: Vec<Entry>,
    /// Function versions.
    pub function_versions: Vec<Entry>,
    /// Precompressed variants, by the sha256 of the original.
    #[serde(default)]
    pub encodings: std::collections::BTreeMap<String, Vec<Encoded>>,
    /// The npm packages its Functions may `require`.
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    /// The Node.js runtime named (`node22`, …); empty in records written before it was read.
    #[serde(default)]
    pub runtime: String,
    /// Its installed dependency tree, packed: how an edge that did not install it gets it.
    /// Absent in Builds without Functions and in those made before trees were packed.
    #[serde(default)]
    pub dependency_tree: Option<BlobRef>,
}

/// A blob a Build refers to by address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRef {
    /// sha256 of the content, lowercase hex.
    pub sha256: String,
    /// Its length.
    pub size: u64,
}

/// A `{name, version}` npm dependency of a Build.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dependency {
    /// Package name.
    pub name: String,
    /// Version (range).
    pub version: String,
}

/// What an edge reads of a stored Environment: where it is served and what is deployed.
#[derive(Debug, Clone, Deserialize)]
pub struct Deployed {
    /// The host name.
    pub domain_name: String,
    /// The Build deployed, if any.
    pub build_sid: Option<String>,
    /// The Deployment that deployed it (absent in records written before it was kept).
    #[serde(default)]
    pub deployment_sid: Option<String>,
    /// Its last change, Unix seconds: the Deployment's time.
    #[serde(default)]
    pub date_updated: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, ct: Option<&str>) -> Entry {
        Entry {
            sid: String::new(),
            parent_sid: String::new(),
            date_created: 0,
            path: path.into(),
            visibility: Visibility::Public,
            sha256: String::new(),
            size: 0,
            content_type: ct.map(Into::into),
        }
    }

    #[test]
    fn content_types() {
        for (path, given, want) in [
            ("/a.txt", Some("text/plain"), "text/plain; charset=utf-8"),
            (
                "/a.txt",
                Some("text/plain; charset=latin1"),
                "text/plain; charset=latin1",
            ),
            ("/a.css", None, "text/css; charset=utf-8"),
            (
                "/a.js",
                Some("application/octet-stream"),
                "text/javascript; charset=utf-8",
            ),
            ("/a.png", None, "image/png"),
            ("/a.mp3", Some("audio/mpeg"), "audio/mpeg"),
            ("/noext", None, "application/octet-stream"),
            (
                "/a.xml",
                Some("application/xml"),
                "application/xml; charset=utf-8",
            ),
            ("/a.svg", None, "image/svg+xml; charset=utf-8"),
            (
                "/x.bin",
                Some("application/x-custom"),
                "application/x-custom",
            ),
        ] {
            assert_eq!(entry(path, given).content_type(), want, "{path} {given:?}");
        }
        assert!(is_text("application/json"));
        assert!(!is_text("image/png"));
    }

    #[test]
    fn visibility_parses_any_case() {
        assert_eq!(Visibility::parse("Public"), Some(Visibility::Public));
        assert_eq!(Visibility::parse("PROTECTED"), Some(Visibility::Protected));
        assert_eq!(Visibility::parse("private"), Some(Visibility::Private));
        assert_eq!(Visibility::parse("secret"), None);
        assert_eq!(Visibility::Protected.as_upper(), "PROTECTED");
    }
}
