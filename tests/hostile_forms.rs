//! Hostile input: malformed `application/x-www-form-urlencoded` bodies. On the API a name or
//! value that is not UTF-8 once decoded, an empty or nameless form, a body that is not a form
//! (415), one over 1 MiB (413), a body that cannot be read — each a Twilio JSON error, with
//! nothing created. At the edge, form POSTs matter for protected assets (the parameters are
//! signed): a form that does not decode is a 400, a body over `--edge-max-body` a 413, and
//! neither ever serves protected or private bytes.

mod hostile;
mod support;

use std::io::{Read, Write};

use hostile::{api_request, assert_no_leak, assert_twilio_error, exchange, Fixture};

const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";

fn service_count(fx: &Fixture) -> usize {
    fx.sigil.client().get("/v1/Services").expect(200).json["services"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Sends `head` and `body`, half-closes, reads to the end.
fn cut_short(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> Vec<hostile::Reply> {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    hostile::parse_replies(&raw, false)
}

/// An authenticated `POST /v1/Services` with this Content-Type line, its characters sent as
/// Latin-1 octets (so `\u{ff}` is one 0xFF byte).
fn post_services(ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut req = b"POST /v1/Services HTTP/1.1\r\nHost: api\r\n".to_vec();
    req.extend_from_slice(hostile::auth_header().as_bytes());
    req.extend(
        ctype
            .chars()
            .map(|c| u8::try_from(u32::from(c)).expect("Latin-1")),
    );
    req.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    req
}

#[test]
fn malformed_forms_are_refused() {
    let fx = Fixture::start(&[]);
    let services = service_count(&fx);

    // API: POST /v1/Services. (what, Content-Type line, body, status, code)
    let big = format!("UniqueName=x&FriendlyName={}", "a".repeat(1024 * 1024));
    let many_empty = "a&".repeat(500_000);
    let many_versions = format!(
        "{}AssetVersions=ZN00000000000000000000000000000000",
        "AssetVersions=ZN00000000000000000000000000000000&".repeat(20_000)
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16, u64)> = vec![
        (
            "a value that is not UTF-8",
            FORM,
            b"UniqueName=%FF&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        (
            "a raw 0xFF byte",
            FORM,
            b"UniqueName=a\xffb&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        (
            "a name that is not UTF-8",
            FORM,
            b"%C3%28=1&UniqueName=x&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        (
            "a truncated UTF-8 sequence",
            FORM,
            b"UniqueName=x&FriendlyName=%E2%82".to_vec(),
            400,
            20001,
        ),
        (
            "a surrogate",
            FORM,
            b"UniqueName=x&FriendlyName=%ED%A0%80".to_vec(),
            400,
            20001,
        ),
        (
            "a name without a value",
            FORM,
            b"UniqueName&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        ("nameless pairs", FORM, b"=&=x&&&==".to_vec(), 400, 20001),
        ("only separators", FORM, b"&&&&".to_vec(), 400, 20001),
        ("an empty body", FORM, Vec::new(), 400, 20001),
        (
            "a lone %",
            FORM,
            b"UniqueName=abc%&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        (
            "a NUL",
            FORM,
            b"UniqueName=a%00b&FriendlyName=x".to_vec(),
            400,
            20001,
        ),
        (
            "JSON",
            "Content-Type: application/json\r\n",
            b"{\"UniqueName\":\"x\"}".to_vec(),
            415,
            20001,
        ),
        (
            "text",
            "Content-Type: text/plain\r\n",
            b"UniqueName=x".to_vec(),
            415,
            20001,
        ),
        (
            "multipart",
            "Content-Type: multipart/form-data; boundary=B\r\n",
            b"--B--\r\n".to_vec(),
            415,
            20001,
        ),
        (
            "a Content-Type that is not text",
            "Content-Type: \u{ff}\r\n",
            b"UniqueName=x".to_vec(),
            415,
            20001,
        ),
        ("over 1 MiB", FORM, big.into_bytes(), 413, 20413),
        (
            "500,000 empty names",
            FORM,
            many_empty.into_bytes(),
            400,
            20001,
        ),
    ];
    for (what, ctype, body, status, code) in &cases {
        let what = format!("API POST /v1/Services: {what}");
        let x = exchange(fx.api(), &post_services(ctype, body));
        assert_eq!(
            assert_twilio_error(x.only(), *status, &what),
            *code,
            "{what}"
        );
    }
    // The same rules for every form route, e.g. a Build with 20,001 version SIDs (under 1 MiB).
    let x = exchange(
        fx.api(),
        &api_request(
            "POST",
            format!("/v1/Services/{}/Builds", fx.site.svc).as_bytes(),
            &[FORM],
            many_versions.as_bytes(),
        ),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 400, "API: 20,001 AssetVersions"),
        20001
    );
    // A chunked body that breaks off: 400, not a hang.
    let mut req = b"POST /v1/Services HTTP/1.1\r\nHost: api\r\n".to_vec();
    req.extend_from_slice(hostile::auth_header().as_bytes());
    req.extend_from_slice(FORM.as_bytes());
    req.extend_from_slice(
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nUniqu\r\nzz\r\n",
    );
    let x = exchange(fx.api(), &req);
    assert_eq!(
        assert_twilio_error(x.only(), 400, "API: a broken chunked form"),
        20001
    );
    // A body shorter than its Content-Length, then the client stops: 400.
    let head = format!(
        "POST /v1/Services HTTP/1.1\r\nHost: api\r\n{}{FORM}Content-Length: 100\r\nConnection: close\r\n\r\n",
        hostile::auth_header()
    );
    let replies = cut_short(fx.api(), &head, b"UniqueName=cut&FriendlyName=x");
    assert_eq!(replies.len(), 1);
    assert_eq!(
        assert_twilio_error(&replies[0], 400, "API: a form cut short"),
        20001
    );
    assert_eq!(
        service_count(&fx),
        services,
        "no refused form created a Service"
    );

    // Edge: form POSTs. (what, target, body, status)
    let d = fx.site.domain.clone();
    let edge_cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (
            "a value that is not UTF-8",
            "/prot.txt",
            b"Digits=%FF".to_vec(),
            400,
        ),
        ("a raw 0xFF byte", "/prot.txt", b"Digits=\xff".to_vec(), 400),
        (
            "a name that is not UTF-8",
            "/prot.txt",
            b"%C3%28=1".to_vec(),
            400,
        ),
        (
            "nameless pairs, unsigned",
            "/prot.txt",
            b"=&=x&&&==".to_vec(),
            403,
        ),
        (
            "JSON sent as a form, unsigned",
            "/prot.txt",
            b"{\"a\":1}".to_vec(),
            403,
        ),
        (
            "60 KB of pairs, unsigned",
            "/prot.txt",
            "a=1&".repeat(15_000).into_bytes(),
            403,
        ),
        ("over --edge-max-body", "/prot.txt", vec![b'a'; 70_000], 413),
        (
            "private, not UTF-8",
            "/secret.txt",
            b"Digits=%FF".to_vec(),
            403,
        ),
        (
            "private, over --edge-max-body",
            "/secret.txt",
            vec![b'a'; 70_000],
            403,
        ),
        // A public asset does not read its form: served as it is.
        ("public, not UTF-8", "/pub.txt", b"Digits=%FF".to_vec(), 200),
    ];
    for (what, target, body, status) in &edge_cases {
        let what = format!("edge POST {target}: {what}");
        let mut req = format!(
            "POST {target} HTTP/1.1\r\nHost: {d}\r\n{FORM}X-Twilio-Signature: AAAA\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let x = exchange(fx.edge(), &req);
        let r = x.expect(*status, &what);
        assert_no_leak(&x.raw, &what);
        if *status == 200 {
            assert_eq!(r.body, hostile::PUBLIC, "{what}");
        }
    }
    let mut req = format!(
        "POST /prot.txt HTTP/1.1\r\nHost: {d}\r\n{FORM}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\na=1\r\nzz\r\n"
    )
    .into_bytes();
    req.extend_from_slice(b"\r\n");
    let x = exchange(fx.edge(), &req);
    x.expect(400, "edge: a broken chunked form");
    assert_no_leak(&x.raw, "edge: a broken chunked form");
    let head = format!(
        "POST /prot.txt HTTP/1.1\r\nHost: {d}\r\n{FORM}Content-Length: 100\r\nConnection: close\r\n\r\n"
    );
    let replies = cut_short(fx.edge(), &head, b"a=1");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].status, 400, "edge: a form cut short");

    fx.assert_still_serving();
}
