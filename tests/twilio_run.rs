//! The Serverless Toolkit's own CLI, `twilio-run`, unmodified, deploys to sigil and promotes,
//! aimed at it by deploy/twilio-run-preload.js; then every asset is checked at the edge.

mod support;

use std::path::Path;
use support::{copy_dir, expect_toolkit_hello, twilio_run, twilio_signature, Sigil, AUTH_TOKEN};

fn run(bin: &Path, dir: &Path, api: &str, args: &[&str]) -> String {
    support::run_twilio_run(bin, dir, api, None, args)
}

#[test]
fn twilio_run_deploys_and_promotes_unmodified() {
    let bin = twilio_run();
    let sigil = Sigil::start();
    let api = sigil.client();
    let proj = tempfile::tempdir().expect("dir");
    let fixture = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/toolkit-project"
    ));
    copy_dir(fixture, proj.path());

    run(
        &bin,
        proj.path(),
        &sigil.api,
        &[
            "deploy",
            "--service-name",
            "sigil-sample",
            "--environment",
            "dev",
            "--override-existing-project",
        ],
    );
    run(
        &bin,
        proj.path(),
        &sigil.api,
        &[
            "promote",
            "--service-name",
            "sigil-sample",
            "--source-environment",
            "dev",
            "--production",
            "--create-environment",
        ],
    );

    let envs = api
        .get("/v1/Services/sigil-sample/Environments")
        .expect(200);
    let envs = envs.json["environments"].as_array().expect("array").clone();
    assert_eq!(envs.len(), 2);
    let build = envs[0]["build_sid"].as_str().expect("deployed").to_owned();
    assert!(
        envs.iter().all(|e| e["build_sid"] == build.as_str()),
        "promoted: {envs:?}"
    );
    let domains: Vec<String> = envs
        .iter()
        .map(|e| e["domain_name"].as_str().expect("domain").to_owned())
        .collect();
    let refs: Vec<&str> = domains.iter().map(String::as_str).collect();
    let edge = sigil.edge(&refs);
    let read = |p: &str| std::fs::read(fixture.join(p)).expect("fixture");
    for d in &domains {
        let index = read("assets/assets/index.html");
        assert_eq!(edge.get(&edge.url(d, "/"), &[]).expect(200).body, index);
        assert_eq!(
            edge.get(&edge.url(d, "/assets/index.html"), &[])
                .expect(200)
                .body,
            index
        );
        assert_eq!(
            edge.get(&edge.url(d, "/logo.txt"), &[]).expect(200).body,
            read("assets/logo.txt")
        );
        edge.get(&edge.url(d, "/secret.json"), &[]).expect(403);
        let url = edge.tls_url(d, "/message.xml");
        edge.get(&url, &[]).expect(403);
        let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
        let r = edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
        assert_eq!(r.body, read("assets/message.protected.xml"));
        expect_toolkit_hello(&edge, d);
    }
}
