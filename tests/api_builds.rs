//! Builds are immutable manifests; Deployments point Environments at completed Builds;
//! rollback is deploying an older Build; domains follow `{unique_name}-{4 digits}[-{suffix}]`.

mod support;

use support::{sha256_hex, Sigil};

#[test]
fn a_build_whose_content_is_gone_fails_with_the_reason() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("fails");
    let content = b"this blob will vanish";
    let (_, av) = api.version(&zs, "Assets", "/gone.txt", "public", content, "text/plain");
    let sha = sha256_hex(content);
    sigil.remove_blob(&sha);
    let (zb, status) = api.build(&zs, &[&av], &[]);
    assert_eq!(status, "failed");
    let st = api
        .get(&format!("/v1/Services/{zs}/Builds/{zb}/Status"))
        .expect(200);
    let why = st.header("sigil-build-error").expect("reason header");
    assert!(
        why.contains("/gone.txt") && why.contains("missing"),
        "{why}"
    );
    assert_eq!(
        api.get(&format!("/v1/Services/{zs}/Builds/{zb}"))
            .expect(200)
            .s("status"),
        "failed"
    );
    let ze = api.environment(&zs, "prod", None).s("sid");
    let r = api
        .post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            &[("BuildSid", &zb)],
        )
        .expect_error(400, 20001);
    assert!(r.s("message").contains("failed"));
}

#[test]
fn builds_do_not_change_when_their_versions_go() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("immutable");
    let (ah, av) = api.version(
        &zs,
        "Assets",
        "/keep.txt",
        "protected",
        b"keep",
        "text/plain",
    );
    let (zb, status) = api.build(&zs, &[&av], &[]);
    assert_eq!(status, "completed");
    let before = api
        .get(&format!("/v1/Services/{zs}/Builds/{zb}"))
        .expect(200)
        .json;
    // Deleting the Asset deletes its versions, not the Build's record of them.
    api.delete(&format!("/v1/Services/{zs}/Assets/{ah}"))
        .expect(204);
    api.get(&format!("/v1/Services/{zs}/Assets/{ah}/Versions/{av}"))
        .expect_error(404, 20404);
    let after = api
        .get(&format!("/v1/Services/{zs}/Builds/{zb}"))
        .expect(200)
        .json;
    assert_eq!(before, after);
    // It still deploys.
    let ze = api.environment(&zs, "prod", None).s("sid");
    api.post(
        &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
        &[("BuildSid", &zb)],
    )
    .expect(201);
}

#[test]
fn deploy_history_and_rollback() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("rollback");
    let (_, v1) = api.version(&zs, "Assets", "/index.html", "public", b"v1", "text/html");
    let (_, v2) = api.version(&zs, "Assets", "/index.html", "public", b"v2", "text/html");
    let (b1, _) = api.build(&zs, &[&v1], &[]);
    let (b2, _) = api.build(&zs, &[&v2], &[]);
    let ze = api.environment(&zs, "prod", None).s("sid");
    let deps = format!("/v1/Services/{zs}/Environments/{ze}/Deployments");
    let env = format!("/v1/Services/{zs}/Environments/{ze}");
    for b in [&b1, &b2, &b1] {
        api.post(&deps, &[("BuildSid", b)]).expect(201);
        assert_eq!(api.get(&env).expect(200).s("build_sid"), *b);
    }
    let history: Vec<String> = api.get(&deps).expect(200).json["deployments"]
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["build_sid"].as_str().expect("sid").to_owned())
        .collect();
    assert_eq!(
        history,
        [b1.clone(), b2.clone(), b1.clone()],
        "newest first"
    );
    // A Build of another Service cannot be deployed here.
    let other = api.service("other-svc");
    let (_, ov) = api.version(&other, "Assets", "/x", "public", b"x", "text/plain");
    let (ob, _) = api.build(&other, &[&ov], &[]);
    api.post(&deps, &[("BuildSid", &ob)])
        .expect_error(400, 20001);
    // b2 is not deployed anywhere now: it can be deleted; b1 cannot.
    api.delete(&format!("/v1/Services/{zs}/Builds/{b2}"))
        .expect(204);
    api.delete(&format!("/v1/Services/{zs}/Builds/{b1}"))
        .expect(409);
    // Deleting the Environment frees the Build.
    api.delete(&env).expect(204);
    api.delete(&format!("/v1/Services/{zs}/Builds/{b1}"))
        .expect(204);
}

#[test]
fn domains_use_the_configured_base_and_one_set_of_digits_per_service() {
    let sigil = Sigil::start_with(&["--domain", "Twil.IO"]);
    let api = sigil.client();
    let svc = api
        .post(
            "/v1/Services",
            &[("UniqueName", "Thanos"), ("FriendlyName", "t")],
        )
        .expect(201);
    let base = svc.s("domain_base");
    let re = regex::Regex::new(r"^thanos-\d{4}$").expect("re");
    assert!(re.is_match(&base), "{base}");
    let zs = svc.s("sid");
    let prod = api.environment(&zs, "production", None);
    let dev = api.environment(&zs, "dev-environment", Some("Dev"));
    let stage = api.environment(&zs, "stage-environment", Some("stage"));
    assert_eq!(prod.s("domain_name"), format!("{base}.twil.io"));
    assert_eq!(dev.s("domain_name"), format!("{base}-dev.twil.io"));
    assert_eq!(dev.s("domain_suffix"), "Dev");
    assert_eq!(stage.s("domain_name"), format!("{base}-stage.twil.io"));
}

#[test]
fn a_bad_configuration_exits_64() {
    for args in [
        vec!["--domain", "not a domain"],
        vec!["--public-api-url", "ftp://x"],
        vec!["--api", "nonsense"],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"))
            .arg("serve")
            .args(&args)
            .output()
            .expect("runs");
        let code = out.status.code();
        // clap's own parse errors exit 2; values clap accepts but sigil refuses exit 64.
        assert!(code == Some(64) || code == Some(2), "{args:?}: {code:?}");
        assert!(!out.stderr.is_empty());
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args(["serve", "--domain", "bad_domain"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(64));
}

/// A Build reuses the br/gzip variants an earlier Build of the Service made for the same
/// content instead of compressing it again; new content is compressed, and the reused
/// variants are served.
#[test]
fn builds_reuse_earlier_variants_of_the_same_content() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let svc = api.service("variants");
    let page = "<!doctype html><p>hello, variants</p>".repeat(50);
    let (_, v1) = api.version(
        &svc,
        "Assets",
        "/index.html",
        "public",
        page.as_bytes(),
        "text/html",
    );
    let made = || sigil.metric("sigil_build_variants_made_total");
    let reused = || sigil.metric("sigil_build_variants_reused_total");
    let (_, status) = api.build(&svc, &[&v1], &[]);
    assert_eq!(status, "completed");
    assert_eq!((made(), reused()), (1, 0));
    let (zb2, _) = api.build(&svc, &[&v1], &[]);
    assert_eq!((made(), reused()), (1, 1));
    let (_, v2) = api.version(
        &svc,
        "Assets",
        "/other.css",
        "public",
        b"p { color: red }",
        "text/css",
    );
    let (_, _) = api.build(&svc, &[&v1, &v2], &[]);
    assert_eq!((made(), reused()), (2, 2));
    // The reused variants are served.
    let env = api.environment(&svc, "prod", None);
    let (ze, domain) = (env.s("sid"), env.s("domain_name"));
    api.post(
        &format!("/v1/Services/{svc}/Environments/{ze}/Deployments"),
        &[("BuildSid", zb2.as_str())],
    )
    .expect(201);
    let edge = sigil.edge(&[&domain]);
    let br = edge
        .get(
            &edge.url(&domain, "/index.html"),
            &[("Accept-Encoding", "br")],
        )
        .expect(200);
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert!(br.body.len() < page.len());
}
