//! Form and query parameters (`application/x-www-form-urlencoded`), strictly decoded: a value
//! that is not UTF-8 after percent-decoding is a 400, not a silently mangled string.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::ApiError;

/// Characters left as they are in query values we write (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query value the way Twilio writes them (`:` → `%3A`).
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Decoded name/value pairs in arrival order; repeated names are kept (arrays).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

/// Decodes `a=1&b=2` into pairs (see [`crate::wire::decode_pairs`]).
pub use crate::wire::decode_pairs;

impl Params {
    /// Parses `a=1&b=2` (a query string or a form body).
    pub fn parse(input: &[u8]) -> Result<Params, ApiError> {
        decode_pairs(input).map(Params).map_err(ApiError::bad_param)
    }

    /// Builds from pairs (multipart text fields).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs)
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// An optional text parameter of at most `max_chars` characters.
    pub fn text(&self, name: &str, max_chars: usize) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            Some(v) if v.chars().count() > max_chars => Err(ApiError::bad_param(format!(
                "Invalid value for parameter {name}: at most {max_chars} characters allowed"
            ))),
            other => Ok(other),
        }
    }

    /// A required, non-empty text parameter of at most `max_chars` characters.
    pub fn required(&self, name: &str, max_chars: usize) -> Result<&str, ApiError> {
        match self.text(name, max_chars)? {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ApiError::missing(name)),
        }
    }

    /// An optional boolean, written `true` / `false` (any case).
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError::bad_param(format!(
                "Invalid value for parameter {name}: {v:?} is not true or false"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_repeated_keys_plus_and_percent() {
        let p = Params::parse(b"A=1&B=x+y&A=%32&C&D=%3A%2F").expect("parse");
        assert_eq!(p.all("A"), ["1", "2"]);
        assert_eq!(p.get("B"), Some("x y"));
        assert_eq!(p.get("C"), Some(""));
        assert_eq!(p.get("D"), Some(":/"));
        assert_eq!(p.get("E"), None);
    }

    #[test]
    fn rejects_invalid_utf8() {
        assert!(Params::parse(b"A=%FF").is_err());
        assert!(Params::parse(b"%C3%28=1").is_err());
        // A lone % is taken literally, as browsers do.
        assert_eq!(
            Params::parse(b"A=100%").expect("parse").get("A"),
            Some("100%")
        );
    }

    #[test]
    fn typed_accessors() {
        let p = Params::parse(b"T=TRUE&F=false&X=yes&N=abcdef&E=").expect("parse");
        assert_eq!(p.boolean("T").expect("bool"), Some(true));
        assert_eq!(p.boolean("F").expect("bool"), Some(false));
        assert_eq!(p.boolean("Z").expect("bool"), None);
        assert!(p.boolean("X").is_err());
        assert!(p.text("N", 5).is_err());
        assert_eq!(p.text("N", 6).expect("text"), Some("abcdef"));
        assert!(p.required("E", 5).is_err());
        assert!(p.required("Z", 5).is_err());
    }

    #[test]
    fn encodes_like_twilio() {
        assert_eq!(encode("2018-11-10T20:00:00Z"), "2018-11-10T20%3A00%3A00Z");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
