//! The edge's own HTTP/2 server (src/server/http2.rs, on the `h2` crate), end to end against
//! a real `sigil serve`: HEAD, many concurrent streams under flow control, the blob cache's
//! miss path (a stream answered from a task of its own) and hit path (answered inline),
//! protected assets with signed form POSTs, 413 and 414, idle connections, and graceful
//! shutdown. Raw HTTP/2 is driven with `h2::client` over h2c with prior knowledge on the
//! plain listener; HTTP/2 over TLS (ALPN `h2`) with reqwest.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::{twilio_signature, Sigil, AUTH_TOKEN};

/// `len` bytes of a pattern that differs with `seed`, so that one file's bytes cannot pass
/// for another's.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The client half of an h2c connection, and the task driving the connection (it resolves
/// when the connection ends).
struct H2c {
    client: h2::client::SendRequest<Bytes>,
    conn: tokio::task::JoinHandle<Result<(), h2::Error>>,
}

/// Opens an h2c connection with prior knowledge. The client keeps h2's default windows
/// (65,535 bytes for each stream and for the connection), so every body over that arrives
/// only as the client gives its window back.
async fn h2c(addr: SocketAddr) -> H2c {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = h2::client::Builder::new()
        .initial_window_size(65_535)
        .handshake::<_, Bytes>(tcp)
        .await
        .expect("h2 handshake");
    H2c {
        client,
        conn: tokio::spawn(conn),
    }
}

/// A response as it arrived over HTTP/2.
struct H2Resp {
    status: u16,
    headers: http::HeaderMap,
    /// Whether the HEADERS frame ended the stream (no DATA frame can follow).
    ended_with_headers: bool,
    /// DATA frames with content.
    data_frames: usize,
    /// The largest DATA frame's payload.
    largest_frame: usize,
    body: Vec<u8>,
}

impl H2Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii"))
    }
}

/// Reads a response and its whole body, giving the window back as it reads.
async fn read_response(resp: h2::client::ResponseFuture) -> Result<H2Resp, h2::Error> {
    let (parts, mut body) = resp.await?.into_parts();
    let ended_with_headers = body.is_end_stream();
    let mut out = Vec::new();
    let mut data_frames = 0;
    let mut largest_frame = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        if !chunk.is_empty() {
            data_frames += 1;
        }
        largest_frame = largest_frame.max(chunk.len());
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("release capacity");
        out.extend_from_slice(&chunk);
    }
    Ok(H2Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        ended_with_headers,
        data_frames,
        largest_frame,
        body: out,
    })
}

/// Sends a request (with a body if given) on a new stream and reads the whole response.
async fn exchange(
    client: &h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<Bytes>,
) -> Result<H2Resp, h2::Error> {
    let mut client = client.clone().ready().await?;
    let (resp, mut send) = client.send_request(req, body.is_none())?;
    if let Some(body) = body {
        // Buffered by h2 and sent as the server's window allows.
        send.send_data(body, true)?;
    }
    read_response(resp).await
}

fn get(uri: &str) -> http::Request<()> {
    http::Request::get(uri).body(()).expect("request")
}

fn head(uri: &str) -> http::Request<()> {
    http::Request::head(uri).body(()).expect("request")
}

/// (hits, misses) of the blob cache.
fn cache_stats(sigil: &Sigil) -> (u64, u64) {
    (
        sigil.metric("sigil_cache_hits_total"),
        sigil.metric("sigil_cache_misses_total"),
    )
}

#[test]
fn head_over_http2_has_headers_and_no_body() {
    let sigil = Sigil::start();
    let song = pattern(100_000, 1);
    let site = sigil.client().deploy_site(
        "h2-head",
        &[
            ("/song.mp3", "public", &song, "audio/mpeg"),
            ("/a.txt", "public", b"alpha", "text/plain"),
        ],
    );
    let d = site.domain.clone();
    let addr = sigil.http;
    runtime().block_on(async move {
        let h2 = h2c(addr).await;
        let c = &h2.client;
        let url = |path: &str| format!("http://{d}{path}");

        // HEAD first (the blob is not mapped yet: HEAD never needs it), then GET, then HEAD.
        for round in 0..2 {
            let r = exchange(c, head(&url("/song.mp3")), None)
                .await
                .expect("HEAD");
            assert_eq!(r.status, 200, "round {round}");
            assert_eq!(r.header("content-length"), Some("100000"), "round {round}");
            assert_eq!(r.header("content-type"), Some("audio/mpeg"));
            assert!(r.header("etag").is_some());
            assert!(r.ended_with_headers, "HEAD: END_STREAM on HEADERS");
            assert_eq!(r.data_frames, 0, "HEAD: no DATA");
            assert!(r.body.is_empty());
            if round == 0 {
                let g = exchange(c, get(&url("/song.mp3")), None)
                    .await
                    .expect("GET");
                assert_eq!(g.status, 200);
                assert_eq!(g.body, song);
                assert!(!g.ended_with_headers);
                assert_eq!(g.header("etag"), r.header("etag"), "HEAD and GET agree");
            }
        }

        // A missing path: 404, with the length of the GET's body and none of it.
        let missing = exchange(c, get(&url("/missing")), None).await.expect("GET");
        assert_eq!(missing.status, 404);
        assert!(!missing.body.is_empty());
        let r = exchange(c, head(&url("/missing")), None)
            .await
            .expect("HEAD");
        assert_eq!(r.status, 404);
        assert!(r.ended_with_headers, "HEAD 404: END_STREAM on HEADERS");
        assert_eq!(r.data_frames, 0);
        assert!(r.body.is_empty());
        assert_eq!(
            r.header("content-length"),
            Some(missing.body.len().to_string().as_str())
        );
        // An unknown host as well.
        let r = exchange(c, head("http://nobody.localhost/a.txt"), None)
            .await
            .expect("HEAD");
        assert_eq!(r.status, 404);
        assert!(r.ended_with_headers && r.body.is_empty());
    });

    // Over TLS (ALPN h2) too.
    let edge = sigil.edge(&[&site.domain]);
    let r = edge
        .send(edge.http.head(edge.tls_url(&site.domain, "/a.txt")))
        .expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert_eq!(r.header("content-length"), Some("5"));
    assert!(r.body.is_empty());
}

/// A DATA frame's payload is at most 2^14 - 9 bytes, so that with its header it fills one TLS
/// record exactly (src/server/http2.rs, DATA_CHUNK).
#[test]
fn data_frames_fit_one_tls_record() {
    let sigil = Sigil::start();
    let body = pattern(100_000, 7);
    let site = sigil.client().deploy_site(
        "h2-frames",
        &[("/f.bin", "public", &body, "application/octet-stream")],
    );
    let d = site.domain.clone();
    let addr = sigil.http;
    let r = runtime().block_on(async move {
        let h2 = h2c(addr).await;
        exchange(&h2.client, get(&format!("http://{d}/f.bin")), None)
            .await
            .expect("response")
    });
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.largest_frame, (1 << 14) - 9, "{} frames", r.data_frames);
}

#[test]
fn many_concurrent_streams_on_one_connection_arrive_byte_exact() {
    let sigil = Sigil::start();
    // Sizes around the client's window (65,535), the server's stream window (1 MiB) and
    // its send buffer (1 MiB).
    let files: Vec<(String, Vec<u8>)> =
        [1, 1_000, 65_535, 65_536 + 1, 300_000, 1_500_000, 3_000_000]
            .iter()
            .enumerate()
            .map(|(i, &len)| (format!("/f{i}.bin"), pattern(len, i as u32)))
            .collect();
    let big = pattern(8 * 1024 * 1024 + 12_345, 99);
    let mut deploy: Vec<(&str, &str, &[u8], &str)> = files
        .iter()
        .map(|(p, b)| {
            (
                p.as_str(),
                "public",
                b.as_slice(),
                "application/octet-stream",
            )
        })
        .collect();
    deploy.push(("/big.bin", "public", &big, "application/octet-stream"));
    let site = sigil.client().deploy_site("h2-many", &deploy);
    let d = site.domain.clone();
    let addr = sigil.http;
    let expected = files.clone();
    runtime().block_on(async move {
        let h2 = h2c(addr).await;
        // Every request is in flight before any response is read.
        let mut pending = Vec::new();
        for i in 0..50 {
            let (path, _) = &expected[i % expected.len()];
            let mut client = h2.client.clone().ready().await.expect("ready");
            let (resp, _) = client
                .send_request(get(&format!("http://{d}{path}")), true)
                .expect("send");
            pending.push((i, tokio::spawn(read_response(resp))));
        }
        // Read them in reverse order: the last streams' bodies must arrive while earlier
        // ones still wait for window.
        for (i, task) in pending.into_iter().rev() {
            let r = task.await.expect("task").expect("response");
            let (path, want) = &expected[i % expected.len()];
            assert_eq!(r.status, 200, "stream {i} {path}");
            assert_eq!(
                r.header("content-length"),
                Some(want.len().to_string().as_str()),
                "{path}"
            );
            assert_eq!(r.body.len(), want.len(), "stream {i} {path}: length");
            assert!(r.body == *want, "stream {i} {path}: bytes differ");
        }
        // The connection is still good afterwards.
        let r = exchange(&h2.client, get(&format!("http://{d}/f0.bin")), None)
            .await
            .expect("response");
        assert_eq!(r.body, expected[0].1);
    });

    // An 8 MiB file over TLS (ALPN h2), byte-exact.
    let edge = sigil.edge(&[&site.domain]);
    let r = edge
        .get(&edge.tls_url(&site.domain, "/big.bin"), &[])
        .expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "8 MiB body differs");
}

#[test]
fn first_fetch_is_a_cache_miss_later_ones_are_hits() {
    let sigil = Sigil::start();
    let one = pattern(200_000, 7);
    let two = pattern(50_000, 8);
    let site = sigil.client().deploy_site(
        "h2-cache",
        &[
            ("/one.bin", "public", &one, "application/octet-stream"),
            ("/two.bin", "public", &two, "application/octet-stream"),
        ],
    );
    let url = |path: &str| format!("http://{}{path}", site.domain);
    let rt = runtime();
    let h2 = rt.block_on(h2c(sigil.http));
    let fetch = |path: &str| {
        rt.block_on(exchange(&h2.client, get(&url(path)), None))
            .expect("response")
    };

    let (hits0, misses0) = cache_stats(&sigil);
    // First fetch after the deploy: the blob is mapped on the way (a task of its own).
    let r = fetch("/one.bin");
    assert_eq!(r.status, 200);
    assert!(r.body == one, "miss: bytes differ");
    assert_eq!(
        cache_stats(&sigil),
        (hits0, misses0 + 1),
        "one miss, no hit"
    );
    // Later fetches: answered inline from the mapped blob.
    for _ in 0..3 {
        let r = fetch("/one.bin");
        assert_eq!(r.status, 200);
        assert!(r.body == one, "hit: bytes differ");
    }
    assert_eq!(cache_stats(&sigil), (hits0 + 3, misses0 + 1), "three hits");
    // A HEAD needs no bytes: neither a hit nor a miss.
    let r = rt
        .block_on(exchange(&h2.client, head(&url("/two.bin")), None))
        .expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(cache_stats(&sigil), (hits0 + 3, misses0 + 1), "HEAD");

    // Ten streams at once for a blob never fetched: each is a hit or a miss (concurrent
    // misses share one load), at least the first is a miss, and every body is whole.
    let bodies = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let mut client = h2.client.clone().ready().await.expect("ready");
            let (resp, _) = client
                .send_request(get(&url("/two.bin")), true)
                .expect("send");
            tasks.push(tokio::spawn(read_response(resp)));
        }
        let mut bodies = Vec::new();
        for t in tasks {
            bodies.push(t.await.expect("task").expect("response"));
        }
        bodies
    });
    for r in &bodies {
        assert_eq!(r.status, 200);
        assert!(r.body == two, "concurrent miss: bytes differ");
    }
    let (hits, misses) = cache_stats(&sigil);
    assert_eq!(
        hits + misses,
        hits0 + 3 + misses0 + 1 + 10,
        "one count per GET"
    );
    assert!(misses > misses0 + 1, "the first of them missed");

    // Over TLS: a hit.
    let edge = sigil.edge(&[&site.domain]);
    let r = edge
        .get(&edge.tls_url(&site.domain, "/one.bin"), &[])
        .expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert!(r.body == one);
    assert_eq!(cache_stats(&sigil), (hits + 1, misses));
}

const SECRET: &[u8] = b"<Response><Say>only for Twilio</Say></Response>";

#[test]
fn protected_assets_over_http2() {
    let sigil = Sigil::start_with(&["--edge-max-body", "1024"]);
    let site = sigil.client().deploy_site(
        "h2-protected",
        &[("/hook.xml", "protected", SECRET, "application/xml")],
    );
    let d = site.domain.as_str();
    let edge = sigil.edge(&[d]);
    let url = edge.tls_url(d, "/hook.xml");
    let params = [
        ("CallSid", "CA1"),
        ("From", "+14155551234"),
        ("Digits", "42"),
    ];
    let sig = twilio_signature(AUTH_TOKEN, &url, &params);
    let post = |sig: Option<&str>, params: &[(&str, &str)]| {
        let mut rb = edge.http.post(&url).form(params);
        if let Some(sig) = sig {
            rb = rb.header("X-Twilio-Signature", sig);
        }
        edge.send(rb)
    };

    // Signed form POST over TLS + h2: the bytes.
    let r = post(Some(&sig), &params).expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert_eq!(r.body, SECRET);
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    // The same POST with a wrong signature, with a tampered parameter, without one.
    let wrong = twilio_signature("someone-elses-token-0123456789", &url, &params);
    for (what, r) in [
        ("wrong signature", post(Some(&wrong), &params)),
        (
            "tampered",
            post(Some(&sig), &[("CallSid", "CA2"), params[1], params[2]]),
        ),
        ("unsigned", post(None, &params)),
    ] {
        assert_eq!(r.status, 403, "{what}");
        assert_eq!(r.version, reqwest::Version::HTTP_2);
        assert!(
            !r.text().contains("only for Twilio"),
            "{what}: {}",
            r.text()
        );
    }
    // An unsigned GET.
    let r = edge.get(&url, &[]).expect(403);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert!(!r.text().contains("only for Twilio"));
    // A signed GET (no parameters).
    let get_sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let r = edge
        .get(&url, &[("X-Twilio-Signature", get_sig.as_str())])
        .expect(200);
    assert_eq!(r.body, SECRET);

    // A validly signed POST whose body is over --edge-max-body: 413.
    let long = "x".repeat(4000);
    let big_params = [("CallSid", "CA1"), ("Body", long.as_str())];
    let big_sig = twilio_signature(AUTH_TOKEN, &url, &big_params);
    let r = post(Some(&big_sig), &big_params);
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert!(!r.text().contains("only for Twilio"));

    // h2c with the h2 crate: the same on the plain listener (the URL signed is http://),
    // and a body larger than the server's stream window (1 MiB) is refused with 413 without
    // being read whole; the connection goes on serving.
    let plain_url = format!("http://{d}:{}/hook.xml", sigil.http.port());
    let plain_sig = twilio_signature(AUTH_TOKEN, &plain_url, &params);
    let form: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", support::enc(k), support::enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let addr = sigil.http;
    runtime().block_on(async move {
        let h2 = h2c(addr).await;
        let post = |sig: &str, body: Bytes| {
            let req = http::Request::post(plain_url.as_str())
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-twilio-signature", sig)
                .body(())
                .expect("request");
            exchange(&h2.client, req, Some(body))
        };
        let r = post(&plain_sig, Bytes::from(form.clone()))
            .await
            .expect("POST");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, SECRET);
        let r = post(&sig, Bytes::from(form.clone())).await.expect("POST");
        assert_eq!(
            r.status, 403,
            "the https URL's signature is not the http one's"
        );
        let huge = Bytes::from(vec![b'a'; 3 * 1024 * 1024]);
        // The server answers once it has read past the limit, then resets the rest of the
        // stream; the client gets the answer.
        let r = post(&plain_sig, huge)
            .await
            .expect("a 413 answer, not an error");
        assert_eq!(r.status, 413);
        assert!(!r.body.windows(SECRET.len()).any(|w| w == SECRET));
        let r = post(&plain_sig, Bytes::from(form))
            .await
            .expect("POST after 413");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, SECRET);
    });
}

#[test]
fn uri_over_the_limit_gets_414_over_http2() {
    let sigil = Sigil::start_with(&["--max-uri-bytes", "1024"]);
    let site = sigil
        .client()
        .deploy_site("h2-uri", &[("/a.txt", "public", b"alpha", "text/plain")]);
    let d = site.domain.clone();
    let addr = sigil.http;
    runtime().block_on(async move {
        let h2 = h2c(addr).await;
        let c = &h2.client;
        let long = format!("http://{d}/{}", "a".repeat(1100));
        let r = exchange(c, get(&long), None).await.expect("response");
        assert_eq!(r.status, 414);
        assert_eq!(r.body, b"URI Too Long\n");
        let r = exchange(c, head(&long), None).await.expect("response");
        assert_eq!(r.status, 414);
        assert!(
            r.ended_with_headers && r.body.is_empty(),
            "HEAD 414: no body"
        );
        // The query counts too.
        let long_query = format!("http://{d}/a.txt?q={}", "b".repeat(1100));
        let r = exchange(c, get(&long_query), None).await.expect("response");
        assert_eq!(r.status, 414);
        // Just under the limit: looked up (404), and the connection still serves.
        let under = format!("http://{d}/{}", "a".repeat(1000));
        let r = exchange(c, get(&under), None).await.expect("response");
        assert_eq!(r.status, 404);
        let r = exchange(c, get(&format!("http://{d}/a.txt")), None)
            .await
            .expect("response");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"alpha");
    });
    // Over TLS too.
    let edge = sigil.edge(&[&site.domain]);
    let r = edge
        .get(
            &edge.tls_url(&site.domain, &format!("/{}", "a".repeat(1100))),
            &[],
        )
        .expect(414);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
}

#[test]
fn idle_http2_connections_get_goaway_and_are_closed() {
    let sigil = Sigil::start_with(&["--header-read-timeout", "1"]);
    let addr = sigil.http;
    runtime().block_on(async move {
        // A connection that never opens a stream.
        let h2 = h2c(addr).await;
        let started = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(5), h2.conn)
            .await
            .unwrap_or_else(|_| panic!("still open after {:?}", started.elapsed()))
            .expect("connection task");
        if let Err(e) = &ended {
            assert!(
                e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR),
                "a graceful GOAWAY, not {e:?}"
            );
        }
        let refused = match h2.client.clone().ready().await {
            Err(e) => Some(e),
            Ok(mut c) => c.send_request(get("http://nobody.localhost/"), true).err(),
        };
        assert!(refused.is_some(), "no new stream after GOAWAY");

        // A connection that was used once and then goes idle.
        let h2 = h2c(addr).await;
        let r = exchange(&h2.client, get("http://nobody.localhost/"), None)
            .await
            .expect("response");
        assert_eq!(r.status, 404);
        let ended = tokio::time::timeout(Duration::from_secs(5), h2.conn).await;
        assert!(
            ended.is_ok(),
            "an idle connection after a request is closed"
        );
    });

    // Frame by frame: a client that answers the server's SETTINGS and PINGs but opens no
    // stream gets GOAWAY (NO_ERROR, no stream processed) and then the close.
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    s.write_all(&hello).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut frames: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
        while pending.len() >= 9 {
            let len = usize::from(pending[0]) << 16
                | usize::from(pending[1]) << 8
                | usize::from(pending[2]);
            if pending.len() < 9 + len {
                break;
            }
            let (kind, flags) = (pending[3], pending[4]);
            let payload = pending[9..9 + len].to_vec();
            pending.drain(..9 + len);
            // The client's half: acknowledge SETTINGS and PING.
            if kind == SETTINGS && flags & ACK == 0 {
                let _ = s.write_all(&frame(SETTINGS, ACK, &[]));
            }
            if kind == PING && flags & ACK == 0 {
                let _ = s.write_all(&frame(PING, ACK, &payload));
            }
            frames.push((kind, flags, payload));
        }
    };
    let kinds: Vec<u8> = frames.iter().map(|f| f.0).collect();
    assert!(closed, "still open after 5 s; frames {kinds:?}");
    let (_, _, last_goaway) = frames
        .iter()
        .rev()
        .find(|f| f.0 == GOAWAY)
        .unwrap_or_else(|| panic!("no GOAWAY before the close: {kinds:?}"));
    assert_eq!(&last_goaway[..4], &[0, 0, 0, 0], "last stream id: none");
    assert_eq!(&last_goaway[4..8], &[0, 0, 0, 0], "NO_ERROR");
}

/// One HTTP/2 frame on stream 0.
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("small").to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// Everything a raw connection receives until the server closes it or `limit` passes;
/// whether it was closed.
fn read_until_closed(s: &mut std::net::TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (got, false);
        }
        s.set_read_timeout(Some(left)).expect("timeout");
        match s.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// The types of the HTTP/2 frames in `bytes` (what a server sends: no preface).
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        types.push(bytes[at + 3]);
        at += 9 + len;
    }
    types
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

/// Sends `hello` on a raw connection to the plain listener, then nothing: the server must
/// send GOAWAY and close within a few seconds (`--header-read-timeout 1`).
fn closed_after_goaway(hello: &[u8]) {
    let sigil = Sigil::start_with(&["--header-read-timeout", "1"]);
    let mut s = std::net::TcpStream::connect(sigil.http).expect("connect");
    s.write_all(hello).expect("write");
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed,
        "still open after 5 s; received frame types {:?}",
        frame_types(&got)
    );
    assert!(
        frame_types(&got).contains(&GOAWAY),
        "GOAWAY before the close: {:?}",
        frame_types(&got)
    );
}

#[test]
fn a_connection_sending_only_the_preface_is_closed() {
    closed_after_goaway(PREFACE);
}

#[test]
fn a_connection_that_never_acks_ping_is_closed() {
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, &[]));
    closed_after_goaway(&hello);
}

#[test]
fn sigterm_lets_an_http2_download_finish_and_refuses_new_streams() {
    let mut sigil = Sigil::start_with(&["--drain-timeout", "5"]);
    let big = pattern(16 * 1024 * 1024, 5);
    let site = sigil.client().deploy_site(
        "h2-drain",
        &[
            ("/big.bin", "public", &big, "application/octet-stream"),
            ("/a.txt", "public", b"alpha", "text/plain"),
        ],
    );
    let d = site.domain.clone();
    let addr = sigil.http;
    let want = big.clone();
    let (got, refused, conn_result) = runtime().block_on(async {
        let h2 = h2c(addr).await;
        let mut client = h2.client.clone().ready().await.expect("ready");
        let (resp, _) = client
            .send_request(get(&format!("http://{d}/big.bin")), true)
            .expect("send");
        let (parts, mut body) = resp.await.expect("response").into_parts();
        assert_eq!(parts.status, 200);
        // The first bytes, without giving the window back: the server can send no more
        // than the client's 64 KiB window until the client reads on.
        let mut got = body
            .data()
            .await
            .expect("first bytes")
            .expect("data")
            .to_vec();
        assert!(got.len() <= 65_535, "no more than the client's window");
        sigil.sigterm();
        tokio::time::sleep(Duration::from_millis(500)).await;
        body.flow_control()
            .release_capacity(got.len())
            .expect("release");
        while let Some(chunk) = body.data().await {
            let chunk = chunk
                .unwrap_or_else(|e| panic!("download broken after {} bytes: {e:?}", got.len()));
            body.flow_control()
                .release_capacity(chunk.len())
                .expect("release");
            got.extend_from_slice(&chunk);
        }
        // A new stream on the connection that got GOAWAY is refused.
        let refused = match h2.client.clone().ready().await {
            Err(e) => Err(e),
            Ok(mut c) => match c.send_request(get(&format!("http://{d}/a.txt")), true) {
                Err(e) => Err(e),
                Ok((resp, _)) => read_response(resp).await.map(|r| r.status),
            },
        };
        let conn_result = tokio::time::timeout(Duration::from_secs(5), h2.conn).await;
        (got, refused, conn_result)
    });
    assert_eq!(got.len(), want.len(), "the whole body arrived");
    assert!(got == want, "the body is byte-exact");
    match refused {
        Ok(status) => panic!("a new stream after SIGTERM was answered: {status}"),
        Err(e) => assert!(
            e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR),
            "refused by the server's GOAWAY: {e:?}"
        ),
    }
    let conn_result = conn_result.expect("the connection is closed after its last stream");
    if let Ok(Err(e)) = &conn_result {
        // The GOAWAY itself was checked above (the refused stream). The client's own
        // connection task may still be writing (a WINDOW_UPDATE) when the server closes the
        // socket after its last stream: a broken pipe or reset there is the close, seen late.
        let closed_under_a_write = e.get_io().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            )
        });
        assert!(
            closed_under_a_write || (e.is_go_away() && e.reason() == Some(h2::Reason::NO_ERROR)),
            "a graceful GOAWAY: {e:?}"
        );
    }
    let status = sigil.wait_exit(Duration::from_secs(8));
    assert!(
        status.is_some_and(|s| s.success()),
        "sigil exits 0 within the drain timeout: {status:?}"
    );
}
