//! `X-Twilio-Signature`: how Twilio signs the requests it sends, and a strict validator.
//!
//! The signed string is the full URL exactly as Twilio requested it, followed — for form
//! POSTs — by every parameter name and value: names sorted by code point, each name's values
//! de-duplicated and sorted, `name + value` concatenated. The signature is
//! base64(HMAC-SHA1(auth token, signed string)). For JSON bodies Twilio appends
//! `bodySHA256=<lowercase hex sha256 of the body>` to the URL and signs the URL alone.
//!
//! The strict rule (tests/fixtures/signature_vectors.json, from Twilio's own libraries):
//! the URL as received with its scheme lower-cased and nothing else normalised, tried as it
//! is and with its port removed (or the default port added when it has none); every candidate
//! against every token of the account; the comparison in constant time.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What was signed besides the URL.
#[derive(Debug, Clone, Copy)]
pub enum Payload<'a> {
    /// A GET, or a form POST with its decoded parameters in arrival order.
    Form(&'a [(String, String)]),
    /// A body validated through the URL's `bodySHA256` parameter (JSON webhooks).
    Body(&'a [u8]),
}

/// Why a signature was refused, or that it was accepted — with what was tried, for humans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the signature is valid.
    pub valid: bool,
    /// The strings that were signed and compared, one per URL variant.
    pub tried: Vec<String>,
    /// For an invalid `Body` payload: why the body check failed before any signature was tried.
    pub body_problem: Option<String>,
    /// Why the signature itself was refused before it was compared (its form).
    pub signature_problem: Option<&'static str>,
}

/// The form parameters as Twilio signs them: sorted by name, then value (both by code
/// point, which is byte order in UTF-8), each `(name, value)` pair once.
fn signed_pairs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs
}

/// The pieces of the string Twilio signs, in order: the URL's pieces, then each name and
/// value of `pairs` (from [`signed_pairs`]).
fn signed_pieces<'a>(
    url: &'a [&'a str],
    pairs: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = &'a str> {
    url.iter()
        .copied()
        .chain(pairs.iter().flat_map(|&(k, v)| [k, v]))
}

/// The string Twilio signs for `url` and form parameters.
pub fn signed_string(url: &str, params: &[(String, String)]) -> String {
    signed_pieces(&[url], &signed_pairs(params)).collect()
}

/// base64(HMAC-SHA1(token, data)).
pub fn sign(token: &str, data: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha1(token, data))
}

fn hmac_sha1(token: &str, data: &str) -> [u8; 20] {
    let mut mac = token.keyed();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().into()
}

/// An auth token ready to sign: its HMAC key schedule computed once, not per request.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha1>);

impl SigningKey {
    /// The key of `token`.
    pub fn new(token: &str) -> SigningKey {
        SigningKey(Hmac::new_from_slice(token.as_bytes()).expect("HMAC takes any key length"))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A token, or a token's [`SigningKey`]: what [`validate`] checks signatures against.
pub trait Token {
    /// An HMAC-SHA1 keyed with this token, nothing fed to it yet.
    fn keyed(&self) -> Hmac<Sha1>;
}

impl Token for SigningKey {
    fn keyed(&self) -> Hmac<Sha1> {
        self.0.clone()
    }
}

impl Token for str {
    fn keyed(&self) -> Hmac<Sha1> {
        SigningKey::new(self).0
    }
}

impl<T: Token + ?Sized> Token for &T {
    fn keyed(&self) -> Hmac<Sha1> {
        (**self).keyed()
    }
}

/// Lowercase hex sha256 of a body, as `bodySHA256` carries it.
pub fn body_sha256(body: &[u8]) -> String {
    crate::sid::hex(&Sha256::digest(body))
}

/// The name of the header that carries the signature.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-twilio-signature");

/// An absolute URL as the check reads it: its scheme (lower-cased), its authority and the
/// rest (path, query, fragment), each as received and nothing else normalised.
#[derive(Debug, Clone)]
pub struct Url<'a> {
    scheme: std::borrow::Cow<'a, str>,
    authority: &'a str,
    tail: &'a str,
}

impl<'a> Url<'a> {
    /// `url` when it is absolute: a scheme of letters, digits, `+`, `-` and `.`, then `://`
    /// and a non-empty authority.
    pub fn parse(url: &'a str) -> Option<Url<'a>> {
        // The scheme ends at the first ':', which must begin "://" (a scheme running to a
        // later "://" would hold a ':', which no scheme may).
        let colon = memchr::memchr(b':', url.as_bytes())?;
        let (scheme, rest) = (&url[..colon], url[colon..].strip_prefix("://")?);
        let (authority, tail) = rest.split_at(authority_end(rest));
        Url::from_parts(scheme, authority, tail)
    }

    /// The URL a server was asked for, from its scheme, the host it was named by (with the
    /// port, as sent) and the request target; `None` when they make no absolute URL.
    pub fn from_parts(scheme: &'a str, authority: &'a str, tail: &'a str) -> Option<Url<'a>> {
        let valid_scheme = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        let valid_authority = !authority.is_empty() && authority_end(authority) == authority.len();
        let valid_tail = tail.is_empty() || tail.starts_with(['/', '?', '#']);
        if !(valid_scheme && valid_authority && valid_tail) {
            return None;
        }
        let scheme = if scheme.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(scheme.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(scheme)
        };
        Some(Url {
            scheme,
            authority,
            tail,
        })
    }

    /// The URL as received, in pieces: its scheme (lower-cased), authority and the rest.
    pub fn as_received(&self) -> [&str; 3] {
        [&self.scheme, self.authority, self.tail]
    }

    /// The URLs Twilio may have signed, each in pieces (never joined): as received, then
    /// with its port removed or, when it has none, the scheme's default port added.
    fn candidates(&self) -> impl Iterator<Item = [&str; 6]> {
        let (scheme, authority, tail) = (&*self.scheme, self.authority, self.tail);
        let received = [scheme, "://", authority, tail, "", ""];
        // A port follows the last ':' unless that colon is inside an IPv6 literal or in the
        // userinfo, both of which end after it (at a ']' or an '@'). The host keeps the
        // userinfo.
        let other = match authority.rfind(':') {
            Some(i) if !authority[i..].contains([']', '@']) => {
                Some([scheme, "://", &authority[..i], tail, "", ""])
            }
            _ => match scheme {
                "https" => Some("443"),
                "http" => Some("80"),
                _ => None,
            }
            .map(|port| [scheme, "://", authority, ":", port, tail]),
        };
        std::iter::once(received).chain(other)
    }

    /// The first `bodySHA256` value in the URL's query, as written: a URL with one says
    /// its body is validated by that hash (Twilio's JSON webhooks).
    pub fn body_sha256_param(&self) -> Option<&'a str> {
        let query = self.tail.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or(query);
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("bodySHA256="))
    }
}

/// Where the authority at the start of `rest` ends: at its first '/', '?' or '#', else at
/// its end.
fn authority_end(rest: &str) -> usize {
    memchr::memchr3(b'/', b'?', b'#', rest.as_bytes()).unwrap_or(rest.len())
}

/// The URL candidates for `url`: as received (scheme lower-cased), and with its port removed
/// or, when it has none, the scheme's default port added. Empty when `url` is not absolute.
pub fn url_variants(url: &str) -> Vec<String> {
    Url::parse(url).map_or_else(Vec::new, |u| u.candidates().map(|c| c.concat()).collect())
}

/// Validates `signature` for a request to `url` with `payload` against each of `tokens`,
/// recording what was tried (for `sigil signature verify`).
pub fn validate<T: Token>(
    tokens: &[T],
    url: &str,
    payload: Payload<'_>,
    signature: &str,
) -> Verdict {
    let mut verdict = Verdict {
        valid: false,
        tried: Vec::new(),
        body_problem: None,
        signature_problem: None,
    };
    let Some(url) = Url::parse(url) else {
        return verdict;
    };
    match check(tokens, &url, payload, signature, Some(&mut verdict.tried)) {
        Ok(valid) => verdict.valid = valid,
        Err(Refusal::Body(problem)) => verdict.body_problem = Some(problem),
        Err(Refusal::Signature(problem)) => verdict.signature_problem = Some(problem),
    }
    verdict
}

/// Whether `signature` is valid for a request to `url` with `payload` by one of `tokens`
/// (the edge's check: nothing recorded).
pub fn is_valid<T: Token>(
    tokens: &[T],
    url: &Url<'_>,
    payload: Payload<'_>,
    signature: &str,
) -> bool {
    matches!(check(tokens, url, payload, signature, None), Ok(true))
}

/// Why a request was refused before any signature was compared.
enum Refusal {
    /// The body does not match the URL's `bodySHA256`.
    Body(String),
    /// The signature's form.
    Signature(&'static str),
}

/// The check behind [`validate`] and [`is_valid`]: Ok(whether a candidate URL and token
/// match), each signed string pushed to `tried` when it is given.
fn check<T: Token>(
    tokens: &[T],
    url: &Url<'_>,
    payload: Payload<'_>,
    signature: &str,
    mut tried: Option<&mut Vec<String>>,
) -> Result<bool, Refusal> {
    let params: &[(String, String)] = match payload {
        Payload::Form(p) => p,
        Payload::Body(body) => {
            match url.body_sha256_param() {
                None => {
                    return Err(Refusal::Body(
                        "the URL has no bodySHA256 parameter".to_owned(),
                    ))
                }
                Some("") => {
                    return Err(Refusal::Body(
                        "the URL's bodySHA256 parameter is empty".to_owned(),
                    ))
                }
                Some(given) => {
                    let actual = body_sha256(body);
                    // Compared as written: Twilio sends lowercase hex.
                    if !bool::from(given.as_bytes().ct_eq(actual.as_bytes())) {
                        return Err(Refusal::Body(format!(
                            "the body's sha256 is {actual}, the URL's bodySHA256 is {given}"
                        )));
                    }
                }
            }
            &[]
        }
    };
    // Refused as Twilio's libraries refuse it: the header's value is compared as it is.
    // (`trim` returns a part of the value: the same length means nothing was trimmed.)
    if signature.trim().len() != signature.len() {
        return Err(Refusal::Signature(
            "the header value has surrounding whitespace",
        ));
    }
    // An HMAC-SHA1 is 20 bytes; anything that does not decode to exactly that never matches.
    let mut decoded = [0u8; 24];
    let expected = base64::engine::general_purpose::STANDARD
        .decode_slice(signature, &mut decoded)
        .ok()
        .filter(|&n| n == 20)
        .map(|_| &decoded[..20]);
    let pairs = signed_pairs(params);
    // The signed string is fed to the MAC in pieces, never built: only `tried` needs it whole.
    let mut matches = |candidate: &[&str]| {
        if let Some(tried) = tried.as_deref_mut() {
            tried.push(signed_pieces(candidate, &pairs).collect());
        }
        tokens.iter().any(|token| {
            let mut mac = token.keyed();
            for piece in signed_pieces(candidate, &pairs) {
                mac.update(piece.as_bytes());
            }
            let mac = mac.finalize().into_bytes();
            expected.is_some_and(|e| bool::from(e.ct_eq(&mac)))
        })
    };
    // The URL as received first: that is what Twilio signed unless a port was added or
    // removed on the way. Each comparison is constant-time; stopping at a match reveals
    // nothing the response does not.
    Ok(url.candidates().any(|c| matches(&c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_string_sorts_and_dedups() {
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let params = vec![
            p("b", "2"),
            p("a", "z"),
            p("a", "y"),
            p("a", "z"),
            p("", "e"),
        ];
        assert_eq!(signed_string("https://x/", &params), "https://x/eayazb2");
    }

    #[test]
    fn url_variants_table() {
        for (url, want) in [
            (
                "https://a.com/p?q=1",
                vec!["https://a.com/p?q=1", "https://a.com:443/p?q=1"],
            ),
            (
                "HTTP://a.com:8080/p",
                vec!["http://a.com:8080/p", "http://a.com/p"],
            ),
            (
                "https://u:p@a.com/p",
                vec!["https://u:p@a.com/p", "https://u:p@a.com:443/p"],
            ),
            (
                "https://u:p@a.com:8443/p",
                vec!["https://u:p@a.com:8443/p", "https://u:p@a.com/p"],
            ),
            (
                "https://[::1]/p",
                vec!["https://[::1]/p", "https://[::1]:443/p"],
            ),
            (
                "https://[::1]:8443/p",
                vec!["https://[::1]:8443/p", "https://[::1]/p"],
            ),
            ("https://a.com", vec!["https://a.com", "https://a.com:443"]),
            (
                "http://a.com/p",
                vec!["http://a.com/p", "http://a.com:80/p"],
            ),
            (
                "http://a.com:80/p",
                vec!["http://a.com:80/p", "http://a.com/p"],
            ),
            (
                "https://u:p@[::1]:8443/p",
                vec!["https://u:p@[::1]:8443/p", "https://u:p@[::1]/p"],
            ),
            (
                "https://u:p@[::1]/p",
                vec!["https://u:p@[::1]/p", "https://u:p@[::1]:443/p"],
            ),
            ("ftp://a.com/p", vec!["ftp://a.com/p"]),
            // An empty password: its ':' is not a port's.
            (
                "https://u:@a.com/p",
                vec!["https://u:@a.com/p", "https://u:@a.com:443/p"],
            ),
        ] {
            assert_eq!(url_variants(url), want, "{url}");
        }
        for bad in [
            "/sms",
            "example.com/sms",
            "https:///x",
            "https://?q=1",
            "https://#f",
            "://x",
            "https:/x",
            "a:b://x",
            "h_t://x",
        ] {
            assert!(url_variants(bad).is_empty(), "{bad}");
        }
    }

    /// The pieces a server holds make the URL the whole string makes; pieces that make no
    /// absolute URL make none.
    #[test]
    fn url_from_parts() {
        let joined = |u: Url<'_>| u.candidates().map(|c| c.concat()).collect::<Vec<_>>();
        for (scheme, authority, tail, whole) in [
            ("HTTP", "a.com:8080", "/p?q=1", "HTTP://a.com:8080/p?q=1"),
            ("https", "a.com", "", "https://a.com"),
            ("http", "[::1]", "?q", "http://[::1]?q"),
            ("https", "a.com", "#f", "https://a.com#f"),
        ] {
            let url = Url::from_parts(scheme, authority, tail).expect(whole);
            assert_eq!(joined(url), url_variants(whole), "{whole}");
        }
        for (scheme, authority, tail) in [
            ("", "a.com", "/p"),
            ("h_t", "a.com", "/p"),
            ("https", "", "/p"),
            ("https", "a.com/x", "/p"),
            ("https", "a.com?", ""),
            ("https", "a.com#", ""),
            ("https", "a.com", "p"),
            ("https", "a.com", "*"),
        ] {
            assert!(
                Url::from_parts(scheme, authority, tail).is_none(),
                "{scheme} {authority} {tail}"
            );
        }
    }

    #[test]
    fn twilio_docs_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // As twilio-python 9.13 RequestValidator.compute_signature computes it.
        let sig = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(sign("12345", &signed_string(url, &params)), sig);
        assert!(validate(&["12345"], url, Payload::Form(&params), sig).valid);
        assert!(validate(&["wrong", "12345"], url, Payload::Form(&params), sig).valid);
        assert!(!validate(&["wrong"], url, Payload::Form(&params), sig).valid);
        assert!(!validate(&["12345"], url, Payload::Form(&params), "not base64!").valid);
    }

    #[test]
    fn a_signing_key_never_shows_its_token() {
        let text = format!("{:?}", SigningKey::new("s3cret-token"));
        assert_eq!(text, "SigningKey(..)");
    }

    /// `bodySHA256` is the lowercase hex sha256 of the body, and a JSON body validates
    /// through it (and only with the right one).
    #[test]
    fn body_sha256_and_json_bodies() {
        assert_eq!(
            body_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let body = br#"{"a":1}"#;
        let url = format!("https://h.com/x?bodySHA256={}", body_sha256(body));
        let sig = sign("tok", &signed_string(&url, &[]));
        assert!(validate(&["tok"], &url, Payload::Body(body), &sig).valid);
        let v = validate(&["tok"], &url, Payload::Body(br#"{"a":2}"#), &sig);
        assert!(!v.valid);
        assert!(v.body_problem.is_some());
    }

    /// A webhook signed with the default port and received without it (or the other way
    /// round) is valid, for http as for https.
    #[test]
    fn default_ports_either_way() {
        let params: Vec<(String, String)> = vec![("To".into(), "+1".into())];
        for (signed_as, received) in [
            ("http://h.com:80/x?a=1", "http://h.com/x?a=1"),
            ("http://h.com/x?a=1", "http://h.com:80/x?a=1"),
            ("https://h.com:443/x", "https://h.com/x"),
            ("https://h.com/x", "https://h.com:443/x"),
        ] {
            let sig = sign("tok", &signed_string(signed_as, &params));
            let v = validate(&["tok"], received, Payload::Form(&params), &sig);
            assert!(v.valid, "{signed_as} received as {received}");
        }
        // Another port is another URL.
        let sig = sign("tok", &signed_string("http://h.com:8080/x", &params));
        assert!(!validate(&["tok"], "http://h.com/x", Payload::Form(&params), &sig).valid);
    }

    /// Only exactly 20 decoded bytes can match: the right MAC with bytes after it does not.
    #[test]
    fn a_signature_of_more_than_twenty_bytes_never_matches() {
        use base64::Engine;
        let params: Vec<(String, String)> = Vec::new();
        let url = "https://h.com/x";
        let mac = hmac_sha1("tok", &signed_string(url, &params));
        let exact = base64::engine::general_purpose::STANDARD.encode(mac);
        assert!(validate(&["tok"], url, Payload::Form(&params), &exact).valid);
        for extra in [1usize, 2, 4] {
            let mut long = mac.to_vec();
            long.extend(std::iter::repeat_n(0u8, extra));
            let sig = base64::engine::general_purpose::STANDARD.encode(&long);
            assert!(
                !validate(&["tok"], url, Payload::Form(&params), &sig).valid,
                "{extra}"
            );
        }
        let short = base64::engine::general_purpose::STANDARD.encode(&mac[..19]);
        assert!(!validate(&["tok"], url, Payload::Form(&params), &short).valid);
    }
}
