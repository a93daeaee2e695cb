//! Micro-benchmarks of the request path: signature validation, route lookup at scale,
//! precondition and range evaluation, a whole edge request handled in-process, and an
//! access-log line.
//!
//! `cargo bench --bench edge` (criterion; reports in target/criterion).

use std::collections::HashMap;
use std::sync::Arc;

/// The allocator the `sigil` binary uses, so that allocation costs are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use sigil::edge::http::{conditional, range};
use sigil::edge::routes::{Assets, EdgeAsset, RouteTable, Site};
use sigil::manifest::{Entry, Visibility};
use sigil::signature::{self, Payload};

fn signatures(c: &mut Criterion) {
    let token = "0123456789abcdef0123456789abcdef";
    let mut g = c.benchmark_group("signature");

    let url = "https://hello-1234.twil.io/twiml.xml?CallSid=CA0123456789abcdef0123456789abcdef&From=%2B14155551234";
    let sig = signature::sign(token, &signature::signed_string(url, &[]));
    g.bench_function("get", |b| {
        b.iter(|| assert!(signature::validate(&[token], url, Payload::Form(&[]), &sig).valid))
    });

    // The edge's check: a token's key schedule made once, the URL in pieces, nothing recorded.
    let keys = [signature::SigningKey::new(token)];
    let url = "http://hello-1234-production.twil.io/1k-protected.bin";
    let sig = signature::sign(token, url);
    g.bench_function("edge_get", |b| {
        b.iter(|| {
            let url = signature::Url::parse(std::hint::black_box(url)).expect("absolute");
            assert!(signature::is_valid(&keys, &url, Payload::Form(&[]), &sig))
        })
    });

    let url = "https://hello-1234.twil.io/sms.xml";
    let params: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("Param{i}"),
                format!("value number {i} +14155551234"),
            )
        })
        .collect();
    let sig = signature::sign(token, &signature::signed_string(url, &params));
    g.bench_function("form_post_10_params", |b| {
        b.iter(|| assert!(signature::validate(&[token], url, Payload::Form(&params), &sig).valid))
    });

    let body = "{\"Body\":\"hello\",\"n\":1}".repeat(40);
    let url = format!(
        "https://hello-1234.twil.io/hook.xml?bodySHA256={}",
        signature::body_sha256(body.as_bytes())
    );
    let sig = signature::sign(token, &url);
    g.bench_function("json_body_sha256_1k", |b| {
        b.iter(|| {
            assert!(signature::validate(&[token], &url, Payload::Body(body.as_bytes()), &sig).valid)
        })
    });
    g.finish();
}

fn entry(path: String, i: usize) -> Entry {
    Entry {
        sid: format!("ZN{i:032x}"),
        parent_sid: format!("ZH{i:032x}"),
        date_created: 1_700_000_000,
        path,
        visibility: Visibility::Public,
        sha256: format!("{i:064x}"),
        size: 1024,
        content_type: Some("text/plain".into()),
    }
}

/// 10,000 Environments × 1,000 assets; Environments share one asset map per Build (as the
/// edge does), 100 Builds here.
fn routes(c: &mut Criterion) {
    let builds: Vec<Arc<Assets>> = (0..100)
        .map(|b| {
            Arc::new(
                (0..1000)
                    .map(|a| {
                        let path = format!("/assets/build{b}/file-{a}.txt");
                        (
                            path.clone(),
                            Arc::new(EdgeAsset::new(&entry(path, b * 1000 + a), false, &[])),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let table = RouteTable::default();
    let sites: HashMap<String, Arc<Site>> = (0..10_000)
        .map(|e| {
            let domain = format!("service{e}-1234.twil.io");
            let site = Site {
                domain: domain.clone(),
                account_sid: "AC0".into(),
                service_sid: "ZS0".into(),
                environment_sid: format!("ZE{e:032x}"),
                build_sid: format!("ZB{:032x}", e % 100),
                deployment_sid: None,
                assets: Arc::clone(&builds[e % 100]),
                deployed: sigil::edge::routes::Modified::at(0),
                log_window: Default::default(),
                code: None,
                variables: Default::default(),
                include_credentials: true,
            };
            (domain, Arc::new(site))
        })
        .collect();
    table.replace_all(sites);
    let mut i = 0usize;
    c.bench_function("route_lookup_10k_envs_x_1k_assets", |b| {
        b.iter(|| {
            i = (i + 7919) % 10_000;
            let site = table
                .lookup(&format!("service{i}-1234.twil.io"))
                .expect("site");
            let path = format!("/assets/build{}/file-{}.txt", i % 100, i % 1000);
            assert!(site.lookup(&path).is_some());
        })
    });
}

fn semantics(c: &mut Criterion) {
    let mut headers = HeaderMap::new();
    headers.insert(
        "if-none-match",
        "\"x\", \"y\", \"0123456789abcdef0123456789abcdef\""
            .parse()
            .expect("h"),
    );
    headers.insert(
        "if-modified-since",
        "Sun, 09 Sep 2001 01:46:40 GMT".parse().expect("h"),
    );
    let etag = "\"0123456789abcdef0123456789abcdef\"";
    c.bench_function("preconditions", |b| {
        b.iter(|| conditional::evaluate(&Method::GET, &headers, etag, 1_000_000_000))
    });
    c.bench_function("range_ios_probe", |b| {
        b.iter(|| range::evaluate("bytes=0-1", 1_000_000))
    });
    c.bench_function("range_suffix", |b| {
        b.iter(|| range::evaluate("bytes=-500", 1_000_000))
    });
}

/// A whole GET of a public 1 KiB asset through `Edge::handle`, no socket.
fn whole_request(c: &mut Criterion) {
    use sigil::control::ControlPlane;
    use sigil::edge::access::Tokens;
    use sigil::edge::cache::BlobCache;
    use sigil::edge::routes::Loader;
    use sigil::edge::{Conn, Edge, EdgeConfig};
    use sigil::logsink::LogSink;
    use sigil::store::{BlobStore, Metadata, SqliteStore};

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("dir");
    let (edge, domain, token) = rt.block_on(async {
        let store: Arc<dyn Metadata> = Arc::new(SqliteStore::open(&dir.path().join("m.db")).expect("store"));
        let (sid, token) = sigil::accounts::create(store.as_ref(), "bench", None, None).expect("account");
        let blobs = BlobStore::open(dir.path()).expect("blobs");
        let routes = Arc::new(RouteTable::default());
        let cp = ControlPlane::new(
            Arc::clone(&store),
            blobs.clone(),
            "http://api".into(),
            "localhost".into(),
            None,
            None,
        );
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{sid}:{token}"))
        );
        let call = |method: &str, uri: String, ctype: &str, body: Vec<u8>| {
            let req = Request::builder()
                .method(method)
                .uri(uri)
                .header("authorization", &auth)
                .header("content-type", ctype)
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            let cp = Arc::clone(&cp);
            async move {
                let resp = cp.handle(req).await;
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                serde_json::from_slice::<serde_json::Value>(&body).expect("json")
            }
        };
        let form = "application/x-www-form-urlencoded";
        let svc = call("POST", "/v1/Services".into(), form, b"UniqueName=bench&FriendlyName=b".to_vec()).await;
        let zs = svc["sid"].as_str().expect("sid").to_owned();
        let env = call("POST", format!("/v1/Services/{zs}/Environments"), form, b"UniqueName=prod".to_vec()).await;
        let mut versions = Vec::new();
        for (name, visibility) in [("1k", "public"), ("1k-protected", "protected")] {
            let asset = call("POST", format!("/v1/Services/{zs}/Assets"), form, format!("FriendlyName={name}").into_bytes()).await;
            let zh = asset["sid"].as_str().expect("sid");
            let mut mp = Vec::new();
            mp.extend_from_slice(format!("--B\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n/{name}.bin\r\n--B\r\nContent-Disposition: form-data; name=\"Visibility\"\r\n\r\n{visibility}\r\n--B\r\nContent-Disposition: form-data; name=\"Content\"; filename=\"1k.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
            mp.extend((0..1024u32).map(|i| (i % 251) as u8));
            mp.extend_from_slice(b"\r\n--B--\r\n");
            let version = call("POST", format!("/v1/Services/{zs}/Assets/{zh}/Versions"), "multipart/form-data; boundary=B", mp).await;
            versions.push(format!("AssetVersions={}", version["sid"].as_str().expect("sid")));
        }
        let zn = versions.join("&");
        let build = call("POST", format!("/v1/Services/{zs}/Builds"), form, zn.into_bytes()).await;
        let zb = build["sid"].as_str().expect("sid").to_owned();
        loop {
            let st = call("GET", format!("/v1/Services/{zs}/Builds/{zb}/Status"), form, vec![]).await;
            if st["status"] == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let ze = env["sid"].as_str().expect("sid");
        call("POST", format!("/v1/Services/{zs}/Environments/{ze}/Deployments"), form, format!("BuildSid={zb}").into_bytes()).await;
        let (sites, _) = RouteTable::read_all(store.as_ref(), &mut Loader::default(), &mut |_, _| {})
            .expect("routes");
        routes.replace_all(sites);
        let tokens = Arc::new(Tokens::default());
        tokens.refresh(store.as_ref()).expect("tokens");
        let edge = Edge::new(
            routes,
            tokens,
            BlobCache::new(blobs, 64 << 20),
            LogSink::spawn(Arc::clone(&store), u32::MAX),
            None,
            EdgeConfig {
                api_hosts: ["serverless.localhost".into(), "serverless-upload.localhost".into()],
                max_post_body: 65536,
                cache_control_public: http::HeaderValue::from_static("public, max-age=60"),
                cache_control_protected: http::HeaderValue::from_static("private, no-cache"),
                trusted_proxies: vec![],
                access_log: false,
                request_logs: false,
            },
        );
        (edge, env["domain_name"].as_str().expect("domain").to_owned(), token)
    });
    let conn = Conn {
        peer: "127.0.0.1:40000".parse().expect("addr"),
        scheme: "http",
    };
    c.bench_function("edge_get_public_1k_in_process", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::builder()
                .uri("/1k.bin")
                .header("host", domain.as_str())
                .header("accept-encoding", "gzip, deflate, br")
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = edge.handle(req, &conn).await;
            assert_eq!(resp.status(), 200);
            resp
        })
    });
    // The same with a valid X-Twilio-Signature on a protected asset (Host with its port, as a
    // webhook fetcher sends it to a non-default port).
    let host = format!("{domain}:8080");
    let signature = signature::sign(&token, &format!("http://{host}/1k-protected.bin"));
    c.bench_function("edge_get_protected_1k_in_process", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::builder()
                .uri("/1k-protected.bin")
                .header("host", host.as_str())
                .header("accept-encoding", "gzip, deflate, br")
                .header("x-twilio-signature", signature.as_str())
                .body(Full::new(Bytes::new()))
                .expect("request");
            let resp = edge.handle(req, &conn).await;
            assert_eq!(resp.status(), 200);
            resp
        })
    });
}

/// One access-log line (the fields `Edge::finish` logs) formatted by tracing-subscriber's
/// default formatter and by sigil's (`logline::Lines`), written to a sink; and as the edge
/// writes it (`logline::access`).
fn access_log_line(c: &mut Criterion) {
    let mut g = c.benchmark_group("access_log_line");
    let line = || {
        tracing::info!(
            target: "sigil::access",
            site = "bench-1234.localhost",
            method = %Method::GET,
            path = "/assets/1k.bin",
            status = 200u16,
            bytes = 1024u64,
            micros = 12u64,
        );
    };
    let default = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(default, || g.bench_function("default", |b| b.iter(line)));
    let lines = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .event_format(sigil::logline::Lines)
        .finish();
    tracing::subscriber::with_default(lines, || g.bench_function("sigil", |b| b.iter(line)));
    // What the edge does: the line written straight into the gathered lines (which a thread
    // writes out, here to a sink), past tracing's dispatch.
    let (gathered, _flusher) = sigil::logline::buffered(Box::new(std::io::sink()));
    let lines = tracing_subscriber::fmt()
        .with_writer(gathered.clone())
        .event_format(sigil::logline::Lines)
        .finish();
    tracing::subscriber::with_default(lines, || {
        assert!(gathered.take_access_lines());
        let started = std::time::SystemTime::now();
        g.bench_function("sigil_direct", |b| {
            b.iter(|| {
                sigil::logline::access(&sigil::logline::Access {
                    site: "bench-1234.localhost",
                    method: Method::GET.as_str(),
                    path: "/assets/1k.bin",
                    status: 200,
                    bytes: 1024,
                    started,
                })
            })
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    signatures,
    routes,
    semantics,
    whole_request,
    access_log_line
);
criterion_main!(benches);
