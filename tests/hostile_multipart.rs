//! Hostile input: malformed multipart uploads (Asset and Function Versions). No boundary is a
//! 415; a truncated body, a wrong or empty boundary, duplicate or missing parts, too many part
//! headers or broken ones are a 400 — all Twilio JSON, and a refused upload stores no version.

mod hostile;
mod support;

use hostile::{api_request, assert_twilio_error, exchange, Fixture};

/// One part: `name`, value, extra header lines after Content-Disposition (each CRLF-ended).
fn part(name: &str, value: &[u8], extra: &str) -> Vec<u8> {
    let mut p = format!("--B\r\nContent-Disposition: form-data; name=\"{name}\"{extra}\r\n\r\n")
        .into_bytes();
    p.extend_from_slice(value);
    p.extend_from_slice(b"\r\n");
    p
}

fn content(value: &[u8]) -> Vec<u8> {
    part(
        "Content",
        value,
        "; filename=\"f.txt\"\r\nContent-Type: text/plain",
    )
}

const END: &[u8] = b"--B--\r\n";
const MULTIPART: &str = "Content-Type: multipart/form-data; boundary=B\r\n";

/// A complete, valid upload of `path`.
fn upload(path: &str) -> Vec<u8> {
    [
        part("Path", path.as_bytes(), ""),
        part("Visibility", b"public", ""),
        content(b"hello"),
        END.to_vec(),
    ]
    .concat()
}

fn post(fx: &Fixture, target: &str, ctype: Option<&str>, body: &[u8]) -> hostile::Exchange {
    let headers: Vec<&str> = ctype.into_iter().collect();
    exchange(
        fx.api(),
        &api_request("POST", target.as_bytes(), &headers, body),
    )
}

fn version_count(fx: &Fixture, versions: &str) -> usize {
    let key = if versions.contains("/Functions/") {
        "function_versions"
    } else {
        "asset_versions"
    };
    fx.sigil.client().get(versions).expect(200).json[key]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn malformed_multipart_is_refused_and_stores_nothing() {
    let fx = Fixture::start(&[]);
    let api = fx.sigil.client();
    let assets = api.versions_url(&fx.site.svc, "Assets");
    let functions = api.versions_url(&fx.site.svc, "Functions");
    let good = upload("/ok.txt");

    // (what, Content-Type header line, body, status)
    let many_headers: String = (0..100).map(|i| format!("\r\nX-{i}: a")).collect();
    let cases: Vec<(&str, Option<String>, Vec<u8>, u16)> = vec![
        ("no Content-Type", None, good.clone(), 415),
        (
            "no boundary",
            Some("Content-Type: multipart/form-data\r\n".into()),
            good.clone(),
            415,
        ),
        (
            "a form, not multipart",
            Some("Content-Type: application/x-www-form-urlencoded\r\n".into()),
            good.clone(),
            415,
        ),
        (
            "JSON",
            Some("Content-Type: application/json\r\n".into()),
            b"{\"Path\":\"/x\"}".to_vec(),
            415,
        ),
        (
            "an empty boundary",
            Some("Content-Type: multipart/form-data; boundary=\r\n".into()),
            good.clone(),
            400,
        ),
        (
            "another boundary",
            Some("Content-Type: multipart/form-data; boundary=C\r\n".into()),
            good.clone(),
            400,
        ),
        ("an empty body", Some(MULTIPART.into()), Vec::new(), 400),
        (
            "only the closing delimiter",
            Some(MULTIPART.into()),
            END.to_vec(),
            400,
        ),
        (
            "no closing delimiter",
            Some(MULTIPART.into()),
            good[..good.len() - END.len()].to_vec(),
            400,
        ),
        (
            "cut inside Content",
            Some(MULTIPART.into()),
            good[..good.len() - END.len() - 4].to_vec(),
            400,
        ),
        (
            "cut inside a part's headers",
            Some(MULTIPART.into()),
            good[..20].to_vec(),
            400,
        ),
        (
            "garbage, no delimiter",
            Some(MULTIPART.into()),
            b"just some bytes\r\n".to_vec(),
            400,
        ),
        (
            "Path twice",
            Some(MULTIPART.into()),
            [part("Path", b"/a.txt", ""), good.clone()].concat(),
            400,
        ),
        (
            "Visibility twice",
            Some(MULTIPART.into()),
            [part("Visibility", b"private", ""), good.clone()].concat(),
            400,
        ),
        (
            "Content twice",
            Some(MULTIPART.into()),
            [content(b"first"), good.clone()].concat(),
            400,
        ),
        (
            "no Path",
            Some(MULTIPART.into()),
            [
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "no Visibility",
            Some(MULTIPART.into()),
            [part("Path", b"/x.txt", ""), content(b"x"), END.to_vec()].concat(),
            400,
        ),
        (
            "no Content",
            Some(MULTIPART.into()),
            [
                part("Path", b"/x.txt", ""),
                part("Visibility", b"public", ""),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "parts without names only",
            Some(MULTIPART.into()),
            [
                b"--B\r\nContent-Type: text/plain\r\n\r\nx\r\n".to_vec(),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "100 headers in a part",
            Some(MULTIPART.into()),
            [
                part("Path", b"/x.txt", &many_headers),
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "a control character in a part header",
            Some(MULTIPART.into()),
            [
                part("Path", b"/x.txt", ""),
                part("Visibility", b"public", ""),
                part("Content", b"x", "\r\nContent-Type: text/html\x0bX"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "a part header without a colon",
            Some(MULTIPART.into()),
            [
                part("Path", b"/x.txt", "\r\nnot a header"),
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "a Visibility that is not one",
            Some(MULTIPART.into()),
            [
                part("Path", b"/x.txt", ""),
                part("Visibility", b"\xff", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "a Path with NUL",
            Some(MULTIPART.into()),
            [
                part("Path", b"/a\0b", ""),
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            400,
        ),
        (
            "a 10 KB Path part (over its 4 KiB limit)",
            Some(MULTIPART.into()),
            [
                part("Path", &[b'p'; 10_000], ""),
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
            413,
        ),
    ];
    for versions in [&assets, &functions] {
        for (what, ctype, body, status) in &cases {
            let what = format!("POST {versions}: {what}");
            let x = post(&fx, versions, ctype.as_deref(), body);
            let code = assert_twilio_error(x.only(), *status, &what);
            assert_eq!(code, if *status == 413 { 20413 } else { 20001 }, "{what}");
        }
        assert_eq!(
            version_count(&fx, versions),
            0,
            "{versions}: no refused upload stored a version"
        );
    }
    // The upload host on the edge listener is the same handler.
    let mut req = b"POST ".to_vec();
    req.extend_from_slice(assets.as_bytes());
    req.extend_from_slice(b" HTTP/1.1\r\nHost: serverless-upload.localhost\r\n");
    req.extend_from_slice(hostile::auth_header().as_bytes());
    let truncated = &good[..good.len() - END.len()];
    req.extend_from_slice(
        format!(
            "{MULTIPART}Content-Length: {}\r\nConnection: close\r\n\r\n",
            truncated.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(truncated);
    let x = exchange(fx.edge(), &req);
    assert_twilio_error(x.only(), 400, "edge upload host: truncated multipart");
    // A body cut short inside the multipart (before its closing delimiter, and short of its
    // Content-Length), then the client stops sending: 400, not a hang and not a version.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(fx.api()).expect("connect");
        let head = format!(
            "POST {assets} HTTP/1.1\r\nHost: api\r\n{}{MULTIPART}Content-Length: {}\r\nConnection: close\r\n\r\n",
            hostile::auth_header(),
            good.len()
        );
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(&good[..good.len() - END.len()]).expect("write");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let replies = hostile::parse_replies(&raw, false);
        assert_eq!(replies.len(), 1, "{}", String::from_utf8_lossy(&raw));
        assert_twilio_error(&replies[0], 400, "a body cut short by the client");
    }
    assert_eq!(version_count(&fx, &assets), 0);

    // Valid uploads still work, unknown parts are ignored.
    let x = post(&fx, &assets, Some(MULTIPART), &good);
    x.expect(201, "a valid upload");
    let with_extra = [part("Unknown", b"ignored", ""), upload("/ok2.txt")].concat();
    post(&fx, &assets, Some(MULTIPART), &with_extra).expect(201, "an unknown part is ignored");
    assert_eq!(version_count(&fx, &assets), 2);

    fx.assert_still_serving();
}

/// A part's headers are read into memory whole by multer (no limit but the whole body's,
/// 25 MiB + 64 KiB, and it rescans the buffer for the blank line on every read); a 1 MiB
/// Content-Disposition or header line should be refused like 100 headers are.
#[test]
fn giant_part_headers_are_refused() {
    let fx = Fixture::start(&[]);
    let assets = fx.sigil.client().versions_url(&fx.site.svc, "Assets");
    let big_value = format!("\r\nX-Filler: {}", "a".repeat(1024 * 1024));
    let big_name = "N".repeat(1024 * 1024);
    for (what, body) in [
        (
            "a 1 MiB header line in the Path part",
            [
                part("Path", b"/x.txt", &big_value),
                part("Visibility", b"public", ""),
                content(b"x"),
                END.to_vec(),
            ]
            .concat(),
        ),
        (
            "a 1 MiB part name",
            [part(&big_name, b"x", ""), upload("/y.txt")].concat(),
        ),
    ] {
        let x = post(&fx, &assets, Some(MULTIPART), &body);
        assert_eq!(assert_twilio_error(x.only(), 400, what), 20001, "{what}");
    }
    assert_eq!(version_count(&fx, &assets), 0);
    fx.assert_still_serving();
}

/// Text parts are decoded lossily (multer's `Field::text`): a `Path` that is not UTF-8 is stored
/// with U+FFFD in place of the bad bytes, where a form field that is not UTF-8 is a 400.
#[test]
fn text_parts_that_are_not_utf8_are_refused() {
    let fx = Fixture::start(&[]);
    let assets = fx.sigil.client().versions_url(&fx.site.svc, "Assets");
    let body = [
        part("Path", b"/\xff\xfe.txt", ""),
        part("Visibility", b"public", ""),
        content(b"x"),
        END.to_vec(),
    ]
    .concat();
    let x = post(&fx, &assets, Some(MULTIPART), &body);
    assert_eq!(
        assert_twilio_error(x.only(), 400, "a Path that is not UTF-8"),
        20001
    );
    assert_eq!(version_count(&fx, &assets), 0);
}
