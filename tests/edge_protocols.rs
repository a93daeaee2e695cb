//! Protocols and plumbing: HTTP/1.1 keep-alive, HTTP/2 over TLS (ALPN), HTTP/1.1 over TLS,
//! h2c with prior knowledge; the API reached through the edge by host name; /metrics; the
//! Logs resource filled by edge requests.

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::Sigil;

#[test]
fn http1_keep_alive_http2_and_tls() {
    protocols(&[]);
}

/// One worker: the current-thread scheduler serves everything the same way.
#[test]
fn one_worker_serves_every_protocol() {
    protocols(&["--workers", "1"]);
}

/// A current-thread runtime per worker, each with its own SO_REUSEPORT listeners: every
/// protocol, and fresh connections (spread over the workers by the kernel) all answered.
#[test]
fn a_runtime_per_worker_serves_every_protocol() {
    let mut sigil = protocols(&["--workers", "3", "--scheduler", "per-worker"]);
    let api = sigil.client();
    let site = api.deploy_site("spread", &[("/b.txt", "public", b"bee", "text/plain")]);
    for _ in 0..30 {
        // A new client each time: a new connection, a new source port.
        let edge = sigil.edge(&[&site.domain]);
        assert_eq!(
            edge.get(&edge.url(&site.domain, "/b.txt"), &[])
                .expect(200)
                .body,
            b"bee"
        );
        assert_eq!(
            edge.get(&edge.tls_url(&site.domain, "/b.txt"), &[])
                .expect(200)
                .body,
            b"bee"
        );
    }
    // Every worker's listeners stop and the process exits.
    sigil.sigterm();
    let status = sigil.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(status.success(), "{status:?}");
}

/// The access log as an operator reads it: one line per edge request on stderr, in the shape
/// of sigil's other lines, written by the log thread while the server runs (within 50 ms), the
/// rest at a graceful exit. `SIGIL_LOG=warn` leaves the lines out.
#[test]
fn access_lines_reach_stderr_unless_the_filter_leaves_them_out() {
    let dir = tempfile::tempdir().expect("dir");
    let start = |level: &str| {
        let data = dir.path().join(level);
        let stderr = std::fs::File::create(dir.path().join(format!("{level}.log"))).expect("file");
        let mut cmd = Sigil::command(&data, &[]);
        cmd.env("SIGIL_LOG", level)
            .env("SIGIL_ACCOUNT_SID", support::ACCOUNT_SID)
            .env("SIGIL_AUTH_TOKEN", support::AUTH_TOKEN)
            .stderr(stderr);
        Sigil::spawn_command(cmd, &data)
    };
    let read = |level: &str| {
        std::fs::read_to_string(dir.path().join(format!("{level}.log"))).expect("log")
    };
    for level in ["info", "warn"] {
        let mut sigil = start(level);
        let site = sigil
            .client()
            .deploy_site("logged", &[("/a.txt", "public", b"abc", "text/plain")]);
        let edge = sigil.edge(&[&site.domain]);
        edge.get(&edge.url(&site.domain, "/a.txt"), &[]).expect(200);
        edge.get(&edge.url(&site.domain, "/none%20here"), &[])
            .expect(404);
        let ok = format!(
            " INFO sigil::access: site=\"{}\" method=GET path=\"/a.txt\" status=200 bytes=3 micros=",
            site.domain
        );
        let missing = format!(
            " INFO sigil::access: site=\"{}\" method=GET path=\"/none%20here\" status=404 bytes=",
            site.domain
        );
        if level == "info" {
            // Written while the server runs.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !read(level).contains(&missing) {
                assert!(std::time::Instant::now() < deadline, "{}", read(level));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        sigil.sigterm();
        assert!(sigil.wait_exit(Duration::from_secs(20)).is_some());
        let text = read(level);
        let access: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("sigil::access"))
            .collect();
        if level == "warn" {
            assert!(access.is_empty(), "{text}");
            continue;
        }
        assert_eq!(access.len(), 2, "{text}");
        assert!(access[0].contains(&ok), "{text}");
        assert!(access[1].contains(&missing), "{text}");
        for line in access {
            let (time, _) = line.split_once(' ').expect("time");
            assert!(sigil::clock::parse_iso(time).is_some(), "{line}");
        }
    }
}

fn protocols(flags: &[&str]) -> Sigil {
    let sigil = Sigil::start_with(flags);
    let api = sigil.client();
    let site = api.deploy_site("proto", &[("/a.txt", "public", b"abc", "text/plain")]);
    let d = site.domain.as_str();

    // HTTP/1.1 keep-alive: three requests on one raw connection.
    let mut s = std::net::TcpStream::connect(sigil.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = format!("GET /a.txt HTTP/1.1\r\nHost: {d}\r\n\r\n");
    for _ in 0..3 {
        s.write_all(req.as_bytes()).expect("write");
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"abc") {
            let n = s.read(&mut buf).expect("read");
            assert!(
                n > 0,
                "connection closed: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"));
    }

    let edge = sigil.edge(&[d]);
    // HTTPS negotiates h2 by ALPN.
    let r = edge.get(&edge.tls_url(d, "/a.txt"), &[]).expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    assert_eq!(r.body, b"abc");
    // HTTP/1.1 over TLS.
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
    let h1 = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .http1_only()
        .resolve(d, sigil.https)
        .build()
        .expect("client");
    let r = edge.send(h1.get(edge.tls_url(d, "/a.txt"))).expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_11);
    // h2c with prior knowledge on the plain listener.
    let h2c = reqwest::blocking::Client::builder()
        .http2_prior_knowledge()
        .resolve(d, sigil.http)
        .build()
        .expect("client");
    let r = edge.send(h2c.get(edge.url(d, "/a.txt"))).expect(200);
    assert_eq!(r.version, reqwest::Version::HTTP_2);
    // localhost itself has a certificate (no site: 404).
    let r = edge.send(
        reqwest::blocking::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
            .resolve("localhost", sigil.https)
            .build()
            .expect("client")
            .get(format!("https://localhost:{}/", sigil.https.port())),
    );
    assert_eq!(r.status, 404);
    sigil
}

#[test]
fn the_api_through_the_edge_by_host_name() {
    let sigil = Sigil::start();
    let edge = sigil.edge(&["serverless.localhost", "serverless-upload.localhost"]);
    for url in [
        edge.url("serverless.localhost", "/v1/Services"),
        edge.tls_url("serverless.localhost", "/v1/Services"),
    ] {
        let r = edge
            .send(
                edge.http
                    .get(&url)
                    .basic_auth(support::ACCOUNT_SID, Some(support::AUTH_TOKEN)),
            )
            .expect(200);
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(json["meta"]["key"], "services");
        edge.get(&url, &[]).expect(401);
    }
    // An upload to the upload host.
    let api = sigil.client();
    let zs = api.service("via-edge");
    let versions = api.versions_url(&zs, "Assets");
    let form = reqwest::blocking::multipart::Form::new()
        .text("Path", "/up.txt")
        .text("Visibility", "public")
        .part(
            "Content",
            reqwest::blocking::multipart::Part::bytes(b"up".to_vec())
                .file_name("up.txt")
                .mime_str("text/plain")
                .expect("mime"),
        );
    let r = edge
        .send(
            edge.http
                .post(edge.tls_url("serverless-upload.localhost", &versions))
                .basic_auth(support::ACCOUNT_SID, Some(support::AUTH_TOKEN))
                .multipart(form),
        )
        .expect(201);
    let json: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(json["path"], "/up.txt");
}

#[test]
fn metrics_and_request_logs() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site(
        "obs",
        &[
            ("/a.txt", "public", b"hello", "text/plain"),
            ("/p.txt", "private", b"no", "text/plain"),
        ],
    );
    let edge = sigil.edge(&[&site.domain]);
    for _ in 0..3 {
        edge.get(&edge.url(&site.domain, "/a.txt"), &[]).expect(200);
    }
    edge.get(&edge.url(&site.domain, "/p.txt"), &[]).expect(403);
    edge.get(&edge.url(&site.domain, "/missing"), &[])
        .expect(404);
    assert!(sigil.metric("sigil_bytes_sent_total") >= 15);
    assert!(sigil.metric("sigil_cache_hits_total") >= 2);
    assert!(sigil.metric("sigil_cache_misses_total") >= 1);
    assert!(sigil.metric("sigil_connections_total") >= 1);
    assert_eq!(sigil.metric("sigil_environments_served"), 1);
    let text = reqwest::blocking::get(format!("{}/metrics", sigil.api))
        .expect("m")
        .text()
        .expect("t");
    assert!(
        text.contains("sigil_requests_total{status=\"200\"} 3"),
        "{text}"
    );
    assert!(text.contains("sigil_requests_total{status=\"403\"} 1"));
    assert!(text.contains("sigil_active_connections"));

    // The Logs resource lists the edge's request lines (written in batches).
    let logs_url = format!("/v1/Services/{}/Environments/{}/Logs", site.svc, site.env);
    let mut messages = Vec::new();
    for _ in 0..100 {
        let logs = api.get(&logs_url).expect(200);
        messages = logs.json["logs"]
            .as_array()
            .expect("array")
            .iter()
            .map(|l| {
                (
                    l["message"].as_str().expect("m").to_owned(),
                    l["level"].as_str().expect("l").to_owned(),
                )
            })
            .collect();
        if messages.len() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(messages.len(), 5, "{messages:?}");
    assert_eq!(
        messages[0],
        ("GET /missing 404 10".to_owned(), "warn".to_owned())
    );
    assert_eq!(
        messages[1],
        ("GET /p.txt 403 10".to_owned(), "warn".to_owned())
    );
    assert_eq!(
        messages[4],
        ("GET /a.txt 200 5".to_owned(), "info".to_owned())
    );
    let first = &api.get(&logs_url).expect(200).json["logs"][0];
    assert_eq!(first["build_sid"].as_str().map(|s| &s[..2]), Some("ZB"));
    assert_eq!(
        first["deployment_sid"].as_str().map(|s| &s[..2]),
        Some("ZD")
    );
    assert_eq!(first["request_sid"].as_str().map(|s| &s[..2]), Some("RQ"));
}

#[test]
fn request_logs_can_be_turned_off() {
    let sigil = Sigil::start_with(&["--request-logs", "false"]);
    let api = sigil.client();
    let site = api.deploy_site("quiet", &[("/a.txt", "public", b"a", "text/plain")]);
    let edge = sigil.edge(&[&site.domain]);
    for _ in 0..3 {
        edge.get(&edge.url(&site.domain, "/a.txt"), &[]).expect(200);
    }
    // The writer batches every 50 ms; give it ample time to (not) write.
    std::thread::sleep(Duration::from_millis(500));
    let logs = api
        .get(&format!(
            "/v1/Services/{}/Environments/{}/Logs",
            site.svc, site.env
        ))
        .expect(200);
    assert_eq!(logs.json["logs"], serde_json::json!([]));
}

/// `--request-logs-rate`: an Environment's lines past the rate in a second are left out and
/// counted, and its next line written says how many; every request is one or the other.
#[test]
fn request_logs_keep_to_the_rate_and_say_what_they_left_out() {
    let sigil = Sigil::start_with(&["--request-logs-rate", "2"]);
    let api = sigil.client();
    let site = api.deploy_site("rate", &[("/a.txt", "public", b"hello", "text/plain")]);
    let edge = sigil.edge(&[&site.domain]);
    let url = edge.url(&site.domain, "/a.txt");
    for _ in 0..20 {
        edge.get(&url, &[]).expect(200);
    }
    let over = sigil.metric("sigil_request_logs_over_rate_total");
    let logs_url = format!(
        "/v1/Services/{}/Environments/{}/Logs?PageSize=100",
        site.svc, site.env
    );
    let messages = |want: usize| {
        let mut messages = Vec::new();
        for _ in 0..100 {
            messages = api.get(&logs_url).expect(200).json["logs"]
                .as_array()
                .expect("array")
                .iter()
                .map(|l| l["message"].as_str().expect("m").to_owned())
                .collect::<Vec<_>>();
            if messages.len() >= want {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        messages
    };
    let written = 20 - over as usize;
    // Two a second: 20 quick requests span a few seconds at most.
    assert!((2..=6).contains(&written), "{written} written, {over} over");
    let is_note = |m: &String| m.ends_with("request lines left out: over --request-logs-rate");
    // A later second: its first line says how many were left out since the last one written.
    std::thread::sleep(Duration::from_millis(1100));
    edge.get(&url, &[]).expect(200);
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = messages(written + 1);
        if lines.iter().filter(|m| !is_note(m)).count() == written + 1 {
            break;
        }
    }
    assert_eq!(
        lines.iter().filter(|m| !is_note(m)).count(),
        written + 1,
        "{lines:?}"
    );
    // Every line left out is said, exactly once.
    let said: u64 = lines
        .iter()
        .filter(|m| is_note(m))
        .map(|m| {
            m.split(' ')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("a count")
        })
        .sum();
    assert_eq!(said, over, "{lines:?}");
}

/// The benchmark's own client (`examples/loadgen.rs`, which `cargo test` builds) counts what it
/// says: answered requests over HTTP/1.1 and over TLS + HTTP/2 — no more than sigil served, and
/// fewer only by the responses in flight when the run ended — and a 404 as an error, never as a
/// request served. `benches/compare.py` stops on any error it reports.
#[test]
fn the_bench_client_counts_answers_and_errors() {
    let sigil = Sigil::start();
    let site = sigil.client().deploy_site(
        "bench",
        &[(
            "/a.bin",
            "public",
            &[7u8; 20_000],
            "application/octet-stream",
        )],
    );
    let loadgen = std::env::current_exe()
        .expect("test binary")
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir")
        .join("examples/loadgen");
    assert!(
        loadgen.exists(),
        "{} is built by a plain `cargo test` (after a change to it too; `cargo test --test …` \
         does not rebuild it: `cargo build --example loadgen`)",
        loadgen.display()
    );
    // One request first: the counter is listed once it has counted one.
    let edge = sigil.edge(&[&site.domain]);
    edge.get(&edge.url(&site.domain, "/a.bin"), &[]).expect(200);
    let served = || sigil.metric("sigil_requests_total{status=\"200\"}");
    // One second: the rate it prints is the count of requests it took as answered.
    let run = |url: String| {
        let out = std::process::Command::new(&loadgen)
            .args([&url, "2", "1", &format!("Host: {}", site.domain)])
            .output()
            .expect("loadgen runs");
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let field = |name: &str| -> f64 {
            let line = text.lines().find_map(|l| l.strip_prefix(name)).expect(name);
            line.trim().parse().expect("a number")
        };
        (field("requests/sec:"), field("errors:"))
    };
    // 2 connections; over HTTP/2, 10 streams each.
    for (base, in_flight) in [
        (format!("http://{}", sigil.http), 2.0),
        (format!("https://{}", sigil.https), 20.0),
    ] {
        let before = served() as f64;
        let (counted, errors) = run(format!("{base}/a.bin"));
        let served = served() as f64 - before;
        assert!(counted > 0.0, "{base}: nothing answered");
        assert_eq!(errors, 0.0, "{base}");
        assert!(
            counted <= served && served <= counted + in_flight,
            "{base}: counted {counted}, sigil served {served}"
        );
        let (counted, errors) = run(format!("{base}/missing.bin"));
        assert_eq!(counted, 0.0, "{base}: a 404 counted as served");
        assert!(errors > 0.0, "{base}: a 404 not counted as an error");
    }
}
