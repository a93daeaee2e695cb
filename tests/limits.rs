//! Connection hygiene: header-read timeout (slowloris), the connection cap, and graceful
//! shutdown that lets a download in flight finish.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Sigil;

/// Reads until EOF or `limit`; whether the server closed the connection, and how long it took.
fn closed_within(s: &mut TcpStream, limit: Duration) -> (bool, Duration) {
    let started = Instant::now();
    s.set_read_timeout(Some(limit)).expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (true, started.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (true, started.elapsed())
            }
            Err(_) => return (false, started.elapsed()),
        }
    }
}

#[test]
fn slow_headers_are_cut_off() {
    let sigil = Sigil::start_with(&["--header-read-timeout", "1"]);
    let mut s = TcpStream::connect(sigil.http).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: slow.localhost\r\nX-Slow: ")
        .expect("write");
    let (closed, after) = closed_within(&mut s, Duration::from_secs(5));
    assert!(
        closed,
        "a client that never finishes its headers is disconnected"
    );
    assert!(after < Duration::from_secs(4), "{after:?}");
    // Everyone else is still served.
    let r = reqwest::blocking::get(format!("{}/healthz", sigil.api)).expect("healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn connections_over_the_cap_are_closed_and_the_rest_served() {
    let sigil = Sigil::start_with(&["--max-connections", "2"]);
    let mut a = TcpStream::connect(sigil.http).expect("connect");
    let _b = TcpStream::connect(sigil.http).expect("connect");
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(sigil.http).expect("the kernel still accepts");
    let (closed, _) = closed_within(&mut c, Duration::from_secs(3));
    assert!(closed, "the third connection is closed at once");
    // The open ones are served.
    a.write_all(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 64];
    a.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = a.read(&mut buf).expect("read");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 404"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // A freed slot is usable again.
    drop(a);
    std::thread::sleep(Duration::from_millis(300));
    let mut d = TcpStream::connect(sigil.http).expect("connect");
    d.write_all(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\nConnection: close\r\n\r\n")
        .expect("write");
    d.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = d.read(&mut buf).expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
}

#[test]
fn sigterm_lets_a_download_in_flight_finish() {
    downloads_in_flight_finish(&[], 1);
}

/// The same with a runtime per worker (the downloads spread over the workers' listeners: each
/// worker's connections finish before its runtime ends) and through `sendfile`.
#[test]
fn sigterm_lets_downloads_finish_on_every_worker() {
    downloads_in_flight_finish(
        &[
            "--workers",
            "3",
            "--scheduler",
            "per-worker",
            "--sendfile-from",
            "16384",
        ],
        6,
    );
}

fn downloads_in_flight_finish(flags: &[&str], connections: usize) {
    let mut sigil = Sigil::start_with(flags);
    let api = sigil.client();
    // Larger than the socket buffers on both sides can hold, so most of it is written after
    // the signal.
    let big: Vec<u8> = (0..24 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let site = api.deploy_site(
        "drain",
        &[("/big.bin", "public", &big, "application/octet-stream")],
    );
    let mut downloads: Vec<(TcpStream, Vec<u8>, bool)> = (0..connections)
        .map(|_| {
            let mut s = TcpStream::connect(sigil.http).expect("connect");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            s.write_all(
                format!("GET /big.bin HTTP/1.1\r\nHost: {}\r\n\r\n", site.domain).as_bytes(),
            )
            .expect("write");
            let mut got = vec![0u8; 64 * 1024];
            let n = s.read(&mut got).expect("first bytes");
            got.truncate(n);
            (s, got, false)
        })
        .collect();
    // Shut down while most of each body is still to come; the clients read slowly on.
    sigil.sigterm();
    let mut buf = vec![0u8; 256 * 1024];
    while downloads.iter().any(|(_, _, done)| !done) {
        for (s, got, done) in downloads.iter_mut().filter(|(_, _, done)| !done) {
            match s.read(&mut buf) {
                Ok(0) => *done = true,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("read failed after {} bytes: {e}", got.len()),
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = sigil.wait_exit(Duration::from_secs(10));
    for (_, got, _) in &downloads {
        let header_end = got
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("headers")
            + 4;
        assert_eq!(got.len() - header_end, big.len(), "the whole body arrived");
        assert!(got[header_end..] == big[..]);
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "sigil exits cleanly: {status:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let sigil = Sigil::start_with(&["--header-read-timeout", "1"]);
    let mut s = TcpStream::connect(sigil.http).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 256];
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let n = s.read(&mut buf).expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
    // No next request: the connection is closed once the header-read timeout passes.
    let (closed, after) = closed_within(&mut s, Duration::from_secs(5));
    assert!(
        closed && after < Duration::from_secs(4),
        "closed={closed} after {after:?}"
    );
}

#[test]
fn the_header_read_timeout_counts_from_the_last_answer() {
    // Requests every 0.4 s keep a connection open well past one period from its start;
    // once they stop it is closed one period (1 s) after the last answer, not earlier.
    let sigil = Sigil::start_with(&["--header-read-timeout", "1"]);
    let mut s = TcpStream::connect(sigil.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 256];
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(400));
        s.write_all(b"GET / HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        let n = s.read(&mut buf).expect("response");
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"), "request {i}");
    }
    let (closed, after) = closed_within(&mut s, Duration::from_secs(5));
    assert!(closed, "closed once idle");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(3),
        "closed {after:?} after the last answer"
    );
}

/// Everything the server sends until it closes the connection.
fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read until close");
    String::from_utf8_lossy(&out).into_owned()
}

fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(request).expect("write");
    read_to_close(&mut s)
}

#[test]
fn pipelined_requests_and_a_post_between_gets_on_one_connection() {
    // GETs are answered by the fast path; the POST (a body) hands the connection, with the
    // bytes already read, to hyper; every request gets exactly one answer, in order.
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site("pipeline", &[("/a.txt", "public", b"alpha", "text/plain")]);
    let host = &site.domain;
    let request = format!(
        "GET /a.txt HTTP/1.1\r\nHost: {host}\r\n\r\n\
         HEAD /a.txt HTTP/1.1\r\nHost: {host}\r\n\r\n\
         POST /a.txt HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\r\nabc\
         GET /missing HTTP/1.1\r\nHost: {host}\r\n\r\n\
         GET /a.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let got = exchange(sigil.http, request.as_bytes());
    let statuses: Vec<&str> = got
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &got[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "200", "200", "404", "200"], "{got}");
    assert_eq!(got.matches("alpha").count(), 3, "HEAD has no body: {got}");
    assert!(got.contains("connection: close"), "{got}");
}

#[test]
fn head_and_uri_limits_are_flags() {
    let sigil = Sigil::start_with(&["--max-header-bytes", "8192", "--max-uri-bytes", "1024"]);
    let long_path = format!("/{}", "a".repeat(1100));
    let filler = format!("X-Filler: {}\r\n", "b".repeat(9000));
    // Edge.
    let got = exchange(
        sigil.http,
        format!("GET {long_path} HTTP/1.1\r\nHost: x.localhost\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 414 "), "{got}");
    let got = exchange(
        sigil.http,
        format!("GET / HTTP/1.1\r\nHost: x.localhost\r\n{filler}\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
    let ok = format!("/{}", "a".repeat(1000));
    let got = exchange(
        sigil.http,
        format!("GET {ok} HTTP/1.1\r\nHost: x.localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 404 "), "under the limits: {got}");
    // API: 414 as Twilio JSON; a head over the limit gets hyper's 431.
    let api: std::net::SocketAddr = sigil
        .api
        .trim_start_matches("http://")
        .parse()
        .expect("API address");
    let got = exchange(
        api,
        format!("GET /v1/Services{long_path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 414 "), "{got}");
    assert!(got.contains("\"code\":20414"), "{got}");
    let got = exchange(
        api,
        format!("GET /v1/Services HTTP/1.1\r\nHost: api\r\n{filler}Connection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");
}

#[test]
fn bodies_that_do_not_arrive_in_time_get_408() {
    let sigil = Sigil::start_with(&["--body-read-timeout", "1"]);
    let api = sigil.client();
    let site = api.deploy_site("slowbody", &[("/a.txt", "public", b"alpha", "text/plain")]);
    // Edge POST: 10 of 100 promised bytes, then nothing.
    let mut s = TcpStream::connect(sigil.http).expect("connect");
    s.write_all(
        format!(
            "POST /a.txt HTTP/1.1\r\nHost: {}\r\nContent-Length: 100\r\n\r\n0123456789",
            site.domain
        )
        .as_bytes(),
    )
    .expect("write");
    let got = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    // API form POST: Twilio JSON 408.
    let addr: std::net::SocketAddr = sigil
        .api
        .trim_start_matches("http://")
        .parse()
        .expect("API address");
    let mut s = TcpStream::connect(addr).expect("connect");
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", support::ACCOUNT_SID, support::AUTH_TOKEN)
        )
    );
    s.write_all(
        format!(
            "POST /v1/Services HTTP/1.1\r\nHost: api\r\nAuthorization: {auth}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nUniqueName=x"
        )
        .as_bytes(),
    )
    .expect("write");
    let got = read_to_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 408 "), "{got}");
    assert!(got.contains("\"code\":20408"), "{got}");
    // The server goes on serving.
    let r = reqwest::blocking::get(format!("{}/healthz", sigil.api)).expect("healthz");
    assert_eq!(r.status(), 200);
}

#[test]
fn h2_stream_limit_is_advertised_and_respected() {
    let sigil = Sigil::start_with(&["--h2-max-streams", "7"]);
    let addr = sigil.http;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        // h2c with prior knowledge on the edge's plain listener.
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let get = || {
            http::Request::get("http://nobody.localhost/")
                .body(())
                .expect("request")
        };
        let mut client = client.ready().await.expect("ready");
        // One exchange first, so that the server's SETTINGS have arrived.
        let (resp, _) = client.send_request(get(), true).expect("send");
        assert_eq!(resp.await.expect("response").status(), 404);
        assert_eq!(
            client.current_max_send_streams(),
            7,
            "SETTINGS_MAX_CONCURRENT_STREAMS"
        );
        // Three times as many requests at once: the client waits for free streams, every one
        // is answered.
        let mut answers = Vec::new();
        for _ in 0..21 {
            client = client.ready().await.expect("ready");
            let (resp, _) = client.send_request(get(), true).expect("send");
            answers.push(tokio::spawn(resp));
        }
        for a in answers {
            let resp = a.await.expect("task").expect("response");
            assert_eq!(resp.status(), 404);
        }
    });
}

/// One HTTP/2 frame: 9-byte header and payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len())
        .expect("small frame")
        .to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn h2_rapid_reset_flood_gets_goaway() {
    // CVE-2023-44487: streams opened and reset at once, all in one write, so that they are
    // reset before the server accepts them. Over --h2-max-pending-resets: GOAWAY with
    // ENHANCE_YOUR_CALM, and other clients are still served.
    let sigil = Sigil::start_with(&["--h2-max-pending-resets", "5"]);
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[])); // SETTINGS
                                          // HPACK: :method GET, :scheme http, :path / (static table), :authority literal.
    let mut block = vec![0x82, 0x86, 0x84, 0x01, 11];
    block.extend_from_slice(b"x.localhost");
    for i in 0..200u32 {
        let stream = 2 * i + 1;
        out.extend(h2_frame(0x1, 0x5, stream, &block)); // HEADERS, END_STREAM | END_HEADERS
        out.extend(h2_frame(0x3, 0, stream, &8u32.to_be_bytes())); // RST_STREAM CANCEL
    }
    let mut s = TcpStream::connect(sigil.http).expect("connect");
    s.write_all(&out).expect("write");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let mut goaway = None;
    let mut at = 0;
    while at + 9 <= got.len() {
        let len =
            usize::from(got[at]) << 16 | usize::from(got[at + 1]) << 8 | usize::from(got[at + 2]);
        let end = (at + 9 + len).min(got.len());
        if got[at + 3] == 0x7 && end - at >= 17 {
            let code = &got[at + 13..at + 17];
            goaway = Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]]));
        }
        at = end;
    }
    assert_eq!(
        goaway,
        Some(0xb),
        "GOAWAY ENHANCE_YOUR_CALM ({} bytes read)",
        got.len()
    );
    let r = reqwest::blocking::get(format!("{}/healthz", sigil.api)).expect("healthz");
    assert_eq!(r.status(), 200);
}

/// Reads one HTTP/1.1 response with a `content-length`: its status and body.
fn read_response(s: &mut TcpStream) -> (u16, String) {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).expect("read the answer");
        assert!(n > 0, "closed before the answer: {got:?}");
        got.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().expect("status");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .trim()
        .parse()
        .expect("length");
    while got.len() < head_end + length {
        let n = s.read(&mut buf).expect("read the body");
        assert!(n > 0, "closed inside the body");
        got.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&got[head_end..head_end + length]).into_owned();
    (status, body)
}

#[test]
fn answers_given_before_the_body_reach_clients_that_write_it_all_first() {
    // Python's http.client (the Twilio helper library) writes a whole body before it reads:
    // a 413, 401 or 404 given early must not turn into a broken pipe or a reset. The rest of
    // the body is read and discarded, and the connection stays usable.
    let sigil = Sigil::start();
    let api_addr: std::net::SocketAddr = sigil
        .api
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", support::ACCOUNT_SID, support::AUTH_TOKEN)
        )
    );
    let api = sigil.client();
    let versions = api.versions_url(&api.service("linger"), "Assets");
    let body = vec![b'a'; 32 << 20];
    let cases: [(std::net::SocketAddr, String, u16, &str); 4] = [
        // A form over 1 MiB: 413 once the first MiB is read.
        (
            api_addr,
            format!("POST /v1/Services HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
            413,
            "20413",
        ),
        // An upload whose declared length is over the limit: 413 before any of it is read.
        (
            api_addr,
            format!("POST {versions} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Type: multipart/form-data; boundary=b\r\n"),
            413,
            "20413",
        ),
        // No credentials: 401 without reading.
        (
            api_addr,
            "POST /v1/Services HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n".into(),
            401,
            "20003",
        ),
        // The edge: a POST to a domain nobody deployed.
        (
            sigil.http,
            "POST /form HTTP/1.1\r\nHost: nobody.localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n".into(),
            404,
            "",
        ),
    ];
    for (addr, head, status, code) in cases {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.write_all(format!("{head}Content-Length: {}\r\n\r\n", body.len()).as_bytes())
            .expect("head");
        s.write_all(&body)
            .unwrap_or_else(|e| panic!("{head}: the whole body is taken: {e}"));
        let (got, text) = read_response(&mut s);
        assert_eq!(got, status, "{head}: {text}");
        assert!(text.contains(code), "{head}: {text}");
        // The same connection serves the next request.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: nobody.localhost\r\n\r\n")
            .expect("next request");
        let (next, text) = read_response(&mut s);
        let expected = if addr == api_addr { 200 } else { 404 };
        assert_eq!(next, expected, "{head}: then {text}");
    }
}
