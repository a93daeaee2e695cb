//! What a Build holds: for each version, its path, visibility and content address. Written
//! once when the Build is created and never changed; the edge serves from it alone.

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::Visibility;

    #[test]
    fn visibility_parses_any_case() {
        assert_eq!(Visibility::parse("Public"), Some(Visibility::Public));
        assert_eq!(Visibility::parse("PROTECTED"), Some(Visibility::Protected));
        assert_eq!(Visibility::parse("private"), Some(Visibility::Private));
        assert_eq!(Visibility::parse("secret"), None);
        assert_eq!(Visibility::Protected.as_upper(), "PROTECTED");
    }
}
