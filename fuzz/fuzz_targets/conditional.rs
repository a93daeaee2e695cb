//! Preconditions (RFC 9110 §13.2.2) and `If-Range` (§13.1.5).
//!
//! Two modes. Raw headers: no panic; 304 only for GET/HEAD; no conditional header means
//! Proceed and a Range allowed. Modelled headers (lists of our ETag, its weak form, another
//! tag, `*`, garbage; dates before, at or after Last-Modified, or junk): the outcome equals
//! the one computed here independently from the RFC's steps.
//!
//! Input: a first byte with its low bit clear means text (the seeds): a method line, an
//! opaque tag line, a Last-Modified (Unix seconds) line, then `name: value` header lines;
//! otherwise the rest is read as arbitrary structured fields.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::edge::http::conditional::{evaluate, if_range_allows, Precondition};

/// The last second an HTTP date can carry (31 Dec 9999 23:59:59).
const MAX_DATE: u64 = 253_402_300_799;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Name {
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    IfRange,
    Range,
    Other,
}

impl Name {
    fn header(self) -> HeaderName {
        match self {
            Name::IfMatch => header::IF_MATCH,
            Name::IfNoneMatch => header::IF_NONE_MATCH,
            Name::IfModifiedSince => header::IF_MODIFIED_SINCE,
            Name::IfUnmodifiedSince => header::IF_UNMODIFIED_SINCE,
            Name::IfRange => header::IF_RANGE,
            Name::Range => header::RANGE,
            Name::Other => HeaderName::from_static("x-other"),
        }
    }
}

/// One list item or date, with a known meaning.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Item {
    Ours,
    WeakOurs,
    OtherTag,
    Star,
    Garbage,
    /// Last-Modified plus this many seconds (negative: before).
    Date(i16),
    JunkDate,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        method: u8,
        headers: Vec<(Name, Vec<u8>)>,
        opaque: String,
        last_modified: u64,
    },
    Model {
        method: u8,
        /// Each header line holds a comma-separated list of items.
        headers: Vec<(Name, Vec<Item>)>,
        opaque: String,
        last_modified: u64,
    },
}

fn method(m: u8) -> Method {
    match m % 4 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::PUT,
    }
}

/// An opaque tag as sigil makes them (hex and `-`), never empty.
fn our_opaque(s: &str) -> String {
    let o: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    if o.is_empty() {
        "e".into()
    } else {
        o
    }
}

fn http_date(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

fn item_text(item: Item, opaque: &str, lm: u64) -> String {
    match item {
        Item::Ours => format!("\"{opaque}\""),
        Item::WeakOurs => format!("W/\"{opaque}\""),
        Item::OtherTag => format!("\"x{opaque}\""),
        Item::Star => "*".into(),
        Item::Garbage => "garbage".into(),
        Item::Date(d) => http_date(date_secs(d, lm)),
        Item::JunkDate => "Sun, 99 Foo 2001 99:99:99 GMT".into(),
    }
}

fn date_secs(d: i16, lm: u64) -> u64 {
    lm.saturating_add_signed(i64::from(d)).min(MAX_DATE)
}

/// RFC 9110 §13.2.2, for the model's items.
fn model(m: &Method, lines: &[(Name, Vec<Item>)], lm: u64) -> Precondition {
    let all = |name: Name| -> Vec<&Vec<Item>> {
        lines
            .iter()
            .filter(|(n, _)| n.header() == name.header())
            .map(|(_, items)| items)
            .collect()
    };
    // A date field is read from its first line, which must be exactly one date.
    let date = |name: Name| -> Option<u64> {
        match all(name).first().map(|items| items.as_slice()) {
            Some([Item::Date(d)]) => Some(date_secs(*d, lm)),
            _ => None,
        }
    };
    let strong = |i: &Item| matches!(i, Item::Ours | Item::Star);
    let weak = |i: &Item| matches!(i, Item::Ours | Item::WeakOurs | Item::Star);
    let safe = m == Method::GET || m == Method::HEAD;
    let if_match = all(Name::IfMatch);
    if !if_match.is_empty() {
        if !if_match.iter().any(|items| items.iter().any(strong)) {
            return Precondition::Failed;
        }
    } else if date(Name::IfUnmodifiedSince).is_some_and(|since| lm > since) {
        return Precondition::Failed;
    }
    let if_none_match = all(Name::IfNoneMatch);
    if !if_none_match.is_empty() {
        if if_none_match.iter().any(|items| items.iter().any(weak)) {
            return if safe {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if safe && date(Name::IfModifiedSince).is_some_and(|since| lm <= since) {
        return Precondition::NotModified;
    }
    Precondition::Proceed
}

/// RFC 9110 §13.1.5, for the model's items.
fn model_if_range(lines: &[(Name, Vec<Item>)], lm: u64) -> bool {
    let Some((_, items)) = lines.iter().find(|(n, _)| matches!(n, Name::IfRange)) else {
        return true;
    };
    match items.as_slice() {
        [Item::Ours] => true,
        [Item::Date(d)] => date_secs(*d, lm) == lm,
        _ => false,
    }
}

fn name_of(text: &str) -> Name {
    match text.trim().to_ascii_lowercase().as_str() {
        "if-match" => Name::IfMatch,
        "if-none-match" => Name::IfNoneMatch,
        "if-modified-since" => Name::IfModifiedSince,
        "if-unmodified-since" => Name::IfUnmodifiedSince,
        "if-range" => Name::IfRange,
        "range" => Name::Range,
        _ => Name::Other,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let mut lines = text.lines();
        let m = match lines.next().unwrap_or("").trim() {
            "GET" => 0,
            "HEAD" => 1,
            "POST" => 2,
            _ => 3,
        };
        let opaque = lines.next().unwrap_or("").to_owned();
        let last_modified = lines.next().unwrap_or("").trim().parse().unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (name_of(n), v.trim().as_bytes().to_vec()))
            .collect();
        check(Input::Raw {
            method: m,
            headers,
            opaque,
            last_modified,
        });
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    match inp {
        Input::Raw {
            method: m,
            headers,
            opaque,
            last_modified,
        } => {
            let m = method(m);
            let etag = format!("\"{}\"", our_opaque(&opaque));
            let mut map = HeaderMap::new();
            for (name, value) in &headers {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    map.append(name.header(), v);
                }
            }
            let got = evaluate(&m, &map, &etag, last_modified);
            if got == Precondition::NotModified {
                assert!(m == Method::GET || m == Method::HEAD);
            }
            let conditional = [
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::IF_MODIFIED_SINCE,
                header::IF_UNMODIFIED_SINCE,
            ];
            if !conditional.iter().any(|h| map.contains_key(h)) {
                assert_eq!(got, Precondition::Proceed);
            }
            let allowed = if_range_allows(&map, &etag, last_modified);
            if !map.contains_key(header::IF_RANGE) {
                assert!(allowed);
            }
        }
        Input::Model {
            method: m,
            headers,
            opaque,
            last_modified,
        } => {
            let m = method(m);
            let lm = last_modified % (MAX_DATE + 1);
            let opaque = our_opaque(&opaque);
            let etag = format!("\"{opaque}\"");
            // An empty line is no item at all; keep lines non-empty.
            let lines: Vec<(Name, Vec<Item>)> = headers
                .into_iter()
                .filter(|(_, items)| !items.is_empty())
                .take(16)
                .collect();
            let mut map = HeaderMap::new();
            for (name, items) in &lines {
                let text = items
                    .iter()
                    .map(|i| item_text(*i, &opaque, lm))
                    .collect::<Vec<_>>()
                    .join(", ");
                map.append(name.header(), HeaderValue::from_str(&text).expect("ASCII"));
            }
            assert_eq!(
                evaluate(&m, &map, &etag, lm),
                model(&m, &lines, lm),
                "{m} {map:?} etag {etag} lm {lm}"
            );
            assert_eq!(
                if_range_allows(&map, &etag, lm),
                model_if_range(&lines, lm),
                "{map:?} etag {etag} lm {lm}"
            );
        }
    }
}
