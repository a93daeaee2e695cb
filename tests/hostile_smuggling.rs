//! Hostile input: request smuggling. Each request hides a second one where a server that
//! framed the body differently would find it: after a `0` chunk that Content-Length covers,
//! inside a body only one of two Content-Lengths covers, behind a Transfer-Encoding that is not
//! chunked. sigil (hyper) either refuses the message with 400 or frames it by
//! Transfer-Encoding and closes the connection after answering (RFC 9112 §6.1) — so exactly one
//! response comes back and the hidden request is never answered. On the API the hidden request
//! is an authenticated DELETE of a Service, which must still exist afterwards.

mod hostile;
mod support;

use hostile::{assert_no_leak, auth_header, exchange, Exchange, Fixture};

/// A POST with these framing header lines and this body.
fn post(target: &str, host: &str, extra: &str, framing: &str, body: &[u8]) -> Vec<u8> {
    let mut req =
        format!("POST {target} HTTP/1.1\r\nHost: {host}\r\n{extra}{framing}\r\n").into_bytes();
    req.extend_from_slice(body);
    req
}

/// Asserts that the hidden request got no answer: one response with `status`, connection closed.
#[track_caller]
fn one_answer(x: &Exchange, status: u16, what: &str) {
    assert_eq!(
        x.replies.len(),
        1,
        "{what}: the hidden request was answered: {}",
        String::from_utf8_lossy(&x.raw)
    );
    assert_eq!(
        x.replies[0].status,
        status,
        "{what}: {}",
        String::from_utf8_lossy(&x.raw)
    );
    assert!(
        x.closed,
        "{what}: the connection is closed after the answer"
    );
    assert_no_leak(&x.raw, what);
}

#[test]
fn smuggled_requests_are_never_answered() {
    let fx = Fixture::start(&[]);
    let d = fx.site.domain.as_str();
    // What a desynchronised server would answer next: the private asset (and, to catch any
    // second response at all, something that would be a 200).
    let hidden = format!(
        "GET /secret.txt HTTP/1.1\r\nHost: {d}\r\n\r\nGET /pub.txt HTTP/1.1\r\nHost: {d}\r\n\r\n"
    );
    let chunked_then_hidden = format!("0\r\n\r\n{hidden}");
    let n = chunked_then_hidden.len();
    let h = hidden.len();

    // (what, framing header lines, body, status of the one answer)
    let edge_cases: Vec<(&str, String, String, u16)> = vec![
        (
            "CL.TE: Content-Length covers what chunked ends before",
            format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
            chunked_then_hidden.clone(),
            200,
        ),
        (
            "TE.CL: Transfer-Encoding first",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n".to_owned(),
            chunked_then_hidden.clone(),
            200,
        ),
        (
            "CL.TE with TE in upper case",
            format!("Content-Length: {n}\r\nTransfer-Encoding: CHUNKED\r\n"),
            chunked_then_hidden.clone(),
            200,
        ),
        (
            "two different Content-Lengths",
            format!("Content-Length: 0\r\nContent-Length: {h}\r\n"),
            hidden.clone(),
            400,
        ),
        (
            "two different Content-Lengths, larger first",
            format!("Content-Length: {h}\r\nContent-Length: 0\r\n"),
            hidden.clone(),
            400,
        ),
        (
            "a Content-Length list",
            format!("Content-Length: 0, {h}\r\n"),
            hidden.clone(),
            400,
        ),
        (
            "a signed Content-Length",
            "Content-Length: +0\r\n".to_owned(),
            hidden.clone(),
            400,
        ),
        (
            "a negative Content-Length",
            "Content-Length: -1\r\n".to_owned(),
            hidden.clone(),
            400,
        ),
        (
            "a hex Content-Length",
            "Content-Length: 0x0\r\n".to_owned(),
            hidden.clone(),
            400,
        ),
        (
            "an overflowing Content-Length",
            "Content-Length: 99999999999999999999999\r\n".to_owned(),
            hidden.clone(),
            400,
        ),
        (
            "Transfer-Encoding not chunked",
            "Transfer-Encoding: gzip\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "chunked not last",
            "Transfer-Encoding: chunked, identity\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "two Transfer-Encodings, chunked first",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "a lookalike coding",
            "Transfer-Encoding: xchunked\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "space before the colon",
            format!("Transfer-Encoding : chunked\r\nContent-Length: {n}\r\n"),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "an obs-fold Transfer-Encoding",
            format!("Transfer-Encoding:\r\n chunked\r\nContent-Length: {n}\r\n"),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "a chunk size that is not hex",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("zz\r\n{hidden}"),
            400,
        ),
        (
            "an overflowing chunk size",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("ffffffffffffffffffff\r\n{hidden}"),
            400,
        ),
    ];
    for target in ["/pub.txt", "/prot.txt"] {
        for (what, framing, body, status) in &edge_cases {
            let what = format!("edge POST {target}: {what}");
            let x = exchange(fx.edge(), &post(target, d, "", framing, body.as_bytes()));
            // A framed POST reaches the asset: public is served, protected needs a signature.
            let status = match (*status, target) {
                (200, "/prot.txt") => 403,
                (s, _) => s,
            };
            one_answer(&x, status, &what);
        }
    }
    // HTTP/1.0 has no Transfer-Encoding: refused.
    let x = exchange(
        fx.edge(),
        &[
            format!("POST /pub.txt HTTP/1.0\r\nHost: {d}\r\nTransfer-Encoding: chunked\r\nContent-Length: {n}\r\n\r\n")
                .as_bytes(),
            chunked_then_hidden.as_bytes(),
        ]
        .concat(),
    );
    one_answer(&x, 400, "edge: HTTP/1.0 with Transfer-Encoding");
    // A GET with a body framed both ways: the same.
    let x = exchange(
        fx.edge(),
        &[
            format!("GET /pub.txt HTTP/1.1\r\nHost: {d}\r\nContent-Length: {n}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .as_bytes(),
            chunked_then_hidden.as_bytes(),
        ]
        .concat(),
    );
    one_answer(&x, 200, "edge: GET CL.TE");
    // Control: the same pipelined requests with honest framing are both answered.
    let x = exchange(
        fx.edge(),
        &[
            format!("GET /pub.txt HTTP/1.1\r\nHost: {d}\r\n\r\n").as_bytes(),
            format!("GET /pub.txt HTTP/1.1\r\nHost: {d}\r\nConnection: close\r\n\r\n").as_bytes(),
        ]
        .concat(),
    );
    assert_eq!(x.replies.len(), 2, "honest pipelining is served");

    // API: the hidden request deletes the Service, authenticated.
    let auth = auth_header();
    let hidden = format!(
        "DELETE /v1/Services/{} HTTP/1.1\r\nHost: api\r\n{auth}\r\n",
        fx.site.svc
    );
    let chunked_then_hidden = format!("0\r\n\r\n{hidden}");
    let n = chunked_then_hidden.len();
    let h = hidden.len();
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let extra = format!("{auth}{form}");
    let api_cases: Vec<(&str, String, String, u16)> = vec![
        (
            "CL.TE",
            format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
            chunked_then_hidden.clone(),
            400, // an empty form: UniqueName is missing
        ),
        (
            "TE.CL",
            "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "two different Content-Lengths",
            format!("Content-Length: 0\r\nContent-Length: {h}\r\n"),
            hidden.clone(),
            400,
        ),
        (
            "Transfer-Encoding not chunked",
            "Transfer-Encoding: gzip\r\n".to_owned(),
            chunked_then_hidden.clone(),
            400,
        ),
        (
            "a chunk size that is not hex",
            "Transfer-Encoding: chunked\r\n".to_owned(),
            format!("zz\r\n{hidden}"),
            400,
        ),
    ];
    for (what, framing, body, status) in &api_cases {
        let what = format!("API POST /v1/Services: {what}");
        let x = exchange(
            fx.api(),
            &post("/v1/Services", "api", &extra, framing, body.as_bytes()),
        );
        one_answer(&x, *status, &what);
        let r = &x.replies[0];
        if r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            hostile::assert_twilio_error(r, *status, &what);
        }
        fx.sigil
            .client()
            .get(&format!("/v1/Services/{}", fx.site.svc))
            .expect(200);
    }
    // The edge's route to the API (serverless.localhost) is the same stack.
    let x = exchange(
        fx.edge(),
        &post(
            "/v1/Services",
            "serverless.localhost",
            &extra,
            &format!("Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
            chunked_then_hidden.as_bytes(),
        ),
    );
    one_answer(&x, 400, "edge → API: CL.TE");
    fx.sigil
        .client()
        .get(&format!("/v1/Services/{}", fx.site.svc))
        .expect(200);

    fx.assert_still_serving();
}
