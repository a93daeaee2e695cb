//! Hostile input: overlong paths (and request lines) on the edge and the API. Up to
//! `--max-uri-bytes` (8 KiB by default) a long path is an ordinary path that names nothing
//! (edge 404; API 404 or 401 as Twilio JSON); longer, 414 URI Too Long (Twilio JSON 20414 on
//! the API); a request head over `--max-header-bytes` (32 KiB) gets 431 — on the edge 414 when
//! the request line alone fills it. Nothing else gives way.

mod hostile;
mod support;

use hostile::{api_request, assert_no_leak, assert_twilio_error, exchange, get, Fixture};

fn long(prefix: &str, total: usize) -> Vec<u8> {
    let mut p = prefix.as_bytes().to_vec();
    p.resize(total, b'a');
    p
}

#[test]
fn overlong_paths_get_a_4xx_and_the_server_keeps_serving() {
    let fx = Fixture::start(&[]);
    let domain = fx.site.domain.clone();

    // Edge: (target, status).
    let climbing = {
        let mut p = b"/".to_vec();
        for _ in 0..10_000 {
            p.extend_from_slice(b"../");
        }
        p.extend_from_slice(b"secret.txt");
        p
    };
    let segments = b"/a".repeat(30_000);
    let edge_cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("8 KiB path", long("/", 8 * 1024), 404),
        ("8 KiB + 1 path", long("/", 8 * 1024 + 1), 414),
        ("60 KiB path", long("/", 60 * 1024), 414),
        ("30,000 segments", segments.clone(), 414),
        ("10,000 `../` then the private asset", climbing, 414),
        (
            "7 KiB of query on the public asset",
            long("/pub.txt?q=", 7 * 1024),
            200,
        ),
        (
            "60 KiB of query on the public asset",
            long("/pub.txt?q=", 60 * 1024),
            414,
        ),
        ("a 64 KiB URI", long("/", 64 * 1024), 414),
        ("a 200 KiB URI", long("/", 200 * 1024), 414),
        ("a 1 MiB request line", long("/", 1024 * 1024), 414),
    ];
    for (what, target, want) in &edge_cases {
        let what = format!("edge: {what}");
        let x = exchange(fx.edge(), &get(&domain, target, &[]));
        let r = x.expect(*want, &what);
        assert_no_leak(&x.raw, &what);
        if *want == 200 {
            assert_eq!(r.body, hostile::PUBLIC, "{what}");
        } else {
            assert!(r.body.len() < 1024, "{what}: the error is small");
        }
    }
    // A 1 MiB header that is not the path: 431 too.
    let big_header = format!("X-Filler: {}\r\n", "b".repeat(1024 * 1024));
    exchange(fx.edge(), &get(&domain, b"/pub.txt", &[&big_header]))
        .expect(431, "edge: a 1 MiB header");

    // API: a long path names no resource: 404 Twilio JSON; without credentials 401.
    for (what, target) in [
        ("8 KiB Service id", long("/v1/Services/", 8 * 1024)),
        ("4,000 segments", {
            let mut p = b"/v1".to_vec();
            p.extend_from_slice(&segments[..8000]);
            p
        }),
        ("8 KiB Asset id", {
            let mut p = format!("/v1/Services/{}/Assets/", fx.site.svc).into_bytes();
            p.resize(8 * 1024, b'Z');
            p
        }),
    ] {
        let what = format!("API: {what}");
        let x = exchange(fx.api(), &api_request("GET", &target, &[], b""));
        let code = assert_twilio_error(x.only(), 404, &what);
        assert_eq!(code, 20404, "{what}");
        let anonymous = [
            b"GET ".as_slice(),
            &target,
            b" HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let x = exchange(fx.api(), &anonymous);
        assert_eq!(
            assert_twilio_error(x.only(), 401, &format!("{what}, anonymous")),
            20003
        );
    }
    // A long query value or form field is a bad parameter.
    let x = exchange(
        fx.api(),
        &api_request("GET", &long("/v1/Services?PageSize=", 8 * 1024), &[], b""),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 400, "API: 8 KiB PageSize"),
        20001
    );
    let form = format!("UniqueName={}&FriendlyName=x", "a".repeat(100_000));
    let x = exchange(
        fx.api(),
        &api_request(
            "POST",
            b"/v1/Services",
            &["Content-Type: application/x-www-form-urlencoded\r\n"],
            form.as_bytes(),
        ),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 400, "API: 100 KB UniqueName"),
        20001
    );
    // Over --max-uri-bytes: 414 as Twilio JSON.
    let x = exchange(
        fx.api(),
        &api_request("GET", &long("/v1/Services/", 16 * 1024), &[], b""),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 414, "API: a 16 KiB URI"),
        20414
    );
    // Past --max-header-bytes: hyper's own 431, no Twilio route reached.
    for (what, target, want) in [
        ("a 64 KiB URI", long("/v1/Services/", 64 * 1024), 431),
        (
            "a 1 MiB request line",
            long("/v1/Services/", 1024 * 1024),
            431,
        ),
    ] {
        exchange(fx.api(), &api_request("GET", &target, &[], b""))
            .expect(want, &format!("API: {what}"));
    }
    // A version Path over 255 characters is refused (the edge could never be asked for it).
    let api = fx.sigil.client();
    let versions = api.versions_url(&fx.site.svc, "Assets");
    api.upload(
        &versions,
        vec![
            support::Part::text("Path", &format!("/{}", "p".repeat(300))),
            support::Part::text("Visibility", "public"),
            support::Part::file("Content", b"x".to_vec(), "x", "text/plain"),
        ],
    )
    .expect_error(400, 20001);

    fx.assert_still_serving();
}
