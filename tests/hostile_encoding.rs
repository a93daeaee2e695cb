//! Hostile input: invalid UTF-8 and invalid percent-encoding in paths, queries and header
//! values, on the edge and the API. A path that is not UTF-8 once percent-decoded is a 400 at
//! the edge; a `%` not followed by two hex digits is taken literally (so it names nothing);
//! raw non-ASCII bytes are hyper's 400 or an unknown path. On the API a bad path segment is a
//! 404 and a bad query parameter a 400, both Twilio JSON; credentials that do not decode are
//! a 401.

mod hostile;
mod support;

use hostile::{api_request, assert_no_leak, assert_twilio_error, exchange, get, Fixture};

#[test]
fn invalid_utf8_and_percent_encoding_get_a_4xx() {
    let fx = Fixture::start(&[]);
    let domain = fx.site.domain.clone();
    let api = fx.sigil.client();
    let uni = api.deploy_site(
        "unicode",
        &[("/ünï/日本.txt", "public", b"unicode path\n", "text/plain")],
    );

    // Edge paths: (target, status).
    let edge_cases: Vec<(&[u8], u16)> = vec![
        (b"/%FF", 400),
        (b"/%ff%fe.txt", 400),
        (b"/pub%FF.txt", 400),
        (b"/%C3%28", 400),       // a bad continuation byte
        (b"/%E2%82", 400),       // truncated sequence
        (b"/%ED%A0%80", 400),    // a UTF-16 surrogate
        (b"/%F4%90%80%80", 400), // above U+10FFFF
        (b"/%C0%AF", 400),       // overlong `/`
        (b"/%E0%80%AF", 400),    // overlong `/`, three bytes
        (b"/%C0%AE%C0%AEsecret.txt", 400),
        (b"/%", 404), // not an escape: literal, names nothing
        (b"/%2", 404),
        (b"/%G1", 404),
        (b"/%%32%65", 404),
        (b"/pub.txt%", 404),
        (b"/pub.txt%2", 404),
        (b"/%u002e%u002e/secret.txt", 404), // IIS-style, not an escape here
        (b"/\xff", 400),                    // raw non-ASCII: hyper refuses the URI
        (b"/\xc3\x28", 400),
        (b"/\x7f", 400),
        (b"/pub.txt\x01", 400),
        (b"/%70ub.txt", 200), // a valid escape of an ordinary character
        (b"/pub%2Etxt", 200),
        (b"/pub.txt?x=%FF%FE", 200), // the query of a public asset is not the edge's business
        (b"/pub.txt?%", 200),
    ];
    for (target, want) in &edge_cases {
        let what = format!("edge GET {}", String::from_utf8_lossy(target));
        let x = fx.edge_get(target);
        let r = x.expect(*want, &what);
        assert_no_leak(&x.raw, &what);
        if *want == 200 {
            assert_eq!(r.body, hostile::PUBLIC, "{what}");
        }
    }
    // The private and protected assets behind escapes are still private and protected.
    for target in [
        &b"/%73ecret.txt"[..],
        b"/secret%2etxt",
        b"/%70rot.txt",
        b"/prot%2Etxt",
    ] {
        let what = format!("edge GET {}", String::from_utf8_lossy(target));
        let x = fx.edge_get(target);
        x.expect(403, &what);
        assert_no_leak(&x.raw, &what);
    }
    // Non-ASCII paths are served when they are valid UTF-8 and name an asset.
    let x = exchange(
        fx.edge(),
        &get(&uni.domain, b"/%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC.txt", &[]),
    );
    assert_eq!(
        x.expect(200, "edge: encoded unicode path").body,
        b"unicode path\n"
    );
    let x = exchange(
        fx.edge(),
        &get(
            &uni.domain,
            b"/%C3%BCn%C3%AF/%E6%97%A5%E6%9C%AC%FF.txt",
            &[],
        ),
    );
    x.expect(400, "edge: unicode path with a stray byte");
    // Header values that are not UTF-8 (obs-text) are ignored, not trusted.
    for header in [
        "Accept-Encoding: gzip\u{ff}\r\n",
        "If-None-Match: \"\u{ff}\"\r\n",
        "Range: bytes=0-\u{ff}\r\n",
    ] {
        // Sent as Latin-1 bytes: one 0xFF octet each.
        let raw: Vec<u8> = header.chars().map(|c| c as u32 as u8).collect();
        let mut req = format!("GET /pub.txt HTTP/1.1\r\nHost: {domain}\r\n").into_bytes();
        req.extend_from_slice(&raw);
        req.extend_from_slice(b"Connection: close\r\n\r\n");
        let what = format!("edge: {}", header.trim_end());
        let r = exchange(fx.edge(), &req);
        assert_eq!(r.expect(200, &what).body, hostile::PUBLIC, "{what}");
    }
    let mut req =
        format!("GET /prot.txt HTTP/1.1\r\nHost: {domain}\r\nX-Twilio-Signature: ").into_bytes();
    req.extend_from_slice(b"\xff\xfe=\r\nConnection: close\r\n\r\n");
    let x = exchange(fx.edge(), &req);
    x.expect(403, "edge: a signature that is not text");
    assert_no_leak(&x.raw, "edge: a signature that is not text");

    // API: (target, status, code).
    let svc = &fx.site.svc;
    let api_cases: Vec<(Vec<u8>, u16, u64)> = vec![
        (b"/v1/Services/%FF".to_vec(), 404, 20404),
        (b"/v1/Services/%C3%28".to_vec(), 404, 20404),
        (b"/v1/Services/%ED%A0%80".to_vec(), 404, 20404),
        (b"/v1/Services/%G1".to_vec(), 404, 20404),
        (b"/v1/Services/%".to_vec(), 404, 20404),
        (b"/v1/%FFServices".to_vec(), 404, 20404),
        (
            format!("/v1/Services/{svc}/Assets/%FF").into_bytes(),
            404,
            20404,
        ),
        (b"/v1/Services?PageSize=%FF".to_vec(), 400, 20001),
        (b"/v1/Services?%FF=1".to_vec(), 400, 20001),
        (b"/v1/Services?PageToken=%C3%28".to_vec(), 400, 20001),
        (b"/v1/Services?PageSize=%".to_vec(), 400, 20001),
        (
            format!(
                "/v1/Services/{svc}/Environments/{}/Logs?StartDate=%FF",
                fx.site.env
            )
            .into_bytes(),
            400,
            20001,
        ),
    ];
    for (target, want, code) in &api_cases {
        let what = format!("API GET {}", String::from_utf8_lossy(target));
        let x = exchange(fx.api(), &api_request("GET", target, &[], b""));
        assert_eq!(assert_twilio_error(x.only(), *want, &what), *code, "{what}");
    }
    // `%53` is an `S`: segments are decoded once, so this is the Services list.
    let x = exchange(fx.api(), &api_request("GET", b"/v1/%53ervices", &[], b""));
    x.expect(200, "API GET /v1/%53ervices");
    // Raw non-ASCII in the request line: hyper's 400 before any route.
    exchange(
        fx.api(),
        &api_request("GET", b"/v1/Services/\xff", &[], b""),
    )
    .expect(400, "API GET with a raw 0xFF byte");
    // Credentials that are not UTF-8, not base64, or not Basic: 401 Twilio JSON.
    for authorization in [
        b"Authorization: Basic //79/Q==\r\n".to_vec(), // base64 of 0xFF 0xFE 0xFD 0xFD
        b"Authorization: Basic %%%\r\n".to_vec(),
        b"Authorization: Basic \xff\xfe\r\n".to_vec(),
        b"Authorization: B\xe4sic QUM6dA==\r\n".to_vec(),
    ] {
        let mut req = b"GET /v1/Services HTTP/1.1\r\nHost: api\r\n".to_vec();
        req.extend_from_slice(&authorization);
        req.extend_from_slice(b"Connection: close\r\n\r\n");
        let what = format!(
            "API: {}",
            String::from_utf8_lossy(&authorization).trim_end()
        );
        let x = exchange(fx.api(), &req);
        assert_eq!(assert_twilio_error(x.only(), 401, &what), 20003, "{what}");
    }

    fx.assert_still_serving();
}
