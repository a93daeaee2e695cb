//! Deployments at the edge: live before the POST returns, one atomic swap (no request sees a
//! mix of builds, none fails) under concurrent load, rollback, deletions, and restart.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use support::Sigil;

/// A build's content: every file names its build, so a mixed response is detectable.
fn files(tag: &str) -> Vec<(String, Vec<u8>)> {
    (0..5)
        .map(|i| {
            (
                format!("/f{i}.txt"),
                format!("{tag}:{i}:").repeat(2000).into_bytes(),
            )
        })
        .collect()
}

fn build(api: &support::Api, site: &support::Site, tag: &str) -> String {
    let fs = files(tag);
    let refs: Vec<(&str, &str, &[u8], &str)> = fs
        .iter()
        .map(|(p, c)| (p.as_str(), "public", c.as_slice(), "text/plain"))
        .collect();
    let versions: Vec<String> = refs
        .iter()
        .map(|(p, v, c, t)| api.version(&site.svc, "Assets", p, v, c, t).1)
        .collect();
    let v: Vec<&str> = versions.iter().map(String::as_str).collect();
    api.build(&site.svc, &v, &[]).0
}

#[test]
fn swaps_under_load_are_atomic_and_live_on_return() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site("swap", &[("/seed.txt", "public", b"seed", "text/plain")]);
    let a = build(&api, &site, "A");
    let b = build(&api, &site, "B");
    api.deploy(&site, &a);
    let edge = Arc::new(sigil.edge(&[&site.domain]));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let (edge, stop, ok, bad) = (edge.clone(), stop.clone(), ok.clone(), bad.clone());
            let domain = site.domain.clone();
            std::thread::spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::Relaxed) {
                    let path = format!("/f{}.txt", i % 5);
                    let url = if i % 2 == 0 {
                        edge.url(&domain, &path)
                    } else {
                        edge.tls_url(&domain, &path)
                    };
                    let r = edge.get(&url, &[]);
                    let body = r.text();
                    let whole = |tag: &str| body == format!("{tag}:{}:", i % 5).repeat(2000);
                    if r.status == 200 && (whole("A") || whole("B")) {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Flip between the builds; after each POST returns, the edge already serves the new one.
    for round in 0..20 {
        let (build, tag) = if round % 2 == 0 { (&b, "B") } else { (&a, "A") };
        api.deploy(&site, build);
        let now = edge
            .get(&edge.url(&site.domain, "/f0.txt"), &[])
            .expect(200);
        assert_eq!(
            now.text(),
            format!("{tag}:0:").repeat(2000),
            "round {round}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    assert_eq!(bad, 0, "{bad} failed or mixed responses of {}", ok + bad);
    assert!(ok > 100, "only {ok} requests ran");
}

#[test]
fn rollback_deletions_and_restart() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site("life", &[("/v.txt", "public", b"one", "text/plain")]);
    let first = api.active_build(&site);
    let second = api.redeploy(&site, &[("/v.txt", "public", b"two", "text/plain")]);
    let other = api.deploy_site("other", &[("/o.txt", "public", b"other", "text/plain")]);
    let edge = sigil.edge(&[&site.domain, &other.domain]);
    let v = || edge.get(&edge.url(&site.domain, "/v.txt"), &[]);
    assert_eq!(v().expect(200).body, b"two");
    api.deploy(&site, &first); // rollback
    assert_eq!(v().expect(200).body, b"one");
    api.deploy(&site, &second);

    // Restart (kill -9): every active deployment is served again.
    let data = sigil.data().to_owned();
    let _dir = sigil.kill9();
    let sigil = Sigil::start_in(&data, &[], true);
    let api = sigil.client();
    let edge = sigil.edge(&[&site.domain, &other.domain]);
    assert_eq!(
        edge.get(&edge.url(&site.domain, "/v.txt"), &[])
            .expect(200)
            .body,
        b"two"
    );
    assert_eq!(
        edge.get(&edge.url(&other.domain, "/o.txt"), &[])
            .expect(200)
            .body,
        b"other"
    );

    // Deleting the Environment, or the whole Service, takes the site down at once.
    api.delete(&format!(
        "/v1/Services/{}/Environments/{}",
        site.svc, site.env
    ))
    .expect(204);
    edge.get(&edge.url(&site.domain, "/v.txt"), &[]).expect(404);
    api.delete(&format!("/v1/Services/{}", other.svc))
        .expect(204);
    edge.get(&edge.url(&other.domain, "/o.txt"), &[])
        .expect(404);
}

#[test]
fn environments_of_one_service_serve_their_own_builds() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let prod = api.deploy_site("multi", &[("/x.txt", "public", b"prod", "text/plain")]);
    let dev_env = api.environment(&prod.svc, "dev-environment", Some("dev"));
    let dev = support::Site {
        domain: dev_env.s("domain_name"),
        env: dev_env.s("sid"),
        svc: prod.svc.clone(),
    };
    api.redeploy(&dev, &[("/x.txt", "public", b"dev", "text/plain")]);
    let edge = sigil.edge(&[&prod.domain, &dev.domain]);
    assert_eq!(
        edge.get(&edge.url(&prod.domain, "/x.txt"), &[])
            .expect(200)
            .body,
        b"prod"
    );
    assert_eq!(
        edge.get(&edge.url(&dev.domain, "/x.txt"), &[])
            .expect(200)
            .body,
        b"dev"
    );
    // An Environment with nothing deployed is not served.
    let empty = api.environment(&prod.svc, "stage-environment", Some("stage"));
    edge.get(
        &format!("http://127.0.0.1:{}/x.txt", edge.http_port),
        &[("Host", &empty.s("domain_name"))],
    )
    .expect(404);
}

/// A rollback never moves Last-Modified backwards: a client that revalidates with only
/// If-Modified-Since (the newer Build's date) gets the rolled-back content, not a 304 that
/// would keep the newer one.
#[test]
fn a_rollback_moves_last_modified_forward() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site("dates", &[("/v.txt", "public", b"old", "text/plain")]);
    let first = api.active_build(&site);
    // HTTP dates have whole seconds.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    api.redeploy(&site, &[("/v.txt", "public", b"new", "text/plain")]);
    let edge = sigil.edge(&[&site.domain]);
    let url = edge.url(&site.domain, "/v.txt");
    let newer = edge.get(&url, &[]).expect(200);
    assert_eq!(newer.body, b"new");
    let seen = newer.header("last-modified").expect("lm").to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    api.deploy(&site, &first); // rollback
    let r = edge.get(&url, &[("If-Modified-Since", &seen)]).expect(200);
    assert_eq!(r.body, b"old");
    let rolled = r.header("last-modified").expect("lm");
    let when = |d: &str| httpdate::parse_http_date(d).expect("an HTTP date");
    assert!(when(rolled) > when(&seen), "{rolled} after {seen}");
    // And the same date revalidates as before.
    edge.get(&url, &[("If-Modified-Since", rolled)]).expect(304);
}
