//! Conditional requests, evaluated in the order of RFC 9110 §13.2.2.

use http::{header, HeaderMap, Method};

/// What the preconditions decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on and serve (ranges may still apply).
    Proceed,
    /// 304 Not Modified (GET/HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// An entity tag as it appears in a header: `"x"` or `W/"x"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a str,
}

fn parse_tag(s: &str) -> Option<Tag<'_>> {
    let (weak, rest) = match s.strip_prefix("W/") {
        Some(r) => (true, r),
        None => (false, s),
    };
    let opaque = rest.strip_prefix('"')?.strip_suffix('"')?;
    (!opaque.contains('"')).then_some(Tag { weak, opaque })
}

/// Whether a `If-Match` / `If-None-Match` field value matches `etag` (our strong tag, quoted).
/// `strong` selects strong comparison (§8.8.3.2); otherwise weak.
fn list_matches(headers: &HeaderMap, name: header::HeaderName, etag: &str, strong: bool) -> bool {
    let ours = parse_tag(etag).expect("our ETags are well-formed strong tags");
    headers.get_all(name).iter().any(|value| {
        let Ok(value) = value.to_str() else {
            return false;
        };
        value.split(',').map(str::trim).any(|item| {
            if item == "*" {
                return true;
            }
            match parse_tag(item) {
                Some(t) if strong => !t.weak && t.opaque == ours.opaque,
                Some(t) => t.opaque == ours.opaque,
                None => false,
            }
        })
    })
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Evaluates the preconditions of a request for a representation with `etag` (quoted, strong)
/// last modified at `last_modified` (Unix seconds).
pub fn evaluate(
    method: &Method,
    headers: &HeaderMap,
    etag: &str,
    last_modified: u64,
) -> Precondition {
    // Step 1-2: If-Match, else If-Unmodified-Since.
    if headers.contains_key(header::IF_MATCH) {
        if !list_matches(headers, header::IF_MATCH, etag, true) {
            return Precondition::Failed;
        }
    } else if let Some(since) = date(headers, header::IF_UNMODIFIED_SINCE) {
        if last_modified > since {
            return Precondition::Failed;
        }
    }
    let safe = method == Method::GET || method == Method::HEAD;
    // Step 3-4: If-None-Match, else If-Modified-Since (GET/HEAD only).
    if headers.contains_key(header::IF_NONE_MATCH) {
        if list_matches(headers, header::IF_NONE_MATCH, etag, false) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe {
        if let Some(since) = date(headers, header::IF_MODIFIED_SINCE) {
            if last_modified <= since {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// Whether `If-Range` lets a Range apply (§13.1.5): absent, a strong match of the ETag, or
/// exactly the Last-Modified date.
pub fn if_range_allows(headers: &HeaderMap, etag: &str, last_modified: u64) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return match (parse_tag(value), parse_tag(etag)) {
            (Some(t), Some(ours)) => !t.weak && t.opaque == ours.opaque,
            _ => false,
        };
    }
    httpdate::parse_http_date(value)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|d| d.as_secs() == last_modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETAG: &str = "\"abc\"";
    const LM: u64 = 1_000_000_000; // Sun, 09 Sep 2001 01:46:40 GMT
    const BEFORE: &str = "Sun, 09 Sep 2001 01:46:39 GMT";
    const AT: &str = "Sun, 09 Sep 2001 01:46:40 GMT";
    const AFTER: &str = "Sun, 09 Sep 2001 01:46:41 GMT";

    fn eval(method: Method, hs: &[(&str, &str)]) -> Precondition {
        let mut h = HeaderMap::new();
        for (k, v) in hs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        evaluate(&method, &h, ETAG, LM)
    }

    #[test]
    fn table() {
        use Precondition::*;
        let get = Method::GET;
        for (hs, want) in [
            (vec![], Proceed),
            (vec![("if-none-match", "\"abc\"")], NotModified),
            (vec![("if-none-match", "W/\"abc\"")], NotModified),
            (vec![("if-none-match", "\"x\", \"abc\"")], NotModified),
            (vec![("if-none-match", "*")], NotModified),
            (vec![("if-none-match", "\"x\"")], Proceed),
            (vec![("if-none-match", "garbage")], Proceed),
            (vec![("if-modified-since", AT)], NotModified),
            (vec![("if-modified-since", AFTER)], NotModified),
            (vec![("if-modified-since", BEFORE)], Proceed),
            (vec![("if-modified-since", "not a date")], Proceed),
            // If-None-Match wins over If-Modified-Since.
            (
                vec![("if-none-match", "\"x\""), ("if-modified-since", AFTER)],
                Proceed,
            ),
            (vec![("if-match", "\"abc\"")], Proceed),
            (vec![("if-match", "*")], Proceed),
            (vec![("if-match", "W/\"abc\"")], Failed),
            (vec![("if-match", "\"x\"")], Failed),
            (vec![("if-unmodified-since", BEFORE)], Failed),
            (vec![("if-unmodified-since", AT)], Proceed),
            (vec![("if-unmodified-since", "nope")], Proceed),
            // If-Match wins over If-Unmodified-Since.
            (
                vec![("if-match", "\"abc\""), ("if-unmodified-since", BEFORE)],
                Proceed,
            ),
            // 412 before 304.
            (
                vec![("if-match", "\"x\""), ("if-none-match", "\"abc\"")],
                Failed,
            ),
            (
                vec![("if-match", "\"abc\""), ("if-none-match", "\"abc\"")],
                NotModified,
            ),
        ] {
            assert_eq!(eval(get.clone(), &hs), want, "{hs:?}");
        }
        assert_eq!(
            eval(Method::HEAD, &[("if-none-match", "\"abc\"")]),
            NotModified
        );
        assert_eq!(eval(Method::POST, &[("if-none-match", "\"abc\"")]), Failed);
        assert_eq!(eval(Method::POST, &[("if-modified-since", AFTER)]), Proceed);
    }

    #[test]
    fn if_range() {
        let h = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::IF_RANGE, v.parse().expect("value"));
            h
        };
        assert!(if_range_allows(&HeaderMap::new(), ETAG, LM));
        assert!(if_range_allows(&h("\"abc\""), ETAG, LM));
        assert!(!if_range_allows(&h("W/\"abc\""), ETAG, LM));
        assert!(!if_range_allows(&h("\"x\""), ETAG, LM));
        assert!(if_range_allows(&h(AT), ETAG, LM));
        assert!(!if_range_allows(&h(AFTER), ETAG, LM));
        assert!(!if_range_allows(&h("junk"), ETAG, LM));
    }
}
