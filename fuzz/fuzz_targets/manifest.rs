//! Build manifests: a Build record's stored JSON decoded (`Record::decode::<BuildData>`, as the
//! edge's route loader and the API do) and turned into the edge's view (`EdgeAsset::new` for
//! every entry, with its precompressed variants); `Dependencies` as the API parses them.
//!
//! Properties: decoding never panics, and what decodes re-encodes to JSON that decodes to the
//! same manifest; any decoded entry gives an `EdgeAsset` whose ETags the edge's own
//! precondition code recognises (`If-None-Match` → 304, `If-Range` → range allowed), whose
//! variants are sorted smallest first, and whose `Last-Modified` is a valid HTTP date; an
//! `Entry` built from arbitrary fields survives JSON exactly; parsed dependencies survive
//! being written back as a JSON array, a quoted array or a JSON string.
//!
//! Input: a first byte with its low bit clear means the rest is a stored record's JSON, also
//! tried as a `Dependencies` value (the seeds); otherwise the rest is read as arbitrary
//! structured fields.
#![no_main]

use http::{header, HeaderMap, Method};
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::control::builds::{parse_dependencies, BuildData, Dependency};
use sigil::control::environments::EnvironmentData;
use sigil::control::versions::VersionData;
use sigil::edge::http::conditional::{evaluate, if_range_allows, Precondition};
use sigil::edge::routes::EdgeAsset;
use sigil::manifest::{Encoded, Entry, Visibility};
use sigil::store::{Kind, Record};

#[derive(Arbitrary, Debug)]
struct ArbEntry {
    sid: String,
    parent_sid: String,
    date_created: i64,
    path: String,
    visibility: u8,
    sha256: String,
    size: u64,
    content_type: Option<String>,
}

impl From<ArbEntry> for Entry {
    fn from(a: ArbEntry) -> Entry {
        Entry {
            sid: a.sid,
            parent_sid: a.parent_sid,
            date_created: a.date_created,
            path: a.path,
            visibility: [
                Visibility::Public,
                Visibility::Protected,
                Visibility::Private,
            ][usize::from(a.visibility) % 3],
            sha256: a.sha256,
            size: a.size,
            content_type: a.content_type,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A stored record's bytes.
    Json(Vec<u8>),
    /// An entry with any field values, and precompressed variants of it.
    Entry {
        entry: ArbEntry,
        encoded: Vec<(bool, String, u64)>,
        is_function: bool,
    },
    /// The `Dependencies` parameter.
    Dependencies(String),
}

fn record(data: Vec<u8>) -> Record {
    let mut rec = Record::new(
        Kind::Build,
        "ZB00000000000000000000000000000000".into(),
        "AC00000000000000000000000000000000".into(),
        Some("ZS00000000000000000000000000000000".into()),
        &serde_json::Value::Null,
    );
    rec.data = data;
    rec
}

/// The edge's view of an entry holds together.
fn check_edge_asset(entry: &Entry, is_function: bool, encoded: &[Encoded]) {
    let asset = EdgeAsset::new(entry, is_function, encoded);
    assert_eq!(asset.path, entry.path);
    assert_eq!(asset.identity.size, entry.size);
    assert_eq!(asset.encoded.len(), encoded.len());
    assert!(asset.encoded.windows(2).all(|w| w[0].size <= w[1].size));
    let date = asset.last_modified_header.to_str().expect("ASCII date");
    let parsed = httpdate::parse_http_date(date).expect("Last-Modified is an HTTP date");
    let secs = parsed
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    assert_eq!(secs, asset.last_modified);
    for rep in std::iter::once(&asset.identity).chain(&asset.encoded) {
        let etag = rep.etag.to_str().expect("ETags are ASCII");
        assert!(etag.len() >= 2 && etag.starts_with('"') && etag.ends_with('"'));
        assert!(!etag[1..etag.len() - 1].contains('"'), "{etag}");
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, rep.etag.clone());
        h.insert(header::IF_RANGE, rep.etag.clone());
        assert_eq!(
            evaluate(&Method::GET, &h, etag, asset.last_modified),
            Precondition::NotModified
        );
        assert!(if_range_allows(&h, etag, asset.last_modified));
    }
}

fn check_build(b: &BuildData) {
    let json = serde_json::to_vec(b).expect("a BuildData serialises");
    let again: BuildData = record(json.clone())
        .decode()
        .expect("re-encoded JSON decodes");
    assert_eq!(again.asset_versions, b.asset_versions);
    assert_eq!(again.function_versions, b.function_versions);
    assert_eq!(again.dependencies, b.dependencies);
    assert_eq!(again.encodings, b.encodings);
    assert_eq!(serde_json::to_vec(&again).expect("serialises"), json);
    let none = Vec::new();
    for (entries, is_function) in [(&b.asset_versions, false), (&b.function_versions, true)] {
        for e in entries {
            check_edge_asset(e, is_function, b.encodings.get(&e.sha256).unwrap_or(&none));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        check(Input::Json(rest.to_vec()));
        if let Ok(text) = std::str::from_utf8(rest) {
            check(Input::Dependencies(text.to_owned()));
        }
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    match inp {
        Input::Json(bytes) => {
            let rec = record(bytes);
            if let Ok(b) = rec.decode::<BuildData>() {
                check_build(&b);
            }
            let _ = rec.decode::<VersionData>();
            let _ = rec.decode::<EnvironmentData>();
            if let Ok(e) = rec.decode::<Entry>() {
                check_edge_asset(&e, false, &[]);
            }
        }
        Input::Entry {
            entry,
            encoded,
            is_function,
        } => {
            let entry = Entry::from(entry);
            let json = serde_json::to_vec(&entry).expect("an Entry serialises");
            let back: Entry = record(json).decode().expect("an Entry decodes");
            assert_eq!(back, entry);
            let encoded: Vec<Encoded> = encoded
                .into_iter()
                .map(|(br, sha256, size)| Encoded {
                    coding: if br {
                        sigil::edge::http::encoding::Coding::Br
                    } else {
                        sigil::edge::http::encoding::Coding::Gzip
                    },
                    sha256,
                    size,
                })
                .collect();
            check_edge_asset(&entry, is_function, &encoded);
        }
        Input::Dependencies(raw) => {
            let Ok(deps) = parse_dependencies(Some(&raw)) else {
                return;
            };
            let array = serde_json::to_string(&deps).expect("serialises");
            let quoted = format!("\"{array}\"");
            let string = serde_json::to_string(&array).expect("serialises");
            for form in [&array, &quoted, &string] {
                let again: Result<Vec<Dependency>, String> = parse_dependencies(Some(form));
                assert_eq!(again.as_ref(), Ok(&deps), "{form}");
            }
        }
    }
}
