//! Shared by the `hostile_*` tests (issue #6: hostile input on edge and API): raw HTTP/1.1
//! over TCP for requests a client library would normalise or refuse to send, a small site
//! whose protected and private bytes are recognisable anywhere, and the checks every test
//! ends with (nothing leaked, the server still serves).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::support::{self, Sigil, Site, ACCOUNT_SID, AUTH_TOKEN};

/// The public asset at `/pub.txt`.
pub const PUBLIC: &[u8] = b"public bytes of the hostile-input site\n";
/// Marks the protected asset's bytes: no refused request may return them.
pub const PROTECTED_MARK: &str = "PROTECTED-5f0c2e";
/// Marks the private asset's bytes: no request at all may return them.
pub const PRIVATE_MARK: &str = "PRIVATE-9b41d7";
/// Marks the only asset of a second site: never served under the first site's host.
pub const OTHER_SITE_MARK: &str = "OTHER-SITE-3a6e11";

/// A running sigil with the site deployed.
pub struct Fixture {
    pub sigil: Sigil,
    /// `/pub.txt` (public), `/prot.txt` (protected), `/secret.txt` (private),
    /// `/dir/inner.txt` (public), `/assets/index.html` (public, the root).
    pub site: Site,
    /// A second Service's site with `/other.txt` (public).
    pub other: Site,
}

/// The protected asset's bytes.
pub fn protected_bytes() -> Vec<u8> {
    format!("{PROTECTED_MARK} protected bytes\n").into_bytes()
}

/// The private asset's bytes.
pub fn private_bytes() -> Vec<u8> {
    format!("{PRIVATE_MARK} private bytes\n").into_bytes()
}

impl Fixture {
    /// Starts sigil (with `flags`) and deploys both sites.
    pub fn start(flags: &[&str]) -> Fixture {
        let sigil = Sigil::start_with(flags);
        let api = sigil.client();
        let (prot, private) = (protected_bytes(), private_bytes());
        let site = api.deploy_site(
            "hostile",
            &[
                ("/pub.txt", "public", PUBLIC, "text/plain"),
                ("/prot.txt", "protected", &prot, "text/plain"),
                ("/secret.txt", "private", &private, "text/plain"),
                ("/dir/inner.txt", "public", b"inner\n", "text/plain"),
                ("/assets/index.html", "public", b"<p>root</p>", "text/html"),
            ],
        );
        let other_bytes = format!("{OTHER_SITE_MARK}\n").into_bytes();
        let other = api.deploy_site(
            "other",
            &[("/other.txt", "public", &other_bytes, "text/plain")],
        );
        Fixture { sigil, site, other }
    }

    /// The edge's plain-HTTP listener.
    pub fn edge(&self) -> SocketAddr {
        self.sigil.http
    }

    /// The API listener.
    pub fn api(&self) -> SocketAddr {
        self.sigil
            .api
            .strip_prefix("http://")
            .expect("http API")
            .parse()
            .expect("API address")
    }

    /// `GET {target}` for the site on the edge, `Connection: close`.
    pub fn edge_get(&self, target: &[u8]) -> Exchange {
        exchange(self.edge(), &get(&self.site.domain, target, &[]))
    }

    /// Asserts the server still answers normal requests: the public asset with its bytes over
    /// raw HTTP/1.1 and reqwest, `/healthz`, and an API list.
    #[track_caller]
    pub fn assert_still_serving(&self) {
        let x = self.edge_get(b"/pub.txt");
        let r = x.only();
        assert_eq!(r.status, 200, "the public asset after the hostile requests");
        assert_eq!(r.body, PUBLIC);
        let edge = self.sigil.edge(&[&self.site.domain]);
        let r = edge
            .get(&edge.url(&self.site.domain, "/pub.txt"), &[])
            .expect(200);
        assert_eq!(r.body, PUBLIC);
        let health =
            reqwest::blocking::get(format!("{}/healthz", self.sigil.api)).expect("healthz answers");
        assert_eq!(health.status(), 200, "/healthz after the hostile requests");
        self.sigil.client().get("/v1/Services").expect(200);
    }
}

/// `Authorization: Basic …` for the test account, with its CRLF.
pub fn auth_header() -> String {
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"));
    format!("Authorization: Basic {creds}\r\n")
}

/// `GET {target} HTTP/1.1` with `Host: {host}`, extra header lines (each ending in CRLF) and
/// `Connection: close`.
pub fn get(host: &str, target: &[u8], extra: &[&str]) -> Vec<u8> {
    let mut req = b"GET ".to_vec();
    req.extend_from_slice(target);
    req.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for h in extra {
        req.extend_from_slice(h.as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req
}

/// An authenticated API request (`Host: api`, `Connection: close`) with a body.
pub fn api_request(method: &str, target: &[u8], extra: &[&str], body: &[u8]) -> Vec<u8> {
    let mut req = format!("{method} ").into_bytes();
    req.extend_from_slice(target);
    req.extend_from_slice(b" HTTP/1.1\r\nHost: api\r\n");
    req.extend_from_slice(auth_header().as_bytes());
    for h in extra {
        req.extend_from_slice(h.as_bytes());
    }
    if !body.is_empty() || method == "POST" {
        req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    req.extend_from_slice(body);
    req
}

/// One HTTP/1.1 response as it came off the wire.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value (the first, by case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Everything the server sent on one connection.
#[derive(Debug)]
pub struct Exchange {
    /// The raw bytes.
    pub raw: Vec<u8>,
    /// The responses parsed from them, in order.
    pub replies: Vec<Reply>,
    /// Whether the server closed the connection (rather than leaving it open).
    pub closed: bool,
}

impl Exchange {
    /// The one response; panics when there were none or several.
    #[track_caller]
    pub fn only(&self) -> &Reply {
        assert_eq!(
            self.replies.len(),
            1,
            "expected exactly one response, got: {}",
            String::from_utf8_lossy(&self.raw)
        );
        &self.replies[0]
    }

    /// Asserts exactly one response with `status` and returns it.
    #[track_caller]
    pub fn expect(&self, status: u16, what: &str) -> &Reply {
        let r = self.only();
        assert_eq!(
            r.status,
            status,
            "{what}: unexpected status; got {}",
            String::from_utf8_lossy(&self.raw)
        );
        r
    }
}

/// Sends `request` on a fresh connection and reads until the server closes it (or has sent
/// nothing more for a while). The request is written from another thread, so a server that
/// answers before reading all of it (a 413, 414, 431) is read, not deadlocked on.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Exchange {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let mut writer = stream.try_clone().expect("clone");
    let head = request.starts_with(b"HEAD ");
    let request = request.to_vec();
    let sending = std::thread::spawn(move || {
        // The server may close early (it answered already): not this side's problem.
        let _ = writer.write_all(&request);
    });
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                break true
            }
            Err(_) => break false, // nothing more within the read timeout: still open
        }
    };
    let _ = stream.shutdown(Shutdown::Both);
    sending.join().expect("writer thread");
    let replies = parse_replies(&raw, head);
    Exchange {
        raw,
        replies,
        closed,
    }
}

/// Splits a byte stream into HTTP/1.1 responses (sigil always sends a Content-Length); `head`:
/// they answer HEAD requests (no bodies).
pub fn parse_replies(mut raw: &[u8], head_request: bool) -> Vec<Reply> {
    let mut out = Vec::new();
    while !raw.is_empty() {
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            panic!(
                "an incomplete response head: {}",
                String::from_utf8_lossy(raw)
            );
        };
        let head = std::str::from_utf8(&raw[..end]).expect("response head is ASCII");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().expect("status line");
        assert!(
            status_line.starts_with("HTTP/1."),
            "not a status line: {status_line:?}"
        );
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("header line");
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        let rest = &raw[end + 4..];
        assert!(
            !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")),
            "sigil sends Content-Length, not chunked"
        );
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("Content-Length"))
            .filter(|_| !head_request)
            .unwrap_or(if head_request || status == 304 || status == 204 {
                0
            } else {
                rest.len()
            });
        assert!(
            len <= rest.len(),
            "a body shorter than its Content-Length ({len}): {}",
            String::from_utf8_lossy(raw)
        );
        out.push(Reply {
            status,
            headers,
            body: rest[..len].to_vec(),
        });
        raw = &rest[len..];
    }
    out
}

/// Asserts `reply` is a Twilio JSON error with HTTP `status` (numeric `code`, `status` equal to
/// the HTTP status, a message, `more_info`); returns the code.
#[track_caller]
pub fn assert_twilio_error(reply: &Reply, status: u16, what: &str) -> u64 {
    assert_eq!(
        reply.status,
        status,
        "{what}: unexpected status; body {}",
        reply.text()
    );
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{what}: not JSON: {:?} {}",
        reply.header("content-type"),
        reply.text()
    );
    let json: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {}", reply.text()));
    support::spec::validate("GET", "/v1/hostile", status, &json);
    json["code"].as_u64().expect("numeric code")
}

/// Asserts `bytes` hold none of the protected, private or other site's bytes, nor anything
/// from outside the server's data (a password file).
#[track_caller]
pub fn assert_no_leak(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    for mark in [PROTECTED_MARK, PRIVATE_MARK, OTHER_SITE_MARK, "root:x:0:0"] {
        assert!(!text.contains(mark), "{what}: leaked {mark}: {text}");
    }
}
