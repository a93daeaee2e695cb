//! Hostile input: duplicate, conflicting, missing and malformed Host headers (RFC 9112 §3.2:
//! "more than one Host header field line or a Host header field with an invalid field value"
//! is a 400). The edge routes by Host, so every ambiguity is refused before routing — never
//! resolved to one site or another; the API does not route by host but refuses the same
//! requests with Twilio JSON.

mod hostile;
mod support;

use hostile::{assert_no_leak, assert_twilio_error, auth_header, exchange, Fixture};

/// `GET {target}` with these raw header lines (each ending in CRLF) and `Connection: close`.
fn request(target: &str, headers: &[u8]) -> Vec<u8> {
    let mut req = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    req.extend_from_slice(headers);
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

#[test]
fn ambiguous_or_invalid_hosts_are_refused() {
    let fx = Fixture::start(&[]);
    let d = fx.site.domain.as_str();
    let other = fx.other.domain.as_str();
    let api_host = "serverless.localhost";

    // Edge: (what, raw header lines, status).
    let edge_cases: Vec<(&str, String, u16)> = vec![
        (
            "two equal Hosts",
            format!("Host: {d}\r\nHost: {d}\r\n"),
            400,
        ),
        (
            "the site, then another",
            format!("Host: {d}\r\nHost: {other}\r\n"),
            400,
        ),
        (
            "another, then the site",
            format!("Host: {other}\r\nHost: {d}\r\n"),
            400,
        ),
        (
            "the site and the API host",
            format!("Host: {d}\r\nHost: {api_host}\r\n"),
            400,
        ),
        (
            "the API host and the site",
            format!("Host: {api_host}\r\nHost: {d}\r\n"),
            400,
        ),
        ("a list in one Host", format!("Host: {d}, {other}\r\n"), 400),
        (
            "a list without spaces",
            format!("Host: {d},{other}\r\n"),
            404,
        ),
        ("no Host", String::new(), 400),
        ("an empty Host", "Host: \r\n".to_owned(), 400),
        ("userinfo", format!("Host: evil@{d}\r\n"), 400),
        (
            "a port that is not a number",
            format!("Host: {d}:abc\r\n"),
            400,
        ),
        ("two ports", format!("Host: {d}:80:80\r\n"), 400),
        ("a space inside", format!("Host: {d} {other}\r\n"), 400),
        ("a path", format!("Host: {d}/secret.txt\r\n"), 400),
        ("a backslash", format!("Host: {d}\\\r\n"), 400),
        ("an unclosed IPv6 literal", "Host: [::1\r\n".to_owned(), 400),
        ("a bad escape", format!("Host: {d}%zz\r\n"), 400),
        (
            "an unknown host",
            "Host: nobody.localhost\r\n".to_owned(),
            404,
        ),
        (
            "the site's name as a suffix",
            format!("Host: evil.{d}\r\n"),
            404,
        ),
        (
            "the site's name as a prefix",
            format!("Host: {d}.evil\r\n"),
            404,
        ),
        ("space before the colon", format!("Host : {d}\r\n"), 400),
        (
            "an obs-fold continuation",
            format!("Host: nobody\r\n {d}\r\n"),
            400,
        ),
        (
            "X-Forwarded-Host from a peer that is not trusted",
            format!("Host: nobody.localhost\r\nX-Forwarded-Host: {d}\r\n"),
            404,
        ),
        // Variants of the site's own name that still name it.
        (
            "upper case",
            format!("Host: {}\r\n", d.to_ascii_uppercase()),
            200,
        ),
        ("a trailing dot", format!("Host: {d}.\r\n"), 200),
        ("a port", format!("Host: {d}:8080\r\n"), 200),
        ("a tab before the value", format!("Host:\t{d}\r\n"), 200),
    ];
    for (what, headers, want) in &edge_cases {
        let what = format!("edge: {what}");
        for target in ["/pub.txt", "/secret.txt"] {
            let x = exchange(fx.edge(), &request(target, headers.as_bytes()));
            let want = if *want == 200 && target == "/secret.txt" {
                403
            } else {
                *want
            };
            let r = x.expect(want, &format!("{what} {target}"));
            assert_no_leak(&x.raw, &what);
            if want == 200 {
                assert_eq!(r.body, hostile::PUBLIC, "{what}");
            }
        }
    }
    // Hosts that are not ASCII: sent as raw bytes.
    for (what, host) in [
        ("Latin-1 byte", [d.as_bytes(), b"\xff"].concat()),
        (
            "UTF-8 lookalike",
            "h\u{00f6}stile.localhost".as_bytes().to_vec(),
        ),
        ("NUL", [d.as_bytes(), b"\x00"].concat()),
    ] {
        let headers = [b"Host: ".as_slice(), &host, b"\r\n"].concat();
        let x = exchange(fx.edge(), &request("/pub.txt", &headers));
        x.expect(400, &format!("edge: a Host with a {what}"));
    }
    // Absolute-form targets: the authority must agree with Host.
    let x = exchange(
        fx.edge(),
        &request(
            &format!("http://{other}/other.txt"),
            format!("Host: {d}\r\n").as_bytes(),
        ),
    );
    x.expect(400, "edge: absolute-form naming another site than Host");
    assert_no_leak(&x.raw, "edge: absolute-form naming another site");
    let x = exchange(
        fx.edge(),
        &request(
            &format!("http://evil@{d}/pub.txt"),
            format!("Host: {d}\r\n").as_bytes(),
        ),
    );
    x.expect(400, "edge: absolute-form with userinfo");
    let x = exchange(
        fx.edge(),
        &request(
            &format!("http://{d}/pub.txt"),
            format!("Host: {d}\r\n").as_bytes(),
        ),
    );
    assert_eq!(
        x.expect(200, "edge: absolute-form agreeing with Host").body,
        hostile::PUBLIC
    );
    // HTTP/1.0 without Host cannot be routed.
    exchange(fx.edge(), b"GET /pub.txt HTTP/1.0\r\n\r\n")
        .expect(400, "edge: HTTP/1.0 without Host");
    // The API reached through the edge by its host name: the same rules.
    let auth = auth_header();
    exchange(
        fx.edge(),
        &request(
            "/v1/Services",
            format!("Host: {api_host}\r\nHost: {api_host}\r\n{auth}").as_bytes(),
        ),
    )
    .expect(400, "edge: two Hosts naming the API");
    exchange(
        fx.edge(),
        &request(
            "/v1/Services",
            format!("Host: {api_host}\r\n{auth}").as_bytes(),
        ),
    )
    .expect(200, "edge: the API by its host name");

    // API listener: (what, raw header lines).
    let api_cases: Vec<(&str, String)> = vec![
        ("two equal Hosts", "Host: api\r\nHost: api\r\n".to_owned()),
        ("two different Hosts", format!("Host: api\r\nHost: {d}\r\n")),
        ("a list in one Host", "Host: api, evil\r\n".to_owned()),
        ("userinfo", "Host: evil@api\r\n".to_owned()),
        (
            "a port that is not a number",
            "Host: api:abc\r\n".to_owned(),
        ),
        ("a space inside", "Host: api evil\r\n".to_owned()),
    ];
    for (what, headers) in &api_cases {
        let what = format!("API: {what}");
        let headers = format!("{headers}{auth}");
        let x = exchange(fx.api(), &request("/v1/Services", headers.as_bytes()));
        assert_eq!(assert_twilio_error(x.only(), 400, &what), 20001, "{what}");
        let x = exchange(fx.api(), &request("/healthz", headers.as_bytes()));
        assert_twilio_error(x.only(), 400, &format!("{what}, /healthz"));
    }
    let x = exchange(
        fx.api(),
        &[
            b"GET /v1/Services HTTP/1.1\r\nHost: api\xff\r\n".as_slice(),
            auth.as_bytes(),
            b"Connection: close\r\n\r\n",
        ]
        .concat(),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 400, "API: a Host that is not ASCII"),
        20001
    );
    let x = exchange(
        fx.api(),
        &request(
            "http://elsewhere/v1/Services",
            format!("Host: api\r\n{auth}").as_bytes(),
        ),
    );
    assert_eq!(
        assert_twilio_error(
            x.only(),
            400,
            "API: absolute-form naming another host than Host"
        ),
        20001
    );
    // What stays fine: one Host, any name (the API does not route by host); HTTP/1.0 without.
    exchange(
        fx.api(),
        &request(
            "/v1/Services",
            format!("Host: anything.example:8081\r\n{auth}").as_bytes(),
        ),
    )
    .expect(200, "API: one Host");
    exchange(
        fx.api(),
        &[
            b"GET /v1/Services HTTP/1.0\r\n".as_slice(),
            auth.as_bytes(),
            b"\r\n",
        ]
        .concat(),
    )
    .expect(200, "API: HTTP/1.0 without Host");

    fx.assert_still_serving();
}
