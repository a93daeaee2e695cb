//! A deliberately cheap HTTP/1.1 load generator for `benches/compare.py`: keep-alive GETs on
//! N connections from one thread, the response head parsed with httparse and the body
//! discarded by the kernel (`recv` with `MSG_TRUNC` on TCP copies nothing to user space). It
//! does less per request than wrk, so where wrk is saturated it shows whether the server was
//! the limit. Prints `requests/sec`, `p99_ms` and `errors` (non-2xx/3xx or broken responses).
//!
//! Usage: `loadgen URL CONNECTIONS SECONDS [HEADER: VALUE]...` (URL `http://ADDR/PATH`; the
//! Host header is taken from the arguments when given, else ADDR).

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, conns, secs, headers @ ..] = args.as_slice() else {
        eprintln!("usage: loadgen URL CONNECTIONS SECONDS [HEADER: VALUE]...");
        std::process::exit(64);
    };
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!("GET {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("host:"))
    {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let conns: usize = conns.parse().expect("CONNECTIONS");
    let duration = Duration::from_secs(secs.parse().expect("SECONDS"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut latencies, errors) = rt.block_on(async {
        let until = Instant::now() + duration;
        let tasks: Vec<_> = (0..conns)
            .map(|_| {
                let (addr, request) = (addr.to_owned(), request.clone());
                tokio::spawn(async move { connection(&addr, request.as_bytes(), until).await })
            })
            .collect();
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
    let p99 = latencies
        .get((latencies.len() * 99 / 100).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    println!(
        "requests/sec: {:.1}",
        latencies.len() as f64 / duration.as_secs_f64()
    );
    println!("p99_ms: {:.3}", p99 as f64 / 1000.0);
    println!("errors: {errors}");
}

/// Requests on one connection until `until` (reconnecting after a close): the latency of each
/// in microseconds, and the count of failures.
async fn connection(addr: &str, request: &[u8], until: Instant) -> (Vec<u32>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0;
    let mut buf = vec![0u8; 64 * 1024];
    'connect: while Instant::now() < until {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let mut have = 0;
        while Instant::now() < until {
            let started = Instant::now();
            if tcp.write_all(request).await.is_err() {
                errors += 1;
                continue 'connect;
            }
            // The head (and whatever part of the body came with it).
            let (head_len, length, ok) = loop {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut resp = httparse::Response::new(&mut headers);
                if let Ok(httparse::Status::Complete(n)) = resp.parse(&buf[..have]) {
                    let length = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
                    let ok = resp.code.is_some_and(|c| (200..400).contains(&c));
                    break (n, length, ok);
                }
                match tcp.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => {
                        errors += 1;
                        continue 'connect;
                    }
                    Ok(n) => have += n,
                }
            };
            let Some(length) = length else {
                errors += 1;
                continue 'connect;
            };
            let buffered = have - head_len;
            if buffered >= length {
                buf.copy_within(head_len + length..have, 0);
                have = buffered - length;
            } else {
                have = 0;
                let mut left = length - buffered;
                while left > 0 {
                    let want = left.min(buf.len());
                    let got = tcp
                        .async_io(Interest::READABLE, || {
                            rustix::net::recv(&tcp, &mut buf[..want], rustix::net::RecvFlags::TRUNC)
                                .map(|(n, _)| n)
                                .map_err(std::io::Error::from)
                        })
                        .await;
                    match got {
                        Ok(0) | Err(_) => {
                            errors += 1;
                            continue 'connect;
                        }
                        Ok(n) => left -= n,
                    }
                }
            }
            if ok {
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
            } else {
                errors += 1;
            }
        }
        break;
    }
    (latencies, errors)
}
