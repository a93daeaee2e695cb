//! `X-Twilio-Signature`: the signed string, the URL variants, the validator and the form
//! decoding the edge feeds it.
//!
//! Properties:
//! - a signature made the way Twilio makes it (`sign` over `signed_string` of either URL
//!   variant) validates, for a form and for a JSON body through `bodySHA256`; the same
//!   signature with one bit flipped, or a different body, does not;
//! - any accepted signature is exactly `sign(token, s)` for a token given and a string tried;
//! - nothing validates for a URL that is not absolute;
//! - `url_variants` keeps the URL as received (scheme lower-cased) first, at most two;
//! - `signed_string` ignores parameter order and repeated pairs;
//! - `form::decode_pairs` inverts `form::encode`.
//!
//! Input: a first byte with its low bit clear means text, `url\ntoken\nsignature\nbody`
//! (the seeds, from tests/fixtures/signature_vectors.json); otherwise the rest is read as
//! arbitrary structured fields.
#![no_main]

use base64::Engine;
use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::control::form;
use sigil::signature::{body_sha256, sign, signed_string, url_variants, validate, Payload};

#[derive(Arbitrary, Debug)]
struct Input {
    token: String,
    other_token: String,
    url: String,
    params: Vec<(String, String)>,
    body: Vec<u8>,
    raw_signature: String,
    raw_form: Vec<u8>,
    flip: u8,
    mask: u8,
    variant: bool,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// HMAC pads short keys with zeros and hashes long ones: two tokens are certainly different
/// keys only when both are short and differ after trailing NULs are removed.
fn distinct_keys(a: &str, b: &str) -> bool {
    a.len() <= 64 && b.len() <= 64 && a.trim_end_matches('\0') != b.trim_end_matches('\0')
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let mut lines = text.splitn(4, '\n');
        let mut next = || lines.next().unwrap_or("").to_owned();
        let (url, token, raw_signature, body) = (next(), next(), next(), next());
        check(Input {
            token,
            other_token: String::new(),
            url,
            params: form::decode_pairs(body.as_bytes()).unwrap_or_default(),
            body: body.clone().into_bytes(),
            raw_signature,
            raw_form: body.into_bytes(),
            flip: rest.len() as u8,
            mask: 1,
            variant: rest.len() % 2 == 1,
        });
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    let url = inp.url.as_str();
    let params = inp.params.as_slice();

    // URL variants.
    let variants = url_variants(url);
    assert!(variants.len() <= 2, "{variants:?}");
    if let Some(first) = variants.first() {
        let (scheme, rest) = url.split_once("://").expect("an absolute URL has ://");
        assert_eq!(
            *first,
            format!("{}://{rest}", scheme.to_ascii_lowercase()),
            "the URL as received comes first"
        );
        assert_eq!(url_variants(first).first(), Some(first));
        if variants.len() == 2 {
            assert_ne!(variants[0], variants[1]);
        }
    }

    // The signed string does not depend on order or repeated pairs.
    let signed = signed_string(url, params);
    assert!(signed.starts_with(url));
    let mut shuffled: Vec<(String, String)> = params.iter().rev().cloned().collect();
    shuffled.extend(params.iter().cloned());
    assert_eq!(signed, signed_string(url, &shuffled));

    // Form bodies: decoding inverts encoding; arbitrary bytes never panic.
    let encoded = params
        .iter()
        .map(|(k, v)| format!("{}={}", form::encode(k), form::encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        form::decode_pairs(encoded.as_bytes()).as_deref(),
        Ok(params),
        "{encoded}"
    );
    let raw_pairs = form::decode_pairs(&inp.raw_form).unwrap_or_default();

    // Any signature: accepted only if it is the HMAC of a string tried, with a token given.
    let tokens = [inp.token.as_str(), inp.other_token.as_str()];
    for p in [params, raw_pairs.as_slice()] {
        let v = validate(&tokens, url, Payload::Form(p), &inp.raw_signature);
        assert!(v.tried.len() <= variants.len());
        assert!(v.body_problem.is_none());
        if v.valid {
            let given = inp.raw_signature.trim();
            assert!(
                v.tried
                    .iter()
                    .any(|s| tokens.iter().any(|t| sign(t, s) == given)),
                "accepted {given:?} for {:?}",
                v.tried
            );
        }
    }
    if variants.is_empty() {
        let sig = sign(&inp.token, &signed);
        assert!(!validate(&[&inp.token], url, Payload::Form(params), &sig).valid);
        return;
    }

    // A signature made the way Twilio makes it validates; one flipped bit does not.
    let which = &variants[usize::from(inp.variant) % variants.len()];
    let good = sign(&inp.token, &signed_string(which, params));
    let form = Payload::Form(params);
    assert!(validate(&[&inp.token], url, form, &good).valid);
    assert!(validate(&[&inp.other_token, &inp.token], url, form, &good).valid);
    assert!(validate(&[&inp.token], url, form, &format!(" {good}\t")).valid);
    if distinct_keys(&inp.token, &inp.other_token) {
        assert!(!validate(&[&inp.other_token], url, form, &good).valid);
    }
    let mut mac = B64.decode(&good).expect("sign writes base64");
    assert_eq!(mac.len(), 20);
    mac[usize::from(inp.flip) % 20] ^= inp.mask.max(1);
    let bad = B64.encode(&mac);
    assert!(!validate(&[&inp.token], url, form, &bad).valid);

    // JSON bodies: the URL carries bodySHA256 and only the URL is signed.
    if url.contains('#') || url.contains("bodySHA256=") {
        return;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let body_url = format!("{url}{sep}bodySHA256={}", body_sha256(&inp.body));
    let body_variants = url_variants(&body_url);
    let Some(which) = body_variants.get(usize::from(inp.variant) % body_variants.len().max(1))
    else {
        return;
    };
    let good = sign(&inp.token, &signed_string(which, &[]));
    let v = validate(&[&inp.token], &body_url, Payload::Body(&inp.body), &good);
    assert!(v.valid && v.body_problem.is_none(), "{v:?}");
    let mut other_body = inp.body.clone();
    other_body.push(inp.mask);
    let v = validate(&[&inp.token], &body_url, Payload::Body(&other_body), &good);
    assert!(!v.valid && v.body_problem.is_some(), "{v:?}");
    assert!(!validate(&[&inp.token], &body_url, Payload::Body(&inp.body), &bad).valid);
}
