//! A deliberately cheap load generator for `benches/compare.py`, from one thread.
//!
//! - `http://` URLs: HTTP/1.1 keep-alive GETs on N connections, the response head parsed with
//!   httparse and the body discarded by the kernel (`recv` with `MSG_TRUNC` on TCP copies
//!   nothing to user space). It does less per request than wrk, so where wrk is saturated it
//!   shows whether the server was the limit.
//! - `https://` URLs: TLS (rustls, ALPN `h2`) and HTTP/2, `--streams` requests in flight on each
//!   of N connections (10 by default, as `compare.py` runs h2load), with the `h2` crate. The
//!   second HTTP/2 client next to h2load: its latencies stay in memory (h2load's per-request
//!   log is the only way to its p99), so a p99 that differs between the two is the client's.
//!   The server's certificate is checked against `certs/ca.pem` (or `--ca FILE`).
//!
//! Prints `requests/sec`, the latency's `p50_ms`, `p90_ms`, `p99_ms` and `p99.9_ms`, and
//! `errors` (non-2xx/3xx or broken responses). Requests and latencies count what completed
//! within SECONDS: a response still coming at the end is dropped with its connection, in both
//! modes (with large bodies and many streams, the requests in flight would otherwise add
//! seconds of transfer to the run).
//!
//! Usage: `loadgen [--streams N] [--ca FILE] URL CONNECTIONS SECONDS [HEADER: VALUE]...` (URL
//! `http://ADDR/PATH` or `https://ADDR/PATH`; the Host header — over TLS also the name the
//! certificate must carry — is taken from the arguments when given, else ADDR).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut streams = 10usize;
    let mut ca = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem").to_owned();
    while args.first().is_some_and(|a| a.starts_with("--")) {
        let flag = args.remove(0);
        let value = (!args.is_empty()).then(|| args.remove(0));
        match (flag.as_str(), value) {
            ("--streams", Some(v)) => {
                streams = v.parse().ok().filter(|&n| n > 0).unwrap_or_else(|| usage())
            }
            ("--ca", Some(v)) => ca = v,
            _ => usage(),
        }
    }
    let [url, conns, secs, headers @ ..] = args.as_slice() else {
        usage()
    };
    let (tls, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(rest), _) => (false, rest),
        (_, Some(rest)) => (true, rest),
        _ => usage(),
    };
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let host = headers
        .iter()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("host").then(|| value.trim())
        })
        .unwrap_or(addr)
        .to_owned();
    let others: Vec<(String, String)> = headers
        .iter()
        .map(|h| h.split_once(':').unwrap_or_else(|| usage()))
        .filter(|(name, _)| !name.eq_ignore_ascii_case("host"))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let duration = Duration::from_secs(secs.parse().expect("SECONDS"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut latencies, errors) = rt.block_on(async {
        let until = Instant::now() + duration;
        let tasks: Vec<_> = if tls {
            let target = H2Target::new(addr, &host, path, &others, &ca);
            (0..conns)
                .map(|_| {
                    let target = target.clone();
                    tokio::spawn(async move { h2_connection(target, streams, until).await })
                })
                .collect()
        } else {
            let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
            for (name, value) in &others {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            (0..conns)
                .map(|_| {
                    let (addr, request) = (addr.to_owned(), request.clone());
                    tokio::spawn(async move { connection(&addr, request.as_bytes(), until).await })
                })
                .collect()
        };
        let mut all = Vec::new();
        let mut errors = 0u64;
        for t in tasks {
            let (l, e) = t.await.expect("task");
            all.extend(l);
            errors += e;
        }
        (all, errors)
    });
    latencies.sort_unstable();
    // The latency below which this share of the requests fell (the same index compare.py
    // takes from h2load's log).
    let quantile = |per_mille: usize| {
        let us = latencies
            .get((latencies.len() * per_mille / 1000).saturating_sub(1))
            .copied()
            .unwrap_or_default();
        us as f64 / 1000.0
    };
    println!(
        "requests/sec: {:.1}",
        latencies.len() as f64 / duration.as_secs_f64()
    );
    println!("p50_ms: {:.3}", quantile(500));
    println!("p90_ms: {:.3}", quantile(900));
    println!("p99_ms: {:.3}", quantile(990));
    println!("p99.9_ms: {:.3}", quantile(999));
    println!("errors: {errors}");
}

fn usage() -> ! {
    eprintln!(
        "usage: loadgen [--streams N] [--ca FILE] URL CONNECTIONS SECONDS [HEADER: VALUE]..."
    );
    std::process::exit(64);
}

/// Requests on one connection until `until` (reconnecting after a close): the latency of each
/// in microseconds, and the count of failures.
async fn connection(addr: &str, request: &[u8], until: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::sleep_until(until.into());
    tokio::pin!(deadline);
    loop {
        let connected = tokio::select! {
            biased;
            c = TcpStream::connect(addr) => c,
            () = &mut deadline => break,
        };
        let Ok(mut tcp) = connected else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mut have = 0;
        loop {
            let started = Instant::now();
            let done = tokio::select! {
                biased;
                done = exchange(&mut tcp, request, &mut buf, &mut have) => done,
                () = &mut deadline => return (latencies, errors),
            };
            match done {
                Some(true) => {
                    latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX))
                }
                Some(false) => errors += 1,
                None => {
                    errors += 1;
                    break; // reconnect
                }
            }
        }
    }
    (latencies, errors)
}

/// One request and its whole response on `tcp`: whether the status was 2xx/3xx, or `None` when
/// the connection failed or the response could not be framed. `buf[..have]` holds what was read
/// past the previous response.
async fn exchange(
    tcp: &mut TcpStream,
    request: &[u8],
    buf: &mut [u8],
    have: &mut usize,
) -> Option<bool> {
    tcp.write_all(request).await.ok()?;
    // The head (and whatever part of the body came with it).
    let (head_len, length, ok) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf[..*have]) {
            let length = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
            let ok = resp.code.is_some_and(|c| (200..400).contains(&c));
            break (n, length?, ok);
        }
        match tcp.read(&mut buf[*have..]).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => *have += n,
        }
    };
    let buffered = *have - head_len;
    if buffered >= length {
        buf.copy_within(head_len + length..*have, 0);
        *have = buffered - length;
        return Some(ok);
    }
    // The rest of the body, dropped by the kernel.
    *have = 0;
    let mut left = length - buffered;
    while left > 0 {
        let want = left.min(buf.len());
        let got = tcp
            .async_io(Interest::READABLE, || {
                rustix::net::recv(&*tcp, &mut buf[..want], rustix::net::RecvFlags::TRUNC)
                    .map(|(n, _)| n)
                    .map_err(std::io::Error::from)
            })
            .await;
        match got {
            Ok(0) | Err(_) => return None,
            Ok(n) => left -= n,
        }
    }
    Some(ok)
}

/// Where the HTTP/2 requests go: the address to connect to, the TLS set-up (the name the
/// certificate must carry, ALPN `h2`) and the request every stream sends.
#[derive(Clone)]
struct H2Target {
    addr: String,
    name: rustls::pki_types::ServerName<'static>,
    tls: tokio_rustls::TlsConnector,
    request: http::Request<()>,
}

impl H2Target {
    fn new(addr: &str, host: &str, path: &str, headers: &[(String, String)], ca: &str) -> H2Target {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("--ca: a PEM file")
        {
            roots
                .add(cert.expect("--ca: a certificate"))
                .expect("--ca: a CA");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        // The certificate names the host, without the port.
        let bare = host
            .rsplit_once(':')
            .filter(|(_, p)| p.parse::<u16>().is_ok());
        let name = bare.map_or(host, |(h, _)| h).to_owned();
        let mut request = http::Request::get(format!("https://{host}{path}"));
        for (n, v) in headers {
            request = request.header(n.as_str(), v.as_str());
        }
        H2Target {
            addr: addr.to_owned(),
            name: rustls::pki_types::ServerName::try_from(name).expect("a host name"),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            request: request.body(()).expect("a request"),
        }
    }
}

/// HTTP/2 on one connection until `until` (reconnecting after a failure): `streams` requests
/// kept in flight, each stream sending the next once its response has ended. The latency of
/// each in microseconds, and the count of failures.
async fn h2_connection(target: H2Target, streams: usize, until: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    while Instant::now() < until {
        // The error (not `Send`) is dropped before the wait below.
        let connected = tokio::time::timeout_at(until.into(), h2_connect(&target))
            .await
            .map(Result::ok);
        let sender = match connected {
            Ok(Some(sender)) => sender,
            Ok(None) => {
                errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            Err(_) => break, // the run ended while connecting
        };
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let (sender, request) = (sender.clone(), target.request.clone());
            set.spawn(h2_stream(sender, request, until));
        }
        drop(sender);
        while let Some(done) = set.join_next().await {
            let (l, e) = done.expect("stream task");
            latencies.extend(l);
            errors += e;
        }
    }
    (latencies, errors)
}

/// Connects, shakes hands (TLS, then HTTP/2 with windows as large as h2load's: 2^30 - 1) and
/// drives the connection in its own task.
async fn h2_connect(
    target: &H2Target,
) -> Result<h2::client::SendRequest<Bytes>, Box<dyn std::error::Error>> {
    let tcp = TcpStream::connect(&target.addr).await?;
    tcp.set_nodelay(true)?;
    let tls = target.tls.connect(target.name.clone(), tcp).await?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("the server did not choose h2".into());
    }
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size((1 << 30) - 1)
        .initial_connection_window_size((1 << 30) - 1)
        .handshake(tls)
        .await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One stream's requests, one after another, until `until` (a response still coming then is
/// dropped, not counted) or the connection fails.
async fn h2_stream(
    mut sender: h2::client::SendRequest<Bytes>,
    request: http::Request<()>,
    until: Instant,
) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 14);
    let mut errors = 0;
    let deadline = tokio::time::sleep_until(until.into());
    tokio::pin!(deadline);
    loop {
        // The connection takes one more stream once one of its own has ended; failing, the
        // connection is gone.
        let ready = tokio::select! {
            biased;
            r = std::future::poll_fn(|cx| sender.poll_ready(cx)) => r,
            () = &mut deadline => break,
        };
        if ready.is_err() {
            errors += 1;
            break;
        }
        let started = Instant::now();
        let response = async {
            let (response, _) = sender.send_request(request.clone(), true)?;
            let response = response.await?;
            let ok = response.status().is_success() || response.status().is_redirection();
            let mut body = response.into_body();
            while let Some(data) = body.data().await {
                let data = data?;
                let _ = body.flow_control().release_capacity(data.len());
            }
            Ok::<bool, h2::Error>(ok)
        };
        let done = tokio::select! {
            biased;
            done = response => done,
            () = &mut deadline => break,
        };
        match done {
            Ok(true) => {
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX))
            }
            Ok(false) => errors += 1,
            // A stream reset: the next request goes on; a connection lost or closed: this
            // stream ends, and the connection's others with it.
            Err(e) => {
                errors += 1;
                if e.is_io() || e.is_go_away() {
                    break;
                }
            }
        }
    }
    (latencies, errors)
}
