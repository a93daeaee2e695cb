//! Hostile input: path traversal (`..`, `%2e%2e`, `%2f`, backslashes, NUL) on the edge and the
//! API. The edge matches decoded request paths against a Build's manifest and reads blobs by
//! content address, so no request path ever names a file: a traversal finds nothing (404) or
//! is malformed (400), never another asset's bytes, a private asset, another site's asset or a
//! file of the data directory.

mod hostile;
mod support;

use hostile::{assert_no_leak, assert_twilio_error, exchange, Fixture};
use support::Part;

#[test]
fn traversal_finds_nothing_and_leaks_nothing() {
    let fx = Fixture::start(&[]);
    let private_sha = sigil::signature::body_sha256(&hostile::private_bytes());
    let blob_path = format!("/blobs/{}/{private_sha}", &private_sha[..2]);
    let up_to_blob = format!("/../../..{blob_path}");
    let encoded_blob = format!("/%2e%2e/%2e%2e{}", blob_path.replace('/', "%2f"));

    // Edge: each path, the status it gets. 404: no asset has that path (nothing is
    // normalised away); 400: not a path the edge accepts.
    let edge_cases: Vec<(&[u8], u16)> = vec![
        (b"/../secret.txt", 404),
        (b"/dir/../secret.txt", 404),
        (b"/dir/../pub.txt", 404),
        (b"/dir/./inner.txt", 404),
        (b"/./pub.txt", 404),
        (b"//pub.txt", 404),
        (b"/dir//inner.txt", 404),
        (b"/%2e%2e/secret.txt", 404),
        (b"/%2E%2E/secret.txt", 404),
        (b"/.%2e/secret.txt", 404),
        (b"/dir/%2e%2e/pub.txt", 404),
        (b"/dir%2f..%2fpub.txt", 404),
        (b"/dir%2F..%2Fsecret.txt", 404),
        (b"/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 404),
        (b"/../../../../../../etc/passwd", 404),
        (b"/..%2f..%2f..%2fetc%2fpasswd", 404),
        (b"/%252e%252e/secret.txt", 404), // double encoding is decoded once
        (b"/dir\\..\\pub.txt", 404),
        (b"/dir%5c..%5csecret.txt", 404),
        (b"/..\\..\\etc\\passwd", 404),
        (b"/..;/secret.txt", 404),
        (b"/secret.txt;.txt", 404),
        (b"/secret.txt/", 404),
        (b"/secret.txt/.", 404),
        (b"/../other.txt", 404), // another site's asset, by path
        (b"/metadata.db", 404),
        (b"/../metadata.db", 404),
        (b"/%2e%2e/%2e%2e/metadata.db", 404),
        (blob_path.as_bytes(), 404), // the private asset's blob, by its content address
        (up_to_blob.as_bytes(), 404),
        (encoded_blob.as_bytes(), 404),
        (b"/secret.txt%00", 400), // NUL: refused before any lookup
        (b"/secret.txt%00.html", 400),
        (b"/%00/../secret.txt", 400),
        (b"/dir/%00", 400),
        (b"/%C0%AE%C0%AE/secret.txt", 400), // overlong UTF-8 for "..": not UTF-8
        (b"/%c0%af../secret.txt", 400),
        (b"\\secret.txt", 400), // not origin-form: hyper refuses it
        (b"/secret.txt\x00", 400),
    ];
    for (path, want) in &edge_cases {
        let what = format!("edge GET {}", String::from_utf8_lossy(path));
        let x = fx.edge_get(path);
        x.expect(*want, &what);
        assert_no_leak(&x.raw, &what);
        assert!(
            !x.raw
                .windows(hostile::PUBLIC.len())
                .any(|w| w == hostile::PUBLIC),
            "{what}: served the public asset's bytes under another path"
        );
    }
    // The same paths through the other methods the edge answers.
    for method in ["HEAD", "POST"] {
        for path in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/dir/..%2fsecret.txt",
        ] {
            let what = format!("edge {method} {path}");
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                fx.site.domain
            );
            let x = exchange(fx.edge(), req.as_bytes());
            x.expect(404, &what);
            assert_no_leak(&x.raw, &what);
        }
    }
    // The path is decoded once and then matched exactly: `%2f` is a `/`, so this is the very
    // asset `/dir/inner.txt` names (no other), and `..` is never resolved.
    let x = fx.edge_get(b"/dir%2finner.txt");
    assert_eq!(x.expect(200, "edge GET /dir%2finner.txt").body, b"inner\n");
    // Percent-encoding that decodes to the private path is still the private asset: 403.
    for path in [&b"/%73ecret.txt"[..], b"/secret%2Etxt"] {
        let what = format!("edge GET {}", String::from_utf8_lossy(path));
        let x = fx.edge_get(path);
        x.expect(403, &what);
        assert_no_leak(&x.raw, &what);
    }

    // API: traversal in the URL is just a path no route has (404, Twilio JSON) …
    let api_cases: Vec<&[u8]> = vec![
        b"/v1/../v1/Services",
        b"/v1/Services/..",
        b"/v1/Services/%2e%2e",
        b"/v1/Services/hostile/Assets/..",
        b"/v1/Services/hostile/%2e%2e/Builds",
        b"/v1/Services%2f..%2fServices",
        b"/v1/Services/hostile/Environments/%2e%2e%2f%2e%2e",
        b"/v1\\Services",
        b"/v1/Services/%00",
        b"/v1/Services/..%5c..%5cmetadata.db",
    ];
    for path in &api_cases {
        let what = format!("API GET {}", String::from_utf8_lossy(path));
        let x = exchange(fx.api(), &hostile::api_request("GET", path, &[], b""));
        let code = assert_twilio_error(x.only(), 404, &what);
        assert_eq!(code, 20404, "{what}");
    }
    // … and a version Path that tries to climb out is refused before anything is stored.
    let api = fx.sigil.client();
    let versions = api.versions_url(&fx.site.svc, "Assets");
    for path in [
        "/../etc/passwd",
        "../x.txt",
        "/a/../../b.txt",
        "/a/./b.txt",
        "/a//b.txt",
        "/%2e%2e/x.txt",
        "/a\\..\\b.txt",
        "/a\0b.txt",
        "/a/..",
    ] {
        let r = api
            .upload(
                &versions,
                vec![
                    Part::text("Path", path),
                    Part::text("Visibility", "public"),
                    Part::file("Content", b"x".to_vec(), "x", "text/plain"),
                ],
            )
            .expect_error(400, 20001);
        assert!(
            r.s("message").contains("Path"),
            "upload Path {path:?}: {}",
            r.text
        );
    }
    let listed = api.get(&versions).expect(200);
    assert_eq!(
        listed.json["asset_versions"].as_array().map(Vec::len),
        Some(0),
        "no refused upload left a version"
    );

    fx.assert_still_serving();
}
