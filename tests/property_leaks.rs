//! No leaks, by construction and by test (issue #6 item 5): property tests over generated
//! requests against one running sigil holding two accounts' sites.
//!
//! - **A** — a request whose `X-Twilio-Signature` is not valid for (the URL as received, its
//!   body, the owning account's tokens) never receives a byte, a validator or a marker of a
//!   protected asset: no 200/206/304 for it, nothing of it in any other answer either.
//! - **B** — no request ever receives a private asset's bytes (nor a Function's source), even
//!   with a valid signature.
//! - **C** — account A's credentials never reach account B's resources: over the API (any
//!   method, any of B's SIDs or names in any position, list filters, references in forms) no
//!   2xx and none of B's SIDs or values in the answer, and B's resources are unchanged
//!   afterwards; at the edge a signature made with anything A knows never unlocks B's
//!   protected assets.
//!
//! The oracle is the test's own: it routes by the Host it sent, decodes the path it sent, and
//! recomputes Twilio's signature (base64 of HMAC-SHA1 over the URL and the sorted form
//! parameters, or the URL alone with a `bodySHA256` that must match the body) with the
//! `hmac`/`sha1` crates, tried as received and with the port removed or the default one
//! added; several signature headers count as valid when any one is. Where the contract
//! leaves room it takes the reading most favourable to the request, so a failure is a leak,
//! not a disagreement. Every success answer must be *attributed*: its ETag names an asset the
//! request may have (public, or the protected one it holds a signature for), and its body —
//! decompressed when br or gzip, placed at its `Content-Range` when partial — is exactly that
//! asset's bytes. Asset contents are lines of `~MK:{site}:{name}~` markers, so any slice of
//! more than two lines names its asset wherever it turns up; slices of partial answers to
//! unentitled requests are also reassembled per representation and scanned again.
//!
//! One sigil per test function; proptest with fixed seeds, fixed case counts and no failure
//! persistence, so a run is reproducible.

mod hostile;
mod support;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use hostile::{assert_no_leak, exchange, Reply};
use support::{enc, Api, Sigil, Site, ACCOUNT_SID, AUTH_TOKEN};

// ------------------------------------------------------------------------------------------
// The world: two accounts, each with a deployed site.
// ------------------------------------------------------------------------------------------

const A: usize = 0;
const B: usize = 1;
const SITE_NAMES: [&str; 2] = ["A", "B"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vis {
    Public,
    Protected,
    Private,
}

impl Vis {
    fn as_str(self) -> &'static str {
        match self {
            Vis::Public => "public",
            Vis::Protected => "protected",
            Vis::Private => "private",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A few lines.
    Small,
    /// An HTML page that compresses well (br and gzip variants are made).
    Page,
    /// A JSON document (compressible).
    Json,
    /// About this many bytes of marker lines with binary bytes, served as octet-stream.
    Big(usize),
    /// Function source.
    Function,
}

/// One asset (or Function) of one site.
struct Asset {
    site: usize,
    path: String,
    vis: Vis,
    function: bool,
    content: Vec<u8>,
    mark: String,
    /// The first 32 hex digits of the content's sha256: sigil's ETags start with them.
    etag_base: String,
}

impl Asset {
    /// Whether anyone may receive its bytes.
    fn public(&self) -> bool {
        self.vis == Vis::Public && !self.function
    }
}

struct Account {
    sid: String,
    token: String,
    secondary: String,
    key_sid: String,
    key_secret: String,
}

struct World {
    sigil: Sigil,
    accounts: [Account; 2],
    sites: [Site; 2],
    assets: Vec<Asset>,
    by_mark: HashMap<String, usize>,
    by_etag: HashMap<String, usize>,
    /// Account B's service name (= A's domain base, so A can try to take B's domain).
    b_service_name: String,
    /// The DomainSuffix that would give A's service B's domain.
    collide_suffix: String,
}

/// The files each site gets: (path, visibility, content type, shape, name in the marker).
fn site_files(site: usize) -> Vec<(&'static str, Vis, &'static str, Shape, &'static str)> {
    let mut files = vec![
        ("/pub.txt", Vis::Public, "text/plain", Shape::Small, "pub"),
        ("/page.html", Vis::Public, "text/html", Shape::Page, "page"),
        (
            "/pub/big.bin",
            Vis::Public,
            "application/octet-stream",
            Shape::Big(160 * 1024),
            "pubbig",
        ),
        (
            "/prot.txt",
            Vis::Protected,
            "text/plain",
            Shape::Small,
            "prot",
        ),
        (
            "/prot/doc.html",
            Vis::Protected,
            "text/html",
            Shape::Page,
            "doc",
        ),
        (
            "/prot/data.json",
            Vis::Protected,
            "application/json",
            Shape::Json,
            "json",
        ),
        (
            "/prot/big.bin",
            Vis::Protected,
            "application/octet-stream",
            Shape::Big(256 * 1024),
            "protbig",
        ),
        (
            "/ünï/prot.txt",
            Vis::Protected,
            "text/plain",
            Shape::Small,
            "uni",
        ),
        (
            "/secret.txt",
            Vis::Private,
            "text/plain",
            Shape::Small,
            "secret",
        ),
        (
            "/private/page.html",
            Vis::Private,
            "text/html",
            Shape::Page,
            "privpage",
        ),
        (
            "/private/big.bin",
            Vis::Private,
            "application/octet-stream",
            Shape::Big(192 * 1024),
            "privbig",
        ),
    ];
    if site == A {
        // The root page is protected on A and private on B.
        files.push((
            "/assets/index.html",
            Vis::Protected,
            "text/html",
            Shape::Page,
            "index",
        ));
        files.push(("/fn", Vis::Public, "function", Shape::Function, "fn"));
    } else {
        files.push((
            "/assets/index.html",
            Vis::Private,
            "text/html",
            Shape::Page,
            "index",
        ));
        files.push(("/fn", Vis::Protected, "function", Shape::Function, "fn"));
        files.push((
            "/b-only.txt",
            Vis::Protected,
            "text/plain",
            Shape::Small,
            "bonly",
        ));
    }
    files
}

fn make_content(shape: Shape, mark: &str) -> Vec<u8> {
    match shape {
        Shape::Small => format!("{mark} first line\n{mark} second line\n").into_bytes(),
        Shape::Page => {
            let mut s = String::from("<!doctype html>\n<title>page</title>\n");
            for i in 0..160 {
                s.push_str(&format!(
                    "<p>{mark} line {i:04} of a page that compresses</p>\n"
                ));
            }
            s.into_bytes()
        }
        Shape::Json => {
            let items: Vec<String> = (0..100)
                .map(|i| format!("{{\"mark\":\"{mark}\",\"n\":{i}}}"))
                .collect();
            format!("{{\"items\":[{}]}}\n", items.join(",")).into_bytes()
        }
        Shape::Big(size) => {
            let mut out = Vec::with_capacity(size + 64);
            let mut i = 0u32;
            while out.len() < size {
                out.extend_from_slice(format!("{mark}{i:07}").as_bytes());
                out.extend_from_slice(&[0x00, 0xff, (i % 251) as u8, b'\n']);
                i += 1;
            }
            out
        }
        Shape::Function => format!(
            // The marker only in a comment: any byte of the source that is served shows it.
            "// {mark}\nexports.handler = (context, event, callback) => callback(null, 'ran');\n"
        )
        .into_bytes(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A `name value` line of `sigil account …` output.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .to_owned()
}

impl World {
    fn start() -> World {
        let sigil = Sigil::start();
        let a_api = sigil.client();
        // Account A: the server's first account, plus a secondary token and an API key.
        let a_secondary = field(
            &sigil.account_cli(&["token", "secondary", "--account", ACCOUNT_SID]),
            "secondary_auth_token",
        );
        let a_key = sigil.account_cli(&["key", "create", "--account", ACCOUNT_SID]);
        // Account B, created while the server runs (as tests/api_accounts.rs does).
        let out = sigil.account_cli(&["create", "--friendly-name", "bravo"]);
        let (b_sid, b_token) = (field(&out, "account_sid"), field(&out, "auth_token"));
        let b_secondary = field(
            &sigil.account_cli(&["token", "secondary", "--account", &b_sid]),
            "secondary_auth_token",
        );
        let b_key = sigil.account_cli(&["key", "create", "--account", &b_sid]);
        let accounts = [
            Account {
                sid: ACCOUNT_SID.to_owned(),
                token: AUTH_TOKEN.to_owned(),
                secondary: a_secondary,
                key_sid: field(&a_key, "api_key_sid"),
                key_secret: field(&a_key, "api_key_secret"),
            },
            Account {
                sid: b_sid.clone(),
                token: b_token.clone(),
                secondary: b_secondary,
                key_sid: field(&b_key, "api_key_sid"),
                key_secret: field(&b_key, "api_key_secret"),
            },
        ];
        let b_api = a_api.with_creds(&b_sid, &b_token);

        let mut assets = Vec::new();
        let mut deploy = |site: usize, api: &Api, name: &str| -> Site {
            let files = site_files(site);
            let contents: Vec<(String, Vec<u8>)> = files
                .iter()
                .map(|(_, _, _, shape, n)| {
                    let mark = format!("~MK:{}:{n}~", SITE_NAMES[site]);
                    let content = make_content(*shape, &mark);
                    (mark, content)
                })
                .collect();
            let upload: Vec<(&str, &str, &[u8], &str)> = files
                .iter()
                .zip(&contents)
                .map(|((path, vis, ctype, _, _), (_, content))| {
                    (*path, vis.as_str(), content.as_slice(), *ctype)
                })
                .collect();
            let deployed = api.deploy_site(name, &upload);
            for ((path, vis, ctype, _, _), (mark, content)) in files.iter().zip(contents) {
                assets.push(Asset {
                    site,
                    path: (*path).to_owned(),
                    vis: *vis,
                    function: *ctype == "function",
                    etag_base: sha256_hex(&content)[..32].to_owned(),
                    content,
                    mark,
                });
            }
            deployed
        };
        let site_a = deploy(A, &a_api, "alpha");
        // B's Service is named after A's domain base: B's domain is then A's domain base plus
        // 4 digits, so A can try to take it with a DomainSuffix of those digits.
        let a_base = site_a
            .domain
            .strip_suffix(".localhost")
            .expect("domain under localhost")
            .to_owned();
        let site_b = deploy(B, &b_api, &a_base);
        let b_base = site_b
            .domain
            .strip_suffix(".localhost")
            .expect("domain under localhost");
        let collide_suffix = b_base
            .strip_prefix(&format!("{a_base}-"))
            .expect("B's domain base extends A's")
            .to_owned();

        let by_mark = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.mark.clone(), i))
            .collect();
        let by_etag = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.etag_base.clone(), i))
            .collect();
        let world = World {
            sigil,
            accounts,
            sites: [site_a, site_b],
            assets,
            by_mark,
            by_etag,
            b_service_name: a_base,
            collide_suffix,
        };
        world.smoke(&[A, B]);
        world
    }

    fn edge_addr(&self) -> SocketAddr {
        self.sigil.http
    }

    fn api_addr(&self) -> SocketAddr {
        self.sigil
            .api
            .strip_prefix("http://")
            .expect("http API")
            .parse()
            .expect("API address")
    }

    fn api(&self, account: usize) -> Api {
        let a = &self.accounts[account];
        self.sigil.client().with_creds(&a.sid, &a.token)
    }

    fn asset_at(&self, site: usize, path: &str) -> Option<usize> {
        self.assets
            .iter()
            .position(|a| a.site == site && a.path == path)
    }

    /// The fixture works: every asset answers as its visibility says with a correct signature
    /// (primary and secondary token), before any property runs — so a property that sees no
    /// protected bytes is not vacuous. Waits for the edge's token refresh (every 2 s) to see
    /// account B's tokens.
    fn smoke(&self, sites: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for (i, a) in self.assets.iter().enumerate() {
            if !sites.contains(&a.site) {
                continue;
            }
            for secondary in [false, true] {
                let owner = &self.accounts[a.site];
                let token = if secondary {
                    &owner.secondary
                } else {
                    &owner.token
                };
                let host = self.sites[a.site].domain.clone();
                let target = encode_path(&a.path, 0, true);
                let url = format!("http://{host}{target}");
                let sig = sign(token, &signed_string(&url, &[]));
                let sent = Sent {
                    method: "GET".into(),
                    target,
                    headers: vec![("Host".into(), host), ("X-Twilio-Signature".into(), sig)],
                    body: Vec::new(),
                    chunked: false,
                };
                loop {
                    let x = exchange(self.edge_addr(), &sent.bytes(true));
                    let r = x.only();
                    let want = match (a.vis, a.function) {
                        (Vis::Private, _) => 403,
                        (_, true) => 200,
                        _ => 200,
                    };
                    if r.status == want {
                        if a.function {
                            assert_eq!(r.body, b"ran", "smoke: {} ran", a.path);
                        } else if want == 200 {
                            assert_eq!(r.body, a.content, "smoke: {} body", a.path);
                        }
                        break;
                    }
                    assert!(
                        r.status == 403 && Instant::now() < deadline,
                        "smoke: {} (asset {i}, secondary {secondary}) answered {} {}",
                        a.path,
                        r.status,
                        r.text()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Twilio's signature, computed here (the oracle does not ask sigil).
// ------------------------------------------------------------------------------------------

fn sign(key: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL, then every parameter name sorted by code point, each followed by each of its
/// distinct values, sorted.
fn signed_string(url: &str, params: &[(String, String)]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in params {
        by_name.entry(k).or_default().push(v);
    }
    let mut s = url.to_owned();
    for (k, mut vs) in by_name {
        vs.sort();
        vs.dedup();
        for v in vs {
            s.push_str(k);
            s.push_str(v);
        }
    }
    s
}

/// `application/x-www-form-urlencoded` decoding as WHATWG specifies it; `None` when a name
/// or value is not UTF-8.
fn form_decode(body: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    for part in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (k, v) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &[][..]),
        };
        let dec = |s: &[u8]| {
            let plus: Vec<u8> = s
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect();
            percent_encoding::percent_decode(&plus)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        out.push((dec(k)?, dec(v)?));
    }
    Some(out)
}

fn form_encode(pairs: &[(String, String)], plus_for_space: bool) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let (k, v) = (enc(k), enc(v));
            if plus_for_space {
                format!("{}={}", k.replace("%20", "+"), v.replace("%20", "+"))
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

// ------------------------------------------------------------------------------------------
// A request as sent, and the oracle's verdict on it.
// ------------------------------------------------------------------------------------------

/// One HTTP/1.1 request exactly as it goes on the wire.
#[derive(Debug, Clone)]
struct Sent {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body in chunks (`Transfer-Encoding: chunked`) rather than with a Content-Length.
    chunked: bool,
}

impl Sent {
    fn bytes(&self, close: bool) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.target).into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        if self.chunked {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else if !self.body.is_empty() || self.method == "POST" {
            out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes());
        }
        if close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if self.chunked {
            for chunk in self.body.chunks(7) {
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        } else {
            out.extend_from_slice(&self.body);
        }
        out
    }

    fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches([' ', '\t']))
    }

    /// (authority, path and query) candidates: the absolute-form target's, and each Host
    /// header's with the origin-form target. The fragment is not part of a request target.
    fn urls(&self) -> Vec<(String, String)> {
        let target = self.target.split('#').next().unwrap_or_default();
        let mut out = Vec::new();
        let lower = target.to_ascii_lowercase();
        if let Some(scheme_len) = ["http://", "https://"]
            .iter()
            .find(|s| lower.starts_with(*s))
            .map(|s| s.len())
        {
            let rest = &target[scheme_len..];
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, pq) = rest.split_at(end);
            let pq = if pq.is_empty() { "/" } else { pq };
            out.push((authority.to_owned(), pq.to_owned()));
            for h in self.header_values("host") {
                out.push((h.to_owned(), pq.to_owned()));
            }
        } else {
            for h in self.header_values("host") {
                out.push((h.to_owned(), target.to_owned()));
            }
        }
        out
    }
}

impl World {
    /// The site a Host value names: case-insensitive, port and trailing dots ignored.
    fn route(&self, authority: &str) -> Option<usize> {
        if authority.starts_with('[') {
            return None;
        }
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.sites.iter().position(|s| s.domain == host)
    }

    /// The asset a raw path names on `site` (percent-decoded once, nothing normalised; `/`
    /// is the asset at `/` or else the HTML `/assets/index.html`).
    fn lookup(&self, site: usize, raw_path: &str) -> Option<usize> {
        let path = percent_encoding::percent_decode_str(raw_path)
            .decode_utf8()
            .ok()?;
        if let Some(i) = self.asset_at(site, &path) {
            return Some(i);
        }
        if path == "/" {
            return self
                .asset_at(site, "/assets/index.html")
                .filter(|&i| !self.assets[i].function);
        }
        None
    }

    /// Whether the request may run the Function it names: a public one by GET or POST, a
    /// protected one with a valid signature too (the oracle's view of Functions).
    fn may_run(&self, sent: &Sent) -> bool {
        if !matches!(sent.method.as_str(), "GET" | "POST") {
            return false;
        }
        let signatures: Vec<&str> = sent.header_values("x-twilio-signature").collect();
        sent.urls().into_iter().any(|(authority, pq)| {
            let Some(site) = self.route(&authority) else {
                return false;
            };
            let path = pq.split('?').next().unwrap_or_default();
            let Some(asset) = self.lookup(site, path) else {
                return false;
            };
            let a = &self.assets[asset];
            match (a.function, a.vis) {
                (true, Vis::Public) => true,
                (true, Vis::Protected) => {
                    let owner = &self.accounts[site];
                    let tokens = [owner.token.as_str(), owner.secondary.as_str()];
                    let url = format!("http://{authority}{pq}");
                    !signatures.is_empty() && self.signature_valid(sent, &url, &tokens, &signatures)
                }
                _ => false,
            }
        })
    }

    /// The protected assets this request holds a valid signature for (the oracle).
    fn entitled(&self, sent: &Sent) -> Vec<usize> {
        let mut out = Vec::new();
        if !matches!(sent.method.as_str(), "GET" | "HEAD" | "POST") {
            return out;
        }
        let signatures: Vec<&str> = sent.header_values("x-twilio-signature").collect();
        if signatures.is_empty() {
            return out;
        }
        for (authority, pq) in sent.urls() {
            let Some(site) = self.route(&authority) else {
                continue;
            };
            let path = pq.split('?').next().unwrap_or_default();
            let Some(asset) = self.lookup(site, path) else {
                continue;
            };
            let a = &self.assets[asset];
            if a.vis != Vis::Protected || a.function || out.contains(&asset) {
                continue;
            }
            let url = format!("http://{authority}{pq}");
            let owner = &self.accounts[site];
            let tokens = [owner.token.as_str(), owner.secondary.as_str()];
            if self.signature_valid(sent, &url, &tokens, &signatures) {
                out.push(asset);
            }
        }
        out
    }

    fn signature_valid(&self, sent: &Sent, url: &str, tokens: &[&str], sigs: &[&str]) -> bool {
        let query = url.split_once('?').map(|(_, q)| q);
        let body_hash =
            query.and_then(|q| q.split('&').find_map(|p| p.strip_prefix("bodySHA256=")));
        let body: &[u8] = if sent.method == "POST" {
            &sent.body
        } else {
            &[]
        };
        let is_form = sent.method == "POST"
            && sent.header_values("content-type").next().is_some_and(|c| {
                c.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        let params = if is_form {
            match form_decode(body) {
                Some(p) => p,
                None => return false,
            }
        } else if let Some(given) = body_hash {
            if given != sha256_hex(body) {
                return false;
            }
            Vec::new()
        } else if body.is_empty() {
            Vec::new()
        } else {
            // A body that is neither a form nor covered by bodySHA256 is not signed.
            return false;
        };
        url_variants(url).iter().any(|u| {
            let data = signed_string(u, &params);
            tokens
                .iter()
                .any(|t| sigs.iter().any(|s| *s == sign(t, &data)))
        })
    }
}

/// The URL as received, and with its port removed (or `:80` added when it has none).
fn url_variants(url: &str) -> Vec<String> {
    let rest = url
        .strip_prefix("http://")
        .expect("the edge listener is http");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let other = match authority.rsplit_once(':') {
        Some((host, _)) => format!("http://{host}{tail}"),
        None => format!("http://{authority}:80{tail}"),
    };
    vec![url.to_owned(), other]
}

// ------------------------------------------------------------------------------------------
// Checking answers.
// ------------------------------------------------------------------------------------------

/// Every `~MK:…~` marker in `bytes`.
fn marks_in(bytes: &[u8]) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|&b| b == b'~') {
        let start = i + p;
        if bytes[start..].starts_with(b"~MK:") {
            let tail = &bytes[start + 4..bytes.len().min(start + 40)];
            if let Some(end) = tail.iter().position(|&b| b == b'~') {
                out.insert(String::from_utf8_lossy(&bytes[start..start + 5 + end]).into_owned());
            }
        }
        i = start + 1;
    }
    out
}

fn decompress(coding: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match coding {
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .map_err(|e| format!("a br body that does not decode: {e}"))?,
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map_err(|e| format!("a gzip body that does not decode: {e}"))?,
        other => return Err(format!("an unexpected Content-Encoding {other:?}")),
    };
    Ok(out)
}

/// `bytes S-E/T`.
fn content_range(value: &str) -> Option<(usize, usize, usize)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (s, e) = range.split_once('-')?;
    Some((s.parse().ok()?, e.parse().ok()?, total.parse().ok()?))
}

/// Counts, printed at the end and checked for non-vacuity.
#[derive(Default, Debug)]
struct Ledger {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    /// Protected bytes (or a 304) served to a request the oracle found entitled.
    served_entitled: usize,
    /// Answers to requests for a protected asset without a valid signature.
    refused_protected: usize,
    /// Answers to requests for a private asset.
    refused_private: usize,
    /// Requests for a private asset with a signature valid by Twilio's algorithm.
    private_with_valid_signature: usize,
    br: usize,
    gzip: usize,
    partial: usize,
    connections_left_open: usize,
    /// Functions run (public, or protected with a valid signature).
    functions_ran: usize,
    /// Slices of partial answers to unentitled requests, per (ETag base, size).
    pieces: HashMap<(String, usize), Vec<u8>>,
}

impl World {
    /// Checks one answer to `sent`, which the oracle entitles to `entitled`.
    fn check_reply(
        &self,
        led: &mut Ledger,
        sent: &Sent,
        entitled: &[usize],
        r: &Reply,
    ) -> Result<(), String> {
        let may_have = |i: usize| self.assets[i].public() || entitled.contains(&i);
        let mut head = String::new();
        for (k, v) in &r.headers {
            head.push_str(&format!("{k}: {v}\n"));
        }
        let coding = r.header("content-encoding").map(str::to_owned);
        let decoded = match (&coding, r.body.is_empty()) {
            (Some(c), false) => decompress(c, &r.body)?,
            _ => r.body.clone(),
        };
        match coding.as_deref() {
            Some("br") => led.br += 1,
            Some("gzip") => led.gzip += 1,
            _ => {}
        }
        // Markers anywhere.
        let mut marks = marks_in(head.as_bytes());
        marks.extend(marks_in(&r.body));
        marks.extend(marks_in(&decoded));
        for m in &marks {
            let Some(&i) = self.by_mark.get(m) else {
                return Err(format!("an unknown marker {m}"));
            };
            if !may_have(i) {
                let a = &self.assets[i];
                return Err(format!(
                    "LEAK: bytes of {} {} of site {} (marker {m})",
                    if a.function {
                        "function"
                    } else {
                        a.vis.as_str()
                    },
                    a.path,
                    SITE_NAMES[a.site]
                ));
            }
        }
        // Validators (a content hash) of what the request may not have.
        for (i, a) in self.assets.iter().enumerate() {
            if !may_have(i)
                && (head.contains(&a.etag_base)
                    || (r.body.len() < 4096
                        && String::from_utf8_lossy(&r.body).contains(&a.etag_base)))
            {
                return Err(format!(
                    "LEAK: the content hash of {} {} of site {}",
                    a.vis.as_str(),
                    a.path,
                    SITE_NAMES[a.site]
                ));
            }
        }
        // A success must be an asset the request may have, with exactly its bytes.
        match r.status {
            204 if r.header("etag").is_some() || !r.body.is_empty() => {
                return Err("a 204 with a validator or a body".into());
            }
            // A CORS preflight: the same for every path, nothing of any asset.
            204 => {}
            // A Function ran (its answer holds no marker): only one the request may run.
            200..=299 if r.header("etag").is_none() && r.body == b"ran" => {
                if !self.may_run(sent) {
                    return Err("a Function ran for a request that may not run it".into());
                }
                led.functions_ran += 1;
            }
            200..=299 | 304 => {
                let etag = r
                    .header("etag")
                    .ok_or("a success without an ETag: whose bytes are these?")?;
                let base = etag.trim_matches('"').split('-').next().unwrap_or_default();
                let &i = self
                    .by_etag
                    .get(base)
                    .ok_or_else(|| format!("a success with an unknown ETag {etag}"))?;
                let a = &self.assets[i];
                if !may_have(i) {
                    return Err(format!(
                        "LEAK: {} {} for {} {} of site {}",
                        r.status,
                        if sent.method == "HEAD" { "(HEAD)" } else { "" },
                        a.vis.as_str(),
                        a.path,
                        SITE_NAMES[a.site]
                    ));
                }
                if !a.public() {
                    led.served_entitled += 1;
                }
                match r.status {
                    200 if sent.method != "HEAD" => {
                        if decoded != a.content {
                            return Err(format!("200 for {} with other bytes", a.path));
                        }
                    }
                    206 => {
                        led.partial += 1;
                        let (s, e, total) = r
                            .header("content-range")
                            .and_then(content_range)
                            .ok_or("206 without a Content-Range")?;
                        if coding.is_some()
                            || total != a.content.len()
                            || e >= total
                            || a.content[s..=e] != r.body[..]
                        {
                            return Err(format!("206 for {} with other bytes", a.path));
                        }
                    }
                    304 if !r.body.is_empty() => return Err("a 304 with a body".into()),
                    200 | 304 => {}
                    other => return Err(format!("an unexpected success status {other}")),
                }
            }
            _ => {}
        }
        // Partial answers to an unentitled request, reassembled per representation.
        if r.status == 206 && entitled.is_empty() {
            if let (Some(etag), Some((s, e, total))) = (
                r.header("etag"),
                r.header("content-range").and_then(content_range),
            ) {
                if total <= 1 << 20 && e < total && r.body.len() == e - s + 1 {
                    let key = (etag.to_owned(), total);
                    let buf = led.pieces.entry(key).or_insert_with(|| vec![0; total]);
                    buf[s..=e].copy_from_slice(&r.body);
                    let window = &buf[s.saturating_sub(64)..(e + 65).min(total)];
                    for m in marks_in(window) {
                        if self
                            .by_mark
                            .get(&m)
                            .is_some_and(|&i| !self.assets[i].public())
                        {
                            return Err(format!("LEAK: reassembled partial answers hold {m}"));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends `requests` on one connection and checks every answer.
    fn run_exchange(&self, led: &mut Ledger, requests: &[Sent]) -> Result<(), String> {
        let mut wire = Vec::new();
        for (i, s) in requests.iter().enumerate() {
            wire.extend_from_slice(&s.bytes(i + 1 == requests.len()));
        }
        let x = exchange(self.edge_addr(), &wire);
        if !x.closed {
            led.connections_left_open += 1;
        }
        let describe = |why: &str| {
            format!(
                "{why}\n--- request ---\n{}\n--- response ---\n{}",
                String::from_utf8_lossy(&wire[..wire.len().min(3000)]),
                String::from_utf8_lossy(&x.raw[..x.raw.len().min(3000)])
            )
        };
        if x.replies.len() > requests.len() {
            return Err(describe("more answers than requests"));
        }
        for (sent, r) in requests.iter().zip(&x.replies) {
            led.requests += 1;
            *led.statuses.entry(r.status).or_default() += 1;
            let entitled = self.entitled(sent);
            for (authority, pq) in sent.urls() {
                let path = pq.split('?').next().unwrap_or_default();
                let target = self
                    .route(&authority)
                    .and_then(|site| self.lookup(site, path));
                if let Some(i) = target {
                    let a = &self.assets[i];
                    if a.vis == Vis::Private {
                        led.refused_private += 1;
                        let owner = &self.accounts[a.site];
                        let sigs: Vec<&str> = sent.header_values("x-twilio-signature").collect();
                        let url = format!("http://{authority}{pq}");
                        if !sigs.is_empty()
                            && self.signature_valid(sent, &url, &[&owner.token], &sigs)
                        {
                            led.private_with_valid_signature += 1;
                        }
                    } else if a.vis == Vis::Protected && !entitled.contains(&i) {
                        led.refused_protected += 1;
                    }
                }
            }
            self.check_reply(led, sent, &entitled, r)
                .map_err(|why| describe(&why))?;
        }
        // The hostile-input fixture's markers and /etc/passwd: never anywhere either.
        assert_no_leak(&x.raw, "a generated request");
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Generated edge requests.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum HostTarget {
    Site(usize),
    /// `serverless.localhost` / `serverless-upload.localhost` (the API).
    Api(bool),
    Unknown,
    Ip,
}

#[derive(Debug, Clone, Copy)]
enum HostForm {
    Exact,
    Upper,
    MixedCase(u8),
    WithPort,
    Port80,
    OtherPort,
    EmptyPort,
    TrailingDot,
    TrailingDotPort,
}

#[derive(Debug, Clone, Copy)]
enum HostMode {
    Header,
    /// `GET http://host/path`, no Host header.
    Absolute,
    /// Absolute form and a Host header naming the other site.
    AbsoluteAndOtherHost,
    Missing,
    /// Two Host headers: this one and the other site's.
    Twice,
}

#[derive(Debug, Clone)]
enum PathMut {
    /// Percent-encode the characters the seed's bits pick.
    Encode {
        seed: u64,
        upper: bool,
    },
    /// One `/` (not the first) as `%2F`.
    EncodeSlash {
        nth: u8,
        upper: bool,
    },
    DoubleSlash {
        at: u8,
    },
    DotSegment {
        at: u8,
    },
    Climb {
        at: u8,
    },
    TrailingSlash,
    Params,
    CaseFlip {
        at: u8,
    },
    DoubleEncode {
        at: u8,
    },
}

#[derive(Debug, Clone, Copy)]
enum BodyHashQ {
    None,
    /// The sha256 of the body meant to be sent.
    Intended,
    Wrong,
    EmptyValue,
    Upper,
}

#[derive(Debug, Clone)]
enum BodyChoice {
    None,
    Form {
        pairs: Vec<(String, String)>,
        plus: bool,
        ctype: u8,
    },
    Json {
        n: u32,
    },
    Text,
}

#[derive(Debug, Clone, Copy)]
enum UrlTwist {
    Exact,
    NoPort,
    DefaultPort,
    Https,
    UpperScheme,
    UpperHost,
    OtherSite,
    OtherPath(usize),
    Decoded,
    DropQuery,
    AddQuery,
    Fragment,
    TrailingSlash,
    /// Signed for the X-Forwarded-Host/Proto the request carries (not trusted).
    Forwarded,
    LowerHost,
    /// The hex digits of the path's escapes in the other case.
    EscapeCase,
    OtherPort,
}

#[derive(Debug, Clone, Copy)]
enum KeyChoice {
    OwnerPrimary,
    OwnerSecondary,
    OtherPrimary,
    OtherSecondary,
    OwnerKeySecret,
    OtherKeySecret,
    OwnerSid,
    OtherSid,
    Empty,
}

#[derive(Debug, Clone, Copy)]
enum PayloadTwist {
    Same,
    ChangeValue,
    AddParam,
    DropParam,
    DuplicatePair,
    Reorder,
    KeyCase,
    FlipBodyByte,
    AppendToBody,
    EmptyBody,
    SignedAsForm,
    /// The URL alone signed (as for a GET), the parameters sent anyway.
    SignedWithoutParams,
}

#[derive(Debug, Clone, Copy)]
enum TextTwist {
    None,
    Upper,
    Lower,
    InnerSpace,
    OuterSpace,
    Truncate,
    DropPadding,
    AppendChar,
    NonCanonical,
    UrlSafe,
    TwoHeadersJunkFirst,
    TwoHeadersValidFirst,
    CommaJoined,
    LowerName,
}

#[derive(Debug, Clone)]
enum SigChoice {
    Absent,
    Garbage(String),
    Random(Vec<u8>),
    Signed {
        url: UrlTwist,
        key: KeyChoice,
        payload: PayloadTwist,
        text: TextTwist,
    },
}

#[derive(Debug, Clone)]
enum RangeChoice {
    Probe,
    Span(u32, u32),
    Suffix(u32),
    Open(u32),
    Multi,
    Unsatisfiable,
    Malformed,
}

#[derive(Debug, Clone)]
struct EdgeCase {
    method: &'static str,
    host: (HostTarget, HostForm, HostMode),
    path: usize,
    muts: Vec<PathMut>,
    raw_utf8: bool,
    /// Escapes of non-ASCII characters in lower-case hex.
    lower_hex: bool,
    query: Vec<(u8, String)>,
    body_hash: BodyHashQ,
    fragment: bool,
    range: Option<RangeChoice>,
    accept_encoding: Option<&'static str>,
    if_none_match: Option<u8>,
    if_range: Option<u8>,
    forwarded: bool,
    body: BodyChoice,
    sig: SigChoice,
    /// A correctly signed GET of this protected asset first, on the same connection.
    prefix: Option<usize>,
    /// A POST body sent in chunks.
    chunked: bool,
}

/// Which requests a property draws.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Everything.
    General,
    /// Private assets, mostly with valid signatures.
    Private,
    /// B's protected assets, signed with what account A knows.
    CrossAccount,
    /// Protected assets, signed by the owner with exactly one thing changed.
    NearMiss,
}

const QUERY_KEYS: &[&str] = &["a", "From", "Body", "x y", "é", "bodySHA256x", "", "q"];
const FORM_KEYS: &[&str] = &["From", "To", "Body", "CallSid", "a", "A", "é", "x y", ""];
const ACCEPT_ENCODINGS: &[&str] = &[
    "br",
    "gzip",
    "br, gzip",
    "gzip;q=1, br;q=0.5",
    "br;q=0, gzip",
    "*",
    "identity",
    "identity;q=0, *;q=0",
    "BR",
    "deflate",
];

/// Every path a request may start from: each asset path of both sites and a few others.
fn path_pool(w: &World) -> Vec<String> {
    let mut pool: Vec<String> = Vec::new();
    for a in &w.assets {
        if !pool.contains(&a.path) {
            pool.push(a.path.clone());
        }
    }
    for extra in [
        "/",
        "/nope.txt",
        "/PROT.TXT",
        "/prot",
        "/prot.txt.br",
        "/assets",
    ] {
        pool.push(extra.to_owned());
    }
    pool
}

fn range_strategy() -> impl Strategy<Value = RangeChoice> {
    prop_oneof![
        3 => Just(RangeChoice::Probe),
        3 => (0u32..300_000, 0u32..300_000)
            .prop_map(|(a, b)| RangeChoice::Span(a.min(b), a.max(b))),
        2 => (0u32..300_000).prop_map(RangeChoice::Suffix),
        2 => (0u32..300_000).prop_map(RangeChoice::Open),
        1 => Just(RangeChoice::Multi),
        1 => Just(RangeChoice::Unsatisfiable),
        1 => Just(RangeChoice::Malformed),
    ]
}

fn path_mut_strategy() -> impl Strategy<Value = PathMut> {
    prop_oneof![
        6 => (any::<u64>(), any::<bool>())
            .prop_map(|(seed, upper)| PathMut::Encode { seed, upper }),
        3 => (any::<u8>(), any::<bool>())
            .prop_map(|(nth, upper)| PathMut::EncodeSlash { nth, upper }),
        1 => any::<u8>().prop_map(|at| PathMut::DoubleSlash { at }),
        1 => any::<u8>().prop_map(|at| PathMut::DotSegment { at }),
        1 => any::<u8>().prop_map(|at| PathMut::Climb { at }),
        1 => Just(PathMut::TrailingSlash),
        1 => Just(PathMut::Params),
        1 => any::<u8>().prop_map(|at| PathMut::CaseFlip { at }),
        1 => any::<u8>().prop_map(|at| PathMut::DoubleEncode { at }),
    ]
}

fn body_strategy() -> impl Strategy<Value = BodyChoice> {
    let pair = (
        proptest::sample::select(FORM_KEYS),
        "[a-zA-Z0-9 +%&=é]{0,8}",
    )
        .prop_map(|(k, v)| (k.to_owned(), v));
    prop_oneof![
        2 => Just(BodyChoice::None),
        5 => (proptest::collection::vec(pair, 0..5), any::<bool>(), 0u8..6)
            .prop_map(|(pairs, plus, ctype)| BodyChoice::Form { pairs, plus, ctype }),
        3 => any::<u32>().prop_map(|n| BodyChoice::Json { n }),
        1 => Just(BodyChoice::Text),
    ]
}

/// A weighted union; entries of weight 0 left out.
fn weighted<T: std::fmt::Debug + 'static>(
    entries: Vec<(u32, BoxedStrategy<T>)>,
) -> BoxedStrategy<T> {
    let entries: Vec<(u32, BoxedStrategy<T>)> =
        entries.into_iter().filter(|(w, _)| *w > 0).collect();
    proptest::strategy::Union::new_weighted(entries).boxed()
}

/// URL twists; `exact_weight` for the URL as it will be sent.
fn url_twists(exact_weight: u32, n_paths: usize) -> BoxedStrategy<UrlTwist> {
    weighted(vec![
        (exact_weight, Just(UrlTwist::Exact).boxed()),
        (3, Just(UrlTwist::NoPort).boxed()),
        (3, Just(UrlTwist::DefaultPort).boxed()),
        (1, Just(UrlTwist::Https).boxed()),
        (1, Just(UrlTwist::UpperScheme).boxed()),
        (1, Just(UrlTwist::UpperHost).boxed()),
        (3, Just(UrlTwist::LowerHost).boxed()),
        (1, Just(UrlTwist::OtherSite).boxed()),
        (2, (0..n_paths).prop_map(UrlTwist::OtherPath).boxed()),
        (1, Just(UrlTwist::Decoded).boxed()),
        (2, Just(UrlTwist::EscapeCase).boxed()),
        (2, Just(UrlTwist::DropQuery).boxed()),
        (1, Just(UrlTwist::AddQuery).boxed()),
        (1, Just(UrlTwist::Fragment).boxed()),
        (1, Just(UrlTwist::TrailingSlash).boxed()),
        (1, Just(UrlTwist::Forwarded).boxed()),
        (1, Just(UrlTwist::OtherPort).boxed()),
    ])
}

/// What is sent against what was signed; `same_weight` for no difference.
fn payload_twists(same_weight: u32) -> BoxedStrategy<PayloadTwist> {
    weighted(vec![
        (same_weight, Just(PayloadTwist::Same).boxed()),
        (2, Just(PayloadTwist::ChangeValue).boxed()),
        (2, Just(PayloadTwist::AddParam).boxed()),
        (2, Just(PayloadTwist::DropParam).boxed()),
        (1, Just(PayloadTwist::DuplicatePair).boxed()),
        (1, Just(PayloadTwist::Reorder).boxed()),
        (1, Just(PayloadTwist::KeyCase).boxed()),
        (2, Just(PayloadTwist::FlipBodyByte).boxed()),
        (1, Just(PayloadTwist::AppendToBody).boxed()),
        (1, Just(PayloadTwist::EmptyBody).boxed()),
        (1, Just(PayloadTwist::SignedAsForm).boxed()),
        (2, Just(PayloadTwist::SignedWithoutParams).boxed()),
    ])
}

/// How the signature is written; `none_weight` for as computed.
fn text_twists(none_weight: u32) -> BoxedStrategy<TextTwist> {
    weighted(vec![
        (none_weight, Just(TextTwist::None).boxed()),
        (1, Just(TextTwist::Upper).boxed()),
        (1, Just(TextTwist::Lower).boxed()),
        (1, Just(TextTwist::InnerSpace).boxed()),
        (2, Just(TextTwist::OuterSpace).boxed()),
        (1, Just(TextTwist::Truncate).boxed()),
        (1, Just(TextTwist::DropPadding).boxed()),
        (1, Just(TextTwist::AppendChar).boxed()),
        (2, Just(TextTwist::NonCanonical).boxed()),
        (1, Just(TextTwist::UrlSafe).boxed()),
        (2, Just(TextTwist::TwoHeadersJunkFirst).boxed()),
        (1, Just(TextTwist::TwoHeadersValidFirst).boxed()),
        (1, Just(TextTwist::CommaJoined).boxed()),
        (2, Just(TextTwist::LowerName).boxed()),
    ])
}

/// Keys that are not the owner's auth tokens.
fn foreign_keys() -> BoxedStrategy<KeyChoice> {
    prop_oneof![
        4 => Just(KeyChoice::OtherPrimary),
        3 => Just(KeyChoice::OtherSecondary),
        2 => Just(KeyChoice::OtherKeySecret),
        2 => Just(KeyChoice::OwnerKeySecret),
        1 => Just(KeyChoice::OwnerSid),
        1 => Just(KeyChoice::OtherSid),
        1 => Just(KeyChoice::Empty),
    ]
    .boxed()
}

fn owner_keys() -> BoxedStrategy<KeyChoice> {
    prop_oneof![
        2 => Just(KeyChoice::OwnerPrimary),
        1 => Just(KeyChoice::OwnerSecondary)
    ]
    .boxed()
}

fn signed(
    url: impl Strategy<Value = UrlTwist> + 'static,
    key: impl Strategy<Value = KeyChoice> + 'static,
    payload: impl Strategy<Value = PayloadTwist> + 'static,
    text: impl Strategy<Value = TextTwist> + 'static,
) -> BoxedStrategy<SigChoice> {
    (url, key, payload, text)
        .prop_map(|(url, key, payload, text)| SigChoice::Signed {
            url,
            key,
            payload,
            text,
        })
        .boxed()
}

fn sig_strategy(profile: Profile, n_paths: usize) -> BoxedStrategy<SigChoice> {
    // Exactly what Twilio would send (for the owner's token, when there is an owner).
    let correct = || {
        signed(
            Just(UrlTwist::Exact),
            owner_keys(),
            Just(PayloadTwist::Same),
            Just(TextTwist::None),
        )
    };
    let any_key = || {
        prop_oneof![
            10 => owner_keys(),
            4 => foreign_keys(),
        ]
    };
    let unsigned = || {
        prop_oneof![
            1 => "[ -~]{0,40}".prop_map(SigChoice::Garbage),
            1 => proptest::collection::vec(any::<u8>(), 20).prop_map(SigChoice::Random),
        ]
    };
    // The usual mix: mostly the URL as sent, the owner's key, the payload and text as signed.
    let mixed = |keys: BoxedStrategy<KeyChoice>| {
        signed(
            url_twists(40, n_paths),
            keys,
            payload_twists(20),
            text_twists(24),
        )
    };
    let exact = || Just(UrlTwist::Exact);
    let same = || Just(PayloadTwist::Same);
    let plain = || Just(TextTwist::None);
    match profile {
        Profile::General => prop_oneof![
            2 => Just(SigChoice::Absent),
            2 => unsigned(),
            12 => mixed(any_key().boxed()),
            3 => correct(),
        ]
        .boxed(),
        Profile::Private => prop_oneof![
            1 => Just(SigChoice::Absent),
            2 => unsigned(),
            8 => mixed(any_key().boxed()),
            10 => correct(),
        ]
        .boxed(),
        Profile::CrossAccount => prop_oneof![
            2 => unsigned(),
            14 => mixed(foreign_keys()),
        ]
        .boxed(),
        // One thing changed (some changes keep it valid: the oracle knows which).
        Profile::NearMiss => prop_oneof![
            5 => signed(url_twists(0, n_paths), owner_keys(), same(), plain()),
            4 => signed(exact(), owner_keys(), payload_twists(0), plain()),
            3 => signed(exact(), owner_keys(), same(), text_twists(0)),
            2 => signed(exact(), foreign_keys(), same(), plain()),
            1 => correct(),
        ]
        .boxed(),
    }
}

fn edge_strategy(w: &World, profile: Profile) -> BoxedStrategy<EdgeCase> {
    let pool = path_pool(w);
    let n_paths = pool.len();
    let paths: Vec<usize> = match profile {
        Profile::General => (0..n_paths).collect(),
        Profile::Private => pool
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.as_str() == "/"
                    || w.assets
                        .iter()
                        .any(|a| &a.path == *p && (a.vis == Vis::Private || a.function))
            })
            .map(|(i, _)| i)
            .collect(),
        Profile::CrossAccount => pool
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                w.assets
                    .iter()
                    .any(|a| &a.path == *p && a.site == B && a.vis == Vis::Protected)
            })
            .map(|(i, _)| i)
            .collect(),
        Profile::NearMiss => pool
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.as_str() == "/"
                    || w.assets
                        .iter()
                        .any(|a| &a.path == *p && a.vis == Vis::Protected && !a.function)
            })
            .map(|(i, _)| i)
            .collect(),
    };
    let host_target = match profile {
        Profile::General => prop_oneof![
            8 => Just(HostTarget::Site(A)),
            8 => Just(HostTarget::Site(B)),
            1 => any::<bool>().prop_map(HostTarget::Api),
            1 => Just(HostTarget::Unknown),
            1 => Just(HostTarget::Ip),
        ]
        .boxed(),
        Profile::Private | Profile::NearMiss => {
            prop_oneof![Just(HostTarget::Site(A)), Just(HostTarget::Site(B))].boxed()
        }
        Profile::CrossAccount => Just(HostTarget::Site(B)).boxed(),
    };
    let near = profile == Profile::NearMiss;
    let host_form = prop_oneof![
        if near { 4 } else { 8 } => Just(HostForm::Exact),
        if near { 5 } else { 1 } => Just(HostForm::Upper),
        if near { 5 } else { 1 } => any::<u8>().prop_map(HostForm::MixedCase),
        4 => Just(HostForm::WithPort),
        1 => Just(HostForm::Port80),
        1 => Just(HostForm::OtherPort),
        1 => Just(HostForm::EmptyPort),
        1 => Just(HostForm::TrailingDot),
        1 => Just(HostForm::TrailingDotPort),
    ];
    let host_mode = if near {
        prop_oneof![6 => Just(HostMode::Header), 1 => Just(HostMode::Absolute)].boxed()
    } else {
        prop_oneof![
            28 => Just(HostMode::Header),
            4 => Just(HostMode::Absolute),
            1 => Just(HostMode::AbsoluteAndOtherHost),
            1 => Just(HostMode::Missing),
            1 => Just(HostMode::Twice),
        ]
        .boxed()
    };
    let method = if near {
        prop_oneof![4 => Just("GET"), 1 => Just("HEAD"), 5 => Just("POST")].boxed()
    } else {
        prop_oneof![
            24 => Just("GET"),
            6 => Just("HEAD"),
            12 => Just("POST"),
            1 => Just("OPTIONS"),
            1 => Just("PUT"),
            1 => Just("DELETE"),
            1 => Just("PATCH"),
            1 => Just("TRACE"),
            1 => Just("get"),
            1 => Just("BREW"),
        ]
        .boxed()
    };
    // Near misses keep the path naming the asset (escapes only).
    let muts = if near {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => (any::<u64>(), any::<bool>())
                .prop_map(|(seed, upper)| vec![PathMut::Encode { seed, upper }]),
            1 => (any::<u8>(), any::<bool>())
                .prop_map(|(nth, upper)| vec![PathMut::EncodeSlash { nth, upper }]),
        ]
        .boxed()
    } else {
        prop_oneof![
            3 => Just(Vec::new()),
            2 => proptest::collection::vec(path_mut_strategy(), 1..3),
        ]
        .boxed()
    };
    let body = if near {
        prop_oneof![
            1 => Just(BodyChoice::None),
            4 => (proptest::collection::vec(
                    (proptest::sample::select(FORM_KEYS), "[a-zA-Z0-9 +%&=é]{0,8}")
                        .prop_map(|(k, v)| (k.to_owned(), v)),
                    1..5,
                ), any::<bool>(), 0u8..4)
                .prop_map(|(pairs, plus, ctype)| BodyChoice::Form { pairs, plus, ctype }),
            3 => any::<u32>().prop_map(|n| BodyChoice::Json { n }),
        ]
        .boxed()
    } else {
        body_strategy().boxed()
    };
    let prefixes: Vec<usize> = w
        .assets
        .iter()
        .enumerate()
        .filter(|(_, a)| a.vis == Vis::Protected && !a.function)
        .map(|(i, _)| i)
        .collect();
    let shape = (
        method,
        (host_target, host_form, host_mode),
        proptest::sample::select(paths),
        muts,
        (proptest::bool::weighted(0.03), any::<bool>()),
        proptest::collection::vec((0..QUERY_KEYS.len() as u8, "[a-zA-Z0-9 é&=]{0,6}"), 0..3),
        prop_oneof![
            10 => Just(BodyHashQ::None),
            4 => Just(BodyHashQ::Intended),
            1 => Just(BodyHashQ::Wrong),
            1 => Just(BodyHashQ::EmptyValue),
            1 => Just(BodyHashQ::Upper),
        ],
        proptest::bool::weighted(0.05),
    );
    let headers = (
        proptest::option::weighted(0.4, range_strategy()),
        proptest::option::weighted(0.6, proptest::sample::select(ACCEPT_ENCODINGS)),
        proptest::option::weighted(0.15, 0u8..5),
        proptest::option::weighted(0.1, 0u8..4),
        proptest::bool::weighted(0.05),
        proptest::bool::weighted(0.2),
    );
    let rest = (
        body,
        sig_strategy(profile, n_paths),
        if profile == Profile::General {
            proptest::option::weighted(0.1, proptest::sample::select(prefixes)).boxed()
        } else {
            Just(None).boxed()
        },
    );
    (shape, headers, rest)
        .prop_map(
            move |(
                (method, host, path, muts, (raw_utf8, lower_hex), query, body_hash, fragment),
                (range, accept_encoding, if_none_match, if_range, forwarded, chunked),
                (body, sig, prefix),
            )| EdgeCase {
                method,
                host,
                path,
                muts,
                raw_utf8: raw_utf8 && !near,
                lower_hex,
                query,
                // A near miss starts from a request Twilio would sign: JSON with its hash.
                body_hash: match (near, &body) {
                    (false, _) => body_hash,
                    (true, BodyChoice::Json { .. }) => BodyHashQ::Intended,
                    (true, _) => BodyHashQ::None,
                },
                fragment: fragment && !near,
                range,
                accept_encoding,
                if_none_match,
                if_range,
                forwarded,
                body,
                sig,
                prefix,
                chunked,
            },
        )
        .boxed()
}

/// Percent-encodes `path`: every non-ASCII character, and the ASCII characters whose
/// position's bit is set in `seed` (never the slashes); hex digits in upper case or not.
fn encode_path(path: &str, seed: u64, upper: bool) -> String {
    let mut out = String::new();
    for (i, ch) in path.chars().enumerate() {
        let pick = (seed >> (i % 64)) & 1 == 1;
        if (!ch.is_ascii() || (pick && ch != '/')) && ch != '%' {
            let mut buf = [0u8; 4];
            for b in ch.encode_utf8(&mut buf).bytes() {
                if upper {
                    out.push_str(&format!("%{b:02X}"));
                } else {
                    out.push_str(&format!("%{b:02x}"));
                }
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// The positions of `/` in `s` after the first character.
fn slash_positions(s: &str) -> Vec<usize> {
    s.char_indices()
        .filter(|(i, c)| *c == '/' && *i > 0)
        .map(|(i, _)| i)
        .collect()
}

fn apply_path_mut(path: &str, m: &PathMut) -> String {
    let slashes = || {
        let mut v = vec![0];
        v.extend(slash_positions(path));
        v
    };
    match m {
        PathMut::Encode { seed, upper } => {
            // Re-encode only what is not an escape already.
            let mut out = String::new();
            let mut rest = path;
            let mut i = 0u32;
            while let Some(ch) = rest.chars().next() {
                if ch == '%' && rest.len() >= 3 && rest.is_char_boundary(3) {
                    out.push_str(&rest[..3]);
                    rest = &rest[3..];
                    continue;
                }
                let pick = (seed >> (i % 64)) & 1 == 1 && ch != '/' && ch.is_ascii();
                if pick {
                    if *upper {
                        out.push_str(&format!("%{:02X}", ch as u32));
                    } else {
                        out.push_str(&format!("%{:02x}", ch as u32));
                    }
                } else {
                    out.push(ch);
                }
                rest = &rest[ch.len_utf8()..];
                i += 1;
            }
            out
        }
        PathMut::EncodeSlash { nth, upper } => {
            let s = slash_positions(path);
            if s.is_empty() {
                return path.to_owned();
            }
            let at = s[*nth as usize % s.len()];
            let esc = if *upper { "%2F" } else { "%2f" };
            format!("{}{esc}{}", &path[..at], &path[at + 1..])
        }
        PathMut::DoubleSlash { at } => {
            let s = slashes();
            let at = s[*at as usize % s.len()];
            format!("{}/{}", &path[..at], &path[at..])
        }
        PathMut::DotSegment { at } => {
            let s = slashes();
            let at = s[*at as usize % s.len()];
            format!("{}/.{}", &path[..at], &path[at..])
        }
        PathMut::Climb { at } => {
            let s = slashes();
            let at = s[*at as usize % s.len()];
            format!("{}/x/..{}", &path[..at], &path[at..])
        }
        PathMut::TrailingSlash => format!("{path}/"),
        PathMut::Params => format!("{path};jsessionid=1"),
        PathMut::CaseFlip { at } => {
            let letters: Vec<usize> = path
                .char_indices()
                .filter(|(_, c)| c.is_ascii_alphabetic())
                .map(|(i, _)| i)
                .collect();
            if letters.is_empty() {
                return path.to_owned();
            }
            let i = letters[*at as usize % letters.len()];
            let c = path.as_bytes()[i] as char;
            let flipped = if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            format!("{}{flipped}{}", &path[..i], &path[i + 1..])
        }
        PathMut::DoubleEncode { at } => {
            let letters: Vec<usize> = path
                .char_indices()
                .filter(|(_, c)| c.is_ascii_alphanumeric() || *c == '.')
                .map(|(i, _)| i)
                .collect();
            if letters.is_empty() {
                return path.to_owned();
            }
            let i = letters[*at as usize % letters.len()];
            let c = path.as_bytes()[i];
            format!("{}%25{c:02X}{}", &path[..i], &path[i + 1..])
        }
    }
}

impl World {
    fn host_name(&self, t: HostTarget) -> String {
        match t {
            HostTarget::Site(s) => self.sites[s].domain.clone(),
            HostTarget::Api(false) => "serverless.localhost".into(),
            HostTarget::Api(true) => "serverless-upload.localhost".into(),
            HostTarget::Unknown => "nobody-0000.localhost".into(),
            HostTarget::Ip => "127.0.0.1".into(),
        }
    }

    fn authority(&self, t: HostTarget, form: HostForm) -> String {
        let name = self.host_name(t);
        let port = self.edge_addr().port();
        match form {
            HostForm::Exact => name,
            HostForm::Upper => name.to_ascii_uppercase(),
            HostForm::MixedCase(seed) => name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if (seed >> (i % 8)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect(),
            HostForm::WithPort => format!("{name}:{port}"),
            HostForm::Port80 => format!("{name}:80"),
            HostForm::OtherPort => format!("{name}:{}", port.wrapping_add(1)),
            HostForm::EmptyPort => format!("{name}:"),
            HostForm::TrailingDot => format!("{name}."),
            HostForm::TrailingDotPort => format!("{name}.:{port}"),
        }
    }

    /// Turns a generated case into the bytes to send.
    fn build(&self, c: &EdgeCase, pool: &[String]) -> Vec<Sent> {
        let (target_kind, form, mode) = c.host;
        let site = match target_kind {
            HostTarget::Site(s) => s,
            _ => A,
        };
        let other_site = 1 - site;
        let authority = self.authority(target_kind, form);
        let method = c.method.to_owned();

        // The path.
        let base = &pool[c.path];
        let mut path = if c.raw_utf8 {
            base.clone()
        } else {
            encode_path(base, 0, !c.lower_hex)
        };
        for m in &c.muts {
            path = apply_path_mut(&path, m);
        }

        // The body meant to be sent, and its parameters.
        let is_post = method == "POST";
        let (mut ctype, mut params, mut body): (Option<&str>, Vec<(String, String)>, Vec<u8>) =
            match (&c.body, is_post) {
                (_, false) | (BodyChoice::None, true) => (None, Vec::new(), Vec::new()),
                (BodyChoice::Form { pairs, plus, ctype }, true) => {
                    let ct = match ctype {
                        0 | 1 => Some("application/x-www-form-urlencoded"),
                        2 => Some("application/x-www-form-urlencoded; charset=UTF-8"),
                        3 => Some("Application/X-WWW-Form-URLEncoded"),
                        4 => Some("text/plain"),
                        _ => None,
                    };
                    (ct, pairs.clone(), form_encode(pairs, *plus).into_bytes())
                }
                (BodyChoice::Json { n }, true) => (
                    Some("application/json"),
                    Vec::new(),
                    format!("{{\"CallSid\":\"CA{n:032x}\",\"n\":{n}}}").into_bytes(),
                ),
                (BodyChoice::Text, true) => {
                    (Some("text/plain"), Vec::new(), b"plain text".to_vec())
                }
            };

        // The query.
        let mut query: Vec<String> = c
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", enc(QUERY_KEYS[*k as usize]), enc(v)))
            .collect();
        match c.body_hash {
            BodyHashQ::None => {}
            BodyHashQ::Intended => query.push(format!("bodySHA256={}", sha256_hex(&body))),
            BodyHashQ::Wrong => query.push(format!("bodySHA256={}", sha256_hex(b"other"))),
            BodyHashQ::EmptyValue => query.push("bodySHA256=".into()),
            BodyHashQ::Upper => query.push(format!(
                "bodySHA256={}",
                sha256_hex(&body).to_ascii_uppercase()
            )),
        }
        let mut pq = path.clone();
        if !query.is_empty() {
            pq.push('?');
            pq.push_str(&query.join("&"));
        }
        let target_pq = if c.fragment {
            format!("{pq}#frag")
        } else {
            pq.clone()
        };

        // Host and request target.
        let mut headers: Vec<(String, String)> = Vec::new();
        let other_domain = self.sites[other_site].domain.clone();
        let target = match mode {
            HostMode::Header => {
                headers.push(("Host".into(), authority.clone()));
                target_pq
            }
            HostMode::Absolute => format!("http://{authority}{target_pq}"),
            HostMode::AbsoluteAndOtherHost => {
                headers.push(("Host".into(), other_domain.clone()));
                format!("http://{authority}{target_pq}")
            }
            HostMode::Missing => target_pq,
            HostMode::Twice => {
                headers.push(("Host".into(), authority.clone()));
                headers.push(("Host".into(), other_domain.clone()));
                target_pq
            }
        };

        // Headers of HTTP semantics.
        let asset = self.lookup(site, &path);
        let etag_of = |which: u8| -> String {
            let base = asset.map_or("0123456789abcdef0123456789abcdef", |i| {
                self.assets[i].etag_base.as_str()
            });
            match which {
                0 => format!("\"{base}\""),
                1 => format!("\"{base}-br\""),
                2 => format!("\"{base}-gzip\""),
                3 => "*".into(),
                _ => "\"deadbeef\"".into(),
            }
        };
        if let Some(r) = &c.range {
            let v = match r {
                RangeChoice::Probe => "bytes=0-1".to_owned(),
                RangeChoice::Span(a, b) => format!("bytes={a}-{b}"),
                RangeChoice::Suffix(n) => format!("bytes=-{n}"),
                RangeChoice::Open(n) => format!("bytes={n}-"),
                RangeChoice::Multi => "bytes=0-9,100-199".into(),
                RangeChoice::Unsatisfiable => "bytes=999999999-".into(),
                RangeChoice::Malformed => "bytes=abc".into(),
            };
            headers.push(("Range".into(), v));
        }
        if let Some(ae) = c.accept_encoding {
            headers.push(("Accept-Encoding".into(), ae.into()));
        }
        if let Some(w) = c.if_none_match {
            headers.push(("If-None-Match".into(), etag_of(w)));
        }
        if let Some(w) = c.if_range {
            let v = if w == 3 {
                "Sun, 06 Nov 1994 08:49:37 GMT".to_owned()
            } else {
                etag_of(w)
            };
            headers.push(("If-Range".into(), v));
        }
        let forwarded_host = format!("{other_domain}:443");
        if c.forwarded
            || matches!(
                c.sig,
                SigChoice::Signed {
                    url: UrlTwist::Forwarded,
                    ..
                }
            )
        {
            headers.push(("X-Forwarded-Host".into(), forwarded_host.clone()));
            headers.push(("X-Forwarded-Proto".into(), "https".into()));
        }

        // The signature.
        let url = format!("http://{authority}{pq}");
        let owner = &self.accounts[site];
        let other = &self.accounts[other_site];
        match &c.sig {
            SigChoice::Absent => {}
            SigChoice::Garbage(s) => headers.push(("X-Twilio-Signature".into(), s.clone())),
            SigChoice::Random(bytes) => headers.push((
                "X-Twilio-Signature".into(),
                base64::engine::general_purpose::STANDARD.encode(bytes),
            )),
            SigChoice::Signed {
                url: twist,
                key,
                payload,
                text,
            } => {
                let port = self.edge_addr().port();
                let host_only = authority
                    .rsplit_once(':')
                    .map_or(authority.as_str(), |(h, _)| h);
                let signed_url = match twist {
                    UrlTwist::Exact => url.clone(),
                    UrlTwist::NoPort => format!("http://{host_only}{pq}"),
                    UrlTwist::DefaultPort => format!("http://{host_only}:80{pq}"),
                    UrlTwist::Https => format!("https://{authority}{pq}"),
                    UrlTwist::UpperScheme => format!("HTTP://{authority}{pq}"),
                    UrlTwist::UpperHost => format!("http://{}{pq}", authority.to_ascii_uppercase()),
                    UrlTwist::OtherSite => format!("http://{other_domain}:{port}{pq}"),
                    UrlTwist::OtherPath(i) => {
                        format!("http://{authority}{}", encode_path(&pool[*i], 0, true))
                    }
                    UrlTwist::Decoded => format!(
                        "http://{authority}{}",
                        percent_encoding::percent_decode_str(&pq).decode_utf8_lossy()
                    ),
                    UrlTwist::DropQuery => format!("http://{authority}{path}"),
                    UrlTwist::AddQuery => {
                        let sep = if pq.contains('?') { '&' } else { '?' };
                        format!("http://{authority}{pq}{sep}x=1")
                    }
                    UrlTwist::Fragment => format!("{url}#frag"),
                    UrlTwist::TrailingSlash => {
                        if pq.contains('?') {
                            url.replacen('?', "/?", 1)
                        } else {
                            format!("{url}/")
                        }
                    }
                    UrlTwist::Forwarded => format!("https://{forwarded_host}{pq}"),
                    UrlTwist::LowerHost => format!("http://{}{pq}", authority.to_ascii_lowercase()),
                    UrlTwist::EscapeCase => {
                        let mut out = String::new();
                        let mut hex_left = 0;
                        for ch in pq.chars() {
                            if ch == '%' {
                                hex_left = 2;
                                out.push(ch);
                            } else if hex_left > 0 {
                                hex_left -= 1;
                                out.push(if ch.is_ascii_uppercase() {
                                    ch.to_ascii_lowercase()
                                } else {
                                    ch.to_ascii_uppercase()
                                });
                            } else {
                                out.push(ch);
                            }
                        }
                        format!("http://{authority}{out}")
                    }
                    UrlTwist::OtherPort => {
                        format!("http://{host_only}:{}{pq}", port.wrapping_add(7))
                    }
                };
                let token = match key {
                    KeyChoice::OwnerPrimary => owner.token.clone(),
                    KeyChoice::OwnerSecondary => owner.secondary.clone(),
                    KeyChoice::OtherPrimary => other.token.clone(),
                    KeyChoice::OtherSecondary => other.secondary.clone(),
                    KeyChoice::OwnerKeySecret => owner.key_secret.clone(),
                    KeyChoice::OtherKeySecret => other.key_secret.clone(),
                    KeyChoice::OwnerSid => owner.sid.clone(),
                    KeyChoice::OtherSid => other.sid.clone(),
                    KeyChoice::Empty => String::new(),
                };
                let is_form = ctype.is_some_and(|c| {
                    c.to_ascii_lowercase()
                        .starts_with("application/x-www-form-urlencoded")
                });
                let mut signed_params = if is_form { params.clone() } else { Vec::new() };
                // What is sent differs from what was signed.
                match payload {
                    PayloadTwist::Same => {}
                    PayloadTwist::ChangeValue => match params.first_mut() {
                        Some(p) => p.1.push('!'),
                        None => params.push(("From".into(), "+15550100".into())),
                    },
                    PayloadTwist::AddParam => params.push(("Injected".into(), "1".into())),
                    PayloadTwist::DropParam => {
                        params.pop();
                    }
                    PayloadTwist::DuplicatePair => {
                        if let Some(p) = params.first().cloned() {
                            params.push(p);
                        }
                    }
                    PayloadTwist::Reorder => params.reverse(),
                    PayloadTwist::KeyCase => {
                        if let Some(p) = params.first_mut() {
                            p.0 = p.0.to_ascii_uppercase();
                        }
                    }
                    PayloadTwist::FlipBodyByte => {
                        if let Some(b) = body.first_mut() {
                            *b ^= 0x01;
                        }
                    }
                    PayloadTwist::AppendToBody => body.push(b' '),
                    PayloadTwist::EmptyBody => {
                        body.clear();
                        params.clear();
                    }
                    PayloadTwist::SignedAsForm => {
                        signed_params = vec![("CallSid".into(), "CA1".into())];
                    }
                    PayloadTwist::SignedWithoutParams => signed_params.clear(),
                }
                if matches!(
                    payload,
                    PayloadTwist::ChangeValue
                        | PayloadTwist::AddParam
                        | PayloadTwist::DropParam
                        | PayloadTwist::DuplicatePair
                        | PayloadTwist::Reorder
                        | PayloadTwist::KeyCase
                ) && is_form
                {
                    body = form_encode(&params, false).into_bytes();
                }
                let sig = sign(&token, &signed_string(&signed_url, &signed_params));
                let name = if matches!(text, TextTwist::LowerName) {
                    "x-twilio-signature"
                } else {
                    "X-Twilio-Signature"
                };
                let junk = sign("junk", "junk");
                let mut values = vec![match text {
                    TextTwist::Upper => sig.to_ascii_uppercase(),
                    TextTwist::Lower => sig.to_ascii_lowercase(),
                    TextTwist::InnerSpace => format!("{} {}", &sig[..10], &sig[10..]),
                    TextTwist::OuterSpace => format!("  {sig}\t"),
                    TextTwist::Truncate => sig[..sig.len() - 2].to_owned(),
                    TextTwist::DropPadding => sig.trim_end_matches('=').to_owned(),
                    TextTwist::AppendChar => format!("{sig}A"),
                    TextTwist::NonCanonical => {
                        // The last character before the padding carries two unused bits:
                        // setting one gives another text for the same bytes.
                        let mut chars: Vec<char> = sig.chars().collect();
                        let at = sig.trim_end_matches('=').len() - 1;
                        const ALPHABET: &str =
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                        let idx = ALPHABET.find(chars[at]).expect("base64 character");
                        chars[at] = ALPHABET.as_bytes()[idx ^ 1] as char;
                        chars.into_iter().collect()
                    }
                    TextTwist::UrlSafe => sig.replace('+', "-").replace('/', "_"),
                    TextTwist::CommaJoined => format!("{junk}, {sig}"),
                    _ => sig.clone(),
                }];
                match text {
                    TextTwist::TwoHeadersJunkFirst => values.insert(0, junk),
                    TextTwist::TwoHeadersValidFirst => values.push(junk),
                    _ => {}
                }
                for v in values {
                    headers.push((name.into(), v));
                }
            }
        }
        if is_post {
            if let Some(ct) = ctype.take() {
                headers.push(("Content-Type".into(), ct.into()));
            }
        }
        let chunked = c.chunked && method == "POST";
        let main = Sent {
            method,
            target,
            headers,
            body,
            chunked,
        };
        let mut out = Vec::new();
        if let (Some(i), false) = (c.prefix, main.method == "HEAD") {
            let a = &self.assets[i];
            let host = self.sites[a.site].domain.clone();
            let target = encode_path(&a.path, 0, true);
            let sig = sign(
                &self.accounts[a.site].token,
                &signed_string(&format!("http://{host}{target}"), &[]),
            );
            out.push(Sent {
                method: "GET".into(),
                target,
                headers: vec![("Host".into(), host), ("X-Twilio-Signature".into(), sig)],
                body: Vec::new(),
                chunked: false,
            });
        }
        out.push(main);
        out
    }
}

// ------------------------------------------------------------------------------------------
// Running properties.
// ------------------------------------------------------------------------------------------

/// Runs `test` on `cases` values of `strategy` with a fixed seed and no persistence.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    seed: u8,
    strategy: &S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(e) = runner.run(strategy, test) {
        panic!("property {name} failed: {e}");
    }
}

fn edge_property(w: &World, name: &str, profile: Profile, cases: u32, seed: u8) -> Ledger {
    let pool = path_pool(w);
    let led = RefCell::new(Ledger::default());
    check(name, cases, seed, &edge_strategy(w, profile), |case| {
        let requests = w.build(&case, &pool);
        w.run_exchange(&mut led.borrow_mut(), &requests)
            .map_err(TestCaseError::fail)
    });
    let mut led = led.into_inner();
    led.pieces.clear();
    eprintln!("{name}: {led:?}");
    led
}

/// A and B: generated requests of every kind, then ones aimed at private assets.
#[test]
fn edge_never_serves_what_a_request_may_not_have() {
    let w = World::start();
    let a = edge_property(&w, "A (signatures)", Profile::General, 500, 1);
    let near = edge_property(&w, "A (near misses)", Profile::NearMiss, 400, 5);
    let b = edge_property(&w, "B (private)", Profile::Private, 400, 2);
    // Still serving after all that.
    w.smoke(&[A, B]);
    // Not vacuous: the requests reached what the properties are about.
    assert!(a.served_entitled >= 30, "too few valid signatures: {a:?}");
    assert!(a.refused_protected >= 50, "too few refused: {a:?}");
    assert!(
        a.partial + near.partial >= 5 && a.br + near.br >= 3 && a.gzip + near.gzip >= 3,
        "HTTP features: {a:?} {near:?}"
    );
    assert!(
        near.refused_protected >= 150,
        "too few near misses: {near:?}"
    );
    assert!(
        near.served_entitled >= 50,
        "too few valid near misses: {near:?}"
    );
    assert!(b.refused_private >= 150, "too few private requests: {b:?}");
    assert!(
        b.private_with_valid_signature >= 30,
        "too few validly signed private requests: {b:?}"
    );
}

// ------------------------------------------------------------------------------------------
// C: accounts.
// ------------------------------------------------------------------------------------------

/// What account B owns, as B's API shows it.
struct Inventory {
    /// (path, JSON) of every fetch and list, for before/after comparison.
    snapshot: BTreeMap<String, Value>,
    services: Vec<(String, String)>,
    envs: Vec<(String, String)>,
    assets: Vec<(String, String)>,
    asset_versions: Vec<(String, String, String)>,
    functions: Vec<(String, String)>,
    function_versions: Vec<(String, String, String)>,
    builds: Vec<(String, String)>,
    deployments: Vec<(String, String, String)>,
    variables: Vec<(String, String, String)>,
    logs: Vec<(String, String, String)>,
    /// Version SID → path.
    paths: HashMap<String, String>,
}

fn sids_of(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .iter()
        .map(|r| r["sid"].as_str().expect("sid").to_owned())
        .collect()
}

/// Everything `account` owns, through `api` (its credentials); every listed record must be
/// `account`'s.
fn inventory(api: &Api, account: &str, with_logs: bool) -> Inventory {
    let mut inv = Inventory {
        snapshot: BTreeMap::new(),
        services: Vec::new(),
        envs: Vec::new(),
        assets: Vec::new(),
        asset_versions: Vec::new(),
        functions: Vec::new(),
        function_versions: Vec::new(),
        builds: Vec::new(),
        deployments: Vec::new(),
        variables: Vec::new(),
        logs: Vec::new(),
        paths: HashMap::new(),
    };
    let mut get = |path: String| -> Value {
        let v = api.get(&path).expect(200).json;
        let mut owners = HashSet::new();
        owners_in(&v, &mut owners);
        assert!(
            owners.iter().all(|o| o == account),
            "LEAK: {path} for {account} shows records of {owners:?}"
        );
        inv.snapshot.insert(path, v.clone());
        v
    };
    let services = get("/v1/Services?PageSize=1000".into());
    for svc in services["services"].as_array().expect("services") {
        let zs = svc["sid"].as_str().expect("sid").to_owned();
        inv.services.push((
            zs.clone(),
            svc["unique_name"].as_str().expect("name").to_owned(),
        ));
        get(format!("/v1/Services/{zs}"));
        let envs = get(format!("/v1/Services/{zs}/Environments?PageSize=1000"));
        for ze in sids_of(&envs, "environments") {
            inv.envs.push((zs.clone(), ze.clone()));
            get(format!("/v1/Services/{zs}/Environments/{ze}"));
            let base = format!("/v1/Services/{zs}/Environments/{ze}");
            for zv in sids_of(&get(format!("{base}/Variables?PageSize=1000")), "variables") {
                get(format!("{base}/Variables/{zv}"));
                inv.variables.push((zs.clone(), ze.clone(), zv));
            }
            for zd in sids_of(
                &get(format!("{base}/Deployments?PageSize=1000")),
                "deployments",
            ) {
                get(format!("{base}/Deployments/{zd}"));
                inv.deployments.push((zs.clone(), ze.clone(), zd));
            }
            if with_logs {
                // Logs grow with every edge request: listed for SIDs, not compared.
                let logs = api.get(&format!("{base}/Logs?PageSize=5")).expect(200).json;
                for no in sids_of(&logs, "logs") {
                    inv.logs.push((zs.clone(), ze.clone(), no));
                }
            }
        }
        for (kind, key) in [("Assets", "assets"), ("Functions", "functions")] {
            let list = get(format!("/v1/Services/{zs}/{kind}?PageSize=1000"));
            for zh in sids_of(&list, key) {
                get(format!("/v1/Services/{zs}/{kind}/{zh}"));
                let vs = get(format!(
                    "/v1/Services/{zs}/{kind}/{zh}/Versions?PageSize=1000"
                ));
                for zn in sids_of(&vs, &format!("{}_versions", &key[..key.len() - 1])) {
                    let v = get(format!("/v1/Services/{zs}/{kind}/{zh}/Versions/{zn}"));
                    inv.paths
                        .insert(zn.clone(), v["path"].as_str().expect("path").to_owned());
                    if kind == "Assets" {
                        inv.asset_versions.push((zs.clone(), zh.clone(), zn));
                    } else {
                        inv.function_versions.push((zs.clone(), zh.clone(), zn));
                    }
                }
                if kind == "Assets" {
                    inv.assets.push((zs.clone(), zh));
                } else {
                    inv.functions.push((zs.clone(), zh));
                }
            }
        }
        let builds = get(format!("/v1/Services/{zs}/Builds?PageSize=1000"));
        for zb in sids_of(&builds, "builds") {
            get(format!("/v1/Services/{zs}/Builds/{zb}"));
            get(format!("/v1/Services/{zs}/Builds/{zb}/Status"));
            inv.builds.push((zs.clone(), zb));
        }
    }
    inv
}

/// Every `account_sid` in `v` (recursively).
fn owners_in(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| owners_in(x, out)),
        Value::Object(o) => {
            if let Some(Value::String(s)) = o.get("account_sid") {
                out.insert(s.clone());
            }
            o.values().for_each(|x| owners_in(x, out));
        }
        _ => {}
    }
}

/// Every string in `v` (recursively).
fn strings_in(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::String(s) => {
            out.insert(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|x| strings_in(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_in(x, out)),
        _ => {}
    }
}

fn is_sid(s: &str) -> bool {
    s.len() == 34
        && s[..2].bytes().all(|b| b.is_ascii_uppercase())
        && s[2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[derive(Debug, Clone, Copy)]
enum Creds {
    APrimary,
    ASecondary,
    AKey,
    /// B's Account SID with A's token.
    BSidATok,
    /// B's API key SID with A's key secret.
    BKeyASecret,
    /// A's key SID with A's auth token.
    AKeyATok,
    /// A's Account SID with A's key secret.
    ASidASecret,
    None,
}

#[derive(Debug, Clone, Copy)]
enum SlotForm {
    Sid,
    /// The Service's unique name (other slots: the SID).
    Name,
    NameUpper,
    /// Every character percent-encoded.
    Encoded,
    /// The SID with its prefix lower-cased.
    LowerPrefix,
}

#[derive(Debug, Clone)]
struct ApiCase {
    creds: Creds,
    /// None: the API listener; Some(upload host, upper-case): the edge, by API host name.
    via: Option<(bool, bool)>,
    method: &'static str,
    route: usize,
    /// Whether the path's resources are B's (each slot may flip to the other account).
    base_b: bool,
    /// Per slot: flipped to the other account, index, form.
    slots: Vec<(bool, u8, SlotForm)>,
    query: u8,
    form: Vec<(u8, bool, u8)>,
    multipart: bool,
    /// Instead of the above: a write A may make, with one reference swapped for B's.
    cross: Option<Cross>,
}

/// A write that succeeds with A's own references (checked once before the property), with
/// one of B's instead.
#[derive(Debug, Clone)]
enum Cross {
    /// A Build of A's Service: some of A's versions and one of B's, at `at`.
    Build {
        svc: SlotForm,
        a_versions: u8,
        b_idx: u8,
        at: u8,
        function: bool,
    },
    /// A Deployment of one of B's Builds to A's Environment.
    Deploy { svc: SlotForm, b_idx: u8 },
    /// An Environment of A's Service whose domain would be B's.
    Domain { svc: SlotForm, name: u16 },
}

const ROUTES: &[&str] = &[
    "/v1/Services",
    "/v1/Services/{svc}",
    "/v1/Services/{svc}/Environments",
    "/v1/Services/{svc}/Environments/{env}",
    "/v1/Services/{svc}/Environments/{env}/Variables",
    "/v1/Services/{svc}/Environments/{env}/Variables/{var}",
    "/v1/Services/{svc}/Environments/{env}/Deployments",
    "/v1/Services/{svc}/Environments/{env}/Deployments/{dep}",
    "/v1/Services/{svc}/Environments/{env}/Logs",
    "/v1/Services/{svc}/Environments/{env}/Logs/{log}",
    "/v1/Services/{svc}/Assets",
    "/v1/Services/{svc}/Assets/{asset}",
    "/v1/Services/{svc}/Assets/{asset}/Versions",
    "/v1/Services/{svc}/Assets/{asset}/Versions/{aver}",
    "/v1/Services/{svc}/Functions",
    "/v1/Services/{svc}/Functions/{fn}",
    "/v1/Services/{svc}/Functions/{fn}/Versions",
    "/v1/Services/{svc}/Functions/{fn}/Versions/{fver}",
    "/v1/Services/{svc}/Functions/{fn}/Versions/{fver}/Content",
    "/v1/Services/{svc}/Builds",
    "/v1/Services/{svc}/Builds/{build}",
    "/v1/Services/{svc}/Builds/{build}/Status",
];

const SLOTS: &[&str] = &[
    "{svc}", "{env}", "{var}", "{dep}", "{log}", "{asset}", "{aver}", "{fn}", "{fver}", "{build}",
];

/// Form fields A may send: (name, what the value is).
const FORM_FIELDS: &[&str] = &[
    "FriendlyName",
    "UniqueName",
    "BuildSid",
    "AssetVersions",
    "FunctionVersions",
    "Key",
    "Value",
    "DomainSuffix",
    "Dependencies",
    "IncludeCredentials",
];

fn api_strategy() -> impl Strategy<Value = ApiCase> {
    let creds = prop_oneof![
        8 => Just(Creds::APrimary),
        2 => Just(Creds::ASecondary),
        3 => Just(Creds::AKey),
        1 => Just(Creds::BSidATok),
        1 => Just(Creds::BKeyASecret),
        1 => Just(Creds::AKeyATok),
        1 => Just(Creds::ASidASecret),
        1 => Just(Creds::None),
    ];
    let slot_form = prop_oneof![
        6 => Just(SlotForm::Sid),
        3 => Just(SlotForm::Name),
        1 => Just(SlotForm::NameUpper),
        1 => Just(SlotForm::Encoded),
        1 => Just(SlotForm::LowerPrefix),
    ];
    let method = prop_oneof![
        8 => Just("GET"),
        6 => Just("POST"),
        3 => Just("DELETE"),
        1 => Just("HEAD"),
        1 => Just("PUT"),
        1 => Just("PATCH"),
    ];
    (
        creds,
        proptest::option::weighted(0.2, (any::<bool>(), any::<bool>())),
        method,
        0..ROUTES.len(),
        any::<bool>(),
        proptest::collection::vec(
            (proptest::bool::weighted(0.2), any::<u8>(), slot_form),
            SLOTS.len(),
        ),
        0u8..10,
        proptest::collection::vec(
            (
                0..FORM_FIELDS.len() as u8,
                proptest::bool::weighted(0.6),
                any::<u8>(),
            ),
            0..4,
        ),
        any::<bool>(),
    )
        .prop_map(
            |(creds, via, method, route, base_b, slots, query, form, multipart)| ApiCase {
                creds,
                via,
                method,
                route,
                base_b,
                slots,
                query,
                form,
                multipart,
                cross: None,
            },
        )
}

fn api_cross_strategy() -> impl Strategy<Value = ApiCase> {
    let svc = prop_oneof![
        2 => Just(SlotForm::Sid),
        1 => Just(SlotForm::Name),
        1 => Just(SlotForm::NameUpper),
        1 => Just(SlotForm::Encoded),
    ];
    let cross = prop_oneof![
        3 => (svc.clone(), 0u8..4, any::<u8>(), any::<u8>(), proptest::bool::weighted(0.3))
            .prop_map(|(svc, a_versions, b_idx, at, function)| Cross::Build {
                svc,
                a_versions,
                b_idx,
                at,
                function,
            }),
        2 => (svc.clone(), any::<u8>()).prop_map(|(svc, b_idx)| Cross::Deploy { svc, b_idx }),
        2 => (svc, any::<u16>()).prop_map(|(svc, name)| Cross::Domain { svc, name }),
    ];
    let creds = prop_oneof![
        3 => Just(Creds::APrimary),
        1 => Just(Creds::ASecondary),
        2 => Just(Creds::AKey),
    ];
    (
        creds,
        proptest::option::weighted(0.2, (any::<bool>(), any::<bool>())),
        cross,
    )
        .prop_map(|(creds, via, cross)| ApiCase {
            creds,
            via,
            method: "POST",
            route: 0,
            base_b: false,
            slots: Vec::new(),
            query: 0,
            form: Vec::new(),
            multipart: false,
            cross: Some(cross),
        })
}

/// What A and B own, for filling request slots.
struct Owned {
    inv: [Inventory; 2],
    /// A's Service that B's domain name extends.
    a_alpha: String,
}

impl Owned {
    /// The value for `slot` owned by `owner` (children of the Service/parent already chosen
    /// when the owners match), as (SID, unique name if a Service).
    fn pick(
        &self,
        slot: &str,
        owner: usize,
        idx: u8,
        chosen: &HashMap<&str, (usize, String)>,
    ) -> Option<(String, Option<String>)> {
        let inv = &self.inv[owner];
        let idx = idx as usize;
        let parent = |name: &str| {
            chosen
                .get(name)
                .filter(|(o, _)| *o == owner)
                .map(|(_, s)| s.as_str())
        };
        let pick2 = |v: &[(String, String)]| -> Option<String> {
            let under: Vec<&(String, String)> = match parent("{svc}") {
                Some(p) if v.iter().any(|x| x.0 == p) => v.iter().filter(|x| x.0 == p).collect(),
                _ => v.iter().collect(),
            };
            (!under.is_empty()).then(|| under[idx % under.len()].1.clone())
        };
        let pick3 = |v: &[(String, String, String)], mid: &str| -> Option<String> {
            let under: Vec<&(String, String, String)> = match parent(mid) {
                Some(p) if v.iter().any(|x| x.1 == p) => v.iter().filter(|x| x.1 == p).collect(),
                _ => v.iter().collect(),
            };
            (!under.is_empty()).then(|| under[idx % under.len()].2.clone())
        };
        Some(match slot {
            "{svc}" => {
                let (sid, name) = &inv.services[idx % inv.services.len()];
                (sid.clone(), Some(name.clone()))
            }
            "{env}" => (pick2(&inv.envs)?, None),
            "{asset}" => (pick2(&inv.assets)?, None),
            "{fn}" => (pick2(&inv.functions)?, None),
            "{build}" => (pick2(&inv.builds)?, None),
            "{var}" => (pick3(&inv.variables, "{env}")?, None),
            "{dep}" => (pick3(&inv.deployments, "{env}")?, None),
            "{log}" => (pick3(&inv.logs, "{env}")?, None),
            "{aver}" => (pick3(&inv.asset_versions, "{asset}")?, None),
            "{fver}" => (pick3(&inv.function_versions, "{fn}")?, None),
            other => panic!("slot {other}"),
        })
    }
}

/// Account C's ledger.
#[derive(Default, Debug)]
struct ApiLedger {
    requests: usize,
    statuses: BTreeMap<u16, usize>,
    /// 2xx for requests naming only A's resources with A's credentials.
    own_success: usize,
    /// Requests naming B's resources with A's valid credentials (all refused).
    refused_cross: usize,
    /// Requests with credentials that are not A's (all refused).
    refused_creds: usize,
}

struct ApiWorld<'a> {
    w: &'a World,
    owned: Owned,
    /// B's SIDs and values: none may appear in an answer unless the request carried it.
    b_secrets: Vec<String>,
    /// Service unique names only B has (case-insensitive).
    b_only_names: Vec<String>,
    /// Every SID B has.
    b_sids: HashSet<String>,
    /// A completed Build of A's, not deployed: the control of `Cross::Deploy`.
    control_build: String,
}

fn url_decode_lossy(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl ApiWorld<'_> {
    /// A's Service `a_alpha` as the slot form says.
    fn alpha(&self, form: SlotForm) -> String {
        let (sid, name) = self.owned.inv[A]
            .services
            .iter()
            .find(|(sid, _)| sid == &self.owned.a_alpha)
            .expect("A's first Service")
            .clone();
        match form {
            SlotForm::Name => name,
            SlotForm::NameUpper => name.to_ascii_uppercase(),
            SlotForm::Encoded => sid.bytes().map(|b| format!("%{b:02X}")).collect(),
            _ => sid,
        }
    }

    /// (path, form) of a cross-reference write; `own`: with A's reference instead (the
    /// control, which must succeed).
    fn cross_request(&self, x: &Cross, own: bool) -> (String, Vec<(String, String)>) {
        let (a, b) = (&self.owned.inv[A], &self.owned.inv[B]);
        let alpha = &self.owned.a_alpha;
        let p = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        match x {
            Cross::Build {
                svc,
                a_versions,
                b_idx,
                at,
                function,
            } => {
                let (field, pool) = match (*function, own) {
                    (true, true) => ("FunctionVersions", &a.function_versions),
                    (true, false) => ("FunctionVersions", &b.function_versions),
                    (false, true) => ("AssetVersions", &a.asset_versions),
                    (false, false) => ("AssetVersions", &b.asset_versions),
                };
                let pool: Vec<&(String, String, String)> =
                    pool.iter().filter(|v| !own || &v.0 == alpha).collect();
                let extra = &pool[*b_idx as usize % pool.len()].2;
                let inv = if own { a } else { b };
                let extra_path = &inv.paths[extra];
                // A's versions, none at the extra one's path (a Build holds a path once).
                let mut pairs: Vec<(String, String)> = a
                    .asset_versions
                    .iter()
                    .filter(|v| &v.0 == alpha && &v.2 != extra && &a.paths[&v.2] != extra_path)
                    .take(*a_versions as usize)
                    .map(|v| p("AssetVersions", &v.2))
                    .collect();
                pairs.insert(*at as usize % (pairs.len() + 1), p(field, extra));
                (format!("/v1/Services/{}/Builds", self.alpha(*svc)), pairs)
            }
            Cross::Deploy { svc, b_idx } => {
                let env = &a
                    .envs
                    .iter()
                    .find(|e| &e.0 == alpha)
                    .expect("A's Environment")
                    .1;
                let build = if own {
                    self.control_build.clone()
                } else {
                    b.builds[*b_idx as usize % b.builds.len()].1.clone()
                };
                (
                    format!(
                        "/v1/Services/{}/Environments/{env}/Deployments",
                        self.alpha(*svc)
                    ),
                    vec![p("BuildSid", &build)],
                )
            }
            Cross::Domain { svc, name } => {
                let suffix = if own {
                    format!("own{name}")
                } else {
                    self.w.collide_suffix.clone()
                };
                (
                    format!("/v1/Services/{}/Environments", self.alpha(*svc)),
                    vec![
                        p(
                            "UniqueName",
                            &format!("{}env-{name}", if own { "control-" } else { "" }),
                        ),
                        p("DomainSuffix", &suffix),
                    ],
                )
            }
        }
    }

    fn build(&self, c: &ApiCase) -> (Vec<u8>, bool, SocketAddr) {
        let w = self.w;
        if let Some(x) = &c.cross {
            let (path, pairs) = self.cross_request(x, false);
            let body = form_encode(&pairs, false).into_bytes();
            let ctype = Some("application/x-www-form-urlencoded".to_owned());
            return self.wire(c.creds, c.via, c.method, &path, body, ctype);
        }
        let mut path = ROUTES[c.route].to_owned();
        let mut chosen: HashMap<&str, (usize, String)> = HashMap::new();
        for (i, slot) in SLOTS.iter().enumerate() {
            if !path.contains(slot) {
                continue;
            }
            let (flip, idx, form) = c.slots[i];
            let owner = if c.base_b != flip { B } else { A };
            let Some((sid, name)) = self.owned.pick(slot, owner, idx, &chosen) else {
                path = path.replace(slot, "ZZ00000000000000000000000000000000");
                continue;
            };
            chosen.insert(slot, (owner, sid.clone()));
            let value = match (form, &name) {
                (SlotForm::Name, Some(n)) => n.clone(),
                (SlotForm::NameUpper, Some(n)) => n.to_ascii_uppercase(),
                (SlotForm::Encoded, _) => sid.bytes().map(|b| format!("%{b:02X}")).collect(),
                (SlotForm::LowerPrefix, _) => sid.to_ascii_lowercase(),
                _ => sid,
            };
            path = path.replace(slot, &value);
        }
        let b_env = self.owned.inv[B]
            .envs
            .first()
            .map(|e| e.1.clone())
            .unwrap_or_default();
        let b_fn = self.owned.inv[B]
            .functions
            .first()
            .map(|e| e.1.clone())
            .unwrap_or_default();
        let query = match c.query {
            0 => "PageSize=1".to_owned(),
            1 => "PageSize=1000".to_owned(),
            2 => "Page=1&PageSize=1".to_owned(),
            3 => "PageToken=PA1&PageSize=1".to_owned(),
            4 => "PageToken=PB999999&PageSize=5".to_owned(),
            5 => format!("FunctionSid={b_fn}"),
            6 => "StartDate=2000-01-01T00:00:00Z&EndDate=2999-01-01T00:00:00Z".to_owned(),
            7 => format!("EnvironmentSid={b_env}"),
            _ => String::new(),
        };
        let target = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };

        // The body.
        let mut body = Vec::new();
        let mut ctype = None;
        let is_versions = path.ends_with("/Versions");
        if c.method == "POST" && is_versions && c.multipart {
            let boundary = "propertyboundary";
            let disposition = "Content-Disposition: form-data; name=";
            for (name, value) in [("Path", "/injected.txt"), ("Visibility", "public")] {
                body.extend_from_slice(
                    format!("--{boundary}\r\n{disposition}\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\n{disposition}\"Content\"; filename=\"f\"\r\n\
                     Content-Type: text/plain\r\n\r\ninjected by A\r\n--{boundary}--\r\n"
                )
                .as_bytes(),
            );
            ctype = Some(format!("multipart/form-data; boundary={boundary}"));
        } else if c.method == "POST" {
            let mut pairs: Vec<(String, String)> = Vec::new();
            for (field, from_b, idx) in &c.form {
                let owner = if *from_b { B } else { A };
                let inv = &self.owned.inv[owner];
                let idx = *idx as usize;
                let name = FORM_FIELDS[*field as usize];
                let value = match name {
                    "FriendlyName" => format!("renamed by A {idx}"),
                    "UniqueName" => {
                        if idx % 3 == 0 {
                            "shared".to_owned()
                        } else {
                            format!("fresh-{idx}")
                        }
                    }
                    "BuildSid" => inv.builds[idx % inv.builds.len()].1.clone(),
                    "AssetVersions" => inv.asset_versions[idx % inv.asset_versions.len()].2.clone(),
                    "FunctionVersions" => inv.function_versions[idx % inv.function_versions.len()]
                        .2
                        .clone(),
                    "Key" => {
                        if idx % 2 == 0 {
                            "TOKEN".to_owned()
                        } else {
                            format!("K{idx}")
                        }
                    }
                    "Value" => format!("value {idx}"),
                    "DomainSuffix" => {
                        if *from_b {
                            w.collide_suffix.clone()
                        } else {
                            format!("s{idx}")
                        }
                    }
                    "Dependencies" => "[]".to_owned(),
                    _ => "true".to_owned(),
                };
                pairs.push((name.to_owned(), value));
            }
            body = form_encode(&pairs, false).into_bytes();
            ctype = Some("application/x-www-form-urlencoded".to_owned());
        }
        self.wire(c.creds, c.via, c.method, &target, body, ctype)
    }

    /// The request on the wire, whether its credentials are A's, and where it goes.
    fn wire(
        &self,
        creds: Creds,
        via: Option<(bool, bool)>,
        method: &str,
        target: &str,
        body: Vec<u8>,
        ctype: Option<String>,
    ) -> (Vec<u8>, bool, SocketAddr) {
        let w = self.w;
        let (user, pass) = {
            let (a, b) = (&w.accounts[A], &w.accounts[B]);
            match creds {
                Creds::APrimary => (a.sid.clone(), a.token.clone()),
                Creds::ASecondary => (a.sid.clone(), a.secondary.clone()),
                Creds::AKey => (a.key_sid.clone(), a.key_secret.clone()),
                Creds::BSidATok => (b.sid.clone(), a.token.clone()),
                Creds::BKeyASecret => (b.key_sid.clone(), a.key_secret.clone()),
                Creds::AKeyATok => (a.key_sid.clone(), a.token.clone()),
                Creds::ASidASecret => (a.sid.clone(), a.key_secret.clone()),
                Creds::None => (String::new(), String::new()),
            }
        };
        let a_valid = matches!(creds, Creds::APrimary | Creds::ASecondary | Creds::AKey);
        let (addr, host) = match via {
            None => (w.api_addr(), w.api_addr().to_string()),
            Some((upload, upper)) => {
                let h = if upload {
                    "serverless-upload.localhost"
                } else {
                    "serverless.localhost"
                };
                let h = if upper {
                    h.to_ascii_uppercase()
                } else {
                    h.to_owned()
                };
                (w.edge_addr(), format!("{h}:{}", w.edge_addr().port()))
            }
        };
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").into_bytes();
        if !matches!(creds, Creds::None) {
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            req.extend_from_slice(format!("Authorization: Basic {basic}\r\n").as_bytes());
        }
        if let Some(ct) = ctype {
            req.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        if method == "POST" || !body.is_empty() {
            req.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        req.extend_from_slice(b"Connection: close\r\n\r\n");
        req.extend_from_slice(&body);
        (req, a_valid, addr)
    }

    /// Whether the request names one of B's resources: a path segment that is B's SID or a
    /// Service name only B has, a reference to B's Build or versions in the form, or a
    /// DomainSuffix that gives A's Service B's domain.
    fn names_b(&self, req: &[u8]) -> bool {
        let text = String::from_utf8_lossy(req);
        let line = text.lines().next().unwrap_or_default();
        let target = line.split(' ').nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default();
        let segments: Vec<String> = path.split('/').map(url_decode_lossy).collect();
        if segments.iter().any(|s| {
            self.b_sids.contains(s) || self.b_only_names.iter().any(|n| n.eq_ignore_ascii_case(s))
        }) {
            return true;
        }
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let form = form_decode(body.as_bytes()).unwrap_or_default();
        // References where the route reads them (elsewhere unknown fields are ignored).
        let reads = |k: &str| match k {
            "AssetVersions" | "FunctionVersions" => path.ends_with("/Builds"),
            "BuildSid" => path.ends_with("/Deployments"),
            _ => false,
        };
        if line.starts_with("POST ")
            && form
                .iter()
                .any(|(k, v)| reads(k) && self.b_sids.contains(v))
        {
            return true;
        }
        let suffix = form
            .iter()
            .find(|(k, _)| k == "DomainSuffix")
            .map(|(_, v)| v.as_str());
        let creates_env = path.ends_with("/Environments") && line.starts_with("POST ");
        // A's Service whose domain base B's domain extends, by SID or unique name.
        let on_alpha = segments.get(3).is_some_and(|s| {
            self.owned.inv[A].services.iter().any(|(sid, name)| {
                sid == &self.owned.a_alpha && (sid == s || name.eq_ignore_ascii_case(s))
            })
        });
        creates_env && on_alpha && suffix == Some(self.w.collide_suffix.as_str())
    }

    fn check(&self, led: &mut ApiLedger, c: &ApiCase) -> Result<(), String> {
        let (req, a_valid, addr) = self.build(c);
        let x = exchange(addr, &req);
        let describe = |why: &str| {
            format!(
                "{why}\n--- request ---\n{}\n--- response ---\n{}",
                String::from_utf8_lossy(&req),
                String::from_utf8_lossy(&x.raw[..x.raw.len().min(3000)])
            )
        };
        let r = match x.replies.as_slice() {
            [r] => r,
            _ => return Err(describe("not exactly one answer")),
        };
        led.requests += 1;
        *led.statuses.entry(r.status).or_default() += 1;
        let names_b = self.names_b(&req);
        let success = (200..300).contains(&r.status);
        if !a_valid {
            led.refused_creds += 1;
            if success {
                return Err(describe("LEAK: a success without A's valid credentials"));
            }
        } else if names_b {
            led.refused_cross += 1;
            if success {
                return Err(describe(
                    "LEAK: a success for a request naming B's resources",
                ));
            }
        } else if success {
            led.own_success += 1;
        }
        // None of B's SIDs or values, unless the request carried them.
        let sent = String::from_utf8_lossy(&req).into_owned();
        let sent_decoded = url_decode_lossy(&sent);
        let basic_decoded = sent
            .lines()
            .find_map(|l| l.strip_prefix("Authorization: Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let answer = String::from_utf8_lossy(&x.raw);
        for secret in &self.b_secrets {
            if answer.contains(secret.as_str())
                && !sent.contains(secret.as_str())
                && !sent_decoded.contains(secret.as_str())
                && !basic_decoded.contains(secret.as_str())
            {
                return Err(describe(&format!("LEAK: B's {secret} in the answer")));
            }
        }
        // B's asset bytes or Function source (A may read its own Function's source).
        let b_mark = format!("~MK:{}:", SITE_NAMES[B]);
        if let Some(m) = marks_in(&x.raw)
            .into_iter()
            .find(|m| m.starts_with(&b_mark))
        {
            return Err(describe(&format!("LEAK: B's bytes ({m}) in an API answer")));
        }
        Ok(())
    }
}

/// C: A's credentials against B's resources, at the edge and over the API; B unchanged.
#[test]
fn accounts_never_reach_each_other() {
    let w = World::start();
    let (a_api, b_api) = (w.api(A), w.api(B));
    // More of B to reach for: a variable, a Build never deployed, a second Service named
    // like one of A's; and a Service of A's named like B's.
    let b_site = &w.sites[B];
    b_api
        .post(
            &format!(
                "/v1/Services/{}/Environments/{}/Variables",
                b_site.svc, b_site.env
            ),
            &[("Key", "TOKEN"), ("Value", "b-variable-value-3e9a1f")],
        )
        .expect(201);
    let zn = b_api
        .version(
            &b_site.svc,
            "Assets",
            "/spare.txt",
            "public",
            b"spare",
            "text/plain",
        )
        .1;
    b_api.build(&b_site.svc, &[&zn], &[]);
    b_api.service("shared");
    a_api.service("shared");
    let a_site = &w.sites[A];
    a_api
        .post(
            &format!(
                "/v1/Services/{}/Environments/{}/Variables",
                a_site.svc, a_site.env
            ),
            &[("Key", "TOKEN"), ("Value", "a-variable-value")],
        )
        .expect(201);
    // Log lines for B's Environment (written by the edge in batches).
    let deadline = Instant::now() + Duration::from_secs(10);
    let b_inv = loop {
        let x = exchange(
            w.edge_addr(),
            &hostile::get(&b_site.domain, b"/pub.txt", &[]),
        );
        assert_eq!(x.only().status, 200);
        let inv = inventory(&b_api, &w.accounts[B].sid, true);
        if !inv.logs.is_empty() {
            break inv;
        }
        assert!(Instant::now() < deadline, "no Log lines for B");
        std::thread::sleep(Duration::from_millis(200));
    };
    let a_inv = inventory(&a_api, ACCOUNT_SID, true);
    let before = b_inv.snapshot.clone();

    let mut all = HashSet::new();
    for v in before.values() {
        strings_in(v, &mut all);
    }
    let b_sids: HashSet<String> = all
        .iter()
        .filter(|s| is_sid(s))
        .cloned()
        .chain(b_inv.logs.iter().map(|l| l.2.clone()))
        .collect();
    let b = &w.accounts[B];
    let mut b_secrets: Vec<String> = b_sids.iter().cloned().collect();
    b_secrets.extend([
        b.sid.clone(),
        b.token.clone(),
        b.secondary.clone(),
        b.key_sid.clone(),
        b.key_secret.clone(),
        b_site.domain.clone(),
        "b-variable-value-3e9a1f".to_owned(),
    ]);
    let a_names: Vec<String> = a_inv
        .services
        .iter()
        .map(|s| s.1.to_ascii_lowercase())
        .collect();
    let b_only_names: Vec<String> = b_inv
        .services
        .iter()
        .map(|s| s.1.clone())
        .filter(|n| !a_names.contains(&n.to_ascii_lowercase()))
        .collect();
    assert!(b_only_names.contains(&w.b_service_name));
    // A Build of all of A's versions, not deployed: deploying it is the control of a
    // Deployment of B's Build.
    let a_assets: Vec<&str> = a_inv
        .asset_versions
        .iter()
        .filter(|v| v.0 == a_site.svc)
        .map(|v| v.2.as_str())
        .collect();
    let a_functions: Vec<&str> = a_inv
        .function_versions
        .iter()
        .filter(|v| v.0 == a_site.svc)
        .map(|v| v.2.as_str())
        .collect();
    let (control_build, status) = a_api.build(&a_site.svc, &a_assets, &a_functions);
    assert_eq!(status, "completed");
    let api_world = ApiWorld {
        w: &w,
        owned: Owned {
            a_alpha: a_site.svc.clone(),
            inv: [a_inv, b_inv],
        },
        b_secrets,
        b_only_names,
        b_sids,
        control_build,
    };
    // Each shape of cross-reference write succeeds with A's own reference, so its refusal
    // with B's is about B.
    for x in [
        Cross::Build {
            svc: SlotForm::Sid,
            a_versions: 2,
            b_idx: 0,
            at: 1,
            function: false,
        },
        Cross::Build {
            svc: SlotForm::Name,
            a_versions: 1,
            b_idx: 0,
            at: 0,
            function: true,
        },
        Cross::Deploy {
            svc: SlotForm::Encoded,
            b_idx: 0,
        },
        Cross::Domain {
            svc: SlotForm::NameUpper,
            name: 1,
        },
    ] {
        let (path, pairs) = api_world.cross_request(&x, true);
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        a_api.post(&path, &pairs).expect(201);
    }

    // The edge: B's protected assets with signatures made from what A knows.
    let edge = edge_property(&w, "C (edge)", Profile::CrossAccount, 300, 3);

    // The API: writes with one of B's references, then anything.
    let cross = RefCell::new(ApiLedger::default());
    check(
        "C (API references)",
        250,
        6,
        &api_cross_strategy(),
        |case| {
            api_world
                .check(&mut cross.borrow_mut(), &case)
                .map_err(TestCaseError::fail)
        },
    );
    let cross = cross.into_inner();
    eprintln!("C (API references): {cross:?}");
    let led = RefCell::new(ApiLedger::default());
    check("C (API)", 400, 4, &api_strategy(), |case| {
        api_world
            .check(&mut led.borrow_mut(), &case)
            .map_err(TestCaseError::fail)
    });
    let led = led.into_inner();
    eprintln!("C (API): {led:?}");

    // B is as it was, and its site serves as before.
    let after = inventory(&b_api, &w.accounts[B].sid, false).snapshot;
    assert_eq!(
        serde_json::to_string_pretty(&before).expect("json"),
        serde_json::to_string_pretty(&after).expect("json"),
        "B's resources changed"
    );
    // (A may have deleted its own site on the way.)
    w.smoke(&[B]);
    // Not vacuous.
    assert!(edge.refused_protected >= 150, "{edge:?}");
    assert!(led.own_success >= 10, "A's own requests must work: {led:?}");
    assert!(led.refused_cross >= 80, "{led:?}");
    assert!(led.refused_creds >= 40, "{led:?}");
    assert_eq!(cross.refused_cross, 250, "{cross:?}");
}
