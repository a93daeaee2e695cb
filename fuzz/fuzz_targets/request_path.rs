//! From a raw request target to the asset it names: `http::Uri` parsing (what hyper does with
//! the request line or `:path`), percent-decoding to UTF-8, the NUL check, and
//! `Site::lookup`.
//!
//! The decoding step mirrors `Edge::decide` in src/edge/mod.rs (two lines, inline there);
//! if it becomes a function of its own, call it here instead of `decode`.
//!
//! Properties: a request only ever reaches an asset whose stored path is exactly the decoded
//! request path (or `/`, served from `/assets/index.html`), so a decoded path with `..`, `.`,
//! empty segments, backslashes or NUL never matches; and every stored path, however its bytes
//! are percent-encoded in the request, decodes back to itself and finds its asset. The raw
//! bytes are also tried as a Host value: `routes::valid_host` accepts only ASCII without
//! whitespace, userinfo, path, query or fragment, and one colon outside an IP literal.
//!
//! Input: a first byte with its low bit clear means the rest is a raw request target (the
//! seeds); otherwise the rest is read as a stored path and an encoding mask.
#![no_main]

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use http::Uri;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::asset_path::normalize;
use sigil::edge::routes::{valid_host, EdgeAsset, Site};
use sigil::manifest::{Entry, Visibility};

#[derive(Arbitrary, Debug)]
enum Input {
    /// A request target as sent.
    Raw(Vec<u8>),
    /// A version path, stored, then requested with the bytes `mask` selects percent-encoded.
    Stored { path: String, mask: Vec<bool> },
}

/// What `Edge::decide` looks up: `edge::decode_path` of the URI's path.
fn decode(uri: &Uri) -> Option<Cow<'_, str>> {
    sigil::edge::decode_path(uri.path()).ok()
}

fn asset(path: &str, content_type: &str) -> (String, Arc<EdgeAsset>) {
    let entry = Entry {
        sid: format!("ZN{path}"),
        parent_sid: "ZH00000000000000000000000000000000".into(),
        date_created: 1_700_000_000,
        path: path.into(),
        visibility: Visibility::Public,
        sha256: "ab".repeat(32),
        size: 3,
        content_type: Some(content_type.into()),
    };
    (path.into(), Arc::new(EdgeAsset::new(&entry, false, &[])))
}

fn site(extra: Option<&str>) -> Site {
    let mut assets: HashMap<String, Arc<EdgeAsset>> = [
        asset("/assets/index.html", "text/html"),
        asset("/a/b.txt", "text/plain"),
        asset("/.well-known/x", "text/plain"),
        asset("/ünï/日本.txt", "text/plain"),
    ]
    .into_iter()
    .collect();
    if let Some(p) = extra {
        assets.extend([asset(p, "application/octet-stream")]);
    }
    for k in assets.keys() {
        assert_eq!(
            normalize(k).as_deref(),
            Ok(k.as_str()),
            "stored paths are normal"
        );
    }
    Site {
        domain: "x-1234.example".into(),
        account_sid: "AC".into(),
        service_sid: "ZS".into(),
        environment_sid: "ZE".into(),
        build_sid: "ZB".into(),
        deployment_sid: None,
        assets: Arc::new(assets),
    }
}

/// Whatever a decoded path reaches, it reaches by its exact stored path.
fn check_lookup(site: &Site, key: &str) {
    if let Some(a) = site.lookup(key) {
        if key == "/" && a.path != "/" {
            assert_eq!(a.path, "/assets/index.html");
        } else {
            assert_eq!(a.path, key);
            assert_eq!(normalize(key).as_deref(), Ok(key), "{key:?} matched");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check(Input::Raw(rest.to_vec()));
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    match inp {
        Input::Raw(bytes) => {
            // The same bytes as a Host value: a valid one is ASCII with no whitespace,
            // userinfo, path, query or fragment.
            if let Ok(host) = std::str::from_utf8(&bytes) {
                if valid_host(host) {
                    assert!(
                        host.bytes()
                            .all(|b| b.is_ascii_graphic() && !b"@/\\?#\"<>[]".contains(&b)
                                || (b == b'[' && host.starts_with('['))
                                || (b == b']' && host.starts_with('['))),
                        "{host:?}"
                    );
                    assert!(host.matches(':').count() <= 1 || host.starts_with('['));
                }
            }
            let Ok(uri) = Uri::try_from(bytes) else {
                return;
            };
            let site = site(None);
            if let Some(key) = decode(&uri) {
                check_lookup(&site, &key);
            }
        }
        Input::Stored { path, mask } => {
            let Ok(path) = normalize(&path) else {
                return;
            };
            let mut target = String::new();
            for (i, b) in path.bytes().enumerate() {
                let plain = b.is_ascii_alphanumeric() || b"/-._~!*=".contains(&b);
                // The leading `/` stays: `%2F…` is not an origin-form target.
                if i == 0 || (plain && !mask.get(i).copied().unwrap_or(false)) {
                    target.push(char::from(b));
                } else {
                    target.push_str(&format!("%{b:02X}"));
                }
            }
            let uri = Uri::try_from(target.as_str())
                .unwrap_or_else(|e| panic!("{target:?} is a valid request target: {e}"));
            let key = decode(&uri).expect("a stored path decodes");
            assert_eq!(key, path.as_str());
            let site = site(Some(&path));
            let found = site.lookup(&key).expect("a stored path is found");
            assert_eq!(found.path, path);
            check_lookup(&site, &key);
        }
    }
}
