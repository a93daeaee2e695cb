//! Hostile input: JSON bodies whose `bodySHA256` does not match. Twilio signs a JSON webhook's
//! URL with `bodySHA256={hex sha256 of the body}` appended, so a valid signature only vouches
//! for the body through that hash. Every request here carries a *valid* X-Twilio-Signature for
//! its URL; whenever the body does not hash to the URL's first `bodySHA256` (as written,
//! lower-case hex), the protected asset is refused with 403 — including an empty or omitted
//! body. The API takes no JSON: 415 as Twilio JSON.

mod hostile;
mod support;

use hostile::{assert_no_leak, assert_twilio_error, exchange, Fixture};
use sigil::signature::{body_sha256, sign};
use support::AUTH_TOKEN;

const JSON: &str = "Content-Type: application/json\r\n";

/// (what, method, target, Content-Type line, body, status).
type Case<'a> = (&'a str, &'a str, String, &'a str, Vec<u8>, u16);

/// A request for `target` on the site, signed over `signed_target` (usually the same).
fn signed(
    fx: &Fixture,
    method: &str,
    target: &str,
    signed_target: &str,
    ctype: &str,
    body: &[u8],
) -> Vec<u8> {
    let d = &fx.site.domain;
    let signature = sign(AUTH_TOKEN, &format!("http://{d}{signed_target}"));
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {d}\r\nX-Twilio-Signature: {signature}\r\n{ctype}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

#[test]
fn a_wrong_body_sha256_is_refused() {
    let fx = Fixture::start(&[]);
    let body = br#"{"CallSid":"CA123","Digits":"1234"}"#;
    let right = body_sha256(body);
    let other = body_sha256(b"{}");
    let empty = body_sha256(b"");
    let with = |h: &str| format!("/prot.txt?bodySHA256={h}");

    // Control: the right hash is served.
    let x = exchange(
        fx.edge(),
        &signed(&fx, "POST", &with(&right), &with(&right), JSON, body),
    );
    assert_eq!(
        x.expect(200, "the right bodySHA256").body,
        hostile::protected_bytes()
    );

    let upper = right.to_ascii_uppercase();
    let long = "a".repeat(4_000);
    let two_first_wrong = format!("/prot.txt?bodySHA256={other}&bodySHA256={right}");
    let mut tampered = body.to_vec();
    tampered.extend_from_slice(b" ");
    let big = vec![b' '; 70_000];
    let big_hash = body_sha256(&big);
    let cases: Vec<Case> = vec![
        (
            "all zeros",
            "POST",
            with(&"0".repeat(64)),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "another body's hash",
            "POST",
            with(&other),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "upper-case hex",
            "POST",
            with(&upper),
            JSON,
            body.to_vec(),
            403,
        ),
        ("empty", "POST", with(""), JSON, body.to_vec(), 403),
        (
            "not hex",
            "POST",
            with(&"zz".repeat(32)),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "10,000 characters",
            "POST",
            with(&long),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "a prefix of the hash",
            "POST",
            with(&right[..32]),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "the hash and more",
            "POST",
            with(&format!("{right}0")),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "no bodySHA256 at all",
            "POST",
            "/prot.txt".into(),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "a bodySHA256 that is not the parameter",
            "POST",
            format!("/prot.txt?xbodySHA256={right}"),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "percent-encoded `=`",
            "POST",
            format!("/prot.txt?bodySHA256%3D{right}"),
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "two, the first wrong",
            "POST",
            two_first_wrong,
            JSON,
            body.to_vec(),
            403,
        ),
        (
            "a body changed by one byte",
            "POST",
            with(&right),
            JSON,
            tampered,
            403,
        ),
        ("an empty body", "POST", with(&right), JSON, Vec::new(), 403),
        (
            "an empty body, no Content-Type",
            "POST",
            with(&right),
            "",
            Vec::new(),
            403,
        ),
        (
            "a GET (its body is never read)",
            "GET",
            with(&right),
            "",
            Vec::new(),
            403,
        ),
        (
            "the body sent as a form",
            "POST",
            with(&right),
            "Content-Type: application/x-www-form-urlencoded\r\n",
            body.to_vec(),
            403,
        ),
        (
            "a body over --edge-max-body",
            "POST",
            with(&big_hash),
            JSON,
            big,
            413,
        ),
    ];
    for (what, method, target, ctype, body, status) in &cases {
        let what = format!("edge {method} {target}: {what}");
        let x = exchange(fx.edge(), &signed(&fx, method, target, target, ctype, body));
        x.expect(*status, &what);
        assert_no_leak(&x.raw, &what);
    }
    // A valid signature over another URL (another hash): 403.
    let x = exchange(
        fx.edge(),
        &signed(&fx, "POST", &with(&right), &with(&other), JSON, body),
    );
    x.expect(403, "signed for another bodySHA256");
    assert_no_leak(&x.raw, "signed for another bodySHA256");
    // Private stays private with a perfect signature and hash.
    let target = format!("/secret.txt?bodySHA256={right}");
    let x = exchange(
        fx.edge(),
        &signed(&fx, "POST", &target, &target, JSON, body),
    );
    x.expect(403, "private with a right bodySHA256");
    assert_no_leak(&x.raw, "private with a right bodySHA256");
    // Consistency: an empty body is fine when the URL carries the empty body's hash, and
    // chunked framing of the right body changes nothing.
    exchange(
        fx.edge(),
        &signed(&fx, "POST", &with(&empty), &with(&empty), JSON, b""),
    )
    .expect(200, "an empty body with the empty body's hash");
    let d = &fx.site.domain;
    let signature = sign(AUTH_TOKEN, &format!("http://{d}{}", with(&right)));
    let mut req = format!(
        "POST {} HTTP/1.1\r\nHost: {d}\r\nX-Twilio-Signature: {signature}\r\n{JSON}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n",
        with(&right),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    exchange(fx.edge(), &req).expect(200, "the right body, chunked");

    // API: JSON is not a form: 415 / 20001, whatever the query says.
    for target in [
        format!("/v1/Services?bodySHA256={right}"),
        "/v1/Services?bodySHA256=0".into(),
    ] {
        let x = exchange(
            fx.api(),
            &hostile::api_request("POST", target.as_bytes(), &[JSON], body),
        );
        assert_eq!(
            assert_twilio_error(x.only(), 415, &format!("API POST {target} with JSON")),
            20001
        );
    }

    fx.assert_still_serving();
}
