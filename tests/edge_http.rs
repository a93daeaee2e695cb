//! HTTP semantics at the edge (RFC 9110): methods, headers, conditional requests, ranges,
//! precompressed variants, root handling — through a real socket.

mod support;

use std::io::Read;

use support::{EdgeResp, Sigil};

const HTML: &[u8] = b"<!doctype html><title>sigil</title><h1>Hello from the edge</h1>\n";

fn big_text() -> Vec<u8> {
    "All work and no play makes a fast edge server.\n"
        .repeat(400)
        .into_bytes()
}

fn audio() -> Vec<u8> {
    (0..100_000u32).map(|i| (i % 251) as u8).collect()
}

fn deploy(sigil: &Sigil) -> (support::Site, support::Edge) {
    let api = sigil.client();
    let text = big_text();
    let mp3 = audio();
    let site = api.deploy_site(
        "http",
        &[
            ("/assets/index.html", "public", HTML, "text/html"),
            ("/big.txt", "public", &text, "text/plain"),
            ("/song.mp3", "public", &mp3, "audio/mpeg"),
            ("/styles.css", "public", b"body{color:red}", ""),
            ("/noext", "public", b"raw", "application/octet-stream"),
            ("/empty.txt", "public", b"", "text/plain"),
            ("/twiml.xml", "public", b"<Response/>", "text/xml"),
            (
                "/dir/ünï cødé.txt".replace(' ', "-").as_str(),
                "public",
                b"unicode",
                "text/plain",
            ),
            (
                "/fn",
                "public",
                b"exports.handler = (c, e, cb) => cb(null, 'ran');",
                "function",
            ),
        ],
    );
    let edge = sigil.edge(&[&site.domain]);
    (site, edge)
}

#[test]
fn headers_methods_and_root() {
    let sigil = Sigil::start();
    let (site, edge) = deploy(&sigil);
    let d = site.domain.as_str();

    // Root falls back to /assets/index.html, which is also served at its own path.
    let root = edge.get(&edge.url(d, "/"), &[]).expect(200);
    assert_eq!(root.body, HTML);
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let own = edge
        .get(&edge.url(d, "/assets/index.html"), &[])
        .expect(200);
    assert_eq!(own.body, HTML);
    assert_eq!(own.header("etag"), root.header("etag"));

    // Validators and metadata.
    let etag = root.header("etag").expect("etag");
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert!(root.header("last-modified").expect("lm").ends_with(" GMT"));
    assert_eq!(root.header("accept-ranges"), Some("bytes"));
    assert_eq!(root.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(
        root.header("content-length"),
        Some(HTML.len().to_string().as_str())
    );

    // Content types: as uploaded, else by extension, else octet-stream; charset on text.
    for (path, want) in [
        ("/styles.css", "text/css; charset=utf-8"),
        ("/song.mp3", "audio/mpeg"),
        ("/noext", "application/octet-stream"),
        ("/twiml.xml", "text/xml; charset=utf-8"),
    ] {
        assert_eq!(
            edge.get(&edge.url(d, path), &[])
                .expect(200)
                .header("content-type"),
            Some(want),
            "{path}"
        );
    }
    let empty = edge.get(&edge.url(d, "/empty.txt"), &[]).expect(200);
    assert!(empty.body.is_empty());
    assert_eq!(empty.header("content-length"), Some("0"));
    assert_eq!(
        edge.get(&edge.url(d, "/dir/%C3%BCn%C3%AF-c%C3%B8d%C3%A9.txt"), &[])
            .expect(200)
            .body,
        b"unicode"
    );

    // HEAD: headers, no body.
    let head = edge
        .send(edge.http.head(edge.url(d, "/song.mp3")))
        .expect(200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("100000"));
    // POST (Twilio fetchers POST to TwiML): the body is read and the asset served.
    let post = edge
        .send(
            edge.http
                .post(edge.url(d, "/twiml.xml"))
                .form(&[("CallSid", "CA1")]),
        )
        .expect(200);
    assert_eq!(post.body, b"<Response/>");
    // The fast path (GET) writes an asset's head itself from the fields hyper (which answers
    // a POST) gets as a HeaderMap: the same fields, values and body either way.
    let fields = |r: &EdgeResp| {
        let mut f: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(name, _)| *name != "date")
            .map(|(n, v)| (n.to_string(), v.to_str().expect("ascii").to_owned()))
            .collect();
        f.sort();
        f
    };
    for (path, coding) in [
        ("/big.txt", "br"),
        ("/big.txt", "identity"),
        ("/song.mp3", "gzip"),
        ("/empty.txt", "identity"),
    ] {
        let url = edge.url(d, path);
        let get = edge.get(&url, &[("accept-encoding", coding)]).expect(200);
        let post = edge.send(
            edge.http
                .post(&url)
                .header("accept-encoding", coding)
                .form(&[("CallSid", "CA1")]),
        );
        let post = post.expect(200);
        assert_eq!(fields(&get), fields(&post), "{path} {coding}");
        assert_eq!(get.body, post.body, "{path} {coding}");
        assert!(get.header("date").is_some() && post.header("date").is_some());
    }
    let br = edge.get(&edge.url(d, "/big.txt"), &[("accept-encoding", "br")]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    // OPTIONS: CORS preflight.
    let pre = edge.send(
        edge.http
            .request(reqwest::Method::OPTIONS, edge.url(d, "/song.mp3"))
            .header("Origin", "https://example.com")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "range"),
    );
    let pre = pre.expect(204);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    assert_eq!(pre.header("access-control-allow-headers"), Some("range"));
    assert!(pre.header("allow").expect("allow").contains("GET"));
    // Anything else: 405 with Allow.
    for m in ["PUT", "DELETE", "PATCH"] {
        let r = edge
            .send(
                edge.http
                    .request(m.parse().expect("method"), edge.url(d, "/song.mp3")),
            )
            .expect(405);
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    }
    // Unknown path, unknown host, host case and port.
    edge.get(&edge.url(d, "/nope"), &[]).expect(404);
    edge.get(&edge.url(d, "/assets/index.html/"), &[])
        .expect(404);
    edge.get(
        &format!("http://127.0.0.1:{}/", edge.http_port),
        &[("Host", "unknown.localhost")],
    )
    .expect(404);
    edge.get(
        &format!("http://127.0.0.1:{}/", edge.http_port),
        &[("Host", &format!("{}:{}", d.to_uppercase(), edge.http_port))],
    )
    .expect(200);
    edge.get(
        &format!("http://127.0.0.1:{}/", edge.http_port),
        &[("Host", &format!("{d}."))],
    )
    .expect(200);
    // Functions run; their source is never served.
    let f = edge.get(&edge.url(d, "/fn"), &[]).expect(200);
    assert_eq!(f.text(), "ran");
}

#[test]
fn root_prefers_the_asset_at_slash_and_needs_html() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let a = api.deploy_site(
        "root-a",
        &[
            ("/", "public", b"slash", "text/plain"),
            ("/assets/index.html", "public", HTML, "text/html"),
        ],
    );
    let b = api.deploy_site(
        "root-b",
        &[("/assets/index.html", "public", b"{}", "application/json")],
    );
    let c = api.deploy_site("root-c", &[("/other.html", "public", HTML, "text/html")]);
    let edge = sigil.edge(&[&a.domain, &b.domain, &c.domain]);
    assert_eq!(
        edge.get(&edge.url(&a.domain, "/"), &[]).expect(200).body,
        b"slash"
    );
    assert_eq!(
        edge.get(&edge.url(&a.domain, "/assets/index.html"), &[])
            .expect(200)
            .body,
        HTML
    );
    edge.get(&edge.url(&b.domain, "/"), &[]).expect(404);
    edge.get(&edge.url(&b.domain, "/assets/index.html"), &[])
        .expect(200);
    edge.get(&edge.url(&c.domain, "/"), &[]).expect(404);
}

#[test]
fn conditional_requests() {
    let sigil = Sigil::start();
    let (site, edge) = deploy(&sigil);
    let url = edge.url(&site.domain, "/song.mp3");
    let first = edge.get(&url, &[]).expect(200);
    let etag = first.header("etag").expect("etag").to_owned();
    let lm = first.header("last-modified").expect("lm").to_owned();
    let later = "Fri, 01 Jan 2100 00:00:00 GMT";
    let earlier = "Mon, 01 Jan 2001 00:00:00 GMT";

    let nm = edge.get(&url, &[("If-None-Match", &etag)]).expect(304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    assert_eq!(nm.header("last-modified"), Some(lm.as_str()));
    // RFC 9110 §15.4.5: the Cache-Control the 200 has.
    assert!(first.header("cache-control").is_some());
    assert_eq!(nm.header("cache-control"), first.header("cache-control"));
    edge.get(&url, &[("If-None-Match", &format!("W/{etag}"))])
        .expect(304);
    edge.get(&url, &[("If-None-Match", "\"other\", *")])
        .expect(304);
    edge.get(&url, &[("If-None-Match", "\"other\"")])
        .expect(200);
    edge.get(&url, &[("If-Modified-Since", &lm)]).expect(304);
    edge.get(&url, &[("If-Modified-Since", later)]).expect(304);
    edge.get(&url, &[("If-Modified-Since", earlier)])
        .expect(200);
    // If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
    edge.get(
        &url,
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", later)],
    )
    .expect(200);
    edge.get(&url, &[("If-Match", &etag)]).expect(200);
    edge.get(&url, &[("If-Match", "\"other\"")]).expect(412);
    edge.get(&url, &[("If-Unmodified-Since", earlier)])
        .expect(412);
    edge.get(&url, &[("If-Unmodified-Since", later)])
        .expect(200);
    // If-Match wins over If-Unmodified-Since; 412 comes before 304.
    edge.get(
        &url,
        &[("If-Match", &etag), ("If-Unmodified-Since", earlier)],
    )
    .expect(200);
    edge.get(&url, &[("If-Match", "\"x\""), ("If-None-Match", &etag)])
        .expect(412);
    // HEAD too.
    let r = edge.send(edge.http.head(&url).header("If-None-Match", &etag));
    assert_eq!(r.status, 304);
}

fn range(edge: &support::Edge, url: &str, value: &str, extra: &[(&str, &str)]) -> EdgeResp {
    let mut headers = vec![("Range", value)];
    headers.extend_from_slice(extra);
    edge.get(url, &headers)
}

#[test]
fn ranges() {
    let sigil = Sigil::start();
    let (site, edge) = deploy(&sigil);
    let mp3 = audio();
    let url = edge.url(&site.domain, "/song.mp3");
    let n = mp3.len();
    // The Safari / iOS probe.
    let probe = range(&edge, &url, "bytes=0-1", &[]).expect(206);
    assert_eq!(probe.body, &mp3[..2]);
    assert_eq!(
        probe.header("content-range"),
        Some(format!("bytes 0-1/{n}").as_str())
    );
    assert_eq!(probe.header("content-length"), Some("2"));
    assert_eq!(probe.header("accept-ranges"), Some("bytes"));
    for (value, start, end) in [
        ("bytes=100-199", 100, 199),
        ("bytes=99990-", 99_990, n - 1),
        ("bytes=-10", n - 10, n - 1),
        ("bytes=-1000000", 0, n - 1),
        ("bytes=99000-200000", 99_000, n - 1),
    ] {
        let r = range(&edge, &url, value, &[]).expect(206);
        assert_eq!(r.body, &mp3[start..=end], "{value}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{n}").as_str())
        );
    }
    for value in [
        format!("bytes={n}-"),
        "bytes=-0".to_owned(),
        format!("bytes={}-{}", n + 5, n + 10),
    ] {
        let r = range(&edge, &url, &value, &[]).expect(416);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{n}").as_str()),
            "{value}"
        );
    }
    // Several ranges, or a malformed one: the whole body.
    for value in ["bytes=0-1,5-6", "bytes=5-1", "bytes=x-y", "pages=1-2"] {
        let r = range(&edge, &url, value, &[]).expect(200);
        assert_eq!(r.body.len(), n, "{value}");
    }
    // If-Range: a matching strong ETag or date keeps the range; anything else gets 200.
    let full = edge.get(&url, &[]).expect(200);
    let etag = full.header("etag").expect("etag").to_owned();
    let lm = full.header("last-modified").expect("lm").to_owned();
    range(&edge, &url, "bytes=0-1", &[("If-Range", &etag)]).expect(206);
    range(&edge, &url, "bytes=0-1", &[("If-Range", &lm)]).expect(206);
    range(&edge, &url, "bytes=0-1", &[("If-Range", "\"stale\"")]).expect(200);
    range(
        &edge,
        &url,
        "bytes=0-1",
        &[("If-Range", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .expect(200);
    // HEAD ignores Range.
    let head = edge
        .send(edge.http.head(&url).header("Range", "bytes=0-1"))
        .expect(200);
    assert_eq!(head.header("content-length"), Some(n.to_string().as_str()));
    // Over HTTP/2 too.
    let h2 = edge
        .send(
            edge.http
                .get(edge.tls_url(&site.domain, "/song.mp3"))
                .header("Range", "bytes=0-1"),
        )
        .expect(206);
    assert_eq!(h2.version, reqwest::Version::HTTP_2);
    assert_eq!(h2.body, &mp3[..2]);
    // An empty file has no satisfiable range.
    range(
        &edge,
        &edge.url(&site.domain, "/empty.txt"),
        "bytes=0-1",
        &[],
    )
    .expect(416);
}

#[test]
fn precompressed_variants() {
    let sigil = Sigil::start();
    let (site, edge) = deploy(&sigil);
    let text = big_text();
    let url = edge.url(&site.domain, "/big.txt");
    let plain = edge.get(&url, &[]).expect(200);
    assert_eq!(plain.body, text);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));

    let br = edge
        .get(&url, &[("Accept-Encoding", "gzip, deflate, br")])
        .expect(200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert!(br.body.len() < text.len() / 5);
    let mut out = Vec::new();
    brotli::Decompressor::new(&br.body[..], 4096)
        .read_to_end(&mut out)
        .expect("br");
    assert_eq!(out, text);

    let gz = edge
        .get(&url, &[("Accept-Encoding", "br;q=0.5, gzip;q=0.9")])
        .expect(200);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut out)
        .expect("gzip");
    assert_eq!(out, text);
    edge.get(&url, &[("Accept-Encoding", "br;q=0, gzip;q=0")])
        .expect(200);

    // Each representation has its own ETag, and conditionals use the one negotiated.
    let tags = [plain.header("etag"), br.header("etag"), gz.header("etag")];
    assert!(
        tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
        "{tags:?}"
    );
    let br_tag = br.header("etag").expect("etag");
    edge.get(
        &url,
        &[("Accept-Encoding", "br"), ("If-None-Match", br_tag)],
    )
    .expect(304);
    edge.get(
        &url,
        &[("Accept-Encoding", "gzip"), ("If-None-Match", br_tag)],
    )
    .expect(200);
    // No compression on a range response: ranges are of the identity bytes.
    let r = edge
        .get(
            &url,
            &[("Accept-Encoding", "br, gzip"), ("Range", "bytes=0-9")],
        )
        .expect(206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, &text[..10]);
    // Binary types get no variants.
    let mp3 = edge
        .get(
            &edge.url(&site.domain, "/song.mp3"),
            &[("Accept-Encoding", "br, gzip")],
        )
        .expect(200);
    assert_eq!(mp3.header("content-encoding"), None);
    assert_eq!(mp3.header("vary"), None);
}

#[test]
fn cache_control_is_configurable() {
    let sigil = Sigil::start_with(&[
        "--cache-control-public",
        "public, max-age=3600",
        "--cache-control-protected",
        "no-store",
    ]);
    let api = sigil.client();
    let site = api.deploy_site(
        "cc",
        &[
            ("/a.txt", "public", b"a", "text/plain"),
            ("/p.txt", "protected", b"p", "text/plain"),
        ],
    );
    let edge = sigil.edge(&[&site.domain]);
    let url = edge.url(&site.domain, "/a.txt");
    assert_eq!(
        edge.get(&url, &[]).expect(200).header("cache-control"),
        Some("public, max-age=3600")
    );
    let purl = edge.url(&site.domain, "/p.txt");
    let sig = support::twilio_signature(support::AUTH_TOKEN, &purl, &[]);
    let p = edge.get(&purl, &[("X-Twilio-Signature", &sig)]).expect(200);
    assert_eq!(p.header("cache-control"), Some("no-store"));
    assert_eq!(p.header("access-control-allow-origin"), None);
}

/// With `--sendfile-from`, plain-HTTP/1.1 bodies at least that large leave through `sendfile`
/// (counted in `sigil_sendfile_bytes_total`) and arrive byte for byte, whole or as a range;
/// smaller ones, HEAD, and HTTPS do not use it; `off` never does; with a range `N-M`, bodies
/// above it are copied too.
#[test]
fn large_bodies_leave_by_sendfile_on_plain_http_when_asked() {
    let sigil = Sigil::start_with(&["--sendfile-from", "16384"]);
    let (site, edge) = deploy(&sigil);
    let mp3 = audio();
    let url = edge.url(&site.domain, "/song.mp3");
    // sigil counts what it sent after sending it: read the counter until it has it.
    let sent = |want| sigil.metric_reaches("sigil_sendfile_bytes_total", want);
    assert_eq!(sent(0), 0);
    // Twice: the first load maps the blob, the second is a cache hit.
    for round in 1..=2 {
        let whole = edge.get(&url, &[]).expect(200);
        assert!(whole.body == mp3, "the whole file, byte for byte");
        assert_eq!(sent(round * mp3.len() as u64), round * mp3.len() as u64);
    }
    let before = 2 * mp3.len() as u64;
    let part = range(&edge, &url, "bytes=1000-60999", &[]).expect(206);
    assert!(part.body == mp3[1000..61_000]);
    assert_eq!(sent(before + 60_000), before + 60_000);
    // Below the threshold, a HEAD, a small file, HTTP/2 over TLS: copied.
    let before = before + 60_000;
    assert_eq!(
        range(&edge, &url, "bytes=10-20", &[]).expect(206).body,
        &mp3[10..=20]
    );
    edge.send(edge.http.head(&url)).expect(200);
    edge.get(&edge.url(&site.domain, "/styles.css"), &[])
        .expect(200);
    let h2 = edge
        .get(&edge.tls_url(&site.domain, "/song.mp3"), &[])
        .expect(200);
    assert_eq!(h2.version, reqwest::Version::HTTP_2);
    assert!(h2.body == mp3);
    assert_eq!(sigil.metric("sigil_sendfile_bytes_total"), before);
    drop(sigil);

    let sigil = Sigil::start_with(&["--sendfile-from", "off"]);
    let (site, edge) = deploy(&sigil);
    let whole = edge
        .get(&edge.url(&site.domain, "/song.mp3"), &[])
        .expect(200);
    assert!(whole.body == mp3);
    assert_eq!(sigil.metric("sigil_sendfile_bytes_total"), 0);
    drop(sigil);

    // A range of sizes: the 100,000-byte file above it is copied, a 60,000-byte part of it
    // within it goes by sendfile, a 16,383-byte part below it is copied.
    let sigil = Sigil::start_with(&["--sendfile-from", "16384-65536"]);
    let (site, edge) = deploy(&sigil);
    let url = edge.url(&site.domain, "/song.mp3");
    assert!(edge.get(&url, &[]).expect(200).body == mp3);
    let small = range(&edge, &url, "bytes=0-16382", &[]).expect(206);
    assert!(small.body == mp3[..16_383]);
    let part = range(&edge, &url, "bytes=1000-60999", &[]).expect(206);
    assert!(part.body == mp3[1000..61_000]);
    assert_eq!(
        sigil.metric_reaches("sigil_sendfile_bytes_total", 60_000),
        60_000
    );
}
