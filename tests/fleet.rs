//! Several sigil replicas on one PostgreSQL database and one S3 bucket, racing: the database
//! decides — one winner per unique name, the later-written Deployment active, no Environment
//! on a deleted Build, content uploaded through one replica built and served through another,
//! one first account — and a store that goes away gives bounded 503s, then recovers.

mod support;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use support::postgres::Postgres;
use support::s3::S3;
use support::{Api, Fleet, Sigil};

/// Runs `work(i, api_i)` on every replica at once (released together by a barrier); the
/// results in replica order.
fn race<T: Send>(replicas: &[Sigil], work: impl Fn(usize, &Api) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(replicas.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    let api = r.client();
                    barrier.wait();
                    work(i, &api)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

fn statuses(mut s: Vec<u16>) -> Vec<u16> {
    s.sort_unstable();
    s
}

#[test]
fn one_winner_for_every_unique_name_across_replicas() {
    let fleet = Fleet::new();
    let replicas = [fleet.replica(), fleet.replica(), fleet.replica()];
    let api = replicas[0].client();
    for round in 0..5 {
        let name = format!("same-{round}");
        let got = race(&replicas, |_, api| {
            api.post(
                "/v1/Services",
                &[("UniqueName", &name), ("FriendlyName", "x")],
            )
            .status
        });
        assert_eq!(statuses(got), [201, 409, 409], "Service {name}");
    }
    let svc = api.service("envs");
    for round in 0..5 {
        let suffix = format!("s{round}");
        let got = race(&replicas, |i, api| {
            let unique = format!("env-{round}-{i}");
            api.post(
                &format!("/v1/Services/{svc}/Environments"),
                &[("UniqueName", unique.as_str()), ("DomainSuffix", &suffix)],
            )
            .status
        });
        assert_eq!(statuses(got), [201, 409, 409], "suffix {suffix}");
    }
    let env = api.environment(&svc, "vars", Some("vars")).s("sid");
    for round in 0..5 {
        let key = format!("KEY_{round}");
        let got = race(&replicas, |_, api| {
            api.post(
                &format!("/v1/Services/{svc}/Environments/{env}/Variables"),
                &[("Key", key.as_str()), ("Value", "v")],
            )
            .status
        });
        assert_eq!(statuses(got), [201, 409, 409], "variable {key}");
    }
    // Exactly one of each, whichever replica is asked.
    for r in &replicas {
        let list = r.client().get("/v1/Services?PageSize=100").expect(200);
        let names: Vec<&str> = list.json["services"]
            .as_array()
            .expect("services")
            .iter()
            .filter_map(|s| s["unique_name"].as_str())
            .filter(|n| n.starts_with("same-"))
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
    }
}

#[test]
fn racing_deployments_leave_the_later_written_one_active() {
    let fleet = Fleet::new();
    let replicas = [fleet.replica(), fleet.replica(), fleet.replica()];
    let api = replicas[0].client();
    let svc = api.service("deploys");
    let env = api.environment(&svc, "prod", None).s("sid");
    let builds: Vec<String> = (0..3)
        .map(|i| {
            let (_, v) = api.version(
                &svc,
                "Assets",
                &format!("/b{i}.txt"),
                "public",
                format!("build {i}").as_bytes(),
                "text/plain",
            );
            let (zb, status) = api.build(&svc, &[&v], &[]);
            assert_eq!(status, "completed");
            zb
        })
        .collect();
    let deployments = format!("/v1/Services/{svc}/Environments/{env}/Deployments");
    for round in 0..20 {
        let got = race(&replicas, |i, api| {
            // Each round deploys builds other than the one active, so none is "already deployed".
            let b = &builds[(i + round) % 3];
            api.post(&deployments, &[("BuildSid", b.as_str())]).status
        });
        let created = got.iter().filter(|s| **s == 201).count();
        assert!(
            got.iter().all(|s| *s == 201 || *s == 409) && created >= 1,
            "{got:?}"
        );
        // The Environment's Build is the newest recorded Deployment's, on every replica.
        for r in &replicas {
            let c = r.client();
            let active = c
                .get(&format!("/v1/Services/{svc}/Environments/{env}"))
                .expect(200)
                .s("build_sid");
            let newest = c.get(&deployments).expect(200).json["deployments"][0]["build_sid"]
                .as_str()
                .expect("a deployment")
                .to_owned();
            assert_eq!(active, newest, "round {round}");
        }
    }
    // Racing batches that insert a child and update its parent wait for one another, not
    // for the server to break a deadlock (a second each, by default: three racers once took
    // more than the store's 10 s bound and got a 503).
    drop(api);
    drop(replicas);
    let db = fleet
        .metadata()
        .rsplit('/')
        .next()
        .expect("a database name");
    assert_eq!(Postgres::shared().deadlocks_once_idle(db), 0);
}

#[test]
fn a_build_deleted_while_deployed_elsewhere_never_leaves_it_active() {
    let fleet = Fleet::new();
    let replicas = [fleet.replica(), fleet.replica()];
    let api = replicas[0].client();
    let svc = api.service("deletes");
    let env = api.environment(&svc, "prod", None).s("sid");
    let (_, v) = api.version(&svc, "Assets", "/x.txt", "public", b"x", "text/plain");
    let mut outcomes = std::collections::BTreeSet::new();
    for _ in 0..8 {
        let (zb, _) = api.build(&svc, &[&v], &[]);
        let got = race(&replicas, |i, api| {
            if i == 0 {
                api.post(
                    &format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
                    &[("BuildSid", zb.as_str())],
                )
                .status
            } else {
                api.delete(&format!("/v1/Services/{svc}/Builds/{zb}"))
                    .status
            }
        });
        // Either the Deployment won (the deletion is refused) or the deletion did (the
        // Deployment names a Build that is gone).
        assert!(
            matches!(got[..], [201, 409] | [400, 204]),
            "deploy {}, delete {}",
            got[0],
            got[1]
        );
        outcomes.insert(got[0]);
        let active = api
            .get(&format!("/v1/Services/{svc}/Environments/{env}"))
            .expect(200);
        if let Some(b) = active.json["build_sid"].as_str() {
            api.get(&format!("/v1/Services/{svc}/Builds/{b}"))
                .expect(200);
        }
    }
    eprintln!("deploy outcomes seen: {outcomes:?}");
}

#[test]
fn content_uploaded_through_one_replica_is_built_and_served_through_another() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let (api_a, api_b) = (a.client(), b.client());
    let svc = api_a.service("across");
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let (asset, version) = api_a.version(
        &svc,
        "Assets",
        "/big.bin",
        "public",
        &content,
        "application/octet-stream",
    );
    // At once through B: fetched, listed, built and deployed.
    api_b
        .get(&format!(
            "/v1/Services/{svc}/Assets/{asset}/Versions/{version}"
        ))
        .expect(200);
    let listed = api_b
        .get(&format!("/v1/Services/{svc}/Assets/{asset}/Versions"))
        .expect(200);
    assert_eq!(
        listed.json["asset_versions"]
            .as_array()
            .expect("list")
            .len(),
        1
    );
    let (zb, status) = api_b.build(&svc, &[&version], &[]);
    assert_eq!(status, "completed");
    let env = api_b.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    api_b
        .post(
            &format!("/v1/Services/{svc}/Environments/{ze}/Deployments"),
            &[("BuildSid", zb.as_str())],
        )
        .expect(201);
    // B never held the bytes, yet its edge has them before the Deployment's 201: it fetched
    // them from the bucket, checked, before it switched the Environment (prefetch, then flip).
    assert!(b
        .data()
        .join("blobs")
        .join(&support::sha256_hex(&content)[..2])
        .join(support::sha256_hex(&content))
        .exists());
    let edge = b.edge(&[&domain]);
    assert_eq!(
        edge.get(&edge.url(&domain, "/big.bin"), &[])
            .expect(200)
            .body,
        content
    );
    // A's edge learns the Deployment made through B by itself, and serves it too.
    let edge_a = a.edge(&[&domain]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = edge_a.get(&edge_a.url(&domain, "/big.bin"), &[]);
        if r.status == 200 {
            assert_eq!(r.body, content);
            break;
        }
        assert!(Instant::now() < deadline, "A never served B's Deployment");
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the deletion of the Environment, through B: gone from A's edge too.
    api_b
        .delete(&format!("/v1/Services/{svc}/Environments/{ze}"))
        .expect(204);
    let deadline = Instant::now() + Duration::from_secs(10);
    while edge_a.get(&edge_a.url(&domain, "/big.bin"), &[]).status != 404 {
        assert!(
            Instant::now() < deadline,
            "A still serves a deleted Environment"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A Function Version's content too.
    let (func, fv) = api_b.version(
        &svc,
        "Functions",
        "/fn",
        "public",
        b"exports.handler=1",
        "application/javascript",
    );
    let got = api_a
        .get(&format!(
            "/v1/Services/{svc}/Functions/{func}/Versions/{fv}/Content"
        ))
        .expect(200);
    assert_eq!(got.s("content"), "exports.handler=1");
}

#[test]
fn replicas_starting_at_once_on_an_empty_store_create_one_account() {
    let fleet = Fleet::new();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let banners: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| {
                let data = d.path().join("data");
                let cmd = fleet.command(&data);
                scope.spawn(move || Sigil::spawn_command(cmd, &data))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").banner.clone())
            .collect()
    });
    let shown: usize = banners
        .iter()
        .flatten()
        .filter(|l| l.starts_with("sigil: auth token "))
        .count();
    assert_eq!(shown, 1, "{banners:?}");
}

/// One request made under load, and what came of it.
#[derive(Debug)]
struct Seen {
    what: &'static str,
    status: u16,
    code: Option<u64>,
    took: Duration,
    /// For an acknowledged upload: its Version's URL.
    version: Option<String>,
}

/// Uploads, lists and fetches from the edge in a loop until `stop`.
fn load(
    client: usize,
    sigil: &Sigil,
    svc: &str,
    versions: &str,
    domain: &str,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<Seen> {
    let api = sigil.client();
    let edge = sigil.edge(&[domain]);
    let mut seen = Vec::new();
    let mut n = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        n += 1;
        let name = format!("/load-{client}-{n}.txt");
        let t = Instant::now();
        let r = api.upload(
            versions,
            vec![
                support::Part::text("Path", &name),
                support::Part::text("Visibility", "public"),
                support::Part::file("Content", name.as_bytes().to_vec(), "f", "text/plain"),
            ],
        );
        let version = (r.status == 201).then(|| {
            let sid = r.s("sid");
            format!("{}/{sid}", versions)
        });
        seen.push(Seen {
            what: "upload",
            status: r.status,
            code: r.json["code"].as_u64(),
            took: t.elapsed(),
            version,
        });
        let t = Instant::now();
        let r = api.get(&format!("/v1/Services/{svc}"));
        seen.push(Seen {
            what: "fetch",
            status: r.status,
            code: r.json["code"].as_u64(),
            took: t.elapsed(),
            version: None,
        });
        let t = Instant::now();
        let e = edge.get(&edge.url(domain, "/kept.txt"), &[]);
        seen.push(Seen {
            what: "edge",
            status: e.status,
            code: None,
            took: t.elapsed(),
            version: None,
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

#[test]
fn stores_down_give_bounded_503s_and_recovery_without_a_restart() {
    let pg = Postgres::start();
    let s3 = S3::start();
    let fleet = Fleet::on(&pg, &s3);
    // Everything it logs, at the most talkative level, goes to a file checked at the end.
    let log_dir = tempfile::tempdir().expect("dir");
    let log_path = log_dir.path().join("stderr");
    let log = std::fs::File::create(&log_path).expect("log file");
    let sigil = fleet.replica_with(|cmd| {
        cmd.env("SIGIL_LOG", "debug").stderr(log);
    });
    let api = sigil.client();
    let svc = api.service("faults");
    let (_, v) = api.version(&svc, "Assets", "/kept.txt", "public", b"kept", "text/plain");
    let (_, cold) = api.version(&svc, "Assets", "/cold.txt", "public", b"cold", "text/plain");
    let (zb, _) = api.build(&svc, &[&v, &cold], &[]);
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    api.post(
        &format!("/v1/Services/{svc}/Environments/{ze}/Deployments"),
        &[("BuildSid", zb.as_str())],
    )
    .expect(201);
    let edge = sigil.edge(&[&domain]);
    edge.get(&edge.url(&domain, "/kept.txt"), &[]).expect(200);
    // A second replica's edge, which has fetched /kept.txt from the bucket but not /cold.txt.
    let other = fleet.replica();
    let other_edge = other.edge(&[&domain]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while other_edge
        .get(&other_edge.url(&domain, "/kept.txt"), &[])
        .status
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "the second replica never served the site"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let versions = api.versions_url(&svc, "Assets");
    let upload = |name: &str| {
        api.upload(
            &versions,
            vec![
                support::Part::text("Path", name),
                support::Part::text("Visibility", "public"),
                support::Part::file("Content", name.as_bytes().to_vec(), "f", "text/plain"),
            ],
        )
    };

    // Clients keep uploading and reading throughout, through both outages.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let seen = std::thread::scope(|scope| {
        let loaders: Vec<_> = (0..3)
            .map(|c| {
                let (sigil, svc, versions, domain, stop) =
                    (&sigil, &svc, &versions, &domain, &stop);
                scope.spawn(move || load(c, sigil, svc, versions, domain, stop))
            })
            .collect();
        // PostgreSQL down: Twilio JSON 503 in bounded time; the edge serves on.
        pg.stop();
        let t = Instant::now();
        let r = api.get("/v1/Services");
        assert_eq!(
            (r.status, &r.json["code"]),
            (503, &serde_json::json!(20503)),
            "{}",
            r.text
        );
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        edge.get(&edge.url(&domain, "/kept.txt"), &[]).expect(200);
        pg.start_server();
        let deadline = Instant::now() + Duration::from_secs(20);
        while api.get("/v1/Services").status != 200 {
            assert!(Instant::now() < deadline, "the API did not recover");
            std::thread::sleep(Duration::from_millis(200));
        }

        // The object store down: an upload is refused with 503 in bounded time, nothing is
        // recorded; back up, the same upload succeeds.
        s3.stop();
        let t = Instant::now();
        let r = upload("/during.txt");
        assert_eq!(
            (r.status, &r.json["code"]),
            (503, &serde_json::json!(20503)),
            "{}",
            r.text
        );
        assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
        edge.get(&edge.url(&domain, "/kept.txt"), &[]).expect(200);
        // What an edge has is served; what it would fetch is a quick 503, not a 500.
        other_edge
            .get(&other_edge.url(&domain, "/kept.txt"), &[])
            .expect(200);
        let t = Instant::now();
        let cold = other_edge
            .get(&other_edge.url(&domain, "/cold.txt"), &[])
            .expect(503);
        assert_eq!(cold.header("retry-after"), Some("5"));
        assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
        s3.start_server();
        upload("/after.txt").expect(201);
        assert_eq!(
            other_edge
                .get(&other_edge.url(&domain, "/cold.txt"), &[])
                .expect(200)
                .body,
            b"cold"
        );

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        loaders
            .into_iter()
            .flat_map(|l| l.join().expect("client"))
            .collect::<Vec<Seen>>()
    });
    // Every answer under load was a success or Twilio's 503, within the bound; the edge
    // always served; every upload acknowledged is there.
    let (mut ok, mut unavailable) = (0, 0);
    for s in &seen {
        match (s.status, s.code) {
            (200 | 201, _) => ok += 1,
            (503, Some(20503)) => unavailable += 1,
            other => panic!("{other:?} for {}", s.what),
        }
        assert!(
            s.took < Duration::from_secs(31),
            "{} took {:?}",
            s.what,
            s.took
        );
        if let Some(url) = &s.version {
            api.get(url).expect(200);
        }
    }
    assert!(
        ok > 0 && unavailable > 0,
        "{ok} ok, {unavailable} unavailable"
    );
    eprintln!("under load: {ok} answered, {unavailable} refused with 503");

    // Not one secret in anything it printed, errors included.
    let logged = std::fs::read_to_string(&log_path).expect("log");
    assert!(
        logged.contains("storage unavailable"),
        "the failures were logged"
    );
    for text in [logged, sigil.banner.join("\n")] {
        assert!(
            !text.contains(support::postgres::PASSWORD),
            "a password in {text}"
        );
        assert!(
            !text.contains(support::s3::SECRET_KEY),
            "an S3 secret in {text}"
        );
    }
}

#[test]
fn list_pages_neither_skip_nor_repeat_while_another_replica_writes() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.replica(), fleet.replica());
    let api_b = b.client();
    let existing: Vec<String> = (0..40)
        .map(|i| api_b.service(&format!("before-{i}")))
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let api = a.client();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                api.service(&format!("during-{n}"));
                if n % 3 == 0 {
                    // Deleting some of its own too: pages must not shift under a reader.
                    let sid = api.service(&format!("gone-{n}"));
                    api.delete(&format!("/v1/Services/{sid}")).expect(204);
                }
                n += 1;
            }
            n
        });
        for round in 0..3 {
            let mut url = "/v1/Services?PageSize=5".to_owned();
            let mut listed = Vec::new();
            loop {
                let page = api_b.get(&url).expect(200);
                listed.extend(
                    page.json["services"]
                        .as_array()
                        .expect("services")
                        .iter()
                        .map(|s| s["sid"].as_str().expect("sid").to_owned()),
                );
                match page.json["meta"]["next_page_url"].as_str() {
                    Some(next) => url = next.to_owned(),
                    None => break,
                }
            }
            let unique: std::collections::HashSet<&String> = listed.iter().collect();
            assert_eq!(
                unique.len(),
                listed.len(),
                "round {round}: a record listed twice"
            );
            for sid in &existing {
                assert!(unique.contains(sid), "round {round}: {sid} skipped");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(writer.join().expect("writer") > 0);
    });
}
