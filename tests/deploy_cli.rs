//! `sigil deploy`, `deployments`, `rollback`, `promote` — over HTTP against a running sigil,
//! with the sample Serverless Toolkit project in tests/fixtures/toolkit-project.

mod support;

use std::path::Path;
use std::process::Command;

use support::{
    expect_toolkit_hello, sigil_cli, toolkit_project, twilio_signature, Sigil, ACCOUNT_SID,
    AUTH_TOKEN,
};

fn field<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("{prefix:?} not in {out}"))
}

/// Checks every asset of the sample project at `domain`.
fn check_site(sigil: &Sigil, domain: &str, dir: &Path) {
    let edge = sigil.edge(&[domain]);
    let read = |p: &str| std::fs::read(dir.join(p)).expect("fixture file");
    let index = read("assets/assets/index.html");
    assert_eq!(
        edge.get(&edge.url(domain, "/"), &[]).expect(200).body,
        index
    );
    assert_eq!(
        edge.get(&edge.url(domain, "/assets/index.html"), &[])
            .expect(200)
            .body,
        index
    );
    assert_eq!(
        edge.get(&edge.url(domain, "/logo.txt"), &[])
            .expect(200)
            .body,
        read("assets/logo.txt")
    );
    edge.get(&edge.url(domain, "/secret.json"), &[]).expect(403);
    let url = edge.url(domain, "/message.xml");
    edge.get(&url, &[]).expect(403);
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let r = edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
    assert_eq!(r.body, read("assets/message.protected.xml"));
    expect_toolkit_hello(&edge, domain);
}

#[test]
fn deploy_redeploy_history_rollback_promote() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let proj = toolkit_project();
    let dir = proj.path();

    let (code, out, err) = sigil_cli(&sigil, dir, &["deploy", "--environment", "dev"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let dev_domain = field(&out, "deployed ")
        .split(" to ")
        .nth(1)
        .expect("domain")
        .to_owned();
    assert!(
        dev_domain.starts_with("sigil-sample-") && dev_domain.ends_with("-dev.localhost"),
        "{dev_domain}"
    );
    assert!(out.contains("uploaded 5, unchanged 0"), "{out}");
    for line in [
        "/assets/index.html                       public",
        "/message.xml                             protected",
        "/secret.json                             private",
        "/hello                                   public     function",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    check_site(&sigil, &dev_domain, dir);
    let svc = api.get("/v1/Services/sigil-sample").expect(200).s("sid");
    let count_versions = || -> usize {
        let assets = api.get(&format!("/v1/Services/{svc}/Assets")).expect(200);
        assets.json["assets"]
            .as_array()
            .expect("assets")
            .iter()
            .map(|a| {
                let sid = a["sid"].as_str().expect("sid");
                api.get(&format!("/v1/Services/{svc}/Assets/{sid}/Versions"))
                    .expect(200)
                    .json["asset_versions"]
                    .as_array()
                    .expect("versions")
                    .len()
            })
            .sum()
    };
    assert_eq!(count_versions(), 4);

    // A second deploy uploads nothing unchanged.
    let (code, out, _) = sigil_cli(&sigil, dir, &["deploy", "--environment", "dev"]);
    assert_eq!(code, 0);
    assert!(out.contains("uploaded 0, unchanged 5"), "{out}");
    assert!(out.starts_with("nothing changed"), "{out}");
    assert_eq!(count_versions(), 4);

    // One changed file: one upload, a new Build.
    std::fs::write(dir.join("assets/logo.txt"), "a new logo\n").expect("write");
    let (code, out, _) = sigil_cli(&sigil, dir, &["deploy", "--environment", "dev"]);
    assert_eq!(code, 0);
    assert!(out.contains("uploaded 1, unchanged 4"), "{out}");
    let edge = sigil.edge(&[&dev_domain]);
    assert_eq!(
        edge.get(&edge.url(&dev_domain, "/logo.txt"), &[])
            .expect(200)
            .body,
        b"a new logo\n"
    );

    // History, newest first, the active one marked.
    let (code, out, _) = sigil_cli(&sigil, dir, &["deployments", "--environment", "dev"]);
    assert_eq!(code, 0);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("ZD"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].trim_end().ends_with('*') && !rows[1].trim_end().ends_with('*'),
        "{out}"
    );
    let first_build = rows[1].split_whitespace().nth(1).expect("build").to_owned();
    let second_build = rows[0].split_whitespace().nth(1).expect("build").to_owned();

    // Rollback to the previous Build, then forward with --to.
    let (code, out, _) = sigil_cli(&sigil, dir, &["rollback", "--environment", "dev"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&first_build));
    let original = toolkit_project();
    check_site(&sigil, &dev_domain, original.path());
    let (code, _, _) = sigil_cli(
        &sigil,
        dir,
        &["rollback", "--environment", "dev", "--to", &second_build],
    );
    assert_eq!(code, 0);
    assert_eq!(
        edge.get(&edge.url(&dev_domain, "/logo.txt"), &[])
            .expect(200)
            .body,
        b"a new logo\n"
    );

    // Promote dev to production (created on the way).
    let (code, out, err) = sigil_cli(&sigil, dir, &["promote", "--from", "dev", "--to", ""]);
    assert_eq!(code, 0, "{out}{err}");
    let prod_domain = dev_domain.replace("-dev.localhost", ".localhost");
    assert!(out.contains(&prod_domain), "{out}");
    let edge = sigil.edge(&[&prod_domain]);
    assert_eq!(
        edge.get(&edge.url(&prod_domain, "/logo.txt"), &[])
            .expect(200)
            .body,
        b"a new logo\n"
    );
    let (code, _, err) = sigil_cli(&sigil, dir, &["promote", "--from", "dev", "--to", ""]);
    assert_eq!(code, 1);
    assert!(err.contains("already active"), "{err}");
}

#[test]
fn errors_name_the_file_and_the_reason() {
    let sigil = Sigil::start();
    let proj = toolkit_project();
    let dir = proj.path();
    std::fs::write(dir.join("assets/bad;name.txt"), "x").expect("write");
    let (code, out, err) = sigil_cli(&sigil, dir, &["deploy"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("bad;name.txt") && err.contains("400") && err.contains("Path"),
        "{err}"
    );

    // Wrong credentials.
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .args([
            "deploy",
            "--api-url",
            &sigil.api,
            "--account-sid",
            ACCOUNT_SID,
            "--auth-token",
            "wrong",
        ])
        .current_dir(dir)
        .env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401") && err.contains("20003"), "{err}");

    // No project here.
    let empty = tempfile::tempdir().expect("dir");
    let (code, _, err) = sigil_cli(&sigil, empty.path(), &["deploy", "--service", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("nothing to deploy"), "{err}");
}
