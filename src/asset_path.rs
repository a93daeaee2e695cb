//! The rules for an Asset or Function Version `Path` (Twilio's docs and CONTRACT.md §4.4):
//! at most 255 characters, a missing leading `/` prepended, no fragment, none of
//! `; , ? : @ + & $ ( ) ' "` nor whitespace.
//!
//! sigil is stricter where the edge needs it to be unambiguous and safe: no control characters,
//! no `%` (the edge matches percent-decoded request paths), no backslash, and no empty, `.` or
//! `..` segments, so a stored path is already in the normal form a request path decodes to.

/// The longest path, in characters.
pub const MAX_PATH_CHARS: usize = 255;

const FORBIDDEN: &[char] = &[
    '#', ';', ',', '?', ':', '@', '+', '&', '$', '(', ')', '\'', '"', '%', '\\',
];

/// Validates and normalises a version path; the error says what is wrong.
pub fn normalize(raw: &str) -> Result<String, String> {
    let path = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    if path.chars().count() > MAX_PATH_CHARS {
        return Err(format!("must be at most {MAX_PATH_CHARS} characters"));
    }
    if let Some(c) = path.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(format!("must not contain {c:?}"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    if path != "/" {
        for segment in path[1..].split('/') {
            match segment {
                "" => return Err("must not contain empty segments (`//` or a trailing `/`)".into()),
                "." | ".." => return Err("must not contain `.` or `..` segments".into()),
                _ => {}
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accepts_and_normalises() {
        for (raw, want) in [
            ("/", "/"),
            ("index.html", "/index.html"),
            ("/assets/index.html", "/assets/index.html"),
            ("/a/b-c_d.e~f!*=", "/a/b-c_d.e~f!*="),
            ("/ünïcødé/日本.txt", "/ünïcødé/日本.txt"),
            ("/.well-known/x", "/.well-known/x"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn rejects() {
        let long = format!("/{}", "a".repeat(255));
        for raw in [
            "/a#b",
            "/a;b",
            "/a,b",
            "/a?b",
            "/a:b",
            "/a@b",
            "/a+b",
            "/a&b",
            "/a$b",
            "/a(b",
            "/a)b",
            "/a'b",
            "/a\"b",
            "/a b",
            "/a\tb",
            "/a\u{0}b",
            "/a%2e",
            "/a\\b",
            "//a",
            "/a/",
            "/a/../b",
            "/./a",
            "/..",
            long.as_str(),
        ] {
            assert!(normalize(raw).is_err(), "{raw:?}");
        }
        assert!(normalize(&"a".repeat(254)).is_ok());
    }
}
