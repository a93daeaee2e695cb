//! A real fleet on loopback — PostgreSQL and the S3 server, two control replicas
//! (`--role control`) and three edges (`--role edge`) — and what its users rely on: the API
//! through any edge (the official tools' path), every Deployment served by every edge within
//! a bound without a request ever seeing a 404, a 5xx or a mix of two Builds, and edges that
//! serve on when the control plane, PostgreSQL or the object store is gone.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::postgres::Postgres;
use support::s3::S3;
use support::{Api, Fleet, Sigil};

/// `sigil serve --role edge` on `dir` (its cache and route snapshot), proxying the API to
/// `control`.
fn edge_command(fleet: &Fleet, dir: &Path, control: &Sigil) -> Command {
    let mut cmd = fleet.command(dir);
    cmd.args([
        "--role",
        "edge",
        "--control-url",
        &control.api,
        "--admin",
        "127.0.0.1:0",
        "--cache-dir",
    ])
    .arg(dir)
    .env("SIGIL_ACCOUNT_SID", support::ACCOUNT_SID)
    .env("SIGIL_AUTH_TOKEN", support::AUTH_TOKEN);
    cmd
}

struct Edge {
    sigil: Sigil,
    dir: PathBuf,
    _keep: tempfile::TempDir,
}

fn start_edge(fleet: &Fleet, control: &Sigil) -> Edge {
    let keep = tempfile::tempdir().expect("dir");
    let dir = keep.path().join("edge");
    let sigil = Sigil::spawn_command(edge_command(fleet, &dir, control), &dir);
    Edge {
        sigil,
        dir,
        _keep: keep,
    }
}

fn control(fleet: &Fleet) -> Sigil {
    fleet.replica_with(|cmd| {
        cmd.args(["--role", "control", "--admin", "127.0.0.1:0"]);
    })
}

fn admin(sigil: &Sigil, path: &str) -> (u16, String) {
    let addr = sigil.admin.expect("an admin listener");
    let r = reqwest::blocking::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .expect("admin answers");
    (r.status().as_u16(), r.text().expect("text"))
}

fn metric(sigil: &Sigil, name: &str) -> f64 {
    let (_, text) = admin(sigil, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing in {text}"))
        .parse()
        .expect("number")
}

/// Uploads `files` as new versions and builds them: the Build's SID.
fn build(api: &Api, svc: &str, files: &[(&str, Vec<u8>)]) -> String {
    let versions: Vec<String> = files
        .iter()
        .map(|(path, body)| {
            api.version(svc, "Assets", path, "public", body, "text/plain")
                .1
        })
        .collect();
    let refs: Vec<&str> = versions.iter().map(String::as_str).collect();
    let (zb, status) = api.build(svc, &refs, &[]);
    assert_eq!(status, "completed");
    zb
}

fn deploy(api: &Api, svc: &str, env: &str, build: &str) {
    api.post(
        &format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
        &[("BuildSid", build)],
    )
    .expect(201);
}

/// Waits until `edge` serves `body` at `path`.
fn until_served(edge: &Sigil, domain: &str, path: &str, body: &[u8], within: Duration) {
    let client = edge.edge(&[domain]);
    let deadline = Instant::now() + within;
    loop {
        let r = client.get(&client.url(domain, path), &[]);
        if r.status == 200 && r.body == body {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not served within {within:?}: {} {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn edges_follow_every_deployment_and_proxy_the_api() {
    let fleet = Fleet::new();
    let controls = [control(&fleet), control(&fleet)];
    let edges: Vec<Edge> = (0..3)
        .map(|i| start_edge(&fleet, &controls[i % 2]))
        .collect();
    for e in &edges {
        assert_eq!(admin(&e.sigil, "/readyz"), (200, "edge: ready\n".into()));
        assert_eq!(admin(&e.sigil, "/healthz").0, 200);
    }
    assert_eq!(
        admin(&controls[0], "/readyz"),
        (200, "control: ready\n".into())
    );

    // The whole API through edge 0: what the helper libraries and the toolkit do.
    let api = Api::through_edge(edges[0].sigil.http);
    let svc = api.service("fleet");
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    let pages = 3;
    let contents = |round: usize| -> Vec<(String, Vec<u8>)> {
        (0..pages)
            .map(|p| (format!("/p{p}.txt"), format!("round {round}").into_bytes()))
            .collect()
    };
    let first = contents(0);
    let files: Vec<(&str, Vec<u8>)> = first.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let zb = build(&api, &svc, &files);
    deploy(&api, &svc, &ze, &zb);
    // The API over TLS and HTTP/2 through the edge too (its answer streamed back).
    let h2 = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca"),
            )
            .expect("pem"),
        )
        .resolve("serverless.localhost", edges[0].sigil.https)
        .build()
        .expect("client");
    let r = h2
        .get(format!(
            "https://serverless.localhost:{}/v1/Services/{svc}/Environments",
            edges[0].sigil.https.port()
        ))
        .basic_auth(support::ACCOUNT_SID, Some(support::AUTH_TOKEN))
        .send()
        .expect("answered");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let listed: serde_json::Value = r.json().expect("json");
    assert_eq!(listed["environments"][0]["sid"], ze.as_str());
    // The edge that proxied the Deployment serves it as soon as the client has its 201.
    let e0 = edges[0].sigil.edge(&[&domain]);
    assert_eq!(
        e0.get(&e0.url(&domain, "/p0.txt"), &[]).expect(200).body,
        b"round 0"
    );
    for e in &edges {
        until_served(
            &e.sigil,
            &domain,
            "/p0.txt",
            b"round 0",
            Duration::from_secs(5),
        );
    }

    // Deployments through both controls while clients read every page on every edge: each
    // answer is 200 and every page of one response set is from one round (one Build).
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rounds = 10;
    let builds: Vec<String> = (1..=rounds)
        .map(|round| {
            let files: Vec<(String, Vec<u8>)> = contents(round);
            let files: Vec<(&str, Vec<u8>)> =
                files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
            build(&api, &svc, &files)
        })
        .collect();
    let seen = std::thread::scope(|scope| {
        let readers: Vec<_> = edges
            .iter()
            .map(|e| {
                let (stop, domain) = (&stop, &domain);
                scope.spawn(move || {
                    let client = e.sigil.edge(&[domain]);
                    let mut seen = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let r = client.get(&client.url(domain, "/p1.txt"), &[]);
                        assert_eq!(r.status, 200, "{}", r.text());
                        let text = r.text();
                        assert!(text.starts_with("round "), "{text}");
                        seen += 1;
                    }
                    seen
                })
            })
            .collect();
        for (i, zb) in builds.iter().enumerate() {
            let via = Api::new(
                &controls[i % 2].api,
                Some((support::ACCOUNT_SID, support::AUTH_TOKEN)),
            );
            deploy(&via, &svc, &ze, zb);
            let expected = format!("round {}", i + 1);
            for e in &edges {
                until_served(
                    &e.sigil,
                    &domain,
                    "/p2.txt",
                    expected.as_bytes(),
                    Duration::from_secs(5),
                );
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        readers
            .into_iter()
            .map(|r| r.join().expect("reader"))
            .sum::<usize>()
    });
    assert!(seen > 0);
    for e in &edges {
        assert_eq!(metric(&e.sigil, "sigil_feed_pending_environments"), 0.0);
        assert_eq!(metric(&e.sigil, "sigil_feed_lag"), 0.0);
    }

    // Deleting the Service reaches every edge through the feed.
    api.delete(&format!("/v1/Services/{svc}")).expect(204);
    for e in &edges {
        let client = e.sigil.edge(&[&domain]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while client.get(&client.url(&domain, "/p0.txt"), &[]).status != 404 {
            assert!(
                Instant::now() < deadline,
                "the deleted site is still served"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn edges_serve_on_when_everything_behind_them_is_down() {
    let pg = Postgres::start();
    let s3 = S3::start();
    let fleet = Fleet::on(&pg, &s3);
    let mut ctl = control(&fleet);
    let api = ctl.client();
    let svc = api.service("down");
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    let zb = build(
        &api,
        &svc,
        &[
            ("/hot.txt", b"hot".to_vec()),
            ("/cold.txt", b"cold".to_vec()),
        ],
    );
    deploy(&api, &svc, &ze, &zb);
    // Started after the Deployment: a cold edge, filled on first request.
    let mut warm = start_edge(&fleet, &ctl);
    let cold = start_edge(&fleet, &ctl);
    until_served(
        &warm.sigil,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(5),
    );
    until_served(
        &warm.sigil,
        &domain,
        "/cold.txt",
        b"cold",
        Duration::from_secs(5),
    );
    until_served(
        &cold.sigil,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(5),
    );

    // The control plane stopped: the proxied API is Twilio's JSON 502; sites are served.
    ctl.sigterm();
    ctl.wait_exit(Duration::from_secs(30));
    let through = Api::through_edge(warm.sigil.http);
    let r = through.get("/v1/Services");
    assert_eq!(
        (r.status, &r.json["code"]),
        (502, &serde_json::json!(20503)),
        "{}",
        r.text
    );
    until_served(
        &warm.sigil,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(1),
    );

    // PostgreSQL stopped: still served; /readyz says degraded, /metrics shows it.
    pg.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, text) = admin(&warm.sigil, "/readyz");
        assert_eq!(status, 200, "{text}");
        if text.contains("degraded") {
            break;
        }
        assert!(Instant::now() < deadline, "never degraded: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&warm.sigil, "sigil_feed_degraded"), 1.0);
    until_served(
        &warm.sigil,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(1),
    );

    // kill -9, restarted while PostgreSQL is down: it serves from its route snapshot.
    let dir = warm.dir.clone();
    let keep = std::mem::replace(&mut warm._keep, tempfile::tempdir().expect("dir"));
    let _ = warm.sigil.kill9();
    let restarted = Sigil::spawn_command(edge_command(&fleet, &dir, &ctl), &dir);
    until_served(
        &restarted,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(1),
    );
    until_served(
        &restarted,
        &domain,
        "/cold.txt",
        b"cold",
        Duration::from_secs(1),
    );

    // S3 stopped too: what an edge has is served; what it would fetch is a quick 503.
    s3.stop();
    let client = cold.sigil.edge(&[&domain]);
    until_served(
        &cold.sigil,
        &domain,
        "/hot.txt",
        b"hot",
        Duration::from_secs(1),
    );
    let t = Instant::now();
    let r = client
        .get(&client.url(&domain, "/cold.txt"), &[])
        .expect(503);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());

    // Everything back: the edges catch up by themselves with a Deployment made meanwhile.
    pg.start_server();
    s3.start_server();
    let ctl = control(&fleet);
    let api = ctl.client();
    let zb2 = build(&api, &svc, &[("/hot.txt", b"hot 2".to_vec())]);
    deploy(&api, &svc, &ze, &zb2);
    for edge in [&restarted, &cold.sigil] {
        until_served(edge, &domain, "/hot.txt", b"hot 2", Duration::from_secs(10));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin(&restarted, "/readyz").1 != "edge: ready\n" {
        assert!(
            Instant::now() < deadline,
            "{}",
            admin(&restarted, "/readyz").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(keep);
}

/// The official `twilio` Python library and the Serverless Toolkit's `twilio-run`, both
/// unmodified, through an edge that proxies to a control plane; then the toolkit's project
/// is served by that edge.
#[test]
fn the_official_tools_work_through_an_edge() {
    let fleet = Fleet::new();
    // The edge's port first: the control plane's links point through it, as they would
    // point at the load balancer in front of a fleet.
    let port = support::free_port();
    let api_host = format!("serverless.localhost:{port}");
    let public = format!("http://{api_host}");
    let ctl = fleet.replica_with(|cmd| {
        cmd.args(["--role", "control", "--public-api-url", &public]);
    });
    let keep = tempfile::tempdir().expect("dir");
    let dir = keep.path().join("edge");
    let mut cmd = edge_command(&fleet, &dir, &ctl);
    cmd.args(["--http", &format!("127.0.0.1:{port}")]);
    // A functions directory of its own, and no npm: the Build's dependency tree must come
    // from the bucket, packed by the control plane that installed it.
    std::fs::create_dir_all(support::functions_dir()).expect("functions dir");
    let own = tempfile::tempdir_in(support::functions_dir()).expect("dir");
    std::fs::set_permissions(own.path(), std::fs::Permissions::from_mode(0o755)).expect("mode");
    cmd.arg("--functions-dir")
        .arg(own.path())
        .args(["--npm", "/bin/false"]);
    let edge = Sigil::spawn_command(cmd, &dir);

    // Python: every call of the SDK's Serverless v1 surface the interop script makes.
    support::run_python_interop(&public, Some("serverless.localhost=127.0.0.1"));

    // twilio-run deploy: uploads, Build, Deployment, all through the edge.
    let bin = support::twilio_run();
    let proj = tempfile::tempdir().expect("dir");
    let fixture = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/toolkit-project"
    ));
    support::copy_dir(fixture, proj.path());
    support::run_twilio_run(
        &bin,
        proj.path(),
        &format!("http://127.0.0.1:{port}"),
        Some(&api_host),
        &[
            "deploy",
            "--service-name",
            "through-edge",
            "--environment",
            "dev",
            "--override-existing-project",
        ],
    );
    let envs = ctl
        .client()
        .get("/v1/Services/through-edge/Environments")
        .expect(200);
    let domain = envs.json["environments"][0]["domain_name"]
        .as_str()
        .expect("deployed")
        .to_owned();
    // The edge the deploy went through serves it at once.
    let client = edge.edge(&[&domain]);
    assert_eq!(
        client
            .get(&client.url(&domain, "/logo.txt"), &[])
            .expect(200)
            .body,
        std::fs::read(fixture.join("assets/logo.txt")).expect("fixture")
    );
    // And runs its Function: the code and the dependency tree from the bucket, a worker on
    // the edge.
    support::expect_toolkit_hello(&client, &domain);
    let sets: Vec<_> = std::fs::read_dir(own.path().join("deps"))
        .expect("the edge unpacked a set")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(
        sets.iter()
            .any(|p| p.join("node_modules/twilio/package.json").is_file()),
        "{sets:?}"
    );

    // The next Build of the same set: its packed tree is not fetched again while the set is
    // unpacked here, even once the disk cache has let it go (here: every packed tree the
    // edge holds, removed by hand).
    let trees = packed_trees(&dir);
    assert!(!trees.is_empty(), "the edge fetched the packed tree");
    for tree in &trees {
        std::fs::remove_file(tree).expect("remove a tree");
    }
    let api = ctl.client();
    let svc = "through-edge";
    let env = envs.json["environments"][0]["sid"].as_str().expect("env");
    let current = api
        .get(&format!("/v1/Services/{svc}/Environments/{env}"))
        .expect(200)
        .s("build_sid");
    let old = api
        .get(&format!("/v1/Services/{svc}/Builds/{current}"))
        .expect(200);
    let sids = |list: &str| -> Vec<String> {
        old.json[list]
            .as_array()
            .expect("versions")
            .iter()
            .map(|v| v["sid"].as_str().expect("sid").to_owned())
            .collect()
    };
    let (_, marker) = api.version(svc, "Assets", "/next.txt", "public", b"next", "text/plain");
    let dependencies = old.json["dependencies"].to_string();
    let mut form: Vec<(&str, &str)> =
        vec![("Dependencies", &dependencies), ("AssetVersions", &marker)];
    let (assets, functions) = (sids("asset_versions"), sids("function_versions"));
    form.extend(assets.iter().map(|a| ("AssetVersions", a.as_str())));
    form.extend(functions.iter().map(|f| ("FunctionVersions", f.as_str())));
    let next = api
        .post(&format!("/v1/Services/{svc}/Builds"), &form)
        .expect(201)
        .s("sid");
    assert_eq!(
        api.wait_build_within(svc, &next, Duration::from_secs(60)),
        "completed"
    );
    let downloads = metric(&edge, "sigil_cache_downloads_total");
    deploy(&api, svc, env, &next);
    until_served(
        &edge,
        &domain,
        "/next.txt",
        b"next",
        Duration::from_secs(10),
    );
    support::expect_toolkit_hello(&client, &domain);
    // One download: the new asset's blob. Not the tree, and no second set.
    assert_eq!(
        metric(&edge, "sigil_cache_downloads_total") - downloads,
        1.0
    );
    assert!(
        trees.iter().all(|t| !t.exists()),
        "a packed tree was fetched again"
    );
    let now: Vec<_> = std::fs::read_dir(own.path().join("deps"))
        .expect("deps")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(sets, now);
}

/// The packed dependency trees among the blobs under `dir`: gzip files over 256 KiB.
fn packed_trees(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.join("blobs")];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if std::fs::metadata(&path).is_ok_and(|m| m.len() > 256 * 1024)
                && std::fs::read(&path).is_ok_and(|b| b.starts_with(&[0x1f, 0x8b]))
            {
                found.push(path);
            }
        }
    }
    found
}

/// A rotated auth token reaches every edge through the feed: once the secondary token is
/// promoted, signatures by the old one are refused everywhere, by the new one accepted.
#[test]
fn a_rotated_token_is_refused_on_every_edge() {
    let fleet = Fleet::new();
    let ctl = control(&fleet);
    let edges: Vec<Edge> = (0..3).map(|_| start_edge(&fleet, &ctl)).collect();
    let api = ctl.client();
    let svc = api.service("rotate");
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    let (_, v) = api.version(
        &svc,
        "Assets",
        "/hook.xml",
        "protected",
        b"<Response/>",
        "text/xml",
    );
    let (zb, _) = api.build(&svc, &[&v], &[]);
    deploy(&api, &svc, &ze, &zb);
    let account = |args: &[&str]| {
        let (code, out, err) = support::run_cli(
            Command::new(env!("CARGO_BIN_EXE_sigil"))
                .args(["account", "--metadata", fleet.metadata(), "token"])
                .args(args)
                .args(["--account", support::ACCOUNT_SID]),
        );
        assert_eq!(code, 0, "{out}{err}");
        out
    };
    let check = |token: &str, expected: u16| {
        for e in &edges {
            let client = e.sigil.edge(&[&domain]);
            let url = client.url(&domain, "/hook.xml");
            let sig = support::twilio_signature(token, &url, &[]);
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let status = client.get(&url, &[("X-Twilio-Signature", &sig)]).status;
                if status == expected {
                    break;
                }
                assert!(Instant::now() < deadline, "{status}, not {expected}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    check(support::AUTH_TOKEN, 200);
    let out = account(&["secondary"]);
    let new = out
        .lines()
        .find_map(|l| l.strip_prefix("secondary_auth_token "))
        .expect("the new token")
        .to_owned();
    // Both are good while the secondary waits to be promoted.
    check(&new, 200);
    check(support::AUTH_TOKEN, 200);
    account(&["promote"]);
    check(support::AUTH_TOKEN, 403);
    check(&new, 200);
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let meta = e.metadata().expect("metadata");
                    if meta.is_dir() {
                        dir_bytes(&e.path())
                    } else {
                        meta.len()
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A cold edge fills on first request with one download per digest however many requests
/// miss at once, and keeps its disk cache within `--cache-max-bytes` (least recently used
/// blobs unlinked, fetched again when asked for).
#[test]
fn a_cold_edge_fills_once_per_digest_within_its_budget() {
    let fleet = Fleet::new();
    let ctl = control(&fleet);
    let api = ctl.client();
    let svc = api.service("budget");
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    let big = |i: u8| vec![i; 600 * 1024];
    let zb = build(
        &api,
        &svc,
        &[("/a.bin", big(1)), ("/b.bin", big(2)), ("/c.bin", big(3))],
    );
    deploy(&api, &svc, &ze, &zb);
    let keep = tempfile::tempdir().expect("dir");
    let dir = keep.path().join("edge");
    let mut cmd = edge_command(&fleet, &dir, &ctl);
    cmd.args(["--cache-max-bytes", "1048576"]);
    let edge = Sigil::spawn_command(cmd, &dir);
    let client = edge.edge(&[&domain]);
    let url = client.url(&domain, "/a.bin");
    std::thread::scope(|scope| {
        let all: Vec<_> = (0..16)
            .map(|_| scope.spawn(|| client.get(&url, &[]).expect(200).body))
            .collect();
        for h in all {
            assert_eq!(h.join().expect("client"), big(1));
        }
    });
    assert_eq!(metric(&edge, "sigil_cache_downloads_total"), 1.0);
    for (path, i) in [("/b.bin", 2), ("/c.bin", 3)] {
        assert_eq!(
            client.get(&client.url(&domain, path), &[]).expect(200).body,
            big(i)
        );
    }
    assert_eq!(metric(&edge, "sigil_cache_downloads_total"), 3.0);
    let held = dir_bytes(&dir.join("blobs"));
    assert!(held <= 1024 * 1024, "{held} bytes in a 1 MiB cache");
    assert!(held > 0);
    // What was unlinked is fetched again when asked for (served from its map meanwhile, or
    // downloaded anew).
    for (path, i) in [("/a.bin", 1), ("/b.bin", 2), ("/c.bin", 3)] {
        assert_eq!(
            client.get(&client.url(&domain, path), &[]).expect(200).body,
            big(i)
        );
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A 25 MiB upload through an edge is streamed to the control plane, never held whole: the
/// edge's peak memory grows by far less than the upload.
#[test]
fn a_large_upload_through_an_edge_is_streamed() {
    let fleet = Fleet::new();
    let ctl = control(&fleet);
    let edge = start_edge(&fleet, &ctl);
    let api = Api::through_edge(edge.sigil.http);
    let svc = api.service("stream");
    let asset = api
        .post(
            &format!("/v1/Services/{svc}/Assets"),
            &[("FriendlyName", "big")],
        )
        .expect(201)
        .s("sid");
    let before = peak_rss_kib(edge.sigil.pid());
    let content: Vec<u8> = (0..25 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let r = api
        .upload(
            &format!("/v1/Services/{svc}/Assets/{asset}/Versions"),
            vec![
                support::Part::text("Path", "/big.bin"),
                support::Part::text("Visibility", "public"),
                support::Part::file(
                    "Content",
                    content.clone(),
                    "big.bin",
                    "application/octet-stream",
                ),
            ],
        )
        .expect(201);
    assert_eq!(r.json["path"], "/big.bin");
    let grown = peak_rss_kib(edge.sigil.pid()).saturating_sub(before);
    assert!(grown < 12 * 1024, "the edge's peak RSS grew by {grown} KiB");
}

/// An Environment whose Build record is missing is never dropped silently: the edge keeps
/// serving what it served, counts it pending, says so in `/readyz`, retries every second, and
/// switches once the record makes sense again. Edge request lines reach the Logs resource.
#[test]
fn an_environment_that_cannot_be_switched_stays_served_and_visible() {
    let pg = Postgres::start();
    let s3 = S3::start();
    let fleet = Fleet::on(&pg, &s3);
    let ctl = control(&fleet);
    let edge = start_edge(&fleet, &ctl);
    let api = ctl.client();
    let svc = api.service("missing");
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    let zb = build(&api, &svc, &[("/a.txt", b"first".to_vec())]);
    deploy(&api, &svc, &ze, &zb);
    until_served(
        &edge.sigil,
        &domain,
        "/a.txt",
        b"first",
        Duration::from_secs(5),
    );
    let db = fleet
        .metadata()
        .rsplit('/')
        .next()
        .expect("db name")
        .to_owned();
    // The Environment made to name a Build that is not stored (as a damaged record would).
    let ghost = format!("ZB{}", "0".repeat(32));
    let point_at = |from: &str, to: &str| {
        pg.sql(
            &db,
            &format!(
                "UPDATE records SET data = convert_to(replace(convert_from(data, 'UTF8'), '{from}', '{to}'), 'UTF8'), \
                 version = version + 1 WHERE sid = '{ze}'"
            ),
        );
    };
    point_at(&zb, &ghost);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&edge.sigil, "sigil_feed_pending_environments") != 1.0 {
        assert!(Instant::now() < deadline, "never pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, why) = admin(&edge.sigil, "/readyz");
    assert_eq!(status, 200);
    assert!(why.contains("degraded"), "{why}");
    until_served(
        &edge.sigil,
        &domain,
        "/a.txt",
        b"first",
        Duration::from_secs(1),
    );
    // Mended: applied by the retries, without a restart.
    point_at(&ghost, &zb);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&edge.sigil, "sigil_feed_pending_environments") != 0.0 {
        assert!(Instant::now() < deadline, "still pending");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(admin(&edge.sigil, "/readyz").1, "edge: ready\n");
    // The edge's request lines, batched into the Logs resource.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = api
            .get(&format!("/v1/Services/{svc}/Environments/{ze}/Logs"))
            .expect(200);
        let lines = logs.json["logs"].as_array().expect("logs").clone();
        if lines.iter().any(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("/a.txt 200"))
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "no edge line in {lines:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
